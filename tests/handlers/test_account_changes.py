"""Signed-in account changes: link, unlink, merge on explicit confirmation, profile refresh with token
refresh and re-authorisation, and the placeholder-profile rule."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import follow, location_path, page_xsrf
from wxlogin.errors import WxLoginError


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


def merge_form(page):
    """The hidden fields of the conflict page's merge form (the signed offer and the channel to confirm with)."""
    assert 'name="offer"' in page.text, page.text
    return {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="(offer|channel)" value="([^"]*)"',
                                                        page.text)}


async def start_merge(client, server, conflict):
    """Press the conflict page's merge button: a redirect to WeChat for the merge confirmation, nothing merged."""
    started = await post_form(client, server, "/account/merge", **merge_form(conflict))
    assert started.status_code == 302, started.text
    return started.headers["location"]


async def confirm_merge_in_wechat(client, server, flows, wechat_url, person):
    """Confirm the merge flow in WeChat as ``person``: a QR scan or the official account's consent."""
    if "/connect/qrconnect?" in wechat_url:
        return await client.get(await flows.scan(client, wechat_url.split("#")[0], person))
    client.cookies.set("sbwx", person)
    trace = await follow(client, wechat_url)
    return next(r for r in trace if "/auth/wechat/callback/" in str(r.url))  # the callback's own answer


async def miniprogram_login(client, server, person):
    """wx.login in the sandbox, then the site's mini-program login: (status, body)."""
    handed = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": person})
    answer = await client.post(server.url + "/api/miniprogram/login", json={"code": handed.json()["code"]})
    return answer.status_code, answer.json()


async def api_me(client, server, token):
    return await client.get(server.url + "/api/me", headers={"Authorization": f"Bearer {token}"})


async def test_link_official_account_to_a_qr_account(server, client, flows, sql):
    await flows.login(client, "lisi")  # no unionid: only an explicit link can join the two

    trace = await link_by_official_account(client, server, "lisi")

    assert str(trace[-1].url).endswith("/account?done=linked")
    assert "已绑定新的登录方式" in trace[-1].text
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert await sql("SELECT login_method FROM user_login_methods ORDER BY id") == [("web",), ("mp",)]


async def test_link_of_an_identity_owned_by_another_account_asks_before_merging(server, new_client, flows, sql):
    """The whole legitimate merge: link -> conflict page -> a fresh WeChat confirmation of the other account."""
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
    # The page says which account disappears and which stays: ids, and the login methods of each.
    gone = conflict.text.split(f'data-account="{b_id}"')[1].split("</ul>")[0]
    stays = conflict.text.split(f'data-account="{a_id}"')[1].split("</ul>")[0]
    assert "将被删除的账号" in gone and f"账号 ID {b_id}" in gone and 'data-channel="mp"' in gone
    assert "保留的账号（当前登录）" in stays and f"账号 ID {a_id}" in stays and 'data-channel="web"' in stays
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]  # nothing merged silently

    wechat_url = await start_merge(laptop, server, conflict)

    assert "scope=snsapi_userinfo" in wechat_url and "callback%2Fmp-merge" in wechat_url
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]  # the button alone merges nothing

    merged = await confirm_merge_in_wechat(laptop, server, flows, wechat_url, "lisi")

    assert location_path(merged, server.url) == "/account?done=merged"
    assert await sql("SELECT id FROM users") == [(a_id,)]
    assert await sql("SELECT DISTINCT user_id FROM user_login_methods") == [(a_id,)]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_id = %s", b_id) == [(0,)]
    assert await sql("SELECT COUNT(*) FROM pending_merges") == [(0,)]
    assert (await phone.get(server.url + "/account")).status_code == 302  # B's sessions are gone
    assert "账号已合并" in (await laptop.get(server.url + "/account?done=merged")).text


async def test_merge_confirmed_by_scanning_the_qr_code(server, new_client, flows, sql):
    """The same through the website QR: the merge flow's own QR, scanned by the other account's WeChat."""
    laptop, phone = new_client(), new_client()
    await flows.login(laptop, "lisi")  # account B, website QR
    await flows.mp_login(phone, "lisi")  # account A, official account (no unionid: a second account)
    [(b_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'web'")
    [(a_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'mp'")
    conflict = await link_by_qr(phone, server, flows, "lisi")
    assert conflict.status_code == 409

    wechat_url = await start_merge(phone, server, conflict)
    assert "/connect/qrconnect?" in wechat_url and "callback%2Fweb-merge" in wechat_url
    merged = await confirm_merge_in_wechat(phone, server, flows, wechat_url, "lisi")

    assert location_path(merged, server.url) == "/account?done=merged"
    assert await sql("SELECT id FROM users") == [(a_id,)]
    assert await sql("SELECT login_method FROM user_login_methods WHERE user_id = %s ORDER BY id", a_id) == [
        ("web",), ("mp",)]
    assert b_id != a_id


async def test_a_victim_scanning_a_link_qr_cannot_get_their_account_merged(server, new_client, flows, sql):
    """Issue 12 finding 2: the attacker opens a *link* QR on their account and gets the victim to scan it.

    The conflict page and its signed offer are the attacker's, but the offer only starts a merge flow;
    only a second, merge-specific confirmation by the victim's WeChat could merge, and the attacker's
    own WeChat does not count.
    """
    attacker, victim = new_client(), new_client()
    await flows.login(attacker, "zhangsan")
    await flows.login(victim, "panda")
    [(attacker_id,), (victim_id,)] = await sql("SELECT id FROM users ORDER BY id")
    start = await post_form(attacker, server, "/account/link/web")
    callback = await flows.scan(attacker, start.headers["location"].split("#")[0], "panda")  # the victim scans
    conflict = await attacker.get(callback)
    assert conflict.status_code == 409

    # The offer POST alone, even twice, merges nothing.
    first = await start_merge(attacker, server, conflict)
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]
    second = await start_merge(attacker, server, conflict)
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]
    # Confirming the merge with the attacker's own WeChat is refused.
    refused = await confirm_merge_in_wechat(attacker, server, flows, first, "zhangsan")
    assert refused.status_code == 403 and "合并没有完成" in refused.text

    assert await sql("SELECT id FROM users ORDER BY id") == [(attacker_id,), (victim_id,)]
    assert await sql("SELECT COUNT(*) FROM user_login_methods WHERE user_id = %s", victim_id) == [(1,)]
    assert (await victim.get(server.url + "/account")).status_code == 200  # still signed in
    back = await flows.login(new_client(), "panda")  # the victim's WeChat still opens the victim's account
    assert back.status_code == 302 and await sql("SELECT COUNT(*) FROM users") == [(2,)]
    assert "/connect/qrconnect?" in second  # an unused second flow: it also merges nothing by itself
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]


async def test_merge_from_a_disabled_account_is_refused(server, new_client, flows, sql):
    """Issue 12 finding 1: a disabled account's row and ban must not vanish into an active account."""
    phone, laptop = new_client(), new_client()
    await flows.mp_login(phone, "lisi")  # B
    await flows.login(laptop, "lisi")  # A
    [(a_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'web'")
    [(b_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'mp'")
    await sql("UPDATE users SET disabled = 1 WHERE id = %s", b_id)

    conflict = (await link_by_official_account(laptop, server, "lisi"))[-1]
    offer = server.services.accounts.merge_offer(a_id, b_id)  # what the page offered before issue 12
    refused = await post_form(laptop, server, "/account/merge", offer=offer, channel="mp")

    assert refused.status_code == 403 and "无法合并账号" in refused.text
    assert conflict.status_code == 409 and 'name="offer"' not in conflict.text  # no merge is offered
    assert "已停用的账号不能合并" in conflict.text
    assert await sql("SELECT id, disabled FROM users ORDER BY id") == [(min(a_id, b_id), int(b_id < a_id)),
                                                                       (max(a_id, b_id), int(b_id > a_id))]
    assert await sql("SELECT COUNT(*) FROM user_login_methods WHERE user_id = %s", b_id) == [(1,)]


async def test_account_disabled_during_the_merge_confirmation_is_not_merged(server, new_client, flows, sql):
    """The store refuses too: an account disabled after the merge flow started stays where it is."""
    phone, laptop = new_client(), new_client()
    await flows.mp_login(phone, "lisi")  # B
    await flows.login(laptop, "lisi")  # A
    [(b_id,)] = await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'mp'")
    conflict = (await link_by_official_account(laptop, server, "lisi"))[-1]
    wechat_url = await start_merge(laptop, server, conflict)
    await sql("UPDATE users SET disabled = 1 WHERE id = %s", b_id)

    refused = await confirm_merge_in_wechat(laptop, server, flows, wechat_url, "lisi")

    assert refused.status_code == 403 and "无法合并账号" in refused.text
    assert await sql("SELECT COUNT(*) FROM users WHERE id = %s AND disabled = 1", b_id) == [(1,)]
    assert await sql("SELECT COUNT(*) FROM user_login_methods WHERE user_id = %s", b_id) == [(1,)]


async def test_no_merge_from_or_into_a_disabled_account_even_by_an_operator(server, new_client, flows, sql):
    await flows.login(new_client(), "zhangsan")
    await flows.login(new_client(), "panda")
    [(a_id,), (b_id,)] = await sql("SELECT id FROM users ORDER BY id")
    accounts = server.services.accounts
    await sql("UPDATE users SET disabled = 1 WHERE id = %s", b_id)

    for into, source in ((a_id, b_id), (b_id, a_id)):  # from the disabled one, then into it
        with pytest.raises(WxLoginError) as store_refusal:
            await accounts.accounts.merge(into, source)  # the store refuses by itself
        assert store_refusal.value.code == "merge_refused"
        with pytest.raises(WxLoginError) as service_refusal:
            await accounts.merge_as_operator(into, source)
        assert service_refusal.value.code == "merge_refused"

    assert await sql("SELECT id, disabled FROM users ORDER BY id") == [(a_id, 0), (b_id, 1)]
    assert await sql("SELECT COUNT(*) FROM user_login_methods GROUP BY user_id ORDER BY user_id") == [(1,), (1,)]


async def test_operator_merge_needs_no_owner_proof(server, new_client, flows, sql):
    a, b = new_client(), new_client()
    await flows.login(a, "zhangsan")
    await flows.login(b, "panda")
    [(a_id,), (b_id,)] = await sql("SELECT id FROM users ORDER BY id")

    moved = await server.services.accounts.merge_as_operator(a_id, b_id)

    assert moved == 1
    assert await sql("SELECT id FROM users") == [(a_id,)]
    assert await sql("SELECT DISTINCT user_id FROM user_login_methods") == [(a_id,)]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_id = %s", b_id) == [(0,)]
    assert (await b.get(server.url + "/account")).status_code == 302  # B's session died with B
    assert (await a.get(server.url + "/account")).status_code == 200
    assert (await flows.login(new_client(), "panda")).status_code == 302  # panda's WeChat now opens A
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


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


async def test_unlinked_miniprogram_token_is_refused_and_this_browser_stays_signed_in(server, new_client, flows,
                                                                                      sql):
    """Issue 12 finding 6: unlinking ends what the removed method handed out."""
    browser, other_browser, app = new_client(), new_client(), new_client()
    await flows.login(browser, "zhangsan")
    await flows.login(other_browser, "zhangsan")
    status, body = await miniprogram_login(app, server, "zhangsan")  # same unionid: the same account
    assert status == 200 and not body["created"]
    token = body["token"]
    assert (await api_me(app, server, token)).status_code == 200
    [(mini_id,)] = await sql("SELECT id FROM user_login_methods WHERE login_method = 'miniprogram'")

    done = await post_form(browser, server, "/account/unlink", method_id=str(mini_id), confirm="1")

    assert location_path(done, server.url) == "/account?done=unlinked"
    refused = await api_me(app, server, token)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
    page = await browser.get(server.url + "/account?done=unlinked")  # the person who unlinked stays signed in
    assert page.status_code == 200 and "已解除绑定" in page.text
    assert (await other_browser.get(server.url + "/account")).status_code == 302


async def test_next_login_of_an_unlinked_identity_is_a_new_account(server, new_client, flows, sql):
    """Issue 12 finding 6: the unlinked mini-program does not silently re-attach through the unionid."""
    browser, app = new_client(), new_client()
    await flows.login(browser, "zhangsan")
    await miniprogram_login(app, server, "zhangsan")
    [(old_id, unionid)] = await sql("SELECT id, unionid FROM users")
    [(mini_id,)] = await sql("SELECT id FROM user_login_methods WHERE login_method = 'miniprogram'")
    await post_form(browser, server, "/account/unlink", method_id=str(mini_id), confirm="1")

    status, body = await miniprogram_login(app, server, "zhangsan")

    assert status == 200 and body["created"] and body["user"]["id"] != old_id
    new_id = body["user"]["id"]
    assert await sql("SELECT id, unionid FROM users ORDER BY id") == [(old_id, unionid), (new_id, None)]
    assert await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'miniprogram'") == [(new_id,)]
    again = await miniprogram_login(app, server, "zhangsan")  # and it stays the new account
    assert again[1]["user"]["id"] == new_id and not again[1]["created"]
    # Nothing else was unlinked: the QR login still opens the old account, and one account per unionid.
    assert (await flows.login(new_client(), "zhangsan")).status_code == 302
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]
    assert await sql("SELECT user_id FROM user_login_methods WHERE login_method = 'web'") == [(old_id,)]


async def test_relinking_an_unlinked_identity_on_purpose_works(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    await link_by_official_account(client, server, "zhangsan")
    [(user_id,)] = await sql("SELECT id FROM users")
    [(mp_id,)] = await sql("SELECT id FROM user_login_methods WHERE login_method = 'mp'")
    await post_form(client, server, "/account/unlink", method_id=str(mp_id), confirm="1")
    assert await sql("SELECT user_id FROM unlinked_identities") == [(user_id,)]

    trace = await link_by_official_account(client, server, "zhangsan")

    assert str(trace[-1].url).endswith("/account?done=linked")
    assert await sql("SELECT COUNT(*) FROM unlinked_identities") == [(0,)]
    assert await sql("SELECT DISTINCT user_id FROM user_login_methods") == [(user_id,)]


async def test_unlink_keeps_at_least_one_login_method(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    await link_by_official_account(client, server, "zhangsan")
    [(web_id,), (mp_id,)] = await sql("SELECT id FROM user_login_methods ORDER BY id")

    first = await post_form(client, server, "/account/unlink", method_id=str(web_id), confirm="1")
    last = await post_form(client, server, "/account/unlink", method_id=str(mp_id), confirm="1")

    assert location_path(first, server.url) == "/account?done=unlinked"
    assert last.status_code == 400 and "账号至少需要保留一种登录方式" in last.text
    assert await sql("SELECT id FROM user_login_methods") == [(mp_id,)]


async def test_unlinking_the_only_method_with_the_unionid_forgets_it(server, client, flows, sql):
    await flows.login(client, "lisi")  # web, no unionid
    await link_by_official_account(client, server, "zhangsan")  # mp, brings a unionid
    [(mp_id,)] = await sql("SELECT id FROM user_login_methods WHERE login_method = 'mp'")

    await post_form(client, server, "/account/unlink", method_id=str(mp_id), confirm="1")

    assert await sql("SELECT unionid FROM users") == [(None,)]


async def test_cannot_unlink_someone_elses_login_method(server, new_client, flows, sql):
    a, b = new_client(), new_client()
    await flows.login(a, "zhangsan")
    await flows.login(b, "panda")
    [(b_method,)] = await sql("SELECT m.id FROM user_login_methods m JOIN users u ON u.id = m.user_id "
                              "WHERE u.nickname LIKE '%%Panda%%'")

    response = await post_form(a, server, "/account/unlink", method_id=str(b_method), confirm="1")

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
