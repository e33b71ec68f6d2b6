"""Consumed OAuth states: each state is claimed once, and remembers whom its callback logged in.

Kept in MySQL, not in process memory, so that a flow started on one server process can finish on
another and WeChat's double callback is recognised whichever process it reaches.
"""

from __future__ import annotations

import aiomysql
import pymysql

from wxlogin.models import CallbackClaim, CallbackStatus
from wxlogin.store.db import ER_DUP_ENTRY, Database, error_number
from wxlogin.store.ratelimits import HIT, LimitHit
from wxlogin.store.rows import Row, fetchone

_CLAIM = "INSERT INTO oauth_callbacks (nonce, code_hash, created_at) VALUES (%s, %s, UTC_TIMESTAMP(3))"
# After HIT in the same packet: LAST_INSERT_ID() is how far ahead the client's bucket now is (ratelimits.py),
# so a refused hit claims nothing, and the state stays usable once the client slows down.
_CLAIM_IF_ALLOWED = (
    "INSERT INTO oauth_callbacks (nonce, code_hash, created_at) "
    "SELECT %s, %s, UTC_TIMESTAMP(3) FROM DUAL WHERE LAST_INSERT_ID() <= %s"
)


class CallbackStore:
    """SQL for the ``oauth_callbacks`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, nonce: str, code_hash: bytes, hit: LimitHit | None = None) -> CallbackClaim | None:
        """Claim a state nonce for this code; a second claim reports the first one's progress.

        With ``hit``, the client's rate-limit hit is counted first, in the same packet (one round trip for
        both), and None means it was refused: nothing was claimed.
        """

        async def work(cur: aiomysql.Cursor) -> CallbackClaim | None:
            try:
                if hit is None:
                    await cur.execute(_CLAIM, (nonce, code_hash))
                else:
                    cur.defer(HIT, hit.args)
                    if not await cur.execute(_CLAIM_IF_ALLOWED, (nonce, code_hash, hit.window_ms)):
                        return None
                return CallbackClaim(fresh=True, same_code=True, status=CallbackStatus.PENDING, user_id=None)
            except pymysql.err.IntegrityError as exc:
                if error_number(exc) != ER_DUP_ENTRY:
                    raise
            await cur.execute("SELECT code_hash, status, user_id FROM oauth_callbacks WHERE nonce = %s", (nonce,))
            row = await fetchone(cur)
            if row is None:  # purged between the two statements: treat as consumed and gone
                return CallbackClaim(fresh=False, same_code=False, status=CallbackStatus.FAILED, user_id=None)
            return _claim(row, same_code=bytes(row["code_hash"]) == code_hash)

        return await self.db.run(work)

    async def get(self, nonce: str) -> CallbackClaim | None:
        """Read a claim without making one."""

        async def work(cur: aiomysql.Cursor) -> CallbackClaim | None:
            await cur.execute("SELECT status, user_id FROM oauth_callbacks WHERE nonce = %s", (nonce,))
            row = await fetchone(cur)
            return None if row is None else _claim(row, same_code=True)

        return await self.db.run(work)

    async def succeed(self, nonce: str, user_id: int) -> None:
        """Mark a claimed state as finished for this user (flows that do not log in, e.g. linking)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("UPDATE oauth_callbacks SET status = %s, user_id = %s WHERE nonce = %s",
                              (CallbackStatus.OK, user_id, nonce))

        await self.db.run(work)

    async def need_consent(self, nonce: str) -> None:
        """Mark a claimed state as finished by asking the person for consent (snsapi_userinfo)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                "UPDATE oauth_callbacks SET status = %s WHERE nonce = %s AND status = %s",
                (CallbackStatus.CONSENT, nonce, CallbackStatus.PENDING),
            )

        await self.db.run(work)

    async def fail(self, nonce: str) -> None:
        """Mark a claimed state as finished without a login (error, refusal, snapshot user)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("UPDATE oauth_callbacks SET status = %s WHERE nonce = %s AND status = %s",
                              (CallbackStatus.FAILED, nonce, CallbackStatus.PENDING))

        await self.db.run(work)

    async def purge_consumed(self, batch: int) -> int:
        """Delete up to ``batch`` claims older than any state can be (an hour); returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM oauth_callbacks WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL 1 HOUR LIMIT %s",
                (batch,),
            ))

        return await self.db.run(work)


def _claim(row: Row, same_code: bool) -> CallbackClaim:
    """An existing claim from a row with its ``status`` and ``user_id``."""
    user_id = row["user_id"]
    return CallbackClaim(fresh=False, same_code=same_code, status=CallbackStatus(row["status"]),
                         user_id=int(user_id) if user_id is not None else None)
