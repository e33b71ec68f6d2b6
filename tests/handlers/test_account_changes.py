"""Signed-in account changes: link, unlink, merge on explicit confirmation, profile refresh with token
refresh and re-authorisation, and the placeholder-profile rule."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from helpers import follow, location_path, page_xsrf


async def post_form(client, server, path, **fields):
    fields["_xsrf"] = await page_xsrf(client, server.url + "/account")
    return await client.post(server.url + path, data=fields)


async def link_by_qr(client, server, flows, person):
    start = await post_form(client, server, "/account/link/web")
    assert start.status_code == 302
    callback = await flows.scan(client, start.headers["location"].split("#")[0], person)
    assert "/auth/wechat/callback/web-link" in callback
    return await client.get(callback)


async def link_by_official_account(client, server, person):
    client.cookies.set("sbwx", person)
    start = await post_form(client, server, "/account/link/mp")
    assert "scope=snsapi_userinfo" in start.headers["location"]
    return await follow(client, start.headers["location"])


async def test_link_official_account_to_a_qr_account(server, client, flows, sql):
    await flows.login(client, "lisi")  # no unionid: only an explicit link can join the two

    trace = await link_by_official_account(client, server, "lisi")

    assert str(trace[-1].url).endswith("/account?done=linked")
    assert "已绑定新的登录方式" in trace[-1].text
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert await sql("SELECT login_method FROM user_login_methods ORDER BY id") == [("web",), ("mp",)]


async def test_link_of_an_identity_owned_by_another_account_asks_before_merging(server, new_client, flows, sql):
    phone, laptop = new_client(), new_client()
    await flows.mp_login(phone, "lisi")  # account B, through the official account
    await flows.login(laptop, "lisi")  # account A, through the QR code (no unionid: a second account)
    [(a_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'web'")
    [(b_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'mp'")

    trace = await link_by_official_account(laptop, server, "lisi")

    conflict = trace[-1]
    assert conflict.status_code == 409
    assert "这个微信已绑定其他账号" in conflict.text and "确认合并到当前账号" in conflict.text
    assert "该账号的 1 种登录方式将转到当前账号" in conflict.text
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]  # nothing merged silently

    offer = conflict.text.split('name="offer" value="')[1].split('"')[0]
    merged = await post_form(laptop, server, "/account/merge", offer=offer)

    assert location_path(merged, server.url) == "/account?done=merged"
    assert await sql("SELECT id FROM users") == [(a_id,)]
    assert await sql("SELECT DISTINCT user_id FROM user_login_methods") == [(a_id,)]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_id = %s", b_id) == [(0,)]
    assert (await phone.get(server.url + "/account")).status_code == 302  # B's sessions are gone


async def test_merge_offer_cannot_be_forged_or_used_by_someone_else(server, new_client, flows, sql):
    a, b = new_client(), new_client()
    await flows.login(a, "zhangsan")
    await flows.login(b, "panda")
    [(a_id,), (b_id,)] = await sql("SELECT id FROM users ORDER BY id")
    offer_for_a = server.services.accounts.merge_offer(a_id, b_id)

    stolen = await post_form(b, server, "/account/merge", offer=offer_for_a)
    forged = await post_form(a, server, "/account/merge", offer=offer_for_a[:-2] + "xx")

    assert stolen.status_code == forged.status_code == 400
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]


async def test_unlink_keeps_at_least_one_login_method(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    await link_by_official_account(client, server, "zhangsan")
    [(web_id,), (mp_id,)] = await sql("SELECT id FROM user_login_methods ORDER BY id")

    first = await post_form(client, server, "/account/unlink", method_id=str(web_id))
    last = await post_form(client, server, "/account/unlink", method_id=str(mp_id))

    assert location_path(first, server.url) == "/account?done=unlinked"
    assert last.status_code == 400 and "账号至少需要保留一种登录方式" in last.text
    assert await sql("SELECT id FROM user_login_methods") == [(mp_id,)]


async def test_unlinking_the_only_method_with_the_unionid_forgets_it(server, client, flows, sql):
    await flows.login(client, "lisi")  # web, no unionid
    await link_by_official_account(client, server, "zhangsan")  # mp, brings a unionid
    [(mp_id,)] = await sql("SELECT id FROM user_login_methods WHERE login_method = 'mp'")

    await post_form(client, server, "/account/unlink", method_id=str(mp_id))

    assert await sql("SELECT unionid FROM users") == [(None,)]


async def test_cannot_unlink_someone_elses_login_method(server, new_client, flows, sql):
    a, b = new_client(), new_client()
    await flows.login(a, "zhangsan")
    await flows.login(b, "panda")
    [(b_method,)] = await sql("SELECT m.id FROM user_login_methods m JOIN users u ON u.id = m.user_id "
                              "WHERE u.nickname LIKE '%%Panda%%'")

    response = await post_form(a, server, "/account/unlink", method_id=str(b_method))

    assert response.status_code in (400, 404)
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(2,)]


async def test_profile_refresh_with_a_valid_token(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    await sql("UPDATE users SET nickname = '旧名字'")

    response = await post_form(client, server, "/account/refresh")

    assert location_path(response, server.url) == "/account?done=updated"
    assert await sql("SELECT nickname FROM users") == [("张三",)]


async def test_profile_refresh_renews_an_expired_access_token(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    [(before,)] = await sql("SELECT access_token_enc FROM user_login_methods")
    server.sandbox.state.expire_access_tokens("zhangsan")  # WeChat's clock moved past 2 hours
    await sql("UPDATE user_login_methods SET access_token_expires_at = '2000-01-01'")
    await sql("UPDATE users SET nickname = '旧名字'")

    response = await post_form(client, server, "/account/refresh")

    assert location_path(response, server.url) == "/account?done=updated"
    [(after,)] = await sql("SELECT access_token_enc FROM user_login_methods")
    assert after != before  # a new access token, from the refresh token, stored encrypted
    assert await sql("SELECT nickname FROM users") == [("张三",)]


async def test_profile_refresh_handles_42001_from_userinfo(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    server.sandbox.state.expire_access_tokens("zhangsan")  # our record still believes it is valid

    response = await post_form(client, server, "/account/refresh")

    assert location_path(response, server.url) == "/account?done=unchanged"


async def test_profile_refresh_without_a_live_refresh_token_asks_to_authorise_again(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    server.sandbox.state.expire_access_tokens("zhangsan")
    server.sandbox.state.expire_refresh_tokens("zhangsan")

    response = await post_form(client, server, "/account/refresh")

    assert response.status_code == 302
    location = response.headers["location"]
    assert "/connect/qrconnect?" in location
    redirect_uri = parse_qs(urlsplit(location.split("#")[0]).query)["redirect_uri"][0]
    assert "/auth/wechat/callback/web-link" in redirect_uri
    # Authorising again renews the tokens and the profile.
    await sql("UPDATE users SET nickname = '旧名字'")
    done = await client.get(await flows.scan(client, location.split("#")[0], "zhangsan"))
    assert location_path(done, server.url) == "/account?done=linked"
    assert await sql("SELECT nickname FROM users") == [("张三",)]
    assert location_path(await post_form(client, server, "/account/refresh"), server.url) == "/account?done=unchanged"


async def test_placeholder_profile_is_recorded_and_never_overwrites_a_real_one(server, new_client, flows, sql):
    first = new_client()
    await flows.login(first, "anon")
    assert await sql("SELECT nickname, profile_is_placeholder FROM users") == [("微信用户", 1)]
    assert "微信只提供了匿名资料" in (await first.get(server.url + "/account")).text

    await sql("UPDATE users SET nickname = '真名', avatar_url = 'https://example.com/a.png', "
              "profile_is_placeholder = 0")
    await flows.login(new_client(), "anon")
    await post_form(first, server, "/account/refresh")

    assert await sql("SELECT nickname, avatar_url, profile_is_placeholder FROM users") == [
        ("真名", "https://example.com/a.png", 0)]


async def test_account_page_offers_to_resolve_a_unionid_conflict(server, new_client, flows, sql):
    await flows.login(new_client(), "zhangsan")
    [(unionid,)] = await sql("SELECT unionid FROM users")
    await sql("UPDATE users SET unionid = NULL")
    await sql("UPDATE user_login_methods SET unionid = NULL")
    await sql("INSERT INTO users (unionid, nickname, created_at) VALUES (%s, 'other', UTC_TIMESTAMP())", unionid)
    client = new_client()
    await flows.login(client, "zhangsan")  # logs in to the original account, reports the conflict

    page = await client.get(server.url + "/account")

    assert "发现你的另一个账号" in page.text
