"""MySQL crashing, freezing and slowing down under traffic, on the suite's private MariaDB.

During a fault people get a quick 503 (JSON for the API), never a 500 and never a hang past the
configured timeouts; afterwards the same server process recovers by itself; every login that was
answered "success" is in the database, also after a kill -9 and restart; no user lacks its login method.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from harness import scale
from harness.faultproxy import FaultProxy
from harness.figures import FIGURES
from harness.load import Traffic

# The longest any request may take while MySQL is down or frozen: connect (2 s) or acquire (2 s)
# plus one bounded query (2 s), with room for a loaded 2-core machine. A hang would be 15 s (client cut).
BOUND = 5.0


async def _token(base: str, person: str) -> str:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(f"{base}/api/miniprogram/login", json={"code": f"ok.{person}.t0"})
        assert response.status_code == 200, response.text
        return response.json()["token"]


async def _check_acknowledged(traffic: Traffic, rel_sql) -> None:
    """Every login answered 200 names a committed user holding that person's mini-program login."""
    lost = 0
    for outcome in traffic.successes():
        rows = await rel_sql("SELECT COUNT(*) FROM users u JOIN user_login_methods m ON m.user_id = u.id "
                             "WHERE u.id = %s AND m.login_method = 'miniprogram' AND u.nickname = ''",
                             outcome.user_id)
        lost += rows[0][0] != 1
    FIGURES.logins_lost += lost
    assert lost == 0, f"{lost} acknowledged logins are not in the database"


def _assert_fault_answers(outcomes) -> None:
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, f"unexpected answers during the fault: {statuses}"
    slowest = max((o.seconds for o in outcomes), default=0)
    FIGURES.slowest_answer_during_mysql_faults_s = max(FIGURES.slowest_answer_during_mysql_faults_s, slowest)
    worst = max(outcomes, key=lambda o: o.seconds)
    assert slowest < BOUND, f"a request took {slowest:.1f}s during the fault: {worst}"


async def _recovered(traffic: Traffic) -> None:
    """Within a few seconds of the fault ending, everything answers 200 again, without a restart."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        recent = traffic.between(time.monotonic() - 1, time.monotonic())
        if recent and all(o.status == 200 for o in recent):
            return
    raise AssertionError("the server did not recover after MySQL came back")


@pytest.fixture
async def fault_server(make_server):
    server = await make_server({"mysql": {"pool_max": 10}}).start()
    yield server
    await server.stop()


async def test_kill_9_mid_traffic_then_restart(fault_server, private_db, rel_sql):
    token = await _token(fault_server.url, "killreader")
    traffic = Traffic(fault_server.url, token, concurrency=scale(10, 30))
    runner = asyncio.create_task(traffic.run())
    await asyncio.sleep(scale(2, 20))
    killed_at = time.monotonic()
    private_db.kill9()
    FIGURES.faults_injected += 1
    await asyncio.sleep(scale(3, 8))
    async with httpx.AsyncClient(timeout=10) as probe:
        health = await probe.get(f"{fault_server.url}/healthz")
    assert (health.status_code, health.json()["database"]) == (503, "unavailable")
    await private_db.start()
    back_at = time.monotonic()
    await _recovered(traffic)
    await asyncio.sleep(scale(1, 20))
    traffic.stop()
    await runner
    during = traffic.between(killed_at, back_at)
    assert any(o.status == 503 for o in during), "the outage was not noticed"
    _assert_fault_answers(traffic.outcomes)
    assert all(o.error == "database_unavailable" for o in traffic.outcomes if o.status == 503)
    await _check_acknowledged(traffic, rel_sql)
    # Crash again right after the run: acknowledged logins were durable at COMMIT.
    private_db.kill9()
    FIGURES.faults_injected += 1
    await private_db.start()
    await _check_acknowledged(traffic, rel_sql)
    assert len(traffic.successes()) > 10


async def test_sigstop_freezes_mysql_and_the_server_answers_503_quickly(fault_server, private_db, rel_sql):
    token = await _token(fault_server.url, "freezereader")
    traffic = Traffic(fault_server.url, token, concurrency=scale(10, 30))
    runner = asyncio.create_task(traffic.run())
    await asyncio.sleep(scale(1, 10))
    frozen_at = time.monotonic()
    private_db.freeze()
    FIGURES.faults_injected += 1
    try:
        await asyncio.sleep(10)
    finally:
        private_db.thaw()
    thawed_at = time.monotonic()
    await _recovered(traffic)
    traffic.stop()
    await runner
    during = [o for o in traffic.between(frozen_at, thawed_at) if o.started + o.seconds < thawed_at]
    assert during and all(o.status == 503 for o in during), "requests during the freeze must be 503s"
    _assert_fault_answers(traffic.outcomes)
    await _check_acknowledged(traffic, rel_sql)


async def test_slow_mysql_is_slower_then_503_then_normal(make_server, private_db, rel_sql):
    proxy = FaultProxy(private_db.port)
    await proxy.start()
    server = await make_server({"mysql": {"pool_max": 10, "pool_min": 1}}, mysql_port=proxy.port).start()
    try:
        token = await _token(server.url, "slowreader")
        traffic = Traffic(server.url, token, concurrency=scale(6, 20))
        runner = asyncio.create_task(traffic.run())
        proxy.latency = 0.02  # slow but within the timeouts: still served
        FIGURES.faults_injected += 1
        await asyncio.sleep(scale(2, 15))
        slow_ok = time.monotonic()
        proxy.latency = 2.5  # past query_timeout: a quick 503
        FIGURES.faults_injected += 1
        await asyncio.sleep(scale(5, 15))
        crawl_end = time.monotonic()
        proxy.latency = 0
        await _recovered(traffic)
        traffic.stop()
        await runner
    finally:
        await server.stop()
        await proxy.close()
    assert any(o.status == 200 for o in traffic.between(0, slow_ok)), "a slightly slow MySQL must still serve"
    crawl = [o for o in traffic.between(slow_ok + 0.1, crawl_end) if o.started + o.seconds < crawl_end]
    assert crawl and all(o.status == 503 for o in crawl)
    _assert_fault_answers(traffic.outcomes)
    await _check_acknowledged(traffic, rel_sql)
