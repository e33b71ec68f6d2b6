"""The login audit trail: one row per login attempt, success or failure."""

from __future__ import annotations

import aiomysql

from wxlogin.models import LoginEvent, RequestContext, WeChatAnswer
from wxlogin.store.db import Database
from wxlogin.store.rows import fetchall


class EventStore:
    """SQL for the ``login_events`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_failure(self, channel: str, outcome: str, context: RequestContext,
                             user_id: int | None = None, wechat: WeChatAnswer | None = None) -> None:
        """Record a failed attempt (successes are recorded inside the login transaction).

        ``user_id`` only for a signed-in person's own link or merge flow, which their session already
        identifies. A failed *login* stays NULL: it has not established who the person is, and showing it
        to whoever signs in next from the same address would show them someone else's attempts.
        ``wechat``: WeChat's errcode and rid when the failure was WeChat's answer (the operator console shows them).
        """

        async def work(cur: aiomysql.Cursor) -> None:
            await insert_event(cur, user_id, channel, outcome, context, wechat)

        await self.db.run(work)

    async def recent(self, user_id: int, limit: int = 10) -> list[LoginEvent]:
        """Return the user's most recent login events, newest first: successes, their own failures, phone changes."""

        async def work(cur: aiomysql.Cursor) -> list[LoginEvent]:
            await cur.execute(
                "SELECT created_at, login_method, outcome, ip, user_agent FROM login_events "
                "WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT %s",
                (user_id, limit),
            )
            return [
                LoginEvent(created_at=r["created_at"], channel=r["login_method"], outcome=r["outcome"], ip=r["ip"],
                           user_agent=r["user_agent"])
                for r in await fetchall(cur)
            ]

        return await self.db.run(work)

    async def purge_older_than(self, days: int, batch: int) -> int:
        """Delete up to ``batch`` events older than ``days`` days (index on created_at); returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM login_events WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL %s DAY LIMIT %s",
                (days, batch),
            ))

        return await self.db.run(work)


# login_events.wechat_errcode is a signed 32-bit INT; WeChat's answer is whatever JSON number it sent.
_ERRCODE_MIN, _ERRCODE_MAX = -(2**31), 2**31 - 1


def stored_errcode(wechat: WeChatAnswer | None) -> int | None:
    """WeChat's errcode as the column can hold it: NULL when absent or out of the INT range (strict mode would
    refuse the whole row, and the failure page that records it would answer 500)."""
    if wechat is None or wechat.errcode is None or not _ERRCODE_MIN <= wechat.errcode <= _ERRCODE_MAX:
        return None
    return wechat.errcode


async def insert_event(cur: aiomysql.Cursor, user_id: int | None, method: str, outcome: str,
                       context: RequestContext, wechat: WeChatAnswer | None = None) -> None:
    """One audit row, cut to its columns (login_method 16, outcome 32, ip 45, user_agent 255, rid 64 characters;
    an errcode outside INT is NULL)."""
    cur.defer(  # nothing reads its result: it goes with the next packet (a login's COMMIT), store/db.py
        "INSERT INTO login_events (user_id, login_method, outcome, ip, user_agent, wechat_errcode, wechat_rid, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(3))",
        (user_id, method[:16], outcome[:32], context.ip[:45], context.user_agent[:255],
         stored_errcode(wechat), (wechat.rid[:64] or None) if wechat else None),
    )
