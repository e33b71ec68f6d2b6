"""The app access token across processes and while WeChat fails (issue 13), against the scriptable stand-in.

- Two ``server.py`` processes on one database: one stable_token call serves both (``/healthz?deep=1`` makes
  a call with each app's token); after WeChat starts refusing the token but still hands it out, two fresh
  processes recover with one forced refresh between them.
- WeChat down: many concurrent callers in one process cost one fetch (plus the client's one retry on a
  network error) and no forced refresh, and the next wave right after costs nothing; a token that is
  due for renewal keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from harness import DATABASE
from harness.serverproc import settings_for
from wxlogin.config import Settings, settings_from_mapping
from wxlogin.errors import AppTokenInvalid, WeChatUnavailable
from wxlogin.services.apptoken import AppTokenService
from wxlogin.signing import Signing
from wxlogin.store import Database
from wxlogin.store.apptokens import AppTokenStore
from wxlogin.wechat.client import WeChatClient
from wxlogin.wechat.crypto import TokenCipher


async def deep(server) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await client.get(f"{server.url}/healthz", params={"deep": "1"})
    return {"http": answer.status_code, **answer.json()}


async def test_two_processes_share_one_refresh_and_recover_a_refused_token_with_one_force(
        make_server, fake_wechat, rel_sql, wx_server):
    fake_wechat.reset_app_tokens()
    await rel_sql("DELETE FROM app_tokens")  # the suite's database was migrated by wx_server
    fake_wechat.stable_latency = 0.3  # both processes are asking at the same time
    mp, mini = (wx_server.settings["wechat"][kind]["appid"] for kind in ("mp", "miniprogram"))
    servers = [make_server() for _ in range(4)]
    try:
        first, second = await asyncio.gather(servers[0].start(), servers[1].start())
        answers = await asyncio.gather(deep(first), deep(second))
        assert [a["http"] for a in answers] == [200, 200], answers
        assert answers[0]["app_tokens"] == {"mp": "ok", "miniprogram": "ok"}
        assert fake_wechat.stable_token_calls(mp) == 1 and fake_wechat.stable_token_calls(mini) == 1
        # WeChat refuses the token but its normal mode still hands it out: only a forced refresh helps.
        fake_wechat.revoke_app_tokens(mp, keep_handing=True)
        fake_wechat.revoke_app_tokens(mini, keep_handing=True)
        third, fourth = await asyncio.gather(servers[2].start(), servers[3].start())
        answers = await asyncio.gather(deep(third), deep(fourth))
        assert [a["http"] for a in answers] == [200, 200], answers
        for appid in (mp, mini):
            assert fake_wechat.stable_token_calls(appid, force=True) == 1, "one forced refresh for both processes"
            assert fake_wechat.stable_token_calls(appid, force=False) == 2
        [(forced,)] = await rel_sql("SELECT SUM(forced_count) FROM app_tokens")
        assert forced == 2
        logs = "".join(s.log() for s in servers)
        assert "FAKEAPPTOKEN" not in logs, "the token is never logged"
    finally:
        for server in servers:
            await server.stop()
        fake_wechat.reset_app_tokens()


@pytest.fixture
async def token_service(private_db, fake_wechat, wx_server) -> AsyncIterator[Callable[[], AppTokenService]]:
    """AppTokenServices in this process, on the suite's database, with WeChat = the stand-in."""
    fake_wechat.reset_app_tokens()
    await private_db.query("DELETE FROM app_tokens", db=DATABASE)
    data = settings_for(private_db.port, DATABASE, {"wechat": {
        "sandbox": False, "open_base": fake_wechat.url, "api_base": fake_wechat.url, "timeout": 1.5,
        "connect_timeout": 1.0}})
    settings: Settings = settings_from_mapping(data, {})
    made: list[tuple[Database, WeChatClient]] = []

    def make() -> AppTokenService:
        db, wechat = Database(settings.mysql), WeChatClient(settings.wechat)
        made.append((db, wechat))
        cipher = TokenCipher(Signing([k.value for k in settings.server.secret_keys]).encryption_keys)
        return AppTokenService(settings, AppTokenStore(db), wechat, cipher)

    yield make
    for db, wechat in made:
        await db.close()
        wechat.close()
    fake_wechat.reset_app_tokens()


@pytest.mark.parametrize(("mode", "requests"), [("http503", 1), ("e-1", 2), ("noreply", 2)])
async def test_a_down_wechat_gets_bounded_fetches_and_no_forced_refresh(token_service, fake_wechat, mode, requests):
    service = token_service()
    app = service.wechat.settings.miniprogram
    fake_wechat.stable_mode = mode
    for _wave in range(2):
        results = await asyncio.gather(*(service.call(app, service.wechat.api_domain_ip) for _ in range(100)),
                                       return_exceptions=True)
        assert all(isinstance(r, WeChatUnavailable | AppTokenInvalid) or type(r).__name__ == "WeChatBusy"
                   for r in results), results[:3]
    # One fetch for 200 callers (the client retries -1 and network errors once; an HTTP 503 is not retried).
    assert fake_wechat.stable_token_calls(app.appid) == requests
    assert fake_wechat.stable_token_calls(force=True) == 0


async def test_a_refused_token_while_wechat_is_down_forces_nothing(token_service, fake_wechat):
    service = token_service()
    app = service.wechat.settings.miniprogram
    await service.token(app)
    fake_wechat.revoke_app_tokens(app.appid, keep_handing=True)
    fake_wechat.stable_mode = "noreply"
    results = await asyncio.gather(*(service.call(app, service.wechat.api_domain_ip) for _ in range(50)),
                                   return_exceptions=True)
    assert all(isinstance(r, WeChatUnavailable) for r in results), results[:3]
    assert fake_wechat.stable_token_calls(app.appid) == 1 + 2  # the first fetch, then one replacement attempt
    assert fake_wechat.stable_token_calls(force=True) == 0


async def test_a_token_due_for_renewal_serves_while_wechat_is_down(token_service, fake_wechat, private_db):
    app_service = token_service()
    app = app_service.wechat.settings.miniprogram
    token = await app_service.token(app)
    await private_db.query("UPDATE app_tokens SET expires_at = UTC_TIMESTAMP(3) + INTERVAL 200 SECOND", db=DATABASE)
    fake_wechat.stable_mode = "http503"
    later = token_service()  # another process: it reads MySQL, sees 200 s left and tries to renew
    results = await asyncio.gather(*(later.call(app, later.wechat.api_domain_ip) for _ in range(50)))
    assert all(r == ["127.0.0.1"] for r in results)
    assert await later.token(app) == token
    assert fake_wechat.stable_token_calls(app.appid) == 2  # the first fetch, then one failed renewal
    fake_wechat.stable_mode = "ok"
    [(lease,)] = await private_db.query("SELECT lease_id FROM app_tokens WHERE appid = %s", (app.appid,),
                                        db=DATABASE)
    assert lease is None, "the failed renewal gave the lease back"
