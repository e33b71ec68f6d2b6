"""Closing an account on the site's pages (issue 16): what and when, a fresh WeChat confirmation of the same
account, every session ending, the grace period's offer to cancel, and the JSON download of my data."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from helpers import follow, location_path, page_xsrf
from unit.test_useragent import IOS_WECHAT

SESSION = "wxsid"  # no __Host- prefix: the test server runs on plain http


async def post_form(client, server, path, page="/account", **fields):
    fields["_xsrf"] = await page_xsrf(client, server.url + page)
    return await client.post(server.url + path, data=fields)


def make_stale(client, server):
    """Turn the browser's session into one whose WeChat sign-in was long ago (past [accounts] reauth_window)."""
    sessions = server.services.sessions
    claims, _ = sessions.parse(client.cookies.get(SESSION))
    long_ago = int(time.time()) - sessions.reauth_window - 60
    old = replace(claims, issued_at=long_ago, wechat_at=long_ago)
    cookie = next(c for c in client.cookies.jar if c.name == SESSION)
    client.cookies.set(SESSION, sessions.cookie_value(old), domain=cookie.domain, path=cookie.path)


async def reauth(client, server, flows, person, next_path="/account/close", page="/account/close"):
    """Press 用微信确认身份 and confirm as ``person`` on the sandbox's phone; the callback's answer."""
    started = await post_form(client, server, "/account/reauth", page=page, next=next_path)
    assert started.status_code == 302, started.text
    assert "callback%2Fweb-reauth" in started.headers["location"]
    return await client.get(await flows.scan(client, started.headers["location"].split("#")[0], person))


async def close_account(client, server):
    page = await client.get(server.url + "/account/close")
    assert 'data-close-state="confirm"' in page.text, page.text
    return await post_form(client, server, "/account/close", page="/account/close", confirm="1")


async def test_the_close_page_says_what_and_when_and_closing_ends_every_session(server, new_client, flows, sql):
    laptop, phone = new_client(), new_client()
    await flows.login(laptop, "zhangsan")
    await flows.login(phone, "zhangsan")
    handed = await laptop.post(server.url + "/_sandbox/dev/wx.login", json={"person": "zhangsan"})
    token = (await laptop.post(server.url + "/api/miniprogram/login",
                               json={"code": handed.json()["code"]})).json()["token"]
    account = await laptop.get(server.url + "/account")
    assert 'href="/account/close"' in account.text and 'data-export="masked"' in account.text

    page = await laptop.get(server.url + "/account/close")

    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    for said in ("注销账号？", "所有登录方式", "绑定的手机号", "登录记录会保留", "确认注销"):
        assert said in page.text
    expected = (datetime.now(UTC) + timedelta(days=15)).astimezone(server.settings.server.zone)
    assert expected.strftime("%Y-%m-%d") in page.text
    [(sv_before,)] = await sql("SELECT session_version FROM users")

    closed = await post_form(laptop, server, "/account/close", page="/account/close", confirm="1")

    assert closed.status_code == 200 and 'data-close-state="scheduled"' in closed.text
    assert "已申请注销" in closed.text and expected.strftime("%Y-%m-%d") in closed.text
    assert SESSION in closed.headers.get("set-cookie", "")  # this browser's cookie is cleared
    [(when, sv_after)] = await sql("SELECT deletion_scheduled_at, session_version FROM users")
    assert sv_after == sv_before + 1
    assert abs((when.replace(tzinfo=UTC) - datetime.now(UTC)) - timedelta(days=15)) < timedelta(minutes=5)
    # Every session and token ended: the other browser, and the mini-program's token.
    assert (await phone.get(server.url + "/account")).status_code == 302
    me = await phone.get(server.url + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401 and me.json()["error"] == "invalid_token"


async def test_an_old_sign_in_confirms_with_the_same_wechat_first(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    make_stale(client, server)

    page = await client.get(server.url + "/account/close")
    assert 'data-close-state="reauth"' in page.text and "用微信确认身份" in page.text
    refused = await post_form(client, server, "/account/close", page="/account/close", confirm="1")
    assert refused.status_code == 403 and 'data-close-state="reauth"' in refused.text
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]  # nothing changed

    back = await reauth(client, server, flows, "zhangsan")

    assert location_path(back, server.url) == "/account/close"
    assert 'data-close-state="confirm"' in (await client.get(server.url + "/account/close")).text
    assert (await close_account(client, server)).status_code == 200
    assert await sql("SELECT COUNT(*) FROM users WHERE deletion_scheduled_at IS NOT NULL") == [(1,)]


async def test_confirming_with_another_wechat_is_refused_and_changes_nothing(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    make_stale(client, server)
    [(uid,)] = await sql("SELECT id FROM users")

    answer = await reauth(client, server, flows, "lisi")

    assert answer.status_code == 403 and "这不是当前账号的微信" in answer.text
    assert await sql("SELECT id FROM users") == [(uid,)]  # no account for lisi either
    assert await sql("SELECT outcome FROM login_events WHERE user_id = %s AND outcome = 'wrong_account'", uid) \
        == [("wrong_account",)]
    page = await client.get(server.url + "/account/close")
    assert 'data-close-state="reauth"' in page.text  # still not a recent sign-in


async def test_signing_in_during_the_grace_period_offers_to_cancel(server, new_client, flows, sql):
    laptop = new_client()
    await flows.login(laptop, "zhangsan")
    await close_account(laptop, server)

    back = await flows.login(laptop, "zhangsan", next_path="/account")

    assert location_path(back, server.url) == "/account/close"
    page = await laptop.get(server.url + "/account/close")
    assert 'data-close-state="pending"' in page.text
    assert "你的账号将于" in page.text and "取消注销" in page.text and "继续注销并退出" in page.text
    # Meanwhile only restore, export and sign out: every other page offers the choice, every other action is refused.
    assert location_path(await laptop.get(server.url + "/account"), server.url) == "/account/close"
    refused = await post_form(laptop, server, "/account/phone/unbind", page="/account/close")
    assert refused.status_code == 403 and "账号正在注销中" in refused.text
    assert (await laptop.get(server.url + "/account/export")).status_code == 200

    restored = await post_form(laptop, server, "/account/restore", page="/account/close")

    assert location_path(restored, server.url) == "/account?done=restored"
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]
    assert "已取消注销" in (await laptop.get(server.url + "/account?done=restored")).text


async def test_signing_in_inside_wechat_during_the_grace_period_offers_to_cancel(server, new_client, flows):
    laptop, phone = new_client(), new_client()
    await flows.mp_login(phone, "zhangsan")  # the account exists for the official account too
    await flows.login(laptop, "zhangsan")
    await close_account(laptop, server)

    trace = await flows.mp_login(phone, "zhangsan", next_path="/account")

    assert str(trace[-1].url).endswith("/account/close") and 'data-close-state="pending"' in trace[-1].text


async def test_keep_closing_signs_out_and_the_deletion_stays(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    await close_account(client, server)
    await flows.login(client, "zhangsan")

    out = await post_form(client, server, "/logout", page="/account/close")

    assert out.status_code == 302 and (await client.get(server.url + "/account")).status_code == 302
    assert await sql("SELECT COUNT(*) FROM users WHERE deletion_scheduled_at IS NOT NULL") == [(1,)]


async def test_closing_needs_the_xsrf_token_and_a_signed_in_person(server, client, flows, sql):
    anonymous = await client.get(server.url + "/account/close")
    assert anonymous.status_code == 302 and "/login?next=%2Faccount%2Fclose" in anonymous.headers["location"]
    await flows.login(client, "zhangsan")
    forged = await client.post(server.url + "/account/close", data={"confirm": "1"})
    assert forged.status_code == 403
    unconfirmed = await post_form(client, server, "/account/close", page="/account/close")
    assert unconfirmed.status_code == 403  # the button's confirm=1 is missing: nothing happens
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]


async def test_download_my_data_holds_everything_but_no_secret(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    handed = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": "zhangsan"})
    token = (await client.post(server.url + "/api/miniprogram/login",
                               json={"code": handed.json()["code"]})).json()["token"]
    code = (await client.post(server.url + "/_sandbox/dev/phone-code", json={"person": "zhangsan"})).json()["code"]
    bound = await client.post(server.url + "/api/miniprogram/phone", json={"code": code},
                              headers={"Authorization": f"Bearer {token}"})
    [(full_number,)] = await sql("SELECT phone FROM user_phones")
    masked = bound.json()["phone"]["masked"]

    download = await client.get(server.url + "/account/export")

    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["Cache-Control"] == "no-store"
    data = json.loads(download.text)
    assert data["user"]["nickname"] == "张三"
    assert {m["channel"] for m in data["login_methods"]} == {"web", "miniprogram"}
    assert {m["openid"] for m in data["login_methods"]} == {r[0] for r in await sql("SELECT openid FROM "
                                                                                     "user_login_methods")}
    assert len(data["login_history"]) >= 3 and data["phone"]["number"] == masked
    cipher = server.services.api.login.cipher
    sealed = [bytes(v) for row in await sql("SELECT access_token_enc, refresh_token_enc, session_key_enc "
                                            "FROM user_login_methods") for v in row if v is not None]
    assert len(sealed) >= 3
    session_key = server.sandbox.state.session_keys[(server.settings.wechat.miniprogram.appid, "zhangsan")]
    for secret in [cipher.decrypt(s) for s in sealed] + [s.hex() for s in sealed] + [session_key, full_number]:
        assert secret not in download.text
    for word in ("token", "session_key", "secret"):
        assert word not in download.text

    full = await client.get(server.url + "/account/export?phone=full")  # a recent sign-in: the full number
    assert json.loads(full.text)["phone"]["number"] == full_number
    make_stale(client, server)
    refused = await client.get(server.url + "/account/export?phone=full")
    assert refused.status_code == 403 and "请先用微信确认身份" in refused.text
    assert full_number not in refused.text
    account = await client.get(server.url + "/account")
    assert 'data-export="reauth"' in account.text and 'data-export="full"' not in account.text
    back = await reauth(client, server, flows, "zhangsan", next_path="/account?done=reauthed#data", page="/account")
    assert location_path(back, server.url).startswith("/account?done=reauthed")
    assert 'data-export="full"' in (await client.get(server.url + "/account")).text


async def test_inside_wechat_the_confirmation_is_a_tap_on_the_official_account(server, new_client, flows):
    phone = new_client(headers={"User-Agent": IOS_WECHAT})
    await flows.mp_login(phone, "zhangsan")
    make_stale(phone, server)

    started = await post_form(phone, server, "/account/reauth", page="/account/close", next="/account/close")

    assert "callback%2Fmp-reauth" in started.headers["location"] and "snsapi_userinfo" in started.headers["location"]
    trace = await follow(phone, started.headers["location"])
    assert str(trace[-1].url).endswith("/account/close") and 'data-close-state="confirm"' in trace[-1].text


async def _miniprogram_login(client, server, person):
    handed = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": person})
    return (await client.post(server.url + "/api/miniprogram/login", json={"code": handed.json()["code"]})).json()


async def test_an_unlink_on_an_old_session_does_not_make_it_recent(server, new_client, flows, sql):
    """Unlinking mints this browser a new session: it must not count as a WeChat sign-in (a stale session on a
    shared computer would otherwise unlock closing the account and the full export)."""
    client = new_client()
    await flows.login(client, "zhangsan")
    await _miniprogram_login(new_client(), server, "zhangsan")  # same unionid: a second method of the account
    [(mini_id,)] = await sql("SELECT id FROM user_login_methods WHERE login_method = 'miniprogram'")
    make_stale(client, server)

    done = await post_form(client, server, "/account/unlink", method_id=str(mini_id), confirm="1")

    assert location_path(done, server.url) == "/account?done=unlinked"
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(1,)]
    page = await client.get(server.url + "/account/close")
    assert page.status_code == 200 and 'data-close-state="reauth"' in page.text  # still asks for WeChat
    refused = await post_form(client, server, "/account/close", page="/account/close", confirm="1")
    assert refused.status_code == 403 and await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]
    assert (await client.get(server.url + "/account/export?phone=full")).status_code == 403


async def test_linking_or_merging_on_an_old_session_confirms_with_wechat_first(server, new_client, flows, sql):
    """A WeChat linked to the account counts as its own (it may confirm closing it): an old session links nothing
    until the account's WeChat confirmed it is still the person; then linking starts as before."""
    client = new_client()
    await flows.login(client, "zhangsan")
    await flows.login(new_client(), "lisi")
    [(own_id,), (other_id,)] = await sql("SELECT id FROM users ORDER BY id")
    make_stale(client, server)

    for path, fields in (("/account/link/web", {}), ("/account/link/mp", {}),
                         ("/account/merge", {"offer": server.services.accounts.merge_offer(own_id, other_id),
                                             "channel": "web"})):
        started = await post_form(client, server, path, **fields)
        assert started.status_code == 302, (path, started.text)
        assert "callback%2Fweb-reauth" in started.headers["location"], path  # this account's WeChat, not a new one
    assert await sql("SELECT COUNT(*) FROM pending_merges") == [(0,)]

    # Another WeChat cannot stand in for the account's own.
    wrong = await client.get(await flows.scan(client, started.headers["location"].split("#")[0], "lisi"))
    assert wrong.status_code == 403
    assert "callback%2Fweb-reauth" in (await post_form(client, server, "/account/link/web")).headers["location"]

    started = await post_form(client, server, "/account/link/web")
    back = await client.get(await flows.scan(client, started.headers["location"].split("#")[0], "zhangsan"))
    assert location_path(back, server.url) == "/account?done=reauthed"
    linking = await post_form(client, server, "/account/link/web")
    assert "callback%2Fweb-link" in linking.headers["location"]  # now a recent sign-in: the link flow itself
