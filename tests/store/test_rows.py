"""The store against real MariaDB: rows read by column name, callback statuses stored as their values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from wxlogin.config import Settings
from wxlogin.models import CallbackStatus, Channel, RequestContext, WeChatAnswer
from wxlogin.store import CallbackStore, Database, EventStore
from wxlogin.store.rows import fetchall, fetchone
from wxlogin.useragent import Surface


@pytest.fixture
async def db(test_db: Settings, clean_db: None) -> AsyncIterator[Database]:
    database = Database(test_db.mysql)
    yield database
    await database.close()


async def test_rows_are_keyed_by_column_name_and_alias(db: Database) -> None:
    async def work(cur: Any) -> tuple[Any, Any, Any]:
        await cur.execute("SELECT 1 AS one, 'two' AS two UNION ALL SELECT 3, 'four'")
        first = await fetchone(cur)
        await cur.execute("SELECT 1 AS one, 'two' AS two UNION ALL SELECT 3, 'four'")
        every = await fetchall(cur)
        await cur.execute("SELECT 1 AS one FROM DUAL WHERE 1 = 0")
        return first, every, await fetchone(cur)

    first, every, none = await db.run(work)

    assert first == {"one": 1, "two": "two"}
    assert every == [{"one": 1, "two": "two"}, {"one": 3, "two": "four"}]
    assert none is None


async def test_two_columns_of_one_name_are_an_error_not_a_lost_column(db: Database) -> None:
    """A JOIN selecting u.id and lm.id must alias one: a dict would silently keep only the last."""

    async def work(cur: Any) -> Any:
        await cur.execute("SELECT 1 AS id, 2 AS id")
        return await fetchone(cur)

    with pytest.raises(ValueError, match="duplicate column names"):
        await db.run(work)


async def test_a_callback_claim_carries_its_status_as_the_enum_and_stores_its_value(db: Database, sql: Any) -> None:
    callbacks = CallbackStore(db)
    nonce, code_hash = "a" * 32, b"\x01" * 32

    first = await callbacks.claim(nonce, code_hash)
    again = await callbacks.claim(nonce, code_hash)
    await callbacks.succeed(nonce, 7)
    await callbacks.fail(nonce)  # finished already: stays ok
    finished = await callbacks.get(nonce)

    assert first.status is CallbackStatus.PENDING and first.fresh
    assert again.status is CallbackStatus.PENDING and not again.fresh and again.same_code
    assert finished is not None and finished.status is CallbackStatus.OK and finished.user_id == 7
    assert await sql("SELECT status, user_id FROM oauth_callbacks") == [("ok", 7)]

    other = "b" * 32
    await callbacks.claim(other, code_hash)
    await callbacks.fail(other)
    lost = await callbacks.claim(other, b"\x02" * 32)
    assert lost.status is CallbackStatus.FAILED and not lost.same_code
    assert await sql("SELECT status FROM oauth_callbacks WHERE nonce = %s", other) == [("failed",)]


async def test_a_failed_attempt_is_recorded_without_a_user(db: Database, sql: Any) -> None:
    await EventStore(db).record_failure("web", "code_invalid", RequestContext(ip="192.0.2.1", user_agent="ua"))

    assert await sql("SELECT user_id, login_method, outcome, ip FROM login_events") == [
        (None, "web", "code_invalid", "192.0.2.1")
    ]


async def test_an_errcode_the_int_column_cannot_hold_is_stored_as_null(db: Database, sql: Any) -> None:
    """WeChat's errcode is any JSON number; login_events.wechat_errcode is a signed 32-bit INT. Strict mode used to
    refuse the whole audit row (DataError), and the failure page recording it answered 500."""
    context = RequestContext(ip="192.0.2.1", user_agent="ua")
    for errcode in (2**31, -(2**31) - 1, 10**30, 2**31 - 1, -(2**31), 40029):
        await EventStore(db).record_failure("web", "wechat_error", context,
                                            wechat=WeChatAnswer(errcode=errcode, rid=f"rid-{errcode}"))

    assert await sql("SELECT wechat_errcode, wechat_rid FROM login_events ORDER BY id") == [
        (None, f"rid-{2**31}"), (None, f"rid-{-(2**31) - 1}"), (None, f"rid-{10**30}"),
        (2**31 - 1, f"rid-{2**31 - 1}"), (-(2**31), f"rid-{-(2**31)}"), (40029, "rid-40029")]


@pytest.mark.parametrize("member", [*Channel, *CallbackStatus, *Surface])
async def test_an_enum_member_in_sql_and_in_text_is_its_value(db: Database, member: Any) -> None:
    """A (str, Enum) member formats as 'Channel.WEB', and PyMySQL formats a parameter inside a sequence
    (``status IN %s``) with str(): the query would look for 'CallbackStatus.OK'. StrEnum gives the value."""

    async def work(cur: Any) -> Any:
        await cur.execute("SELECT %s AS plain, %s AS listed, %s IN %s AS found",
                          (member, (member,), member.value, (member,)))
        return await fetchone(cur)

    row = await db.run(work)

    assert row == {"plain": member.value, "listed": member.value, "found": 1}
    assert f"{member}" == str(member) == member.value
