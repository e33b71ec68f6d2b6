"""What the pool records (issue 16), against the real MariaDB: waits in the admission queue by how they ended,
the breaker opening and closing, and the sampled pool gauges. In this test process the metrics live in memory
(no multiprocess directory), so the library's registry answers directly. No assertion on a duration.
"""

from __future__ import annotations

import asyncio
import dataclasses

import aiomysql
import pytest
from prometheus_client import REGISTRY

from harness.fakewechat import FakeWeChat
from harness.mariadb import free_port
from wxlogin.config import Secret, WeChatApp, WeChatSettings
from wxlogin.errors import Overloaded
from wxlogin.store.db import Database
from wxlogin.wechat.client import WeChatClient


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _sleep_in_mysql(cur: aiomysql.Cursor) -> None:
    await cur.execute("SELECT SLEEP(0.3)")


async def test_queue_waits_are_counted_by_how_they_end(test_db):
    db = Database(dataclasses.replace(test_db.mysql, pool_min=0, pool_max=1, queue_limit=1, acquire_timeout=0.1,
                                      query_timeout=2.0))
    served, timeout, full = (value("wxlogin_db_admission_waits_total", result=r) for r in ("served", "timeout", "full"))
    try:
        holder = asyncio.create_task(db.run(_sleep_in_mysql))  # takes the one connection for 0.3 s
        await asyncio.sleep(0.05)
        db.sample_metrics()
        assert value("wxlogin_db_pool_connections", state="in_use") == 1
        assert value("wxlogin_db_pool_connections", state="max") == 1
        waiter = asyncio.create_task(db.run(_sleep_in_mysql))  # waits in line, gives up after 0.1 s
        await asyncio.sleep(0)
        db.sample_metrics()
        assert value("wxlogin_db_admission_waiting", queue="admission") == 1
        with pytest.raises(Overloaded):
            await db.run(_sleep_in_mysql)  # the line is full: turned away at once
        assert (value("wxlogin_db_admission_waits_total", result="full") - full) == 1
        with pytest.raises(Overloaded):  # busy, not down: MySQL showed no failure
            await waiter
        assert (value("wxlogin_db_admission_waits_total", result="timeout") - timeout) == 1
        await holder
        await db.run(_sleep_in_mysql)  # no wait: the fast path records nothing
        assert value("wxlogin_db_admission_waits_total", result="served") == served
        db.sample_metrics()
        assert value("wxlogin_db_pool_connections", state="in_use") == 0
        assert value("wxlogin_db_admission_waiting", queue="admission") == 0
    finally:
        await db.close()


async def test_the_breaker_is_reported_open_then_closed(test_db):
    nowhere = dataclasses.replace(test_db.mysql, port=free_port(), connect_timeout=0.5, acquire_timeout=0.5)
    db = Database(nowhere)
    trips = value("wxlogin_db_breaker_trips_total", breaker="mysql")
    assert not await db.ping()
    assert value("wxlogin_db_breaker_trips_total", breaker="mysql") - trips == 1
    assert value("wxlogin_db_breaker_open", breaker="mysql") == 1
    db._down_until = 0.0  # the pause is over (instead of sleeping through BREAKER_SECONDS)
    db.settings = test_db.mysql  # and MySQL is back
    assert await db.ping()
    assert value("wxlogin_db_breaker_open", breaker="mysql") == 0
    await db.close()


async def test_a_cancelled_wechat_call_is_not_counted_as_a_success():
    """A call whose caller leaves while WeChat has not answered yet is counted as cancelled, not errcode 0."""
    fake = FakeWeChat(slow_seconds=30.0)  # "slow": WeChat holds the answer far longer than the test waits
    await fake.start()
    app = WeChatApp(appid="wx0000000000cancel", secret=Secret("cancel-secret"))
    client = WeChatClient(WeChatSettings(sandbox=False, open_base=fake.url, api_base=fake.url, timeout=60.0,
                                         connect_timeout=5.0, max_clients=2, http_client="simple", web=app,
                                         mp=app, app=app, miniprogram=app))
    path = "/sns/oauth2/access_token"
    success, cancelled = (value("wxlogin_wechat_calls_total", endpoint=path, errcode=r) for r in ("0", "cancelled"))
    the_code = "slow.alice.cancel1"
    try:
        call = asyncio.create_task(client.exchange_code(app, the_code))
        # Until WeChat has the request (the call is in flight); the stand-in logs requests, it has no event.
        while fake.calls_for(the_code) == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        client.close()
        await fake.close()
    assert value("wxlogin_wechat_calls_total", endpoint=path, errcode="0") == success
    assert value("wxlogin_wechat_calls_total", endpoint=path, errcode="cancelled") == cancelled + 1
