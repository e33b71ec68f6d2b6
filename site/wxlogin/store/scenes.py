"""Desktop scan-login scenes (``login_scenes``): created, moved one step at a time, completed once.

The truth lives here, not in a process: the push that confirms a scene may reach another process or
machine than the one holding the waiting page. Every change is one conditional UPDATE, so two racing
changes (a confirmation and an expiry, two completions) cannot both win. Expiry is computed by MySQL's
clock from ``expires_at``, so the machines' clocks do not have to agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aiomysql

from wxlogin.models import SceneKind, SceneStatus
from wxlogin.store.db import Database
from wxlogin.store.rows import fetchall, fetchone

# A confirmed scene may still be completed this long after its expiry: the phone confirmed in time, and
# the desktop's request may be a moment behind.
COMPLETE_GRACE_SECONDS = 60
# The most scenes one statement asks about (the waiting pages of one process are read in chunks of this).
STATES_CHUNK = 1000

# The status a waiting page sees: a row's own status, or "expired" once its time is up.
_STATE = (
    "CASE WHEN status IN ('waiting', 'scanned') AND expires_at <= UTC_TIMESTAMP(3) THEN 'expired' "
    f"WHEN status = 'confirmed' AND expires_at + INTERVAL {COMPLETE_GRACE_SECONDS} SECOND <= UTC_TIMESTAMP(3) "
    "THEN 'expired' ELSE status END"
)


@dataclass(frozen=True)
class SceneRow:
    """One scene as stored, with its status as of now (EXPIRED computed)."""

    scene: str
    kind: SceneKind
    binding: bytes
    status: SceneStatus
    user_id: int | None
    next_path: str


class SceneStore:
    """SQL for the ``login_scenes`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, scene: str, kind: SceneKind, binding: bytes, next_path: str, life_seconds: int) -> None:
        """Record a new WAITING scene that expires ``life_seconds`` from now (MySQL's clock)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                "INSERT INTO login_scenes (scene, kind, binding, status, next_path, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL %s SECOND)",
                (scene, kind, binding, SceneStatus.WAITING, next_path, life_seconds),
            )

        await self.db.run(work)

    async def advance(self, scene: str, to: SceneStatus, from_statuses: tuple[SceneStatus, ...],
                      user_id: int | None = None) -> bool:
        """Move a live (unexpired) scene from one of ``from_statuses`` to ``to``; False when it was not there."""

        async def work(cur: aiomysql.Cursor) -> bool:
            changed = await cur.execute(
                "UPDATE login_scenes SET status = %s, user_id = COALESCE(%s, user_id) "
                "WHERE scene = %s AND status IN %s AND expires_at > UTC_TIMESTAMP(3)",
                (to, user_id, scene, tuple(from_statuses)),
            )
            return int(changed) == 1

        return await self.db.run(work)

    async def get(self, scene: str) -> SceneRow | None:
        """The scene with its status as of now, or None when there is no such scene (or it was purged)."""

        async def work(cur: aiomysql.Cursor) -> SceneRow | None:
            await cur.execute(
                f"SELECT scene, kind, binding, {_STATE} AS state, user_id, next_path FROM login_scenes "
                "WHERE scene = %s",
                (scene,),
            )
            row = await fetchone(cur)
            if row is None:
                return None
            user_id = row["user_id"]
            return SceneRow(scene=row["scene"], kind=SceneKind(row["kind"]), binding=bytes(row["binding"]),
                            status=SceneStatus(row["state"]), user_id=int(user_id) if user_id is not None else None,
                            next_path=row["next_path"])

        return await self.db.run(work)

    async def finish(self, scene: str, binding: bytes) -> tuple[int, str] | None:
        """CONFIRMED -> DONE for this browser's binding, once: (user id, next path), or None if not now.

        The UPDATE decides: of two racing completions exactly one changes the row.
        """

        async def work(cur: aiomysql.Cursor) -> tuple[int, str] | None:
            changed = await cur.execute(
                "UPDATE login_scenes SET status = %s WHERE scene = %s AND binding = %s AND status = %s "
                f"AND expires_at + INTERVAL {COMPLETE_GRACE_SECONDS} SECOND > UTC_TIMESTAMP(3)",
                (SceneStatus.DONE, scene, binding, SceneStatus.CONFIRMED),
            )
            if int(changed) != 1:
                return None
            await cur.execute("SELECT user_id, next_path FROM login_scenes WHERE scene = %s", (scene,))
            row = await fetchone(cur)
            if row is None or row["user_id"] is None:  # the user was deleted (cascade) in between
                return None
            return int(row["user_id"]), str(row["next_path"])

        return await self.db.run(work)

    async def states(self, scenes: Iterable[str]) -> dict[str, SceneStatus]:
        """The status as of now of each scene that exists, in one statement per ``STATES_CHUNK`` scenes."""
        wanted = list(scenes)
        found: dict[str, SceneStatus] = {}
        for start in range(0, len(wanted), STATES_CHUNK):
            chunk = tuple(wanted[start:start + STATES_CHUNK])

            async def work(cur: aiomysql.Cursor, chunk: tuple[str, ...] = chunk) -> None:
                await cur.execute(f"SELECT scene, {_STATE} AS state FROM login_scenes WHERE scene IN %s", (chunk,))
                for row in await fetchall(cur):
                    found[row["scene"]] = SceneStatus(row["state"])

            await self.db.run(work)
        return found

    async def purge_stale(self, batch: int) -> int:
        """Delete up to ``batch`` scenes that expired more than an hour ago; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM login_scenes WHERE expires_at < UTC_TIMESTAMP(3) - INTERVAL 1 HOUR LIMIT %s", (batch,)))

        return await self.db.run(work)
