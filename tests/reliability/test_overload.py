"""Bursts past what one server process can serve, on a healthy MySQL: busy is never reported as down.

A burst of mini-program logins, then `/api/me` reads, from 128 connections that never pause. Requests
beyond the pool wait in the store's FIFO queue and are served: no `database_unavailable`, no 5xx.
With a tiny `[mysql] queue_limit` the overflow gets the documented `503 overloaded` with Retry-After,
still never `database_unavailable`, and the breaker stays closed: a bystander right after is served.
"""

from __future__ import annotations

import httpx
import pytest

from harness import scale
from harness.figures import FIGURES, count_response
from harness.load import Answer, burst, http_request, percentile

CONNECTIONS = 128


def _record(answers: list[Answer], documented: tuple[int, ...]) -> None:
    """Count every answer; the overload figures are those of bursts under the default queue limit."""
    for answer in answers:
        if answer.status:
            count_response(answer.status, documented=documented)
    if documented:
        return
    FIGURES.overload_requests += len(answers)
    FIGURES.overload_p99_s = max(FIGURES.overload_p99_s, percentile(answers, 0.99))
    FIGURES.overload_database_unavailable += sum(a.error == "database_unavailable" for a in answers)
    FIGURES.overload_5xx += sum(a.status >= 500 for a in answers)


def _assert_no_outage_logged(log: str) -> None:
    for line in ("database unavailable", "cannot get a MySQL connection", "MySQL unavailable", "MySQL query exceeded"):
        assert line not in log, f"the server logged an outage of a healthy MySQL: {line!r}"


def _summary(answers: list[Answer]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for answer in answers:
        key = f"{answer.status} {answer.error}".strip()
        counts[key] = counts.get(key, 0) + 1
    return counts


async def _logins(base: str, tag: str, seconds: float) -> list[Answer]:
    def login(n: int) -> bytes:
        return http_request("POST", "/api/miniprogram/login", body={"code": f"ok.burst{tag}n{n}.c{n}"})

    return await burst(base, CONNECTIONS, seconds, login)


async def _reads(base: str, tokens: list[str], seconds: float) -> list[Answer]:
    def me(n: int) -> bytes:
        return http_request("GET", "/api/me", {"Authorization": f"Bearer {tokens[n % len(tokens)]}"})

    return await burst(base, CONNECTIONS, seconds, me)


@pytest.fixture
async def busy_server(make_server):
    # The measured incident: the default pool of 20 against 128 connections. WeChat's stand-in
    # shares this process with the load, so it may answer late: a wechat_timeout is not what is tested.
    server = await make_server({"mysql": {"pool_max": 20, "pool_min": 1}, "wechat": {"timeout": 10}}).start()
    yield server
    await server.stop()


async def test_a_burst_on_a_healthy_database_queues_and_is_served(busy_server):
    logins = await _logins(busy_server.url, "a", scale(3, 15))
    reads = await _reads(busy_server.url, [a.token for a in logins if a.status == 200], scale(8, 40))
    answers = logins + reads
    _record(answers, documented=())
    assert _summary(answers) == {"200": len(answers)}, "every request of the burst must be served"
    assert len(reads) > len(logins) > CONNECTIONS
    _assert_no_outage_logged(busy_server.log())


async def test_a_tiny_queue_answers_overloaded_with_retry_after_and_the_breaker_stays_closed(make_server):
    server = await make_server({"mysql": {"pool_max": 2, "pool_min": 1, "queue_limit": 1}}).start()
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            first = await client.post(f"{server.url}/api/miniprogram/login", json={"code": "ok.tinyqueue.c0"})
            assert first.status_code == 200, first.text
            token = first.json()["token"]
            reads = await _reads(server.url, [token], scale(3, 20))
            _record(reads, documented=(503,))
            # Right after the burst, inside what would have been the breaker's second.
            bystander = await client.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"})
    finally:
        await server.stop()
    summary = _summary(reads)
    refused = [a for a in reads if a.status == 503]
    assert refused, f"a queue of 1 behind 2 connections must overflow under 128 connections: {summary}"
    assert set(summary) == {"200", "503 overloaded"}, summary
    assert all(a.retry_after is not None and int(a.retry_after) >= 1 for a in refused)
    assert bystander.status_code == 200, f"the breaker opened on a healthy database: {bystander.text}"
    _assert_no_outage_logged(server.log())
