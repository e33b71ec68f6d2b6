"""MySQL round trips per login, counted where every statement goes through (store/db.py's Cursor).

A round trip costs about 65 µs of aiomysql CPU (bench/README.md "Fewer round trips per login"), so each
login kind's count is pinned here: a change that adds one fails a test and has to say why. Rate limits
are on, as in production (they are shared in MySQL and cost a statement per hit). Real MariaDB, the
sandbox over HTTP; only the login request itself is counted (the sandbox's steps touch no database).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from helpers import Flows

# Returning person: the rate-limit hit with the callback's claim (one packet, autocommit), then one
# transaction in two packets: START TRANSACTION with the locking read, and every write with COMMIT.
QR_RETURNING = 3
# New person: the same, plus the user's INSERT on its own (its id goes into the rows that follow), and with a
# unionid the locking read of the account that may already own it.
QR_NEW = 4
QR_NEW_WITH_UNIONID = 5
# The mini-program has no state to claim: the rate-limit hit and the transaction's two packets.
MINIPROGRAM_RETURNING = 3
MINIPROGRAM_NEW_WITH_UNIONID = 5  # as a new QR login with a unionid, without the claim
# A person the site knows by their unionid, on an app they never used here: the locking read by unionid also
# says whether they unlinked this identity, so it is one round trip more than a returning login.
MINIPROGRAM_KNOWN_BY_UNIONID = 4
OFFICIAL_ACCOUNT_RETURNING = 3  # the silent snsapi_base callback: as the QR callback


@pytest.fixture
async def limited(start_server: Callable[..., Awaitable[Any]]) -> Any:
    """A server with rate limits on, as shipped."""
    return await start_server({"ratelimit": {"enabled": True}})


def round_trips(server: Any) -> int:
    return int(server.services.api.login.users.db.round_trips)


async def counted(server: Any, request: Awaitable[httpx.Response]) -> tuple[httpx.Response, int]:
    """The response of one request and the round trips it cost (the test server serves one at a time)."""
    before = round_trips(server)
    response = await request
    return response, round_trips(server) - before


async def qr_login(server: Any, client: httpx.AsyncClient, person: str) -> int:
    callback = await Flows(server).qr_callback_url(client, person)
    response, trips = await counted(server, client.get(callback))
    assert response.status_code == 302 and "/auth/" not in response.headers["location"], response.text
    return trips


async def miniprogram_login(server: Any, client: httpx.AsyncClient, person: str) -> tuple[dict[str, Any], int]:
    handed = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": person})
    response, trips = await counted(
        server, client.post(server.url + "/api/miniprogram/login", json={"code": handed.json()["code"]}))
    assert response.status_code == 200, response.text
    return response.json(), trips


async def official_account_login(server: Any, client: httpx.AsyncClient, person: str) -> list[int]:
    """Follow the official-account flow in WeChat's browser; the round trips of each of our callbacks."""
    client.cookies.set("sbwx", person)
    url = f"{server.url}/auth/wechat/mp?next=/account"
    callbacks: list[int] = []
    for _ in range(12):
        if urlsplit(url).path.startswith("/auth/wechat/callback/"):
            response, trips = await counted(server, client.get(url))
            callbacks.append(trips)
        else:
            response = await client.get(url)
        if response.status_code not in (301, 302, 303):
            break
        url = urljoin(url, response.headers["location"])
    assert response.status_code == 200 and urlsplit(url).path == "/account", url
    return callbacks


async def test_qr_login_round_trips(limited, new_client, sql):
    assert await qr_login(limited, new_client(), "panda") == QR_NEW_WITH_UNIONID
    assert await qr_login(limited, new_client(), "panda") == QR_RETURNING
    assert await qr_login(limited, new_client(), "lisi") == QR_NEW  # no unionid
    assert await qr_login(limited, new_client(), "lisi") == QR_RETURNING

    # Everything the deferred writes carry arrived: one account each, two audit rows, claims finished.
    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]
    assert await sql("SELECT outcome, COUNT(*) FROM login_events GROUP BY outcome") == [("success", 4)]
    assert await sql("SELECT status, COUNT(*) FROM oauth_callbacks WHERE user_id IS NOT NULL GROUP BY status") == [
        ("ok", 4)]
    assert await sql("SELECT COUNT(*) FROM users WHERE last_login_at IS NULL") == [(0,)]


async def test_miniprogram_login_round_trips(limited, client, sql):
    first, trips = await miniprogram_login(limited, client, "zhangsan")
    assert first["created"] is True and trips == MINIPROGRAM_NEW_WITH_UNIONID
    second, trips = await miniprogram_login(limited, client, "zhangsan")
    assert second["created"] is False and trips == MINIPROGRAM_RETURNING
    assert second["user"]["id"] == first["user"]["id"]

    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_id = %s", first["user"]["id"]) == [(2,)]
    sealed = await sql("SELECT session_key_enc IS NOT NULL FROM user_login_methods")
    assert sealed == [(1,)]  # the newest session_key is kept, written with the commit


async def test_known_person_on_a_new_app_round_trips(limited, new_client, sql):
    await qr_login(limited, new_client(), "zhangsan")
    body, trips = await miniprogram_login(limited, new_client(), "zhangsan")

    assert body["created"] is False and trips == MINIPROGRAM_KNOWN_BY_UNIONID
    assert await sql("SELECT COUNT(DISTINCT user_id), COUNT(*) FROM user_login_methods") == [(1, 2)]


async def test_official_account_login_round_trips(limited, new_client, sql):
    first = await Flows(limited).mp_login(new_client(), "zhangsan", "/account")  # consent, then sign-up
    assert first[-1].status_code == 200 and str(first[-1].url).endswith("/account")

    assert await official_account_login(limited, new_client(), "zhangsan") == [OFFICIAL_ACCOUNT_RETURNING]
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE outcome = 'success'") == [(2,)]


async def test_a_refused_callback_costs_one_round_trip_and_claims_nothing(start_server, new_client, sql):
    """The limit and the claim share a packet; the claim depends on the hit, so a refused state stays unused."""
    server = await start_server({"ratelimit": {"enabled": True, "callback_per_minute": 2}})
    assert await qr_login(server, new_client(), "panda") == QR_NEW_WITH_UNIONID
    assert await qr_login(server, new_client(), "panda") == QR_RETURNING

    client = new_client()
    callback = await Flows(server).qr_callback_url(client, "panda")
    refused, trips = await counted(server, client.get(callback))
    assert refused.status_code == 429 and trips == 1
    assert await sql("SELECT COUNT(*) FROM oauth_callbacks") == [(2,)]  # the third state was not claimed
    assert await sql("SELECT hits FROM rate_limits WHERE bucket = 'callback'") == [(3,)]
    assert await sql("SELECT COUNT(*) FROM login_events") == [(2,)]
