"""Several apps of a kind (issue 13) over real HTTP: two mini-programs, two mobile apps and two official
accounts under one open platform, served by one site with the sandbox playing WeChat.

One person resolves to one account by unionid, with an openid per appid; the API picks the app by the
optional ``"app"`` field; pushes, app tokens and the deep health check are per app.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from helpers import follow
from wxlogin.models import PushEvent
from wxlogin.sandbox import people
from wxlogin.sandbox import push as wechat
from wxlogin.sandbox.__main__ import play
from wxlogin.services.accounts import RefreshOutcome
from wxlogin.services.pushes import PushApp

MINI_APPID = "wxa0b1c2d3e4f50004"
SHOP_APPID = "wxa0b1c2d3e4f50014"
APP_APPID = "wxa0b1c2d3e4f50003"
LITE_APPID = "wxa0b1c2d3e4f50013"
NEWS_APPID = "wxa0b1c2d3e4f50012"
SHOP_TOKEN = "devinsecureShopPushToken"
SHOP_KEY = "devinsecureShopKey0123456789abcdefghijABCDE"
assert len(SHOP_KEY) == 43
MORE = {"wechat": {"more": {
    "miniprogram": {"shop": {"appid": SHOP_APPID, "secret": "sandbox-shop-secret", "push_token": SHOP_TOKEN,
                             "push_aes_key": SHOP_KEY}},
    "app": {"lite": {"appid": LITE_APPID, "secret": "sandbox-lite-secret"}},
    "mp": {"news": {"appid": NEWS_APPID, "secret": "sandbox-news-secret", "push_token": "devinsecureNewsToken"}},
}}}
LOGIN = "/api/miniprogram/login"
REAL_KEYS = {"WXLOGIN_SERVER_SECRET_KEYS": "0123456789abcdef0123456789abcdef-real-key"}


@pytest.fixture
async def site(start_server) -> Any:
    return await start_server(MORE)


async def wx_login(client: httpx.AsyncClient, site: Any, person: str, app: str | None = None) -> dict[str, Any]:
    body = {"person": person} if app is None else {"person": person, "app": app}
    answer = await client.post(site.url + "/_sandbox/dev/wx.login", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def api(client: httpx.AsyncClient, site: Any, path: str, body: dict[str, Any],
              token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(site.url + path, json=body, headers=headers)


def openid(appid: str, person: str = "zhangsan") -> str:
    found = people.person(person)
    assert found is not None
    return people.openid_for(appid, found)


# ---- one account across the apps of a kind ---------------------------------------------------------------

async def test_two_mini_programs_resolve_one_person_to_one_account(site, client, sql):
    default = await api(client, site, LOGIN, {"code": (await wx_login(client, site, "zhangsan"))["code"]})
    shop = await api(client, site, LOGIN, {"code": (await wx_login(client, site, "zhangsan", "shop"))["code"],
                                           "app": "shop"})

    assert default.status_code == 200 and shop.status_code == 200, shop.text
    assert default.json()["created"] is True and shop.json()["created"] is False
    assert shop.json()["user"]["id"] == default.json()["user"]["id"]
    rows = await sql("SELECT m.user_id, m.login_method, m.appid, m.openid FROM user_login_methods m ORDER BY m.id")
    assert [(r[1], r[2], r[3]) for r in rows] == [("miniprogram", MINI_APPID, openid(MINI_APPID)),
                                                 ("miniprogram", SHOP_APPID, openid(SHOP_APPID))]
    assert rows[0][0] == rows[1][0] and openid(MINI_APPID) != openid(SHOP_APPID)
    assert (await sql("SELECT COUNT(*) FROM users"))[0][0] == 1
    me = await client.get(site.url + "/api/me", headers={"Authorization": f"Bearer {shop.json()['token']}"})
    assert [m["appid"] for m in me.json()["login_methods"]] == [MINI_APPID, SHOP_APPID]


async def test_a_named_mobile_app_joins_the_same_account(site, client, sql):
    mini = await api(client, site, LOGIN, {"code": (await wx_login(client, site, "panda", "shop"))["code"],
                                           "app": "shop"})
    handed = await client.post(site.url + "/_sandbox/dev/app.auth", json={"person": "panda", "app": "lite"})
    lite = await api(client, site, "/api/app/login", {"code": handed.json()["code"], "app": "lite"})

    assert lite.status_code == 200, lite.text
    assert lite.json()["user"]["id"] == mini.json()["user"]["id"] and lite.json()["created"] is False
    assert await sql("SELECT login_method, appid, openid FROM user_login_methods ORDER BY id") == [
        ("miniprogram", SHOP_APPID, openid(SHOP_APPID, "panda")), ("app", LITE_APPID, openid(LITE_APPID, "panda"))]


async def test_a_named_mobile_apps_tokens_are_refreshed_with_that_app(site, client, sql):
    # The profile refresh renews an expired access token with the refresh token of the app that issued it:
    # WeChat refuses another appid's (40030), which would send the person to authorise again.
    handed = await client.post(site.url + "/_sandbox/dev/app.auth", json={"person": "zhangsan", "app": "lite"})
    login = await api(client, site, "/api/app/login", {"code": handed.json()["code"], "app": "lite"})
    site.sandbox.state.expire_access_tokens("zhangsan")
    await sql("UPDATE user_login_methods SET access_token_expires_at = '2000-01-01'")

    outcome = await site.services.accounts.refresh_profile(login.json()["user"]["id"])

    assert outcome in (RefreshOutcome.UPDATED, RefreshOutcome.UNCHANGED)
    [(expires,)] = await sql("SELECT access_token_expires_at FROM user_login_methods")
    assert expires.year > 2000, "renewed through /sns/oauth2/refresh_token with the lite app's appid"


async def test_the_app_field_chooses_the_app_that_exchanges_the_code(site, client, sql):
    # A code WeChat issued to the shop is worthless to the default mini-program, and the reverse: so the
    # site really called jscode2session with the app the client named.
    shop_code = (await wx_login(client, site, "zhangsan", "shop"))["code"]
    default_code = (await wx_login(client, site, "zhangsan"))["code"]

    assert (await api(client, site, LOGIN, {"code": shop_code})).json()["error"] == "code_invalid"
    assert (await api(client, site, LOGIN, {"code": default_code, "app": "shop"})).json()["error"] == "code_invalid"
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(0,)]


@pytest.mark.parametrize("app", ["nosuchapp", "SHOP", "shop-eu", "a" * 33, 7, ["shop"], True])
async def test_an_unknown_or_malformed_app_is_400_and_costs_nothing(app, site, client, sql, caplog):
    handed = await wx_login(client, site, "zhangsan", "shop")

    for path in (LOGIN, "/api/app/login"):
        answer = await api(client, site, path, {"code": handed["code"], "app": app})
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", answer.text
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]
    # The code was not spent: nothing was sent to WeChat.
    assert (await api(client, site, LOGIN, {"code": handed["code"], "app": "shop"})).status_code == 200
    if app == "nosuchapp":
        assert "miniprogram app 'nosuchapp', which is not configured" in caplog.text


async def test_absent_null_or_empty_app_is_the_default_app(site, client):
    for app in (None, ""):
        body: dict[str, Any] = {"code": (await wx_login(client, site, "zhangsan"))["code"], "app": app}
        assert (await api(client, site, LOGIN, body)).status_code == 200


async def test_the_default_app_alone_works_as_before(server, client):
    # No [wechat.more] at all (the checked-in settings): a named app is unknown, the default serves.
    handed = await wx_login(client, server, "zhangsan")
    assert (await api(client, server, LOGIN, {"code": handed["code"], "app": "shop"})).status_code == 400
    assert (await client.post(server.url + "/_sandbox/dev/wx.login",
                              json={"person": "zhangsan", "app": "shop"})).status_code == 400
    assert (await api(client, server, LOGIN, {"code": handed["code"]})).status_code == 200


async def test_profile_from_open_data_uses_the_named_apps_session_key(site, client):
    login = await api(client, site, LOGIN, {"code": (await wx_login(client, site, "panda", "shop"))["code"],
                                            "app": "shop"})
    token = login.json()["token"]
    opened = await client.post(site.url + "/_sandbox/dev/wx.getUserInfo", json={"person": "panda", "app": "shop"})
    sealed = {k: opened.json()[k] for k in ("encryptedData", "iv")}

    # Without "app" the default mini-program's session_key is used: this user has none (no login there).
    without = await api(client, site, "/api/miniprogram/profile", sealed, token)
    assert without.status_code == 400 and without.json()["error"] == "encrypted_data_invalid"
    unknown = await api(client, site, "/api/miniprogram/profile", {**sealed, "app": "nosuchapp"}, token)
    assert unknown.status_code == 400 and unknown.json()["error"] == "bad_request"
    named = await api(client, site, "/api/miniprogram/profile", {**sealed, "app": "shop"}, token)
    assert named.status_code == 200 and named.json()["user"]["nickname"] == "🐼熊猫🎉 Panda"


async def test_a_person_without_unionid_gets_an_account_per_app(site, client):
    # WeChat gives no unionid when the app is not bound to the open platform: nothing can join the two.
    first = await api(client, site, LOGIN, {"code": (await wx_login(client, site, "lisi"))["code"]})
    second = await api(client, site, LOGIN, {"code": (await wx_login(client, site, "lisi", "shop"))["code"],
                                             "app": "shop"})
    assert first.json()["user"]["id"] != second.json()["user"]["id"]


# ---- pushes per app -------------------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, PushEvent]] = []

    async def __call__(self, app: PushApp, event: PushEvent) -> str | None:
        self.calls.append((app.label, app.appid, event))
        return None


@pytest.fixture
async def recorder(site) -> AsyncIterator[Recorder]:
    found = Recorder()
    site.services.pushes.register("SCAN", found)
    yield found
    site.services.pushes.unregister("SCAN", found)


def shop_push(token: str = SHOP_TOKEN, key: str = SHOP_KEY, appid: str = SHOP_APPID) -> wechat.SignedPush:
    fields = wechat.event_fields(SHOP_APPID, openid(SHOP_APPID), "SCAN", "scene1")
    return wechat.signed_push(token, key, appid, fields, "safe", "json")


async def post_push(client: httpx.AsyncClient, site: Any, path: str, push: wechat.SignedPush) -> httpx.Response:
    return await client.post(site.url + path, params=push.query, content=push.body,
                             headers={"Content-Type": push.content_type})


async def test_a_named_app_gets_its_pushes_through_the_sandbox(site, client, recorder, sql):
    check = await client.post(site.url + "/_sandbox/dev/push/check", json={"kind": "miniprogram", "app": "shop"})
    assert check.json() == {"url": f"{site.url}/wechat/push/miniprogram/shop", "status": 200, "echoed": True}

    answer = await client.post(site.url + "/_sandbox/dev/push",
                               json={"kind": "miniprogram", "app": "shop", "event": "SCAN", "person": "zhangsan",
                                     "format": "json"})

    assert answer.json()["url"] == f"{site.url}/wechat/push/miniprogram/shop"
    assert answer.json()["mode"] == "safe" and answer.json()["status"] == 200 and answer.json()["reply"] == "success"
    [(label, appid, event)] = recorder.calls
    assert (label, appid, event.from_user) == ("miniprogram/shop", SHOP_APPID, openid(SHOP_APPID))
    assert await sql("SELECT appid FROM wechat_pushes") == [(SHOP_APPID,)]


async def test_each_app_verifies_its_pushes_with_its_own_keys(site, client, recorder):
    mini = site.settings.wechat.miniprogram
    default_token, default_key = mini.push_token.value, mini.push_aes_key.value

    assert (await post_push(client, site, "/wechat/push/miniprogram/shop", shop_push())).text == "success"
    # The default mini-program's Token does not sign for the shop, nor the shop's for the default app.
    signed_by_default = shop_push(token=default_token, key=default_key, appid=MINI_APPID)
    assert (await post_push(client, site, "/wechat/push/miniprogram/shop", signed_by_default)).status_code == 403
    assert (await post_push(client, site, "/wechat/push/miniprogram", shop_push())).status_code == 403
    # The right Token but the default app's EncodingAESKey (and appid): the envelope does not open.
    sealed_by_default = shop_push(key=default_key, appid=MINI_APPID)
    assert (await post_push(client, site, "/wechat/push/miniprogram/shop", sealed_by_default)).status_code == 400
    assert len(recorder.calls) == 1


async def test_named_apps_without_push_token_or_unknown_have_no_endpoint(site, client):
    check = await client.post(site.url + "/_sandbox/dev/push/check", json={"kind": "mp", "app": "news"})
    assert check.json()["status"] == 200 and check.json()["echoed"] is True  # news has a push_token
    for path in ("/wechat/push/miniprogram/nosuch", "/wechat/push/mp/shop", "/wechat/push/miniprogram/SHOP"):
        assert (await client.get(site.url + path)).status_code == 404, path
    assert (await client.post(site.url + "/_sandbox/dev/push/check",
                              json={"kind": "miniprogram", "app": "nosuch"})).status_code == 400


async def test_a_named_apps_development_push_keys_serve_nothing_outside_the_sandbox(start_server, client, caplog):
    production = await start_server({**MORE, "wechat": {**MORE["wechat"], "sandbox": False}}, env=REAL_KEYS)

    assert (await client.get(f"{production.url}/wechat/push/miniprogram/shop")).status_code == 404
    assert "[wechat.more.miniprogram.shop] push_token or push_aes_key is a development key" in caplog.text
    assert "/wechat/push/miniprogram/shop is disabled" in caplog.text


# ---- app tokens per app ---------------------------------------------------------------------------------

async def test_each_app_has_its_own_app_token_and_deep_health(site, client, sql):
    site.sandbox.state.reset_app_tokens()

    answer = await client.get(site.url + "/healthz", params={"deep": "1"})

    assert answer.status_code == 200
    assert answer.json()["app_tokens"] == {"mp": "ok", "mp/news": "ok", "miniprogram": "ok",
                                           "miniprogram/shop": "ok"}
    fetched = sorted({appid for appid, _ in site.sandbox.state.stable_calls})
    assert fetched == sorted(["wxa0b1c2d3e4f50002", NEWS_APPID, MINI_APPID, SHOP_APPID])
    stored = sorted(row[0] for row in await sql("SELECT appid FROM app_tokens"))
    assert stored == fetched
    tokens = site.sandbox.state.stable_current
    assert tokens[SHOP_APPID] != tokens[MINI_APPID]
    assert site.sandbox.state.app_tokens[tokens[SHOP_APPID]].appid == SHOP_APPID


async def test_a_named_apps_secret_from_the_environment_and_a_wrong_one_in_deep_health(start_server, client):
    # The sandbox registers what the settings say; "WeChat's console" then holds another secret.
    broken = await start_server(MORE, env={"WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_SECRET": "env-secret"})
    assert broken.settings.wechat.more.miniprogram["shop"].secret.value == "env-secret"
    assert broken.sandbox.apps[SHOP_APPID].secret == "env-secret"
    broken.sandbox.apps[SHOP_APPID] = dataclasses.replace(broken.sandbox.apps[SHOP_APPID], secret="console-secret")

    answer = await client.get(broken.url + "/healthz", params={"deep": "1"})

    assert answer.status_code == 503
    checks = answer.json()["app_tokens"]
    assert checks["miniprogram"] == "ok" and checks["miniprogram/shop"] == "wechat_misconfigured"


async def test_the_play_tool_plays_a_named_mini_program(site, sql, capsys):
    # `python -m wxlogin.sandbox play --app shop` (blocking HTTP, so in a thread while the site serves).
    assert await asyncio.to_thread(play, site.url, "zhangsan", "miniprogram", "shop") == 0
    assert await sql("SELECT appid FROM user_login_methods") == [(SHOP_APPID,)]
    assert await asyncio.to_thread(play, site.url, "zhangsan", "app", "nosuch") == 1


async def test_a_further_official_account_signs_people_in_and_joins_their_account(site, new_client, sql):
    # The default official account first, then the same person through "news": one account, two openids.
    first = new_client()
    first.cookies.set("sbwx", "zhangsan")
    await follow(first, site.url + "/auth/wechat/mp?next=/account")
    second = new_client()
    second.cookies.set("sbwx", "zhangsan")
    trace = await follow(second, site.url + "/auth/wechat/mp/news?next=/account")

    assert trace[-1].status_code == 200 and str(trace[-1].url).endswith("/account")
    assert trace.visited("/auth/wechat/callback/mp.news?")
    assert trace.visited(f"appid={NEWS_APPID}")
    methods = await sql("SELECT user_id, appid, openid FROM user_login_methods WHERE login_method = 'mp'")
    assert {m[1] for m in methods} == {"wxa0b1c2d3e4f50002", NEWS_APPID}
    assert len({m[0] for m in methods}) == 1 and len({m[2] for m in methods}) == 2
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_a_state_cannot_cross_official_accounts(site, new_client):
    client = new_client()
    client.cookies.set("sbwx", "zhangsan")
    start = await client.get(site.url + "/auth/wechat/mp/news", params={"next": "/account"})
    authorize = await client.get(start.headers["location"].split("#", 1)[0])
    callback = authorize.headers["location"]
    assert "/auth/wechat/callback/mp.news?" in callback

    crossed = await client.get(callback.replace("/callback/mp.news?", "/callback/mp?"))

    assert crossed.status_code == 400 and 'data-error-code="state_invalid"' in crossed.text
    unknown = await client.get(site.url + "/auth/wechat/mp/nosuch")
    assert unknown.status_code == 404
