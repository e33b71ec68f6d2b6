"""Scan to follow the official account (issue 14) over real HTTP: the site creates the follow QR at the sandbox
(/cgi-bin/qrcode/create), the sandbox's phone scans it as a new or existing follower and pushes subscribe/SCAN
to the site the way WeChat does (signed, sealed in safe mode), the site reads the person (/cgi-bin/user/info),
logs them in or registers them and confirms the scene in MySQL.

Scenes are rows of ``login_scenes`` (migration 8) made here by ``new_scene`` as the waiting page makes them,
so that expired and used ones can be made too; every outcome is read back from the row and the users tables.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from typing import Any

import pytest

from helpers import insert_scene
from wxlogin.sandbox import people
from wxlogin.sandbox import push as wechat
from wxlogin.services.follow import SCENE_GONE, SIGNING_IN

MP_APPID = "wxa0b1c2d3e4f50002"
MINI_APPID = "wxa0b1c2d3e4f50004"
WEB_APPID = "wxa0b1c2d3e4f50001"
FOLLOW_ON = {"wechat": {"mp": {"follow_login": True}}}
FOLLOW_OFF = {"wechat": {"desktop_methods": ["qr", "miniprogram"], "mp": {"follow_login": False}}}
FORWARD_SECRET = "forward-secret-0123456789abcdef-0123456789"

@pytest.fixture
async def site(start_server):
    """The app with scan to follow on (the development settings leave it off)."""
    return await start_server(FOLLOW_ON)


async def new_scene(sql, seconds: int = 300, status: str = "waiting") -> str:
    """A scene as the waiting page would have made it: random id, a browser's binding, a life."""
    scene = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    binding = hashlib.sha256(secrets.token_hex(16).encode()).digest()
    await sql("INSERT INTO login_scenes (scene, kind, binding, status, next_path, created_at, expires_at) "
              "VALUES (%s, 'follow', %s, %s, '/account', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL %s SECOND)",
              scene, binding, status, seconds)
    return scene


async def scene_row(sql, scene: str) -> tuple[str, int | None]:
    rows = await sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene)
    return rows[0][0], rows[0][1]


async def scan(client, site, scene: str, person: str = "zhangsan", as_: str = "new") -> dict[str, Any]:
    """The desktop shows the scene's QR (the site creates it at the sandbox); the phone scans it."""
    url = await site.services.follow.create_qr(scene)
    answer = await client.post(f"{site.url}/_sandbox/dev/follow/scan", json={"url": url, "person": person, "as": as_})
    assert answer.status_code == 200, answer.text
    return answer.json()


def openid(appid: str, person: str = "zhangsan") -> str:
    found = people.person(person)
    assert found is not None
    return people.openid_for(appid, found)


def unionid(person: str = "zhangsan") -> str | None:
    found = people.person(person)
    assert found is not None
    return people.unionid_for(found)


async def counts(sql) -> tuple[int, int, int]:
    """(users, login methods, successful logins): what a push that must change nothing must leave alone."""
    users = (await sql("SELECT COUNT(*) FROM users"))[0][0]
    methods = (await sql("SELECT COUNT(*) FROM user_login_methods"))[0][0]
    logins = (await sql("SELECT COUNT(*) FROM login_events WHERE outcome = 'success'"))[0][0]
    return users, methods, logins


def mp_push(site, event: str, event_key: str, person: str = "zhangsan", mode: str = "safe",
            create_time: int | None = None, **overrides: Any) -> wechat.SignedPush:
    """A push as WeChat would send it for the official account (the sandbox's own signing)."""
    mp = site.settings.wechat.mp
    fields = wechat.event_fields(MP_APPID, openid(MP_APPID, person), event, event_key, "gQTICKET", create_time)
    return wechat.signed_push(mp.push_token.value, mp.push_aes_key.value, MP_APPID, fields, mode, **overrides)


async def post_push(client, site, push: wechat.SignedPush):
    return await client.post(f"{site.url}/wechat/push/mp", params=push.query, content=push.body,
                             headers={"Content-Type": push.content_type})


async def follow_as_someone(client, site, person: str) -> None:
    """Make ``person`` known to the sandbox as a follower (a scan of an unrelated code)."""
    scratch = await site.services.follow.create_qr("X" * 32)  # a scene nobody waits for: changes nothing
    answer = await client.post(f"{site.url}/_sandbox/dev/follow/scan",
                               json={"url": scratch, "person": person, "as": "new"})
    assert answer.status_code == 200


# ---- the two scans ----------------------------------------------------------------------------------------

async def test_a_new_follower_signs_the_scene_in_and_is_registered(site, client, sql):
    scene = await new_scene(sql)

    result = await scan(client, site, scene, "zhangsan", "new")

    assert result["event"] == "subscribe" and result["mode"] == "safe" and result["status"] == 200
    assert result["reply_text"] == SIGNING_IN  # the follower's reply in WeChat, opened by the sandbox
    status, user_id = await scene_row(sql, scene)
    assert status == "confirmed" and user_id is not None
    rows = await sql("SELECT u.unionid, u.nickname, u.profile_is_placeholder, m.login_method, m.appid, m.openid "
                     "FROM users u JOIN user_login_methods m ON m.user_id = u.id WHERE u.id = %s", user_id)
    # user/info has no nickname since 2021: WeChat's placeholder, flagged as such.
    assert rows == [(unionid(), "微信用户", 1, "mp", MP_APPID, openid(MP_APPID))]
    assert (await counts(sql)) == (1, 1, 1)


async def test_an_existing_follower_signs_the_scene_in(site, client, sql):
    await follow_as_someone(client, site, "panda")
    scene = await new_scene(sql)

    result = await scan(client, site, scene, "panda", "existing")

    assert result["event"] == "SCAN" and result["reply_text"] == SIGNING_IN
    status, user_id = await scene_row(sql, scene)
    assert status == "confirmed"
    assert (await sql("SELECT unionid FROM users WHERE id = %s", user_id)) == [(unionid("panda"),)]


async def test_auto_scans_as_a_new_follower_first_and_as_an_existing_one_after(site, client, sql):
    first, second = await new_scene(sql), await new_scene(sql)

    assert (await scan(client, site, first, "zhangsan", "auto"))["event"] == "subscribe"
    assert (await scan(client, site, second, "zhangsan", "auto"))["event"] == "SCAN"

    (_, one), (_, two) = await scene_row(sql, first), await scene_row(sql, second)
    assert one == two and (await counts(sql))[:2] == (1, 1)


async def test_a_real_profile_is_not_replaced_by_the_placeholder(site, client, sql, flows):
    assert (await flows.login(client, "zhangsan")).status_code == 302  # the website QR: 张三's real nickname
    scene = await new_scene(sql)

    await scan(client, site, scene, "zhangsan")

    _, user_id = await scene_row(sql, scene)
    assert (await sql("SELECT nickname, profile_is_placeholder FROM users WHERE id = %s", user_id)) == [("张三", 0)]


async def test_a_person_without_unionid_gets_an_account_of_the_official_account(site, client, sql):
    scene = await new_scene(sql)

    await scan(client, site, scene, "lisi")

    _, user_id = await scene_row(sql, scene)
    assert (await sql("SELECT unionid FROM users WHERE id = %s", user_id)) == [(None,)]


# ---- one person, one account ------------------------------------------------------------------------------

async def test_website_qr_mini_program_and_follow_login_are_one_user(site, client, sql, flows):
    assert (await flows.login(client, "zhangsan")).status_code == 302
    handed = (await client.post(f"{site.url}/_sandbox/dev/wx.login", json={"person": "zhangsan"})).json()
    api = await client.post(f"{site.url}/api/miniprogram/login", json={"code": handed["code"]})
    assert api.status_code == 200, api.text
    scene = await new_scene(sql)

    await scan(client, site, scene, "zhangsan")

    _, user_id = await scene_row(sql, scene)
    assert (await sql("SELECT id FROM users")) == [(user_id,)]
    methods = await sql("SELECT login_method, appid FROM user_login_methods WHERE user_id = %s ORDER BY id", user_id)
    assert methods == [("web", WEB_APPID), ("miniprogram", MINI_APPID), ("mp", MP_APPID)]


async def test_the_three_desktop_scan_logins_sign_in_one_account(site, client, sql, flows):
    """The website QR, scan to follow and the mini-program code (its sandbox mini-program confirming through
    the API): three channels, one unionid, one account; each desktop scene is confirmed for that account."""
    assert (await flows.login(client, "zhangsan")).status_code == 302
    followed = await new_scene(sql)
    await scan(client, site, followed, "zhangsan")
    coded = await insert_scene(sql, kind="miniprogram")
    opened = f"{site.sandbox.base_url}/miniprogram/open?appid={MINI_APPID}&page=pages/login/index&scene={coded}"
    assert (await client.get(opened)).status_code == 200
    for action in ("scan", "confirm"):
        step = await client.post(opened, data={"_xsrf": client.cookies.get("_xsrf") or "", "person": "zhangsan",
                                               "action": action, "respond": "json"})
        assert step.json()["status"] == 200, step.text

    (users,) = await sql("SELECT id, unionid FROM users")
    assert users == (users[0], unionid())
    assert await sql("SELECT status, user_id FROM login_scenes WHERE scene IN (%s, %s) ORDER BY kind",
                     followed, coded) == [("confirmed", users[0]), ("confirmed", users[0])]
    methods = await sql("SELECT login_method, appid FROM user_login_methods WHERE user_id = %s ORDER BY id", users[0])
    assert methods == [("web", WEB_APPID), ("mp", MP_APPID), ("miniprogram", MINI_APPID)]


# ---- once, in time, and only by WeChat --------------------------------------------------------------------

async def test_a_scene_used_twice_does_nothing_the_second_time(site, client, sql):
    scene = await new_scene(sql)
    await scan(client, site, scene, "zhangsan")
    before = await counts(sql)
    first = await scene_row(sql, scene)

    again = await scan(client, site, scene, "panda")  # another person scans the same code
    repeat = await scan(client, site, scene, "zhangsan", "existing")  # the first one scans it once more

    assert again["reply_text"] == repeat["reply_text"] == SCENE_GONE
    assert await scene_row(sql, scene) == first
    assert await counts(sql) == before  # panda was not even registered


async def test_a_completed_scene_is_not_confirmed_again(site, client, sql):
    scene = await new_scene(sql, status="done")

    result = await scan(client, site, scene)

    assert result["reply_text"] == SCENE_GONE
    assert await scene_row(sql, scene) == ("done", None)
    assert await counts(sql) == (0, 0, 0)


async def test_an_expired_scene_changes_nothing(site, client, sql):
    scene = await new_scene(sql, seconds=-1)

    result = await scan(client, site, scene)

    assert result["status"] == 200 and result["reply_text"] == SCENE_GONE
    assert await scene_row(sql, scene) == ("waiting", None)  # expiry is computed from expires_at
    assert await counts(sql) == (0, 0, 0)


async def test_an_unknown_scene_changes_nothing(site, client, sql):
    result = await scan(client, site, "Q" * 32)

    assert result["reply_text"] == SCENE_GONE
    assert await counts(sql) == (0, 0, 0)


async def test_a_duplicate_or_retried_push_is_handled_once(site, client, sql):
    scene = await new_scene(sql)
    await follow_as_someone(client, site, "zhangsan")
    await site.services.follow.create_qr(scene)
    push = mp_push(site, "SCAN", "login_" + scene, create_time=int(time.time()))

    first = await post_push(client, site, push)
    status_after_first = await scene_row(sql, scene)
    second = await post_push(client, site, push)  # WeChat's retry: the same FromUserName + CreateTime

    assert first.status_code == second.status_code == 200
    assert b"Encrypt" in first.content  # the passive reply, sealed
    assert second.content == b"success"  # taken already: acknowledged, not dispatched again
    assert status_after_first[0] == "confirmed" and await scene_row(sql, scene) == status_after_first
    assert await counts(sql) == (1, 1, 1)


@pytest.mark.parametrize("forgery", ["bad signature", "wrong appid inside", "replayed old timestamp"])
async def test_forged_pushes_change_nothing(forgery, site, client, sql):
    scene = await new_scene(sql)
    await follow_as_someone(client, site, "zhangsan")
    before = await counts(sql)
    mp = site.settings.wechat.mp
    token, key = mp.push_token.value, mp.push_aes_key.value
    message = wechat.render(wechat.event_fields(MP_APPID, openid(MP_APPID), "SCAN", "login_" + scene, "gQX"))
    timestamp = str(int(time.time()) - (600 if forgery == "replayed old timestamp" else 0))
    sealed = wechat.seal(key, "wx0000000000000000" if forgery == "wrong appid inside" else MP_APPID, message)
    signing_token = "NotTheToken" if forgery == "bad signature" else token
    query = {"signature": wechat.sign(signing_token, timestamp, "5"), "timestamp": timestamp, "nonce": "5",
             "encrypt_type": "aes", "msg_signature": wechat.sign(signing_token, timestamp, "5", sealed)}

    answer = await client.post(f"{site.url}/wechat/push/mp", params=query,
                               content=wechat.render({"ToUserName": "gh_x", "Encrypt": sealed}))

    assert answer.status_code == (400 if forgery == "wrong appid inside" else 403)
    assert await scene_row(sql, scene) == ("waiting", None)
    assert await counts(sql) == before


async def test_another_official_accounts_push_cannot_confirm_a_scene(start_server, client, sql):
    more = {"wechat": {"mp": {"follow_login": True},
                       "more": {"mp": {"news": {"appid": "wxa0b1c2d3e4f500a1", "secret": "sandbox-news-secret",
                                                "push_token": "devinsecureNewsToken", "push_aes_key": ""}}}}}
    site = await start_server(more)
    scene = await new_scene(sql)
    fields = wechat.event_fields("wxa0b1c2d3e4f500a1", "oNEWSopenid000000000000000", "SCAN", "login_" + scene)
    push = wechat.signed_push("devinsecureNewsToken", "", "wxa0b1c2d3e4f500a1", fields, "plain")

    answer = await client.post(f"{site.url}/wechat/push/mp/news", params=push.query, content=push.body)

    assert answer.status_code == 200 and answer.content == b"success"
    assert await scene_row(sql, scene) == ("waiting", None)
    assert await counts(sql) == (0, 0, 0)


@pytest.mark.parametrize("event, key", [
    ("subscribe", ""),  # a follow without any code
    ("subscribe", "qrscene_campaign42"),  # another parametric code of the account
    ("SCAN", "qrscene_login_" + "A" * 32),  # the new-follower prefix on an existing follower's scan
    ("subscribe", "login_" + "A" * 32),  # a new follower's key without its prefix
    ("SCAN", "login_" + "A" * 31),  # too short to be a scene
    ("SCAN", "login_" + "A" * 31 + "/"),
])
async def test_other_codes_are_left_alone(event, key, site, client, sql):
    scene = await new_scene(sql)
    await sql("UPDATE login_scenes SET scene = %s WHERE scene = %s", "A" * 32, scene)

    answer = await post_push(client, site, mp_push(site, event, key))

    assert answer.status_code == 200 and answer.content == b"success"
    assert await scene_row(sql, "A" * 32) == ("waiting", None)
    assert await counts(sql) == (0, 0, 0)


async def test_with_follow_login_off_no_code_is_made_and_scans_are_ignored(start_server, client, sql):
    site = await start_server(FOLLOW_OFF)  # follow_login = false, the default
    scene = await new_scene(sql)

    with pytest.raises(Exception) as refused:
        await site.services.follow.create_qr(scene)
    answer = await post_push(client, site, mp_push(site, "subscribe", "qrscene_login_" + scene))

    assert type(refused.value).__name__ == "NotFound"
    assert answer.status_code == 200 and answer.content == b"success"
    assert await scene_row(sql, scene) == ("waiting", None)


# ---- the QR code ------------------------------------------------------------------------------------------

async def test_the_qr_image_is_an_svg_of_the_url_wechat_returned_and_names_nobody(site, client, sql):
    import segno

    scene = await new_scene(sql)
    url = await site.services.follow.create_qr(scene)

    svg = await site.services.follow.qr_image(scene)

    assert url.startswith(f"{site.url}/_sandbox/q/")
    assert svg.startswith("<svg") and "</svg>" in svg
    expected = segno.make(url, error="m")
    assert f'width="{(expected.symbol_size(scale=6, border=2))[0]}"' in svg
    assert await site.services.follow.create_qr(scene) == url  # a reload reuses the code in this process
    for secret in (openid(MP_APPID), unionid() or "", scene):
        assert secret not in svg


async def test_the_sandbox_phone_page_scans_like_a_person(site, client, sql):
    scene = await new_scene(sql)
    url = await site.services.follow.create_qr(scene)

    page = await client.get(url)
    xsrf = page.text.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
    done = await client.post(url, data={"_xsrf": xsrf, "person": "panda", "as": "new"})

    assert page.status_code == 200 and "关注公众号" in page.text
    assert done.status_code == 200 and SIGNING_IN in done.text
    assert (await scene_row(sql, scene))[0] == "confirmed"
    assert (await client.get(f"{site.url}/_sandbox/q/unknowncode")).status_code == 404


# ---- the sandbox's WeChat endpoints -----------------------------------------------------------------------

async def test_sandbox_qrcode_create_and_user_info_answer_like_wechat(site, client, sql):
    token = await site.services.follow.app_tokens.token(site.settings.wechat.mp)
    mini_token = await site.services.follow.app_tokens.token(site.settings.wechat.miniprogram)
    base = f"{site.url}/_sandbox/cgi-bin"

    async def create(body: Any, access_token: str = token) -> dict[str, Any]:
        answer = await client.post(f"{base}/qrcode/create", params={"access_token": access_token}, json=body)
        assert answer.status_code == 200
        return answer.json()

    good = {"expire_seconds": 120, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "s1"}}}
    made = await create(good)
    assert made["expire_seconds"] == 120 and made["ticket"] and made["url"].startswith(f"{site.url}/_sandbox/q/")
    assert (await create(good, "bad token"))["errcode"] == 40014
    assert (await create(good, mini_token))["errcode"] == 48001  # a mini-program has no such codes
    assert (await create({**good, "action_name": "QR_LIMIT_STR_SCENE"}))["errcode"] == 40097
    assert (await create({**good, "action_info": {"scene": {"scene_str": "x" * 65}}}))["errcode"] == 40097
    assert (await create({**good, "expire_seconds": 2_592_001}))["errcode"] == 40009

    unknown = (await client.get(f"{base}/user/info", params={"access_token": token, "openid": "oNobody"})).json()
    assert unknown["errcode"] == 40003
    await client.post(f"{site.url}/_sandbox/dev/follow/scan", json={"url": made["url"], "person": "zhangsan"})
    info = (await client.get(f"{base}/user/info",
                             params={"access_token": token, "openid": openid(MP_APPID), "lang": "zh_CN"})).json()
    assert info["subscribe"] == 1 and info["unionid"] == unionid() and info["qr_scene_str"] == "s1"
    assert "nickname" not in info and "headimgurl" not in info  # gone since 2021-12-27


async def test_an_expired_follow_code_cannot_be_scanned(site, client, sql):
    scene = await new_scene(sql)
    url = await site.services.follow.create_qr(scene)
    code = url.rsplit("/", 1)[1]
    site.sandbox.state.follow.codes[code].expires_at = time.time() - 1  # WeChat's code has expired

    answer = await client.post(f"{site.url}/_sandbox/dev/follow/scan", json={"url": url, "person": "zhangsan"})

    assert answer.status_code == 404 and answer.json()["error"] == "expired"
    assert (await client.get(url)).status_code == 404
    assert await scene_row(sql, scene) == ("waiting", None)


# ---- forwarding mode --------------------------------------------------------------------------------------

def forward_headers(body: bytes, secret: str = FORWARD_SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(secret.encode(), stamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return {"X-WxLogin-Timestamp": stamp, "X-WxLogin-Signature": signature, "Content-Type": "text/xml"}


@pytest.fixture
async def forwarded_site(start_server):
    """The official account's server URL points at another system (no push_token here) that forwards to us."""
    return await start_server({"wechat": {"mp": {"follow_login": True, "forward_secret": FORWARD_SECRET,
                                                 "push_token": "", "push_aes_key": ""}}})


async def test_a_forwarded_scan_signs_the_scene_in(forwarded_site, client, sql):
    site = forwarded_site
    scene = await new_scene(sql)
    url = await site.services.follow.create_qr(scene)
    assert (await client.post(f"{site.url}/_sandbox/dev/follow/scan",  # no server URL here: WeChat pushes elsewhere
                              json={"url": url, "person": "zhangsan"})).status_code == 409
    # The person followed at WeChat, which pushed to the other system; that system forwards the event to us.
    site.sandbox.state.follow.seen[(MP_APPID, openid(MP_APPID))] = "zhangsan"
    site.sandbox.state.follow.following[(MP_APPID, openid(MP_APPID))] = (time.time(), "login_" + scene)
    body = wechat.render(wechat.event_fields(MP_APPID, openid(MP_APPID), "subscribe", "qrscene_login_" + scene,
                                             "gQX"))

    answer = await client.post(f"{site.url}/wechat/forward/mp", content=body, headers=forward_headers(body))
    again = await client.post(f"{site.url}/wechat/forward/mp", content=body, headers=forward_headers(body))

    assert answer.status_code == 200 and SIGNING_IN.encode() in answer.content  # a plain reply to relay
    assert again.status_code == 200 and again.content == b"success"  # a repeat is handled once
    status, user_id = await scene_row(sql, scene)
    assert status == "confirmed"
    assert (await sql("SELECT unionid FROM users WHERE id = %s", user_id)) == [(unionid(),)]
    assert (await client.post(f"{site.url}/wechat/push/mp")).status_code == 404  # no push_token: no server URL


@pytest.mark.parametrize("forgery", ["wrong secret", "no signature", "replayed old timestamp", "body changed",
                                     "future timestamp", "signature in capitals"])
async def test_a_badly_signed_forward_changes_nothing(forgery, forwarded_site, client, sql):
    site = forwarded_site
    scene = await new_scene(sql)
    body = wechat.render(wechat.event_fields(MP_APPID, openid(MP_APPID), "SCAN", "login_" + scene, "gQX"))
    stamp = int(time.time()) + {"replayed old timestamp": -301 - 5, "future timestamp": 400}.get(forgery, 0)
    headers = forward_headers(body, "another-secret-0123456789abcdef-0123" if forgery == "wrong secret"
                              else FORWARD_SECRET, stamp)
    if forgery == "no signature":
        del headers["X-WxLogin-Signature"]
    if forgery == "signature in capitals":
        headers["X-WxLogin-Signature"] = headers["X-WxLogin-Signature"].upper()
    sent = body.replace(b"SCAN", b"SCAN ") if forgery == "body changed" else body

    answer = await client.post(f"{site.url}/wechat/forward/mp", content=sent, headers=headers)

    assert answer.status_code == 403 and answer.content == b""
    assert await scene_row(sql, scene) == ("waiting", None)
    assert await counts(sql) == (0, 0, 0)


async def test_without_a_forward_secret_there_is_no_forward_endpoint(site, client):
    body = b"<xml></xml>"
    answer = await client.post(f"{site.url}/wechat/forward/mp", content=body, headers=forward_headers(body))
    assert answer.status_code == 404


# ---- end to end: the desktop's waiting page (CORE's routes) and the phone -------------------------------

async def test_a_desktop_signs_in_by_scan_to_follow_and_its_browser_never_sees_who(start_server, new_client, sql):
    import re

    site = await start_server({"wechat": {"desktop_methods": ["qr", "follow"], "mp": {"follow_login": True}}})
    desktop, phone, stranger = new_client(), new_client(), new_client()
    seen: list[bytes] = []

    page = await desktop.get(f"{site.url}/login", params={"method": "follow", "next": "/account"})
    seen.append(page.content)
    scene = re.search(r"/login/scene/([A-Za-z0-9]{32})/complete", page.text).group(1)  # type: ignore[union-attr]
    xsrf = re.search(r'data-xsrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    image = await desktop.get(f"{site.url}/login/scene/{scene}/qr")
    seen.append(image.content)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg+xml")
    url = await site.services.follow.create_qr(scene)  # what that image encodes (the code made for it)
    assert image.text == await site.services.follow.qr_image(scene)

    scanned = await phone.post(f"{site.url}/_sandbox/dev/follow/scan", json={"url": url, "person": "zhangsan"})
    assert scanned.json()["reply_text"] == SIGNING_IN

    waited = await desktop.get(f"{site.url}/login/scene/{scene}/wait", params={"after": "waiting"})
    seen.append(waited.content)
    assert "confirmed" in waited.text
    stranger.cookies.set("_xsrf", desktop.cookies.get("_xsrf") or "")  # XSRF passes; the binding is missing
    foreign = await stranger.post(f"{site.url}/login/scene/{scene}/complete", headers={"X-XSRFToken": xsrf})
    assert foreign.status_code in (403, 404)  # no binding cookie: not this browser's scene
    done = await desktop.post(f"{site.url}/login/scene/{scene}/complete", headers={"X-XSRFToken": xsrf})
    seen.append(done.content)
    assert done.status_code == 200 and done.json() == {"next": "/account"}
    account = await desktop.get(f"{site.url}/account")
    assert account.status_code == 200
    again = await desktop.post(f"{site.url}/login/scene/{scene}/complete", headers={"X-XSRFToken": xsrf})
    assert again.status_code >= 400  # once

    assert (await scene_row(sql, scene))[0] == "done"
    for body in seen:
        for secret in (openid(MP_APPID), unionid() or ""):
            assert secret.encode() not in body
