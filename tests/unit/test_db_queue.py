"""The store's connection queue against the real MariaDB: busy is never reported as down.

A burst once made a healthy database look dead: aiomysql waits on an asyncio.Condition, and on Python
3.11 a waiter cancelled in the turn it is woken swallows the wake-up, so a free connection sat idle
while the next waiter timed out, called MySQL "unavailable" and opened the breaker for everyone.
These tests hold connections on purpose, so the waits are real; none asserts a duration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomysql
import pytest

from wxlogin import dbbudget
from wxlogin.config import Settings
from wxlogin.errors import DatabaseUnavailable, Overloaded
from wxlogin.store.db import Database


async def _select_one(cur: aiomysql.Cursor) -> int:
    await cur.execute("SELECT 1")
    return (await cur.fetchone())[0]


@pytest.fixture
async def make_db(test_db: Settings) -> AsyncIterator[Callable[..., Database]]:
    """A Database on the test database with a small pool and the given MySQL settings."""
    made: list[Database] = []

    def make(**overrides: Any) -> Database:
        fields = {"pool_min": 0, "pool_max": 1, "acquire_timeout": 2.0, "query_timeout": 2.0, **overrides}
        db = Database(dataclasses.replace(test_db.mysql, **fields))
        made.append(db)
        return db

    yield make
    for db in made:
        await asyncio.wait_for(db.close(), 10)


async def _settle() -> None:
    """Let tasks that were just started reach their wait (a few loop turns, no timing claim)."""
    for _ in range(20):
        await asyncio.sleep(0.005)


def _served_in(order: list[int], index: int) -> Callable[[aiomysql.Cursor], Any]:
    async def work(cur: aiomysql.Cursor) -> int:
        order.append(index)
        return await _select_one(cur)

    return work


async def test_a_waiter_cancelled_as_it_is_woken_does_not_strand_the_free_connection(make_db):
    db = make_db()
    async with db.connection():
        first = asyncio.create_task(db.run(_select_one))
        second = asyncio.create_task(db.run(_select_one))
        await _settle()
    # The connection is back in the pool and the first waiter is being woken: it gives up right now.
    first.cancel()
    assert await asyncio.wait_for(second, 10) == 1, "the second waiter must get the connection the first gave up"
    assert first.cancelled() or first.exception() is None
    assert await db.run(_select_one) == 1


async def test_waiters_are_served_first_come_first_served_and_newcomers_queue_behind(make_db):
    db = make_db(pool_max=2)
    order: list[int] = []
    holders = [db.connection(), db.connection()]
    for holder in holders:
        await holder.__aenter__()
    waiters = []
    for index in range(10):
        waiters.append(asyncio.create_task(db.run(_served_in(order, index))))
        await _settle()
    for gone in (3, 6):
        waiters[gone].cancel()
    await _settle()
    newcomers = []
    for n, holder in enumerate(holders):
        # A newcomer arrives in the very turn a connection comes back: it must not take it.
        newcomers.append(asyncio.create_task(db.run(_served_in(order, 100 + n))))
        await asyncio.sleep(0)
        await holder.__aexit__(None, None, None)
    results = await asyncio.wait_for(asyncio.gather(*waiters, *newcomers, return_exceptions=True), 20)
    failures = [r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
    assert not failures, f"waiters failed while connections were free: {failures!r}"
    assert order == [0, 1, 2, 4, 5, 7, 8, 9, 100, 101]


async def test_a_full_queue_answers_overloaded_and_the_breaker_stays_closed(make_db):
    db = make_db(queue_limit=2)
    async with db.connection():
        queued = [asyncio.create_task(db.run(_select_one)) for _ in range(2)]
        await _settle()
        with pytest.raises(Overloaded) as refused:
            await asyncio.wait_for(db.run(_select_one), 10)
        assert refused.value.code == "overloaded" and refused.value.retry_after >= 1
    assert await asyncio.wait_for(asyncio.gather(*queued), 10) == [1, 1]
    assert await db.run(_select_one) == 1, "a full queue must not open the breaker"


async def test_a_waiter_out_of_time_on_a_healthy_database_is_overloaded_and_the_next_request_is_served(make_db):
    db = make_db(acquire_timeout=0.5)
    async with db.connection():
        with pytest.raises(Overloaded):
            await asyncio.wait_for(db.run(_select_one), 10)
    # Right away, well inside the old 1 s breaker: the database was never down.
    assert await db.run(_select_one) == 1


async def test_a_request_budget_spent_in_the_queue_is_overloaded_not_database_unavailable(make_db):
    db = make_db()

    async def one_request() -> int:
        dbbudget.open_budget(0.3)  # this task's own context: a request with 0.3 s of MySQL time left
        return await db.run(_select_one)

    async with db.connection():
        with pytest.raises(Overloaded):
            await asyncio.wait_for(asyncio.create_task(one_request()), 10)
    assert await db.run(_select_one) == 1


async def test_a_burst_with_impatient_and_cancelled_users_never_says_the_database_is_down(make_db):
    db = make_db(pool_max=3, acquire_timeout=3.0, query_timeout=3.0)
    rng = random.Random(11)
    outcomes: dict[str, int] = {}

    async def user(patient: bool, statements: int) -> None:
        if not patient:
            dbbudget.open_budget(rng.uniform(0.005, 0.05))  # gives up in the queue, often mid-wake-up
        for _ in range(statements):
            try:
                await db.run(_select_one)
                outcome = "ok"
            except Overloaded:
                outcome = "overloaded"
            except DatabaseUnavailable as exc:
                outcome = f"database_unavailable ({exc.detail})"
            key = f"{'patient' if patient else 'impatient'}: {outcome}"
            outcomes[key] = outcomes.get(key, 0) + 1
            if not patient:
                return

    tasks = []
    for n in range(400):
        patient = n % 3 != 0
        tasks.append(asyncio.create_task(user(patient, 3 if patient else 1)))
        if n % 7 == 0:
            asyncio.get_running_loop().call_later(rng.uniform(0, 0.02), tasks[-1].cancel)
        if n % 20 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    down = {k: v for k, v in outcomes.items() if "database_unavailable" in k}
    assert not down, f"a healthy database was reported down: {outcomes}"
    assert not [k for k in outcomes if k.startswith("patient") and not k.endswith(": ok")], outcomes
    stats = db.pool_stats
    assert stats["free"] == stats["size"] and stats["waiting"] == 0, stats
    assert await db.run(_select_one) == 1
