"""One person's rows locked by a transaction that never ends: that person gets 503 overloaded, nobody else does.

The multi-host test found it: an app host that dies inside a login transaction leaves the person's rows
locked (``FOR UPDATE``) until MySQL notices, minutes later. Each of that person's retries on a healthy
host waited for the lock until ``[mysql] query_timeout``, which the breaker took for MySQL being down,
so the healthy host answered 503 ``database_unavailable`` to everyone. Now every connection's
``innodb_lock_wait_timeout`` ends such a wait first (1205): the held person gets ``503 overloaded`` with
Retry-After (JSON for the API, the "服务繁忙" page for people), never a 500, and the breaker stays closed.

Here a raw connection of the test plays the dead host: ``BEGIN; SELECT ... FOR UPDATE`` on the person's
user row, held while the app is asked. Real MariaDB, the sandbox over HTTP, no assertion on a duration.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiomysql
import httpx
from prometheus_client import REGISTRY

from helpers import Flows


async def _mp_login(server: Any, client: httpx.AsyncClient, person: str) -> httpx.Response:
    handed = await client.post(f"{server.url}/_sandbox/dev/wx.login", json={"person": person})
    return await client.post(f"{server.url}/api/miniprogram/login", json={"code": handed.json()["code"]})


def _trips() -> float:
    return REGISTRY.get_sample_value("wxlogin_db_breaker_trips_total", {"breaker": "mysql"}) or 0.0


async def test_a_person_whose_rows_stay_locked_gets_overloaded_and_everyone_else_is_served(
        start_server, new_client, test_db, caplog):
    # query_timeout 2 s: each connection's lock wait is 1 s, so a held login answers after about a second.
    server = await start_server({"mysql": {"query_timeout": 2.0}})
    api, browser, other = new_client(), new_client(), new_client()
    first = await _mp_login(server, api, "zhangsan")
    assert first.status_code == 200, first.text
    user_id = first.json()["user"]["id"]
    assert (await Flows(server).login(browser, "zhangsan", "/account")).status_code == 302  # same unionid, same user
    assert (await _mp_login(server, other, "lisi")).status_code == 200

    holder = await aiomysql.connect(host=test_db.mysql.host, port=test_db.mysql.port, user=test_db.mysql.user,
                                    password=test_db.mysql.password.value, db=test_db.mysql.database)
    trips = _trips()
    try:
        await holder.begin()
        async with holder.cursor() as cur:  # what the dead host's login transaction still holds
            await cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        with caplog.at_level(logging.WARNING):
            # (a) The held person, by the API and by a page, while (b) another person logs in meanwhile.
            held_api, bystander = await asyncio.gather(_mp_login(server, api, "zhangsan"),
                                                       _mp_login(server, other, "lisi"))
            held_page = await Flows(server).login(browser, "zhangsan", "/account")
            # (b) Right after the 503s, inside what would have been the breaker's second: still served.
            after = await _mp_login(server, other, "lisi")
            health = await other.get(f"{server.url}/healthz")
    finally:
        await holder.rollback()
        holder.close()

    assert (held_api.status_code, held_api.json()["error"]) == (503, "overloaded"), held_api.text
    assert int(held_api.headers["Retry-After"]) >= 1
    assert held_page.status_code == 503 and "服务繁忙" in held_page.text, held_page.text
    assert "服务暂时不可用" not in held_page.text and int(held_page.headers["Retry-After"]) >= 1
    assert bystander.status_code == 200, bystander.text
    assert after.status_code == 200, f"another person's login must not meet an open breaker: {after.text}"
    assert (health.status_code, health.json()["database"]) == (200, "ok")
    assert _trips() == trips, "a lock wait is contention on one person's rows, not evidence against MySQL"
    contention = [r.getMessage() for r in caplog.records if "row lock wait timed out" in r.getMessage()]
    assert len(contention) == 2, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if "Uncaught exception" in r.getMessage()]

    # (c) The lock is gone: the person logs in, by the API and by a page.
    again = await _mp_login(server, api, "zhangsan")
    assert again.status_code == 200 and again.json()["user"]["id"] == user_id, again.text
    assert (await Flows(server).login(browser, "zhangsan", "/account")).status_code == 302
