"""The JSON API over real HTTP: mini-program and app logins, open data, tokens, errors, the OpenAPI document."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time

import jsonschema
import pytest
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from helpers import BAD_JSON_BODIES, Flows, signed_claims

MP = "/api/miniprogram/login"


class Api:
    """Calls the API and checks every answer against the served OpenAPI document."""

    def __init__(self, server, client):
        self.server, self.client, self.doc, self.seen = server, client, None, []

    async def request(self, method, path, body=None, token=None, raw=None, headers=None):
        if self.doc is None:
            self.doc = (await self.client.get(self.server.url + "/api/openapi.json")).json()
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if content is not None and raw is None:
            hdrs.setdefault("Content-Type", "application/json")
        response = await self.client.request(method, self.server.url + path, content=content, headers=hdrs)
        self.check(method, path, response)
        self.seen.append(response)
        return response

    def check(self, method, path, response):
        assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
        op = self.doc["paths"].get(path, {}).get(method.lower())
        if op is None or response.status_code == 204:
            return
        spec = op["responses"].get(str(response.status_code))
        assert spec is not None, f"{method} {path} answered {response.status_code}, not in the OpenAPI document"
        schema = dict(spec["content"]["application/json"]["schema"], components=self.doc["components"])
        jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)

    async def wx_login(self, person):
        r = await self.client.post(self.server.url + "/_sandbox/dev/wx.login", json={"person": person})
        assert r.status_code == 200
        return r.json()

    async def login(self, person, **extra):
        handed = await self.wx_login(person)
        return await self.request("POST", MP, {"code": handed["code"], **extra})


@pytest.fixture
def api(server, client):
    return Api(server, client)


def session_key(server, person):
    appid = server.settings.wechat.miniprogram.appid
    return server.sandbox.state.session_keys[(appid, person)]


def seal(key_b64, payload, iv=b"\x01" * 16):
    blob = AES.new(base64.b64decode(key_b64), AES.MODE_CBC, iv=iv).encrypt(pad(payload, 16))
    return {"encryptedData": base64.b64encode(blob).decode(), "iv": base64.b64encode(iv).decode()}


async def test_miniprogram_login_answers_a_token_and_creates_once(api, sql):
    first = await api.login("zhangsan")
    second = await api.login("zhangsan")

    assert first.status_code == 200 and second.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["user"]["nickname"] == "" and body["created"] is True  # wx.login alone gives no profile
    assert second.json()["created"] is False
    assert second.json()["user"]["id"] == body["user"]["id"]
    assert await sql("SELECT login_method FROM user_login_methods") == [("miniprogram",)]


async def test_open_data_updates_profile_and_session_key_is_kept_encrypted(api, server, sql):
    handed = await api.wx_login("panda")

    response = await api.request("POST", MP, handed)  # code + encryptedData, iv, rawData, signature

    assert response.status_code == 200
    assert response.json()["user"]["nickname"] == "🐼熊猫🎉 Panda"
    key = session_key(server, "panda")
    [(stored,)] = await sql("SELECT session_key_enc FROM user_login_methods")
    assert stored and key.encode() not in stored and base64.b64decode(key) not in stored


async def test_mini_program_and_desktop_qr_land_on_one_user(api, server, new_client, sql):
    await Flows(server).login(new_client(), "zhangsan")
    response = await api.login("zhangsan")
    app = await api.request("POST", "/api/app/login", {"code": (await api.client.post(
        server.url + "/_sandbox/dev/app.auth", json={"person": "zhangsan"})).json()["code"]})

    assert response.status_code == 200 and app.status_code == 200
    assert response.json()["created"] is False and app.json()["created"] is False
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    methods = await sql("SELECT login_method FROM user_login_methods ORDER BY login_method")
    assert methods == [("app",), ("miniprogram",), ("web",)]
    me = await api.request("GET", "/api/me", token=app.json()["token"])
    assert {m["channel"] for m in me.json()["login_methods"]} == {"app", "miniprogram", "web"}


async def test_me_lists_login_methods_in_linking_order_with_dates(api, server, new_client, sql):
    await Flows(server).login(new_client(), "zhangsan")
    token = (await api.login("zhangsan")).json()["token"]
    await sql("UPDATE user_login_methods SET created_at = '2024-05-06 07:08:09' WHERE login_method = 'web'")

    me = (await api.request("GET", "/api/me", token=token)).json()

    assert [m["channel"] for m in me["login_methods"]] == ["web", "miniprogram"]
    assert me["login_methods"][0]["linked_at"] == "2024-05-06T07:08:09Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", me["login_methods"][1]["linked_at"])
    assert me["user"]["nickname"] == "张三"


async def test_reused_code_is_refused(api):
    handed = await api.wx_login("zhangsan")
    assert (await api.request("POST", MP, {"code": handed["code"]})).status_code == 200

    again = await api.request("POST", MP, {"code": handed["code"]})

    assert again.status_code == 401 and again.json()["error"] == "code_invalid"


@pytest.mark.parametrize("person, status, error", [
    ("blocked1", 403, "wechat_blocked"),
    ("quota1", 429, "wechat_rate_limited"),
    ("busy1", 503, "wechat_busy"),
])
async def test_wechat_errcodes_map_to_statuses(api, sql, person, status, error):
    response = await api.login(person)

    assert response.status_code == status and response.json()["error"] == error
    if status == 429:
        assert response.headers["retry-after"] == "60"
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_busy_once_is_retried_once(api, server):
    response = await api.login("busyonce1")

    assert response.status_code == 200
    code_grants = [g for g in server.sandbox.state.codes.values() if g.person == "busyonce1"]
    assert [g.attempts for g in code_grants] == [2]  # exactly one retry


async def test_random_code_is_code_invalid(api):
    response = await api.request("POST", MP, {"code": "sb" + "0" * 30})

    assert response.status_code == 401 and response.json()["error"] == "code_invalid"


def _flip(b64, index):
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


TAMPERINGS = {
    "iv bit flip": lambda d: {**d, "iv": _flip(d["iv"], 0)},
    "first block flip": lambda d: {**d, "encryptedData": _flip(d["encryptedData"], 0)},
    "last block flip": lambda d: {**d, "encryptedData": _flip(d["encryptedData"], -1)},
    "bad base64": lambda d: {**d, "encryptedData": "!!!!"},
    "url-safe alphabet": lambda d: {**d,
                                    "encryptedData": d["encryptedData"].replace("+", "-").replace("/", "_") + "-_"},
    "iv 15 bytes": lambda d: {**d, "iv": base64.b64encode(b"x" * 15).decode()},
    "iv 17 bytes": lambda d: {**d, "iv": base64.b64encode(b"x" * 17).decode()},
    "ciphertext 15 bytes": lambda d: {**d, "encryptedData": base64.b64encode(b"x" * 15).decode()},
    "empty ciphertext": lambda d: {**d, "encryptedData": ""},
    "number ciphertext": lambda d: {**d, "encryptedData": 12345},
    "missing iv": lambda d: {k: v for k, v in d.items() if k != "iv"},
    "rawData changed": lambda d: {**d, "rawData": d["rawData"].replace("张三", "李四")},
    "signature uppercase": lambda d: {**d, "signature": d["signature"].upper()},
    "signature sha256": lambda d: {**d, "signature": "0" * 64},
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
async def test_every_tampering_gives_one_identical_answer(api, sql, name):
    reference = await api.request("POST", MP, {**(await api.wx_login("zhangsan")), "iv": "AAAAAAAAAAAAAAAAAAAAAA=="})
    handed = await api.wx_login("zhangsan")

    response = await api.request("POST", MP, TAMPERINGS[name](handed))

    assert (response.status_code, response.content) == (reference.status_code, reference.content)
    assert response.json()["error"] == "encrypted_data_invalid"
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]  # the whole request was refused


async def test_wrong_watermark_is_refused_the_same_way(api, server):
    handed = await api.wx_login("zhangsan")
    key = session_key(server, "zhangsan")
    forged = seal(key, json.dumps({"nickName": "x", "watermark": {"appid": "wx0000000000000000",
                                                                  "timestamp": int(time.time())}}).encode())

    response = await api.request("POST", MP, {"code": handed["code"], **forged})
    garbage = await api.request("POST", MP, {"code": (await api.wx_login("zhangsan"))["code"],
                                             **seal(session_key(server, "zhangsan"), b"\xff\xfe not json")})

    assert response.status_code == garbage.status_code == 400
    assert response.content == garbage.content


async def test_identity_comes_only_from_wechat(api, server, sql):
    handed = await api.wx_login("zhangsan")
    key = session_key(server, "zhangsan")
    lies = seal(key, json.dumps({"openId": "victim", "unionId": "victim-union", "nickName": "张三",
                                 "watermark": {"appid": server.settings.wechat.miniprogram.appid,
                                               "timestamp": int(time.time())}}).encode())

    response = await api.request("POST", MP, {"code": handed["code"], **lies, "openid": "victim",
                                              "unionid": "victim-union", "user_id": 1})

    assert response.status_code == 200
    assert await sql("SELECT openid = 'victim', unionid = 'victim-union' FROM user_login_methods") == [(0, 0)]


async def test_profile_later_in_the_session_and_with_a_stale_session_key(api, server):
    token = (await api.login("zhangsan")).json()["token"]
    fresh = (await api.client.post(server.url + "/_sandbox/dev/wx.getUserInfo", json={"person": "zhangsan"})).json()

    ok = await api.request("POST", "/api/miniprogram/profile", {"encryptedData": fresh["encryptedData"],
                                                                "iv": fresh["iv"]}, token=token)
    assert ok.status_code == 200 and ok.json()["user"]["nickname"] == "张三"

    rotated = await api.wx_login("zhangsan")  # the client called wx.login again but never told us
    stale = await api.request("POST", "/api/miniprogram/profile", {"encryptedData": rotated["encryptedData"],
                                                                   "iv": rotated["iv"]}, token=token)
    tampered = await api.request("POST", "/api/miniprogram/profile", {"encryptedData": "!!!!", "iv": "x"},
                                 token=token)
    # Issue 13: a stale stored key has its own answer (call wx.login again), whatever the ciphertext: the
    # answer depends on the stored key only, so the tampered request gets exactly the same one.
    assert stale.status_code == 401 and stale.json()["error"] == "session_key_expired"
    assert stale.content == tampered.content


async def test_session_key_never_leaves_the_server(api, server, caplog):
    caplog.set_level(logging.DEBUG)
    await api.login("zhangsan")
    token = (await api.request("POST", MP, await api.wx_login("zhangsan"))).json()["token"]
    await api.request("GET", "/api/me", token=token)
    key = session_key(server, "zhangsan")

    for response in api.seen:
        assert key not in response.text and key not in str(response.headers)
    assert key not in caplog.text
    assert key not in str(signed_claims(token))


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer  .", "Basic dXNlcjpwYXNz", "Bearer x\ty",
                                           "Bearer " + "a" * 3000, "Token abc"])
async def test_bad_authorization_is_401_with_challenge(api, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = await api.request("GET", "/api/me", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "invalid_token"


async def test_scheme_is_case_insensitive_and_query_tokens_are_ignored(api, server):
    token = (await api.login("zhangsan")).json()["token"]

    lower = await api.request("GET", "/api/me", headers={"Authorization": f"bearer {token}"})
    query = await api.request("GET", f"/api/me?access_token={token}")

    assert lower.status_code == 200
    assert query.status_code == 401


async def test_api_reads_no_cookies(api, server, client):
    await Flows(server).login(client, "zhangsan")  # the client now holds a session cookie

    response = await api.request("GET", "/api/me")

    assert response.status_code == 401


async def test_session_cookie_is_not_a_bearer_token(api, server, client):
    await Flows(server).login(client, "zhangsan")

    response = await api.request("GET", "/api/me", token=client.cookies["wxsid"])

    assert response.status_code == 401


async def test_logout_revokes_the_token_and_session_version_kills_all(api, sql):
    a = (await api.login("zhangsan")).json()["token"]
    b = (await api.login("zhangsan")).json()["token"]

    assert (await api.request("POST", "/api/logout", token=a)).status_code == 204
    assert (await api.request("GET", "/api/me", token=a)).status_code == 401
    assert (await api.request("GET", "/api/me", token=b)).status_code == 200
    await sql("UPDATE users SET session_version = session_version + 1")
    assert (await api.request("GET", "/api/me", token=b)).status_code == 401


async def test_tokens_expire(start_server, new_client):
    short = await start_server({"server": {"api_token_max_age": 5}})
    api = Api(short, new_client())
    token = (await api.login("zhangsan")).json()["token"]
    assert (await api.request("GET", "/api/me", token=token)).status_code == 200

    await asyncio.sleep(6.1)

    assert (await api.request("GET", "/api/me", token=token)).status_code == 401


@pytest.mark.parametrize("name", list(BAD_JSON_BODIES))
async def test_malformed_bodies_never_500(api, sql, name):
    raw, content_type, status = BAD_JSON_BODIES[name]
    response = await api.request("POST", MP, raw=raw, headers={"Content-Type": content_type})

    assert response.status_code == status
    assert response.json()["error"] in ("bad_request", "unsupported_media_type", "body_too_large")
    assert "Traceback" not in response.text
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_nested_arrays_within_the_size_limit_are_400(api):
    response = await api.request("POST", MP, raw=b"[" * 10000 + b"]" * 10000,
                                 headers={"Content-Type": "application/json"})

    assert response.status_code == 400


async def test_site_rate_limit_on_login_attempts(start_server, new_client):
    limited = await start_server({"ratelimit": {"enabled": True, "login_per_minute": 3}})
    api = Api(limited, new_client())

    answers = [await api.request("POST", MP, {"code": f"sbnope{i}"}) for i in range(4)]

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60


async def test_unknown_api_path_is_json_404(api):
    response = await api.request("GET", "/api/nothing")

    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_openapi_document_is_served_and_valid(api, server):
    response = await api.client.get(server.url + "/api/openapi.json")

    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/api/miniprogram/login", "/api/app/login", "/api/miniprogram/profile",
                                 "/api/miniprogram/phone", "/api/miniprogram/nickname", "/api/miniprogram/avatar",
                                 "/api/me", "/api/me/phone", "/api/logout", "/api/miniprogram/qr-login/scan",
                                 "/api/miniprogram/qr-login/confirm", "/api/miniprogram/qr-login/refuse",
                                 "/api/me/restore", "/api/me/export"}  # issue 16 (DELETE /api/me is /api/me's)
    jsonschema.Draft202012Validator.check_schema(dict(doc["components"]["schemas"]["LoginResponse"]))
