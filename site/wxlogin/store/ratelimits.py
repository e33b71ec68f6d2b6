"""Rate-limit counters every process and machine shares: one row per (bucket, client), one statement per hit.

A row is a token bucket kept as one number (GCRA): ``tat_ms`` is when the client's bucket is full again.
A hit moves it one interval (window / limit) further; the hit is refused when that would put it more
than a window ahead. A refused hit still counts, but only up to "a full window ahead", so a client that
keeps hammering stays refused until it pauses for one interval, and nobody is refused for longer than
that after they stop. The clock is the database's, so processes on different machines agree.

One round trip per hit: ``INSERT ... ON DUPLICATE KEY UPDATE`` hands back how far ahead the bucket was
through ``LAST_INSERT_ID(expr)`` (the OK packet's insert id; MySQL 8 and MariaDB both do this), so
nothing is read back in a second statement and two processes cannot interleave between read and write.
A new row sets it too (``LAST_INSERT_ID(interval)`` in its values), so after a hit, on either path, the
connection's ``LAST_INSERT_ID()`` is the answer: a statement in the same packet can depend on it (the
callback's state claim does, store/callbacks.py, so a refused callback claims nothing in one round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiomysql

from wxlogin.store.db import Database

# The database's clock in milliseconds. UNIX_TIMESTAMP() and NOW(6) both read the statement's start time,
# and neither depends on the session time zone (unlike UNIX_TIMESTAMP(NOW(3)) during a DST change).
_NOW_MS = "(CAST(UNIX_TIMESTAMP() AS SIGNED) * 1000 + MICROSECOND(NOW(6)) DIV 1000)"

HIT = (
    f"INSERT INTO rate_limits (bucket, subject, tat_ms, hits) VALUES (%s, %s, {_NOW_MS} + LAST_INSERT_ID(%s), 1) "
    "ON DUPLICATE KEY UPDATE hits = hits + 1, "
    # ahead = max(tat - now, 0) + interval is returned; the stored value never goes past now + window.
    f"tat_ms = {_NOW_MS} + LEAST(LAST_INSERT_ID(GREATEST(tat_ms - {_NOW_MS}, 0) + %s), %s)"
)

SUBJECT_BYTES = 64

# The buckets whose subject is an account id (services/ratelimit.py names its limiters with these): deleting a
# person deletes their rows by the primary key (bucket, subject), store/deletions.py. Every other bucket is keyed
# by an IP or a session id.
PHONE_USER_BUCKET = "phone_user"
SESSION_CHECK_BUCKET = "session_check"
PROFILE_BUCKET = "profile"
ACCOUNT_BUCKETS = (PHONE_USER_BUCKET, SESSION_CHECK_BUCKET, PROFILE_BUCKET)


@dataclass(frozen=True)
class LimitHit:
    """One hit to count: the bucket, the client (cut to ``SUBJECT_BYTES``), the bucket's pace."""

    bucket: str
    subject: bytes
    interval_ms: int
    window_ms: int

    @classmethod
    def of(cls, bucket: str, subject: str, interval_ms: int, window_ms: int) -> LimitHit:
        return cls(bucket, subject.encode("utf-8", "replace")[:SUBJECT_BYTES], interval_ms, window_ms)

    @property
    def args(self) -> tuple[str, bytes, int, int, int]:
        """The parameters of ``HIT``."""
        return self.bucket, self.subject, self.interval_ms, self.interval_ms, self.window_ms

    def ahead(self, changed: int, last_insert_id: int) -> int:
        """How far ahead the bucket is after ``HIT``, from its affected rows and insert id."""
        # 1: a new row (an empty bucket, this is its first hit); 2: an existing row was updated.
        return self.interval_ms if changed == 1 else int(last_insert_id)


class RateLimitStore:
    """SQL for the ``rate_limits`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def hit(self, bucket: str, subject: str, interval_ms: int, window_ms: int) -> int:
        """Count one hit; return how far ahead (ms) the client's bucket now is. Above ``window_ms``: refused."""
        hit = LimitHit.of(bucket, subject, interval_ms, window_ms)

        async def work(cur: aiomysql.Cursor) -> int:
            changed = await cur.execute(HIT, hit.args)
            return hit.ahead(changed, cur.lastrowid)

        return await self.db.run(work)

    async def purge_idle(self, batch: int) -> int:
        """Delete up to ``batch`` rows whose bucket is full again (forgetting them changes nothing)."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(f"DELETE FROM rate_limits WHERE tat_ms < {_NOW_MS} LIMIT %s", (batch,)))

        return await self.db.run(work)
