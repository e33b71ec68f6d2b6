"""The app access token of each appid (``app_tokens``): one row every process and machine shares.

The row holds the token sealed with ``TokenCipher`` (never in clear), its expiry, the refresher's lease
and the count of forced refreshes. Times are the database's clock (``UTC_TIMESTAMP``), so processes on
different machines agree on "expired" and "30 s apart".

Why a lease and not ``GET_LOCK`` or ``SELECT ... FOR UPDATE``: both hold a MySQL connection (and a lock)
while the holder waits on WeChat, for up to ``[wechat] timeout`` twice (a normal fetch, then maybe a
forced one). That breaks the rule that no connection is held across a WeChat call (security.md item 18),
and a statement outliving ``query_timeout`` would trip the pool's breaker. A lease is claimed in one
short statement, lives a bounded time (a crashed holder frees it by expiring) and is given back with the
new token in one statement, so the WeChat call runs with no connection held.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiomysql

from wxlogin.store.db import Database
from wxlogin.store.rows import fetchone

# WeChat counts force_refresh calls per day; its day is China's (UTC+8, no daylight saving) [L: inferred].
_CN_DAY = "DATE(UTC_TIMESTAMP() + INTERVAL 8 HOUR)"


@dataclass(frozen=True)
class StoredAppToken:
    """What the row says now; ``token_enc`` is still sealed."""

    token_enc: bytes | None
    remaining: float | None  # seconds until WeChat's expiry by the database's clock (negative: expired)
    leased: bool  # someone holds an unexpired lease: a refresh is under way


class AppTokenStore:
    """SQL for the ``app_tokens`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, appid: str) -> StoredAppToken:
        """The stored token of ``appid`` (an empty answer when there is no row yet)."""

        async def work(cur: aiomysql.Cursor) -> StoredAppToken:
            await cur.execute(
                "SELECT token_enc, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at) AS left_us, "
                "COALESCE(lease_until > UTC_TIMESTAMP(3), 0) AS leased FROM app_tokens WHERE appid = %s",
                (appid,),
            )
            row = await fetchone(cur)
            if row is None:
                return StoredAppToken(token_enc=None, remaining=None, leased=False)
            left = row["left_us"]
            sealed = row["token_enc"]
            return StoredAppToken(token_enc=bytes(sealed) if sealed is not None else None,
                                  remaining=None if left is None else int(left) / 1e6, leased=bool(row["leased"]))

        return await self.db.run(work)

    async def claim(self, appid: str, lease_id: str, seconds: float) -> bool:
        """Take the refresher's lease for ``seconds`` unless someone holds an unexpired one."""

        async def work(cur: aiomysql.Cursor) -> bool:
            await cur.execute(
                "INSERT INTO app_tokens (appid) VALUES (%s) ON DUPLICATE KEY UPDATE appid = appid", (appid,)
            )
            changed = await cur.execute(
                "UPDATE app_tokens SET lease_id = %s, lease_until = UTC_TIMESTAMP(3) + INTERVAL %s MICROSECOND "
                "WHERE appid = %s AND (lease_until IS NULL OR lease_until <= UTC_TIMESTAMP(3))",
                (lease_id, int(seconds * 1e6), appid),
            )
            return bool(changed == 1)

        return await self.db.run(work)

    async def save(self, appid: str, lease_id: str, token_enc: bytes, expires_in: int) -> bool:
        """Store a fresh token and give the lease back; False when the lease was lost (it expired)."""

        async def work(cur: aiomysql.Cursor) -> bool:
            changed = await cur.execute(
                "UPDATE app_tokens SET token_enc = %s, fetched_at = UTC_TIMESTAMP(3), "
                "expires_at = UTC_TIMESTAMP(3) + INTERVAL %s SECOND, lease_id = NULL, lease_until = NULL "
                "WHERE appid = %s AND lease_id = %s",
                (token_enc, expires_in, appid, lease_id),
            )
            return bool(changed == 1)

        return await self.db.run(work)

    async def release(self, appid: str, lease_id: str) -> None:
        """Give the lease back without a new token (the refresh failed or was not needed)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("UPDATE app_tokens SET lease_id = NULL, lease_until = NULL "
                              "WHERE appid = %s AND lease_id = %s", (appid, lease_id))

        await self.db.run(work)

    async def take_force(self, appid: str, lease_id: str, per_day: int, gap_seconds: int) -> bool:
        """Count one forced refresh if WeChat's limits allow it now; only the lease holder may.

        One statement checks and counts (the assignments run left to right, so ``forced_count`` still
        sees the old ``forced_day``). It is counted before the call: WeChat may count a call whose
        answer we never saw, so our count errs on the side of fewer forced refreshes, never more.
        """

        async def work(cur: aiomysql.Cursor) -> bool:
            changed = await cur.execute(
                f"UPDATE app_tokens SET forced_count = IF(forced_day = {_CN_DAY}, forced_count + 1, 1), "
                f"forced_day = {_CN_DAY}, forced_at = UTC_TIMESTAMP(3) "
                "WHERE appid = %s AND lease_id = %s "
                "AND (forced_at IS NULL OR forced_at <= UTC_TIMESTAMP(3) - INTERVAL %s SECOND) "
                f"AND (forced_day IS NULL OR forced_day <> {_CN_DAY} OR forced_count < %s)",
                (appid, lease_id, gap_seconds, per_day),
            )
            return bool(changed == 1)

        return await self.db.run(work)

    async def spend_all_forces(self, appid: str, per_day: int) -> None:
        """WeChat answered 45009 to a forced refresh: count today's forces as used up."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                f"UPDATE app_tokens SET forced_count = GREATEST(IF(forced_day = {_CN_DAY}, forced_count, 0), %s), "
                f"forced_day = {_CN_DAY} WHERE appid = %s",
                (per_day, appid),
            )

        await self.db.run(work)
