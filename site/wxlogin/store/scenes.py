"""Login scenes (``login_scenes``, migration 8): a MINIMAL stand-in for the scene core's store.

Issue 14's scene core (``services/scenes.py`` ``SceneService``, the waiting page) is built by another engineer
at the same time; this module holds only the transitions the mini-program code login calls, written to the
interface in issue14.md. **At merge the scene core's version replaces this file.** Each transition is one
UPDATE whose WHERE clause is the rule (status, expiry), so two racing phones cannot both move a scene.
"""

from __future__ import annotations

import aiomysql

from wxlogin.models import SceneStatus
from wxlogin.store.db import Database


class SceneStore:
    """SQL for the status of ``login_scenes`` rows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def move(self, scene: str, sources: tuple[SceneStatus, ...], target: SceneStatus,
                   user_id: int | None = None) -> bool:
        """``sources`` -> ``target`` if the scene is in one of them and not expired; True when it moved."""

        async def work(cur: aiomysql.Cursor) -> bool:
            moved = await cur.execute(
                "UPDATE login_scenes SET status = %s, user_id = COALESCE(%s, user_id) "
                "WHERE scene = %s AND status IN %s AND expires_at > UTC_TIMESTAMP(3)",
                (target, user_id, scene, tuple(sources)))
            return int(moved) == 1

        return await self.db.run(work)
