"""Pushes already taken: WeChat retries a push it got no answer to, and every process must see the first one.

One row per push, keyed by a digest of the app and WeChat's own identity of the message (MsgId, or
FromUserName + CreateTime with the type, the event and a content check's trace_id;
services/pushes.py `_dedupe_key`). ``claim`` is one INSERT: the primary key decides, across processes,
who dispatches. Rows are kept a day (WeChat retries within seconds) and purged in batches.
"""

from __future__ import annotations

import aiomysql
import pymysql

from wxlogin.store.db import ER_DUP_ENTRY, Database, error_number


class PushStore:
    """SQL for the ``wechat_pushes`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, key: bytes, appid: str, event: str) -> bool:
        """Record a push as taken; False when it already was (a retry, or one still being handled)."""

        async def work(cur: aiomysql.Cursor) -> bool:
            try:
                await cur.execute(
                    "INSERT INTO wechat_pushes (dedupe_key, appid, event, created_at) "
                    "VALUES (%s, %s, %s, UTC_TIMESTAMP(3))",
                    (key, appid, event[:64]),
                )
            except pymysql.err.IntegrityError as exc:
                if error_number(exc) != ER_DUP_ENTRY:
                    raise
                return False
            return True

        return await self.db.run(work)

    async def release(self, key: bytes) -> None:
        """Forget a claim whose handling failed, so that WeChat's retry is handled again."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("DELETE FROM wechat_pushes WHERE dedupe_key = %s", (key,))

        await self.db.run(work)

    async def purge_old(self, batch: int) -> int:
        """Delete up to ``batch`` rows older than a day; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM wechat_pushes WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL 1 DAY LIMIT %s", (batch,),
            ))

        return await self.db.run(work)
