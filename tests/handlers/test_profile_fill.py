"""Profile fill-in over real HTTP: the nickname input (WeChat's msg_sec_check) and the avatar upload
(re-encoded, stored in MySQL, checked by media_check_async, the verdict pushed back by the sandbox).

Every answer is checked against the served OpenAPI document. The sandbox says ``risky`` for a nickname
with 违禁 and ``review`` for one with 待审; for an image whose top-left corner is magenta (risky) or cyan
(review). Tests that need the verdict held back set the sandbox's delay high and push it themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time

import httpx
import jsonschema
import pytest
from PIL import Image

from helpers import BAD_NICKNAMES, BAD_UPLOADS, avatar_upload, bad_upload, jpeg_with_gps, multipart, png_bytes
from wxlogin.sandbox import people
from wxlogin.sandbox import push as wechat_push
from wxlogin.sandbox import wxa_content as wxa
from wxlogin.services.profile import AVATAR_PATH

NICKNAME = "/api/miniprogram/nickname"
AVATAR = "/api/miniprogram/avatar"
LONG_CACHE = "public, max-age=31536000, immutable"


class Api:
    """Calls the API with a bearer token and validates every answer against the OpenAPI document."""

    def __init__(self, server, client):
        self.server, self.client, self.doc = server, client, None

    async def request(self, method, path, token=None, json_body=None, content=None, content_type=None):
        if self.doc is None:
            self.doc = (await self.client.get(self.server.url + "/api/openapi.json")).json()
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            content, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        response = await self.client.request(method, self.server.url + path, content=content, headers=headers)
        assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
        op = self.doc["paths"][path][method.lower()]
        spec = op["responses"].get(str(response.status_code))
        assert spec is not None, f"{method} {path} answered {response.status_code}, not in the OpenAPI document"
        schema = dict(spec["content"]["application/json"]["schema"], components=self.doc["components"])
        jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)
        return response

    async def login(self, person="zhangsan"):
        handed = (await self.client.post(self.server.url + "/_sandbox/dev/wx.login", json={"person": person})).json()
        response = await self.client.post(self.server.url + "/api/miniprogram/login", json={"code": handed["code"]})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def me(self, token):
        return (await self.client.get(self.server.url + "/api/me",
                                      headers={"Authorization": f"Bearer {token}"})).json()["user"]

    async def nickname(self, token, nickname):
        return await self.request("POST", NICKNAME, token, json_body={"nickname": nickname})

    async def upload(self, token, data, filename="tmp_avatar.png", content_type="image/png"):
        body, ctype = avatar_upload(data, filename, content_type)
        return await self.request("POST", AVATAR, token, content=body, content_type=ctype)


@pytest.fixture
def api(server, client):
    return Api(server, client)


@pytest.fixture
def held_verdicts(monkeypatch):
    """The sandbox holds its verdict pushes (the test pushes them); whatever it still holds is dropped after."""
    monkeypatch.setattr(wxa, "MEDIA_CHECK_DELAY", 3600.0)
    yield
    for task in list(wxa._tasks):
        task.cancel()


async def wait_for(predicate, what, timeout=15.0):
    """A bounded wait for the sandbox's push (it comes after about a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


async def pending_checks(sql):
    return (await sql("SELECT COUNT(*) FROM avatar_checks"))[0][0]


def verdict_push(server, trace_id, suggest, token=None, errcode=0, create_time=None):
    """The wxa_media_check push WeChat sends for ``trace_id`` (signed with ``token``: a forger's when given)."""
    app = server.settings.wechat.miniprogram
    openid = people.openid_for(app.appid, people.person("zhangsan"))
    fields = {**wechat_push.event_fields(app.appid, openid, "wxa_media_check", create_time=create_time),
              "appid": app.appid,
              "trace_id": trace_id, "version": 2, "errcode": errcode, "errmsg": "ok",
              "result": {"suggest": suggest, "label": 100}}
    return wechat_push.signed_push(token or app.push_token.value, app.push_aes_key.value, app.appid, fields, "safe")


async def send_push(client, server, push):
    return await client.post(f"{server.url}/wechat/push/miniprogram", params=push.query, content=push.body,
                             headers={"Content-Type": push.content_type})


# ---- nickname ------------------------------------------------------------------------------------------

async def test_a_nickname_that_passes_is_stored(api, sql):
    token = await api.login()

    answer = await api.nickname(token, "  新的名字🐼  ")

    assert answer.status_code == 200
    assert answer.json()["user"]["nickname"] == "新的名字🐼"
    assert (await api.me(token))["nickname"] == "新的名字🐼"
    assert await sql("SELECT nickname, nickname_review, profile_is_placeholder FROM users") == [("新的名字🐼", 0, 0)]


async def test_a_nickname_for_review_is_stored_and_flagged_for_operators(api, sql):
    token = await api.login()

    answer = await api.nickname(token, "待审的名字")

    assert answer.status_code == 200 and answer.json()["user"]["nickname"] == "待审的名字"
    assert await sql("SELECT nickname, nickname_review FROM users") == [("待审的名字", 1)]
    # A nickname that passes later clears the flag.
    await api.nickname(token, "普通名字")
    assert await sql("SELECT nickname, nickname_review FROM users") == [("普通名字", 0)]


async def test_a_risky_nickname_is_refused_and_nothing_changes(api, sql):
    token = await api.login()
    before = await api.me(token)

    answer = await api.nickname(token, "违禁的名字")

    assert answer.status_code == 422
    assert answer.json()["error"] == "content_risky"
    assert await api.me(token) == before
    assert await sql("SELECT nickname, nickname_review FROM users") == [(before["nickname"], 0)]


async def test_a_nickname_is_cleaned_like_wechats_before_the_check(api, sql):
    token = await api.login()

    answer = await api.nickname(token, "\u202e李\u0000四\u200b")

    assert answer.status_code == 200 and answer.json()["user"]["nickname"] == "李四"
    assert (await api.nickname(token, "名" * 32)).status_code == 200


@pytest.mark.parametrize("name", list(BAD_NICKNAMES))
async def test_bad_nickname_bodies_are_refused_before_wechat(name, api, server, sql):
    token = await api.login()
    body, status, code = BAD_NICKNAMES[name]
    before = await sql("SELECT nickname, nickname_review FROM users")

    answer = await api.request("POST", NICKNAME, token, content=body, content_type="application/json")

    assert (answer.status_code, answer.json()["error"]) == (status, code)
    assert await sql("SELECT nickname, nickname_review FROM users") == before


async def test_the_placeholder_never_replaces_a_real_nickname(api, sql):
    token = await api.login()
    await api.nickname(token, "真名")

    kept = await api.nickname(token, "微信用户")

    assert kept.status_code == 200 and kept.json()["user"]["nickname"] == "真名"
    assert await sql("SELECT nickname, profile_is_placeholder FROM users") == [("真名", 0)]


async def test_the_placeholder_fills_an_empty_nickname_as_a_placeholder_and_a_real_one_replaces_it(api, sql):
    token = await api.login("fillin1")
    await sql("UPDATE users SET nickname = ''")

    assert (await api.nickname(token, "微信用户")).json()["user"]["nickname"] == "微信用户"
    assert await sql("SELECT profile_is_placeholder FROM users") == [(1,)]
    assert (await api.nickname(token, "自己起的")).json()["user"]["nickname"] == "自己起的"
    assert await sql("SELECT profile_is_placeholder FROM users") == [(0,)]


async def test_a_placeholder_login_keeps_the_nickname_the_person_typed(api, server, client):
    """The anonymous getUserInfo profile (微信用户, grey avatar) on a later login changes nothing."""
    token = await api.login("anon")
    await api.nickname(token, "我的名字")
    handed = (await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": "anon"})).json()

    again = await client.post(server.url + "/api/miniprogram/login", json=handed)

    assert again.status_code == 200
    assert again.json()["user"]["nickname"] == "我的名字"


async def test_fill_in_needs_a_miniprogram_login(api, server, client, sql):
    code = (await client.post(server.url + "/_sandbox/dev/app.auth", json={"person": "zhangsan"})).json()["code"]
    token = (await client.post(server.url + "/api/app/login", json={"code": code})).json()["token"]

    answer = await api.nickname(token, "新名字")
    upload = await api.upload(token, png_bytes())

    assert (answer.status_code, answer.json()["error"]) == (400, "bad_request")
    assert (upload.status_code, upload.json()["error"]) == (400, "bad_request")
    assert await sql("SELECT COUNT(*) FROM avatars") == [(0,)]


async def test_wechat_errors_map_through_the_table_and_a_revoked_app_token_is_replaced(api, server, sql):
    token = await api.login()
    appid = server.settings.wechat.miniprogram.appid
    server.sandbox.state.revoke_app_tokens(appid)  # 40001 on the next call: replaced once, then it works

    assert (await api.nickname(token, "换了令牌")).status_code == 200

    # WeChat's 40003: the openid has not opened the mini-program lately. Any errcode is a 502 from the table.
    server.sandbox.state.session_keys.clear()
    answer = await api.nickname(token, "另一个名字")
    assert (answer.status_code, answer.json()["error"]) == (502, "wechat_error")
    assert await sql("SELECT nickname FROM users") == [("换了令牌",)]


# ---- avatar ----------------------------------------------------------------------------------------------

async def test_an_avatar_that_passes_replaces_the_old_one_at_a_content_addressed_url(api, server, client, sql):
    token = await api.login()
    old = (await api.me(token))["avatar_url"]

    answer = await api.upload(token, png_bytes(640, 480))

    assert answer.status_code == 200
    assert answer.json()["avatar_pending"] is True
    assert answer.json()["user"]["avatar_url"] == old  # until WeChat's verdict
    await wait_for(lambda: _changed(api, token, old), "avatar change")
    url = (await api.me(token))["avatar_url"]
    sha = url.rsplit("/", 1)[1].removesuffix(".jpg")
    assert url == server.url + server.app.reverse_url("avatar", sha) == server.url + AVATAR_PATH.format(sha)
    image = await client.get(url)
    assert image.status_code == 200
    assert hashlib.sha256(image.content).hexdigest() == sha  # the address is the bytes' SHA-256
    assert image.headers["Content-Type"] == "image/jpeg"
    assert image.headers["Cache-Control"] == LONG_CACHE
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Etag"] == f'"{sha}"'
    head = await client.head(url)
    assert head.headers["Etag"] == f'"{sha}"' and head.headers["Content-Length"] == str(len(image.content))
    assert (await client.get(url, headers={"If-None-Match": f'"{sha}"'})).status_code == 304
    decoded = Image.open(io.BytesIO(image.content))
    assert (decoded.format, decoded.size) == ("JPEG", (256, 256))
    assert await sql("SELECT status FROM avatars") == [("pass",)]
    assert await pending_checks(sql) == 0
    # The same picture again is the same address.
    await api.upload(token, png_bytes(640, 480))
    await wait_for(lambda: _no_pending(sql), "second verdict")
    assert await sql("SELECT COUNT(*) FROM avatars") == [(1,)]


async def _changed(api, token, old):
    return (await api.me(token))["avatar_url"] != old


async def _no_pending(sql):
    return await pending_checks(sql) == 0


async def test_a_jpeg_with_gps_is_stored_without_any_metadata(api, client, sql):
    token = await api.login()
    upload = jpeg_with_gps()
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(0x8825)  # the upload has its GPS position

    answer = await api.upload(token, upload, "IMG_0001.JPG", "image/jpeg")

    assert answer.status_code == 200
    await wait_for(lambda: _no_pending(sql), "verdict")
    stored = (await sql("SELECT image FROM avatars"))[0][0]
    served = (await client.get((await api.me(token))["avatar_url"])).content
    assert served == stored
    again = Image.open(io.BytesIO(stored))
    assert dict(again.getexif()) == {}
    assert "exif" not in again.info and "icc_profile" not in again.info
    assert b"Exif" not in stored and b"TestPhone" not in stored


async def test_a_risky_avatar_is_deleted_and_the_old_one_stays(api, server, client, sql):
    token = await api.login()
    old = (await api.me(token))["avatar_url"]
    image = (await client.post(server.url + "/_sandbox/dev/chooseAvatar", json={"mark": "risky"})).content

    answer = await api.upload(token, image)

    assert answer.status_code == 200 and answer.json()["avatar_pending"] is True
    await wait_for(lambda: _no_pending(sql), "verdict")
    assert (await api.me(token))["avatar_url"] == old
    assert await sql("SELECT COUNT(*) FROM avatars") == [(0,)]


async def test_an_avatar_for_review_is_kept_unshown_and_flagged(api, server, client, sql):
    token = await api.login()
    old = (await api.me(token))["avatar_url"]
    image = (await client.post(server.url + "/_sandbox/dev/chooseAvatar", json={"mark": "review"})).content

    await api.upload(token, image)

    await wait_for(lambda: _no_pending(sql), "verdict")
    assert (await api.me(token))["avatar_url"] == old
    [(sha, status)] = await sql("SELECT sha256, status FROM avatars")
    assert status == "review"
    assert await sql("SELECT avatar_review FROM users") == [(sha,)]
    assert (await client.get(server.url + AVATAR_PATH.format(sha))).status_code == 404


async def test_a_pending_avatar_is_served_only_to_wechats_fetcher(api, server, client, sql, held_verdicts):
    token = await api.login()

    await api.upload(token, png_bytes())

    [(sha, key)] = await sql("SELECT sha256, fetch_key FROM avatars")
    url = server.url + AVATAR_PATH.format(sha)
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url, params={"check": "0" * 32})).status_code == 404
    fetched = await client.get(url, params={"check": key})
    assert fetched.status_code == 200 and fetched.headers["Cache-Control"] == "no-store"


async def test_the_pushed_verdict_switches_once_and_a_forged_one_does_nothing(api, server, client, sql,
                                                                            held_verdicts):
    token = await api.login()
    old = (await api.me(token))["avatar_url"]
    await api.upload(token, png_bytes())
    [(trace_id, sha)] = await sql("SELECT trace_id, sha256 FROM avatar_checks")

    forged = await send_push(client, server, verdict_push(server, trace_id, "pass", token="forgerToken123"))
    assert forged.status_code == 403
    assert (await api.me(token))["avatar_url"] == old
    assert await sql("SELECT status FROM avatars") == [("pending",)]

    genuine = await send_push(client, server, verdict_push(server, trace_id, "pass"))
    assert (genuine.status_code, genuine.text) == (200, "success")
    assert (await api.me(token))["avatar_url"] == server.url + AVATAR_PATH.format(sha)
    # A later verdict for the settled trace (WeChat's retry with a new time, or a risky one) changes nothing.
    late = await send_push(client, server, verdict_push(server, trace_id, "risky"))
    assert late.status_code == 200
    assert (await api.me(token))["avatar_url"] == server.url + AVATAR_PATH.format(sha)
    assert await sql("SELECT status FROM avatars") == [("pass",)]


async def test_a_risky_verdict_deletes_the_image_and_a_failed_check_too(api, server, client, sql, held_verdicts):
    token = await api.login()
    old = (await api.me(token))["avatar_url"]
    await api.upload(token, png_bytes(100, 100, (1, 2, 3)))
    await api.upload(token, png_bytes(100, 100, (200, 2, 3)))
    [(first, _), (second, _)] = await sql("SELECT trace_id, sha256 FROM avatar_checks ORDER BY id")

    assert (await send_push(client, server, verdict_push(server, second, "risky"))).status_code == 200
    # The newer upload's verdict settles the older check too: nothing is left waiting.
    assert await pending_checks(sql) == 0
    assert (await api.me(token))["avatar_url"] == old
    assert await sql("SELECT COUNT(*) FROM avatars WHERE status <> 'pending'") == [(0,)]
    assert (await send_push(client, server, verdict_push(server, first, "pass"))).status_code == 200
    assert (await api.me(token))["avatar_url"] == old  # superseded: a late pass of the older upload is ignored

    await api.upload(token, png_bytes(90, 90))
    [(third, sha)] = await sql("SELECT trace_id, sha256 FROM avatar_checks")
    assert (await send_push(client, server, verdict_push(server, third, "", errcode=-1))).status_code == 200
    assert await sql("SELECT COUNT(*) FROM avatars WHERE sha256 = %s", sha) == [(0,)]


async def test_only_the_newest_upload_becomes_the_avatar(api, server, client, sql, held_verdicts):
    token = await api.login()
    await api.upload(token, png_bytes(100, 100, (10, 20, 30)))
    await api.upload(token, png_bytes(100, 100, (30, 20, 10)))
    [(older, _), (newer, newer_sha)] = await sql("SELECT trace_id, sha256 FROM avatar_checks ORDER BY id")

    await send_push(client, server, verdict_push(server, older, "pass"))  # arrives first, but is superseded
    assert (await api.me(token))["avatar_url"] != server.url + AVATAR_PATH.format(newer_sha)
    await send_push(client, server, verdict_push(server, newer, "pass"))

    assert (await api.me(token))["avatar_url"] == server.url + AVATAR_PATH.format(newer_sha)


async def test_two_verdicts_of_one_second_are_both_applied(api, server, client, sql, held_verdicts):
    """The push dedupe used FromUserName + CreateTime: a second verdict in the same second was taken for a retry."""
    token = await api.login()
    await api.upload(token, png_bytes(100, 100, (10, 20, 30)))
    [(first, _)] = await sql("SELECT trace_id, sha256 FROM avatar_checks")
    second_token = await api.login("fillin2")
    await api.upload(second_token, png_bytes(100, 100, (30, 20, 10)))
    [(second, second_sha)] = await sql("SELECT trace_id, sha256 FROM avatar_checks WHERE trace_id <> %s", first)
    now = int(time.time())

    for trace in (first, second):  # verdicts pushed for one openid (zhangsan's) in one second
        answer = await send_push(client, server, verdict_push(server, trace, "pass", create_time=now))
        assert (answer.status_code, answer.text) == (200, "success")

    assert await pending_checks(sql) == 0
    assert (await api.me(second_token))["avatar_url"] == server.url + AVATAR_PATH.format(second_sha)


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
async def test_bad_uploads_are_refused_before_anything_is_kept(name, api, sql):
    token = await api.login()
    body, content_type = bad_upload(name)
    status, code = BAD_UPLOADS[name]

    answer = await api.request("POST", AVATAR, token, content=body, content_type=content_type)

    assert (answer.status_code, answer.json()["error"]) == (status, code)
    assert await sql("SELECT COUNT(*) FROM avatars") == [(0,)]
    assert await pending_checks(sql) == 0


async def test_a_gif_and_a_transparent_png_are_accepted(api, sql):
    token = await api.login()
    gif, rgba = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (50, 80), (0, 90, 0)).save(gif, format="GIF")
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(rgba, format="PNG")

    for data in (gif.getvalue(), rgba.getvalue()):
        assert (await api.upload(token, data)).status_code == 200
    # Transparent becomes white, not black.
    white = [row[0] for row in await sql("SELECT image FROM avatars")]
    assert any(Image.open(io.BytesIO(jpeg)).getpixel((128, 128))[0] > 240 for jpeg in white)


async def test_an_upload_with_text_fields_and_a_misleading_name_is_judged_by_content(api):
    token = await api.login()
    body, content_type = multipart([("note", None, b"hello", ""),
                                    ("file", "evil.html", png_bytes(), "text/html")])

    answer = await api.request("POST", AVATAR, token, content=body, content_type=content_type)

    assert answer.status_code == 200


async def test_without_a_token_both_routes_answer_401_before_reading_the_body(server, client):
    for path, body, content_type in ((NICKNAME, b'{"nickname":"x"}', "application/json"),
                                     (AVATAR, *avatar_upload(png_bytes()))):
        for headers in ({}, {"Authorization": "Bearer nope"}):
            answer = await client.post(server.url + path, content=body,
                                       headers={"Content-Type": content_type, **headers})
            assert answer.status_code == 401
            assert answer.json()["error"] == "invalid_token"


async def test_unknown_and_malformed_avatar_paths_are_404(server, client):
    for path in ("/avatars/" + "0" * 64 + ".jpg", "/avatars/" + "A" * 64 + ".jpg", "/avatars/x.jpg",
                 "/avatars/" + "0" * 64 + ".png"):
        assert (await client.get(server.url + path)).status_code == 404, path


async def test_the_openapi_document_describes_the_multipart_upload(server, client):
    doc = (await client.get(server.url + "/api/openapi.json")).json()

    upload = doc["paths"][AVATAR]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert upload["requestBody"]["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
    codes = json.dumps(upload["responses"])
    for code in ("image_invalid", "body_too_large", "unsupported_media_type", "invalid_token", "bad_request"):
        assert code in codes
    assert "content_risky" in json.dumps(doc["paths"][NICKNAME]["post"]["responses"]["422"])


async def test_avatar_uploads_within_the_body_limit_but_over_the_file_limit_are_413(api):
    token = await api.login()
    body, content_type = avatar_upload(b"\x89PNG" + b"\0" * (1024 * 1024))

    answer = await api.request("POST", AVATAR, token, content=body, content_type=content_type)

    assert (answer.status_code, answer.json()["error"]) == (413, "body_too_large")


async def test_a_request_over_the_servers_body_limit_is_cut_off(server, api):
    token = await api.login()
    body, content_type = avatar_upload(b"\0" * (3 << 20))
    async with httpx.AsyncClient(timeout=20) as fresh:
        try:
            answer = await fresh.post(server.url + AVATAR, content=body,
                                      headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
        except httpx.HTTPError:
            return  # Tornado hangs up past [server] max_body_size: fine, nothing was read
    assert answer.status_code in (400, 413)


async def test_checks_wechat_never_answered_are_purged_after_a_day_with_their_images(api, server, sql,
                                                                                   held_verdicts):
    token = await api.login()
    await api.upload(token, png_bytes(100, 100, (1, 1, 1)))
    await api.upload(token, png_bytes(100, 100, (2, 2, 2)))
    [(old_trace, old_sha), _] = await sql("SELECT trace_id, sha256 FROM avatar_checks ORDER BY id")
    await sql("UPDATE avatar_checks SET created_at = created_at - INTERVAL 2 DAY WHERE trace_id = %s", old_trace)
    await sql("UPDATE avatars SET created_at = created_at - INTERVAL 2 DAY WHERE sha256 = %s", old_sha)

    await server.services.maintenance.purge_expired()

    assert await pending_checks(sql) == 1  # the young check stays, with its image
    assert [row[0] for row in await sql("SELECT sha256 FROM avatars")] != [old_sha]
    assert await sql("SELECT COUNT(*) FROM avatars") == [(1,)]


async def test_fill_ins_are_limited_per_account(start_server, new_client):
    # Each nickname and avatar fill-in spends WeChat's content-check quota: per account, shared by processes.
    limited = await start_server({"ratelimit": {"enabled": True, "profile_per_user_per_minute": 2}})
    api = Api(limited, new_client())
    token = await api.login("zhangsan")
    answers = [await api.nickname(token, f"新昵称{i}") for i in range(3)]
    body, content_type = avatar_upload(png_bytes())
    avatar = await api.request("POST", AVATAR, token, content=body, content_type=content_type)

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited" and int(answers[2].headers["Retry-After"]) >= 1
    assert avatar.status_code == 429
    other = Api(limited, new_client())
    assert (await other.nickname(await other.login("lisi"), "李四的新名字")).status_code == 200


async def test_the_placeholder_nickname_never_makes_an_own_avatar_replaceable(api, sql):
    # Typing "微信用户" with an avatar of one's own keeps the profile real: a later anonymous login's grey
    # avatar must not replace it (the placeholder flag covers nickname and avatar together).
    token = await api.login("fillin2")
    await sql("UPDATE users SET nickname = '', avatar_url = 'https://thirdwx.qlogo.cn/own.jpg', "
              "profile_is_placeholder = 0")

    assert (await api.nickname(token, "微信用户")).status_code == 200

    assert await sql("SELECT nickname, profile_is_placeholder FROM users") == [("微信用户", 0)]
