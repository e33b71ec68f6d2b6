"""store/db.py's Cursor against real MariaDB: deferred writes, START TRANSACTION with the first statement, COMMIT
with the last writes, and what an error in the middle of a packet leaves behind (nothing committed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pymysql
import pytest

from wxlogin.config import Settings
from wxlogin.store import CallbackStore, Database
from wxlogin.store.db import ER_DUP_ENTRY, error_number
from wxlogin.store.ratelimits import HIT, LimitHit
from wxlogin.store.rows import fetchone


@pytest.fixture
async def db(test_db: Settings, clean_db: None) -> AsyncIterator[Database]:
    database = Database(test_db.mysql)
    yield database
    await database.close()


def claim(nonce: str) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT INTO oauth_callbacks (nonce, code_hash, created_at) VALUES (%s, %s, UTC_TIMESTAMP(3))",
            (nonce, b"\x01" * 32))


async def test_a_transaction_is_two_packets_and_its_writes_land_with_the_commit(db: Database, sql: Any) -> None:
    async def work(cur: Any) -> Any:
        await cur.execute("SELECT COUNT(*) AS n FROM oauth_callbacks FOR UPDATE")
        before = await fetchone(cur)
        cur.defer(*claim("a" * 32))
        cur.defer(*claim("b" * 32))
        cur.defer("UPDATE oauth_callbacks SET user_id = %s WHERE nonce = %s", (7, "a" * 32))
        return before

    start = db.round_trips
    before = await db.transaction(work)

    assert before == {"n": 0}
    assert db.round_trips - start == 2  # START TRANSACTION + SELECT, then the three writes + COMMIT
    assert await sql("SELECT nonce, user_id FROM oauth_callbacks ORDER BY nonce") == [("a" * 32, 7), ("b" * 32, None)]


async def test_an_execute_carries_the_writes_deferred_before_it_and_reads_its_own_result(db: Database) -> None:
    async def work(cur: Any) -> Any:
        cur.defer(*claim("a" * 32))
        await cur.execute("SELECT COUNT(*) AS n FROM oauth_callbacks")
        return await fetchone(cur)

    start = db.round_trips
    assert await db.transaction(work) == {"n": 1}  # the transaction sees its own deferred write
    assert db.round_trips - start == 2


async def test_a_transaction_without_statements_sends_nothing(db: Database) -> None:
    async def work(cur: Any) -> int:
        return 5

    start = db.round_trips
    assert await db.transaction(work) == 5
    assert db.round_trips == start


async def test_plain_run_sends_its_deferred_writes_when_the_work_ends(db: Database, sql: Any) -> None:
    async def work(cur: Any) -> None:
        cur.defer(*claim("a" * 32))

    start = db.round_trips
    await db.run(work)
    assert db.round_trips - start == 1
    assert await sql("SELECT COUNT(*) FROM oauth_callbacks") == [(1,)]


async def test_a_failing_deferred_write_commits_nothing_and_the_connection_stays_usable(db: Database, sql: Any) -> None:
    await db.run(lambda cur: cur.execute(*claim("x" * 32)))
    attempts = 0

    async def work(cur: Any) -> None:
        nonlocal attempts
        attempts += 1
        await cur.execute("SELECT 1")
        cur.defer(*claim("a" * 32))
        cur.defer(*claim("x" * 32))  # a duplicate key: raised from the COMMIT's packet, COMMIT not run
        cur.defer(*claim("b" * 32))

    with pytest.raises(pymysql.err.IntegrityError) as raised:
        await db.transaction(work)

    assert error_number(raised.value) == ER_DUP_ENTRY and attempts > 1  # retried like any duplicate key
    assert await sql("SELECT nonce FROM oauth_callbacks") == [("x" * 32,)]  # rolled back: no 'a', no 'b'

    async def count(cur: Any) -> Any:
        await cur.execute("SELECT COUNT(*) AS n FROM oauth_callbacks")
        return await fetchone(cur)

    for _ in range(db.settings.pool_max + 1):  # every pooled connection is clean (none left in a transaction)
        assert await db.transaction(count) == {"n": 1}


async def test_a_hit_leaves_how_far_ahead_in_last_insert_id_on_both_paths(db: Database) -> None:
    """The callback's claim reads LAST_INSERT_ID() after the hit: a stale value from an earlier statement on
    the pooled connection (a user's new id, say) must never decide it."""
    hit = LimitHit.of("probe", "203.0.113.7", 1000, 60_000)

    async def work(cur: Any) -> list[Any]:
        seen = []
        for _ in range(2):  # a new row, then an update of it
            await cur.execute("SELECT LAST_INSERT_ID(999999999)")
            await cur.execute(HIT, hit.args)
            await cur.execute("SELECT LAST_INSERT_ID() AS ahead")
            seen.append((await fetchone(cur) or {})["ahead"])
        return seen

    first, second = await db.run(work)
    assert first == 1000 and 1000 < second <= 2000


async def test_a_refused_hit_claims_nothing(db: Database, sql: Any) -> None:
    callbacks = CallbackStore(db)
    hit = LimitHit.of("callback", "203.0.113.8", 30_000, 60_000)  # two at once, then one each 30 s

    answers = [await callbacks.claim(f"{i}" * 32, b"\x01" * 32, hit) for i in range(4)]

    assert [a is not None for a in answers] == [True, True, False, False]
    assert await sql("SELECT COUNT(*) FROM oauth_callbacks") == [(2,)]
    assert await sql("SELECT hits FROM rate_limits") == [(4,)]
