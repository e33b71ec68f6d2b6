"""store/db.py against real MariaDB: a row lock wait ends with 1205 before ``query_timeout`` and answers
``Overloaded``, never trips the breaker, and is never re-raised raw (which a handler would answer with a 500).

A raw connection of the test holds the row (``BEGIN; SELECT ... FOR UPDATE``), as a dead app host's open
login transaction would. No assertion on a duration.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiomysql
import pytest

from wxlogin import dbbudget
from wxlogin.config import Settings
from wxlogin.errors import Overloaded
from wxlogin.store.db import Database, lock_wait_seconds, lock_waits_end_first


@pytest.mark.parametrize(("query_timeout", "seconds", "first"), [
    (3.0, 2, True), (2.5, 2, True), (2.4, 1, True), (2.0, 1, True), (1.5, 1, True), (1.4, 1, False), (1.0, 1, False),
    (0.5, 1, False), (60.0, 59, True),
])
def test_the_lock_wait_is_whole_seconds_below_the_query_timeout(query_timeout, seconds, first):
    assert lock_wait_seconds(query_timeout) == seconds
    assert lock_waits_end_first(query_timeout) is first


@pytest.fixture
async def held_row(test_db: Settings) -> AsyncIterator[Any]:
    """A row of a table of the test's own, and a raw connection that can lock it."""
    conn = await aiomysql.connect(host=test_db.mysql.host, port=test_db.mysql.port, user=test_db.mysql.user,
                                  password=test_db.mysql.password.value, db=test_db.mysql.database, autocommit=True)
    async with conn.cursor() as cur:
        await cur.execute("CREATE TABLE IF NOT EXISTS lock_probe (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
        await cur.execute("REPLACE INTO lock_probe VALUES (1, 0), (2, 0)")
    yield conn
    await conn.rollback()
    async with conn.cursor() as cur:
        await cur.execute("DROP TABLE lock_probe")
    conn.close()


async def _hold(conn: aiomysql.Connection) -> None:
    await conn.begin()
    async with conn.cursor() as cur:
        await cur.execute("SELECT n FROM lock_probe WHERE id = 1 FOR UPDATE")


async def _bump(cur: aiomysql.Cursor) -> None:
    await cur.execute("UPDATE lock_probe SET n = n + 1 WHERE id = 1")


async def _bump_other(cur: aiomysql.Cursor) -> None:
    await cur.execute("UPDATE lock_probe SET n = n + 1 WHERE id = 2")


def _breaker_closed(db: Database) -> bool:
    return db._down_until == 0.0 and db._failed_at == float("-inf")


async def test_every_connection_sets_its_lock_wait_with_the_sql_mode(test_db):
    db = Database(dataclasses.replace(test_db.mysql, query_timeout=3.0))

    async def session(cur: aiomysql.Cursor) -> Any:
        await cur.execute("SELECT @@SESSION.innodb_lock_wait_timeout, @@SESSION.sql_mode, @@SESSION.tx_isolation")
        return await cur.fetchone()

    try:
        lock_wait, sql_mode, isolation = await db.run(session)
    finally:
        await db.close()
    assert int(lock_wait) == db.lock_wait == 2
    assert "STRICT_TRANS_TABLES" in sql_mode and isolation == "READ-COMMITTED"


async def test_a_held_row_answers_overloaded_from_run_and_transaction_and_nothing_trips(test_db, held_row):
    db = Database(dataclasses.replace(test_db.mysql, pool_min=0, pool_max=2, query_timeout=2.0))
    attempts = 0

    async def counted_bump(cur: aiomysql.Cursor) -> None:
        nonlocal attempts
        attempts += 1
        await _bump(cur)

    try:
        await _hold(held_row)
        with pytest.raises(Overloaded) as plain:
            await db.run(_bump)
        with pytest.raises(Overloaded) as in_transaction:
            await db.transaction(counted_bump)
        assert attempts == 1, "a lock wait timeout already waited its time: no second wait for the same holder"
        assert plain.value.retry_after == in_transaction.value.retry_after == db.lock_wait
        assert _breaker_closed(db)
        await db.transaction(_bump_other)  # another row, meanwhile: served
        await held_row.rollback()
        await db.transaction(_bump)  # the holder let go
    finally:
        await db.close()
    async with held_row.cursor() as cur:
        await cur.execute("SELECT n FROM lock_probe ORDER BY id")
        assert await cur.fetchall() == ((1,), (1,))


async def test_a_budget_cut_wait_that_may_be_a_lock_wait_is_not_taken_for_mysql_down(test_db, held_row):
    """A request with 2 s of budget left, query_timeout 3 s: the statement is cut at about 2 s, before the
    server's 2 s lock wait answers. More than half the query timeout, so once counted against MySQL; but a
    statement may wait for a row lock that long, so it proves nothing: busy, not down."""
    db = Database(dataclasses.replace(test_db.mysql, pool_min=0, pool_max=2, query_timeout=3.0))

    async def request() -> None:
        dbbudget.open_budget(2.0)  # in this task's context only
        await db.transaction(_bump)

    try:
        await _hold(held_row)
        with pytest.raises(Overloaded):
            await asyncio.create_task(request())
        assert _breaker_closed(db)
    finally:
        await db.close()


async def test_a_statement_refused_for_its_values_does_not_trip_the_breaker(test_db):
    """1267 (a value outside an ascii column's charset) is PyMySQL's OperationalError, but MySQL is fine."""
    db = Database(dataclasses.replace(test_db.mysql, pool_min=0, pool_max=2))

    async def compare(cur: aiomysql.Cursor) -> None:
        await cur.execute("SELECT COUNT(*) FROM login_events WHERE ip = %s", ("é中",))

    async def one(cur: aiomysql.Cursor) -> int:
        await cur.execute("SELECT 1 AS one")
        row = await cur.fetchone()
        return int(row[0])

    try:
        with pytest.raises(Exception) as refused:
            await db.run(compare)
        assert getattr(refused.value, "args", (None,))[0] == 1267
        assert _breaker_closed(db)
        assert await db.run(one) == 1
    finally:
        await db.close()
