"""Closing an account through the JSON API (issue 16): DELETE /api/me with a fresh code of the same WeChat, the
login answer's deletion_scheduled_at, what a closing account's token may do, restore, export, bad input."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from helpers import BAD_JSON_BODIES

ME = "/api/me"


class Client:
    """Calls the API and checks every answer against the served OpenAPI document."""

    def __init__(self, server, client):
        self.server, self.client, self.doc = server, client, None

    async def call(self, method, path, body=None, token=None, raw=None, content_type="application/json"):
        if self.doc is None:
            self.doc = (await self.client.get(self.server.url + "/api/openapi.json")).json()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if content is not None:
            headers["Content-Type"] = content_type
        response = await self.client.request(method, self.server.url + path, content=content, headers=headers)
        assert response.status_code < 500, response.text
        op = self.doc["paths"][path.split("?")[0]][method.lower()]
        spec = op["responses"].get(str(response.status_code))
        assert spec is not None, f"{method} {path} answered {response.status_code}, not in the OpenAPI document"
        if response.status_code != 204:
            schema = dict(spec["content"]["application/json"]["schema"], components=self.doc["components"])
            jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)
        return response

    async def code(self, person, channel="miniprogram"):
        path = "/_sandbox/dev/wx.login" if channel == "miniprogram" else "/_sandbox/dev/app.auth"
        return (await self.client.post(self.server.url + path, json={"person": person})).json()["code"]

    async def login(self, person, channel="miniprogram"):
        path = "/api/miniprogram/login" if channel == "miniprogram" else "/api/app/login"
        answer = await self.call("POST", path, {"code": await self.code(person, channel)})
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def api(server, client):
    return Client(server, client)


async def test_delete_me_with_a_fresh_code_closes_the_account(api, sql):
    token = (await api.login("zhangsan"))["token"]

    closed = await api.call("DELETE", ME, {"code": await api.code("zhangsan")}, token=token)

    assert closed.status_code == 202
    when = datetime.fromisoformat(closed.json()["deletion_scheduled_at"])
    assert when.utcoffset() == timedelta(0)
    assert abs(when - datetime.now(UTC) - timedelta(days=15)) < timedelta(minutes=5)
    [(stored,)] = await sql("SELECT deletion_scheduled_at FROM users")
    assert stored.replace(tzinfo=UTC).replace(microsecond=0) == when
    gone = await api.call("GET", ME, token=token)  # every token ended, this one too
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_token"


async def test_a_login_during_the_grace_period_says_when_and_may_only_restore_export_or_leave(api, sql):
    token = (await api.login("zhangsan"))["token"]
    when = (await api.call("DELETE", ME, {"code": await api.code("zhangsan")}, token=token)).json()

    again = await api.login("zhangsan")

    assert again["deletion_scheduled_at"] == when["deletion_scheduled_at"] and again["created"] is False
    token = again["token"]
    me = await api.call("GET", ME, token=token)
    assert me.status_code == 200 and me.json()["deletion_scheduled_at"] == when["deletion_scheduled_at"]
    for method, path, body in (("DELETE", "/api/me/phone", None), ("POST", "/api/miniprogram/nickname",
                                                                    {"nickname": "新名字"})):
        refused = await api.call(method, path, body, token=token)
        assert refused.status_code == 403 and refused.json()["error"] == "deletion_pending", path
    assert (await api.call("GET", "/api/me/export", token=token)).status_code == 200
    # Closing again keeps the first date.
    repeat = await api.call("DELETE", ME, {"code": await api.code("zhangsan")}, token=token)
    assert repeat.status_code == 202 and repeat.json() == when
    token = (await api.login("zhangsan"))["token"]

    restored = await api.call("POST", "/api/me/restore", token=token)

    assert restored.json()["restored"] is True and restored.json()["deletion_scheduled_at"] is None
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]
    assert (await api.call("DELETE", "/api/me/phone", token=token)).status_code == 204
    assert "deletion_scheduled_at" not in await api.login("zhangsan")
    assert (await api.call("POST", "/api/me/restore", token=token)).json()["restored"] is False


async def test_the_app_closes_with_its_own_code(api, sql):
    token = (await api.login("panda", channel="app"))["token"]
    closed = await api.call("DELETE", ME, {"code": await api.code("panda", "app"), "channel": "app"}, token=token)
    assert closed.status_code == 202
    assert (await api.login("panda", channel="app"))["deletion_scheduled_at"] == closed.json()["deletion_scheduled_at"]


@pytest.mark.parametrize("person", ["lisi", "panda"])
async def test_a_code_of_another_wechat_is_refused_and_changes_nothing(api, sql, person):
    token = (await api.login("zhangsan"))["token"]
    await api.login(person)  # the other person has an account of their own (or not: nothing would differ)
    before = await sql("SELECT id, session_version, deletion_scheduled_at FROM users ORDER BY id")

    refused = await api.call("DELETE", ME, {"code": await api.code(person)}, token=token)

    assert refused.status_code == 403 and refused.json()["error"] == "wrong_account"
    assert await sql("SELECT id, session_version, deletion_scheduled_at FROM users ORDER BY id") == before
    assert (await api.call("GET", ME, token=token)).status_code == 200
    assert await sql("SELECT COUNT(*) FROM login_events WHERE outcome = 'wrong_account'") == [(1,)]


async def test_a_used_or_made_up_code_is_refused(api, sql):
    token = (await api.login("zhangsan"))["token"]
    code = await api.code("zhangsan")
    assert (await api.call("DELETE", ME, {"code": code}, token=token)).status_code == 202
    token = (await api.login("zhangsan"))["token"]
    await api.call("POST", "/api/me/restore", token=token)
    for bad in (code, "made-up-code"):
        refused = await api.call("DELETE", ME, {"code": bad}, token=token)
        assert refused.status_code == 401 and refused.json()["error"] == "code_invalid"
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]


@pytest.mark.parametrize("name", sorted(BAD_JSON_BODIES))
async def test_bad_bodies_change_nothing(api, sql, name):
    body, content_type, status = BAD_JSON_BODIES[name]
    token = (await api.login("zhangsan"))["token"]
    before = await sql("SELECT session_version, deletion_scheduled_at FROM users")

    answer = await api.call("DELETE", ME, raw=body, token=token, content_type=content_type)

    assert answer.status_code == status and answer.json()["error"] in ("bad_request", "body_too_large",
                                                                       "unsupported_media_type")
    assert await sql("SELECT session_version, deletion_scheduled_at FROM users") == before


@pytest.mark.parametrize("body", [{"code": "x", "channel": "web"}, {"code": "x", "channel": 1},
                                  {"code": "x", "app": "../x"}, {"app": "shop"}])
async def test_bad_fields_are_bad_requests(api, sql, body):
    token = (await api.login("zhangsan"))["token"]
    answer = await api.call("DELETE", ME, body, token=token)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]


@pytest.mark.parametrize("path, method", [(ME, "DELETE"), ("/api/me/restore", "POST"), ("/api/me/export", "GET")])
async def test_no_or_stale_token_is_invalid_token(api, server, sql, path, method):
    answer = await api.call(method, path, {"code": "x"} if method == "DELETE" else None)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    token = (await api.login("zhangsan"))["token"]
    await api.call("POST", "/api/logout", token=token)
    revoked = await api.call(method, path, {"code": "x"} if method == "DELETE" else None, token=token)
    assert revoked.status_code == 401 and revoked.json()["error"] == "invalid_token"
    assert await sql("SELECT deletion_scheduled_at FROM users") == [(None,)]


async def test_export_by_api_holds_no_secret_and_the_full_number_needs_a_recent_login(api, server, sql):
    login = await api.login("zhangsan")
    token = login["token"]
    code = (await api.client.post(server.url + "/_sandbox/dev/phone-code", json={"person": "zhangsan"})).json()["code"]
    assert (await api.client.post(server.url + "/api/miniprogram/phone", json={"code": code},
                                  headers={"Authorization": f"Bearer {token}"})).status_code == 200
    [(full_number,)] = await sql("SELECT phone FROM user_phones")

    masked = await api.call("GET", "/api/me/export", token=token)

    data = masked.json()
    assert data["phone"]["masked"] is True and data["phone"]["number"] != full_number
    assert data["login_methods"][0]["openid"]
    session_key = server.sandbox.state.session_keys[(server.settings.wechat.miniprogram.appid, "zhangsan")]
    [(sealed,)] = await sql("SELECT session_key_enc FROM user_login_methods")
    for secret in (session_key, bytes(sealed).hex(), token, full_number):
        assert secret not in masked.text
    full = await api.call("GET", "/api/me/export?phone=full", token=token)
    assert full.json()["phone"]["number"] == full_number

    # A token from a login longer ago than [accounts] reauth_window (minted here as the site would have).
    claims, _ = server.services.api.signing.load_api_token(token, max_age=3600)
    long_ago = int(time.time()) - server.settings.accounts.reauth_window - 60
    old = dict(claims, iat=long_ago, wat=long_ago)
    stale = server.services.api.signing.dump_api_token(old)
    refused = await api.call("GET", "/api/me/export?phone=full", token=stale)
    assert refused.status_code == 403 and refused.json()["error"] == "reauth_required"
    assert full_number not in refused.text
    assert (await api.call("GET", "/api/me/export", token=stale)).status_code == 200
    # A token minted before the WeChat sign-in time ("wat") was in tokens: never recent, however new.
    legacy = {k: v for k, v in dict(claims, iat=int(time.time())).items() if k != "wat"}
    legacy_token = server.services.api.signing.dump_api_token(legacy)
    assert (await api.call("GET", "/api/me/export?phone=full", token=legacy_token)).status_code == 403
