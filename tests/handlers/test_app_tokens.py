"""The app's own access token (issue 13): the sandbox's /cgi-bin token endpoints, and AppTokenService
against them over real HTTP with the real MariaDB.

Each ``tokens()`` service has its own pool, HTTP client and memory, as a separate server process would:
what two of them share, they share through MySQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wxlogin.errors import AppTokenInvalid, WeChatRateLimited
from wxlogin.services.apptoken import AppTokenService
from wxlogin.signing import Signing
from wxlogin.store import Database
from wxlogin.store.apptokens import AppTokenStore
from wxlogin.wechat.client import AppToken, WeChatClient
from wxlogin.wechat.crypto import TokenCipher

STABLE = "/_sandbox/cgi-bin/stable_token"


@pytest.fixture
async def tokens(server) -> AsyncIterator[Callable[[], AppTokenService]]:
    """A factory of AppTokenServices, each like another server process; the sandbox starts with no tokens."""
    server.sandbox.state.reset_app_tokens()
    made: list[tuple[Database, WeChatClient]] = []
    settings = server.settings
    cipher = TokenCipher(Signing([k.value for k in settings.server.secret_keys]).encryption_keys)

    def make() -> AppTokenService:
        db, wechat = Database(settings.mysql), WeChatClient(settings.wechat)
        made.append((db, wechat))
        return AppTokenService(settings, AppTokenStore(db), wechat, cipher)

    yield make
    for db, wechat in made:
        await db.close()
        wechat.close()


def stable_calls(server, force: bool) -> int:
    appid = server.settings.wechat.miniprogram.appid
    return sum(1 for a, f in server.sandbox.state.stable_calls if a == appid and f == force)


async def stable(client, server, kind: str = "miniprogram", **body: Any) -> dict[str, Any]:
    app = getattr(server.settings.wechat, kind)
    payload = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret.value,
               "force_refresh": False, **body}
    return (await client.post(server.url + STABLE, json=payload)).json()


async def works(client, server, token: str) -> int:
    """0 when an API accepts the token, else its errcode."""
    answer = await client.get(server.url + "/_sandbox/cgi-bin/get_api_domain_ip", params={"access_token": token})
    return int(answer.json().get("errcode", 0))


# --- the sandbox plays WeChat's token endpoints ------------------------------------------------------


async def test_sandbox_stable_token_is_the_same_until_its_last_five_minutes(server, client, tokens):
    first = await stable(client, server)
    again = await stable(client, server)
    assert again["access_token"] == first["access_token"] and first["expires_in"] == 7200
    appid = server.settings.wechat.miniprogram.appid
    server.sandbox.state.age_app_token(appid, 1000)
    later = await stable(client, server)
    assert later["access_token"] == first["access_token"] and 6190 <= later["expires_in"] <= 6200, "counts down"
    server.sandbox.state.age_app_token(appid, 6000)  # 200 s left: WeChat hands the successor
    renewed = await stable(client, server)
    assert renewed["access_token"] != first["access_token"] and renewed["expires_in"] == 7200
    assert await works(client, server, first["access_token"]) == 0, "old and new overlap until the old one expires"
    assert await works(client, server, renewed["access_token"]) == 0


async def test_sandbox_force_refresh_rotates_keeps_the_old_five_minutes_and_has_limits(server, client, tokens):
    first = await stable(client, server)
    forced = await stable(client, server, force_refresh=True)
    assert forced["access_token"] != first["access_token"]
    assert await works(client, server, first["access_token"]) == 0, "the old one lives 5 more minutes"
    appid = server.settings.wechat.miniprogram.appid
    server.sandbox.state.app_tokens[first["access_token"]].expires_at -= 301
    assert await works(client, server, first["access_token"]) == 42001
    too_soon = await stable(client, server, force_refresh=True)
    assert too_soon["access_token"] == forced["access_token"], "within 30 s WeChat does not refresh"
    state = server.sandbox.state
    state.forced[appid] = [state.forced[appid][-1] - 31] * 20  # 20 forced refreshes today, the last 31 s ago
    spent = await stable(client, server, force_refresh=True)
    assert spent["errcode"] == 45009
    assert (await stable(client, server))["access_token"] == forced["access_token"], "normal mode is not limited"


async def test_sandbox_cgi_token_kills_the_previous_token_five_minutes_later(server, client, tokens):
    app = server.settings.wechat.mp
    query = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret.value}
    stable_one = (await stable(client, server, kind="mp"))["access_token"]
    a = (await client.get(server.url + "/_sandbox/cgi-bin/token", params=query)).json()["access_token"]
    b = (await client.get(server.url + "/_sandbox/cgi-bin/token", params=query)).json()["access_token"]
    assert a != b and a != stable_one
    assert await works(client, server, a) == 0, "still valid for 5 minutes"
    assert server.sandbox.state.app_tokens[a].expires_at - server.sandbox.state.app_tokens[b].expires_at < -6000
    server.sandbox.state.app_tokens[a].expires_at -= 301
    assert await works(client, server, a) == 42001
    assert await works(client, server, b) == 0
    assert await works(client, server, stable_one) == 0, "the two kinds of token are separate"


@pytest.mark.parametrize(("change", "errcode"), [
    ({"secret": "wrong-secret"}, 40125), ({"appid": "wx0000000000000000"}, 40013), ({"grant_type": "x"}, 40002),
    ({"secret": ""}, 41004), ({"appid": ""}, 41002), ({"force_refresh": "yes"}, 47001),
])
async def test_sandbox_checks_the_app_credentials(server, client, tokens, change, errcode):
    assert (await stable(client, server, **change))["errcode"] == errcode


async def test_sandbox_app_token_endpoints_refuse_other_kinds_of_app_and_bad_bodies(server, client, tokens):
    web = server.settings.wechat.web
    answer = await client.post(server.url + STABLE, json={"grant_type": "client_credential", "appid": web.appid,
                                                          "secret": web.secret.value})
    assert answer.json()["errcode"] == 40013
    assert (await client.post(server.url + STABLE, content=b"{")).json()["errcode"] == 47001
    assert await works(client, server, "") == 41001
    assert await works(client, server, "no spaces allowed") == 40014
    assert await works(client, server, "sbapp_" + "x" * 40) == 40001


async def test_the_revoke_switch_makes_an_app_token_answer_40001(server, client, tokens):
    token = (await stable(client, server))["access_token"]
    revoke = await client.post(server.url + "/_sandbox/dev/app-token/revoke",
                               json={"appid": server.settings.wechat.miniprogram.appid})
    assert revoke.json() == {"revoked": 1}
    assert await works(client, server, token) == 40001
    assert (await stable(client, server))["access_token"] != token, "normal mode hands out a new one"


# --- AppTokenService -----------------------------------------------------------------------------------


async def test_one_fetch_serves_every_process_and_the_token_is_sealed_at_rest(server, tokens, sql):
    a, b = tokens(), tokens()
    app = server.settings.wechat.miniprogram
    results = await asyncio.gather(*(s.call(app, s.wechat.api_domain_ip) for s in [a, b] * 15))
    assert all(r == ["127.0.0.1"] for r in results)
    assert stable_calls(server, force=False) == 1, "one stable_token call for 30 calls in two processes"
    token = await a.token(app)
    assert await b.token(app) == token
    [(sealed,)] = await sql("SELECT token_enc FROM app_tokens WHERE appid = %s", app.appid)
    assert token.encode() not in bytes(sealed) and token[:20].encode() not in bytes(sealed)
    assert a.cipher.decrypt(bytes(sealed)) == token


async def test_the_token_is_served_from_memory_between_reads(server, tokens, sql):
    service = tokens()
    app = server.settings.wechat.miniprogram
    token = await service.token(app)
    await sql("DELETE FROM app_tokens")
    assert await service.token(app) == token, "no MySQL read (the row is gone) within the cache period"
    assert await tokens().token(app) == token, "another process finds no row and gets WeChat's same token"
    assert stable_calls(server, force=False) == 2


async def test_refreshed_ahead_of_expiry_while_the_old_one_still_works(server, client, tokens, sql):
    app = server.settings.wechat.miniprogram
    old = await tokens().token(app)
    server.sandbox.state.age_app_token(app.appid, 7000)  # WeChat: 200 s left
    await sql("UPDATE app_tokens SET expires_at = UTC_TIMESTAMP(3) + INTERVAL 200 SECOND")
    service = tokens()
    new = await service.token(app)
    assert new != old and stable_calls(server, force=False) == 2
    assert await works(client, server, old) == 0 and await works(client, server, new) == 0
    [(left,)] = await sql("SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), expires_at) FROM app_tokens")
    assert left > 7000


async def test_a_refused_token_is_replaced_and_the_call_retried_once_without_force(server, client, tokens):
    app = server.settings.wechat.miniprogram
    service = tokens()
    old = await service.token(app)
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json={"appid": app.appid})
    seen: list[str] = []

    async def request(token: str) -> list[str]:
        seen.append(token)
        return await service.wechat.api_domain_ip(token)

    assert await service.call(app, request) == ["127.0.0.1"]
    assert seen[0] == old and seen[1] != old and len(seen) == 2
    assert stable_calls(server, force=True) == 0, "WeChat handed a new token: no force needed"


async def test_a_refused_token_wechat_still_hands_out_is_forced_once_across_processes(server, client, tokens, sql):
    app = server.settings.wechat.miniprogram
    a, b = tokens(), tokens()
    old = await a.token(app)
    assert await b.token(app) == old
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json={"appid": app.appid, "keep_handing": True})
    results = await asyncio.gather(*(s.call(app, s.wechat.api_domain_ip) for s in [a, b] * 10))
    assert all(r == ["127.0.0.1"] for r in results)
    assert stable_calls(server, force=True) == 1, "one forced refresh for 20 refused calls in two processes"
    assert stable_calls(server, force=False) == 2, "the first fetch, then one that handed back the refused token"
    assert await a.token(app) == await b.token(app) != old
    [(count,)] = await sql("SELECT forced_count FROM app_tokens WHERE appid = %s", app.appid)
    assert count == 1


async def test_force_refresh_limits_hold_30_seconds_apart_and_20_a_day(server, client, tokens, sql):
    app = server.settings.wechat.miniprogram
    revoke = {"appid": app.appid, "keep_handing": True}
    service = tokens()
    await service.token(app)
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json=revoke)
    await service.call(app, service.wechat.api_domain_ip)
    assert stable_calls(server, force=True) == 1
    # Refused again at once: the next force is less than 30 s away.
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json=revoke)
    with pytest.raises(AppTokenInvalid):
        await service.call(app, service.wechat.api_domain_ip)
    normal = stable_calls(server, force=False)
    with pytest.raises(AppTokenInvalid):
        await service.call(app, service.wechat.api_domain_ip)
    assert stable_calls(server, force=False) == normal, "this process remembers: no fetch at all for a while"
    other = tokens()  # another process has to ask WeChat once to learn the same
    with pytest.raises(AppTokenInvalid):
        await other.call(app, other.wechat.api_domain_ip)
    assert stable_calls(server, force=True) == 1
    # 31 s later (both clocks moved): one force is allowed again.
    await sql("UPDATE app_tokens SET forced_at = forced_at - INTERVAL 31 SECOND")
    state = server.sandbox.state
    state.forced[app.appid] = [t - 31 for t in state.forced[app.appid]]
    later = tokens()
    assert await later.call(app, later.wechat.api_domain_ip) == ["127.0.0.1"]
    assert stable_calls(server, force=True) == 2
    # 20 today already: none more, whatever the gap.
    await sql("UPDATE app_tokens SET forced_count = 20, forced_at = forced_at - INTERVAL 1 HOUR")
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json=revoke)
    last = tokens()
    with pytest.raises(AppTokenInvalid):
        await last.call(app, last.wechat.api_domain_ip)
    assert stable_calls(server, force=True) == 2


async def test_wechat_answering_45009_to_a_force_stops_forcing_for_the_day(server, client, tokens, sql):
    app = server.settings.wechat.miniprogram
    service = tokens()
    await service.token(app)
    # None by this site, but 20 today by someone else who has our secret.
    server.sandbox.state.forced[app.appid] = [time.time() - 60] * 20
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json={"appid": app.appid, "keep_handing": True})
    with pytest.raises(WeChatRateLimited) as raised:
        await service.call(app, service.wechat.api_domain_ip)
    assert raised.value.errcode == 45009 and 0 < (raised.value.retry_after or 0) <= 86401
    [(count,)] = await sql("SELECT forced_count FROM app_tokens WHERE appid = %s", app.appid)
    assert count == 20


async def test_the_app_token_is_never_logged(server, client, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    app = server.settings.wechat.miniprogram
    service = tokens()
    first = await service.token(app)
    await client.post(server.url + "/_sandbox/dev/app-token/revoke", json={"appid": app.appid, "keep_handing": True})
    await service.call(app, service.wechat.api_domain_ip)
    second = await service.token(app)
    assert first != second
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "forcing a new one" in text, "the recovery was logged"
    assert first not in text and second not in text
    assert first not in repr(AppToken(access_token=first, expires_in=7200))


async def test_deep_healthz_checks_each_app_token(server, client, tokens):
    answer = await client.get(server.url + "/healthz", params={"deep": "1"})
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "app_tokens": {"mp": "ok", "miniprogram": "ok"}}
    plain = await client.get(server.url + "/healthz")
    assert plain.json() == {"status": "ok", "database": "ok"}
