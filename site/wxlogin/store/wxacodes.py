"""What the mini-program code login keeps per scene (``wxa_scenes``, migration 9), and what a scene is.

- The code's image, for the scene's life: every process and machine serves a scene's code from MySQL, and
  WeChat's ``getwxacodeunlimit`` (a quota) is asked once per scene.
- The owner: the account whose mini-program acted on the scene first. ``claim`` decides it in one INSERT
  (the primary key picks the first of two racing phones); only the owner may go on.
- ``scene`` reads the scene's row (the columns issue14.md fixes for ``login_scenes``) with both, in one
  statement, so the mini-program's API can say *why* a step failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiomysql

from wxlogin.models import SceneKind, SceneStatus
from wxlogin.store.db import Database
from wxlogin.store.rows import fetchone


@dataclass(frozen=True)
class SceneFacts:
    """A scene as the mini-program code login sees it; ``image`` when its code was drawn already."""

    kind: str
    status: str
    expired: bool  # expires_at has passed (EXPIRED is computed, not only stored)
    image: bytes | None = None
    content_type: str = ""
    owner_id: int | None = None  # the account whose mini-program acted on it first

    @property
    def is_miniprogram(self) -> bool:
        return self.kind == SceneKind.MINIPROGRAM

    @property
    def open(self) -> bool:
        """Waiting or scanned, and not expired: a step may still move it."""
        return self.status in (SceneStatus.WAITING, SceneStatus.SCANNED) and not self.expired

    @property
    def settled(self) -> bool:
        """Confirmed or signed in: the scene has done its one job."""
        return self.status in (SceneStatus.CONFIRMED, SceneStatus.DONE)


class WxaCodeStore:
    """SQL for ``wxa_scenes``, and the one read of ``login_scenes`` the mini-program API needs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def scene(self, scene: str) -> SceneFacts | None:
        """The scene's kind, status, expiry and its code if drawn already (one statement), or None."""

        async def work(cur: aiomysql.Cursor) -> SceneFacts | None:
            await cur.execute(
                "SELECT s.kind, s.status, s.expires_at <= UTC_TIMESTAMP(3) AS expired, w.image, w.content_type, "
                "w.owner_id FROM login_scenes s LEFT JOIN wxa_scenes w ON w.scene = s.scene WHERE s.scene = %s",
                (scene,))
            row = await fetchone(cur)
            if row is None:
                return None
            return SceneFacts(kind=str(row["kind"]), status=str(row["status"]), expired=bool(row["expired"]),
                              image=bytes(row["image"]) if row["image"] is not None else None,
                              content_type=str(row["content_type"] or ""),
                              owner_id=int(row["owner_id"]) if row["owner_id"] is not None else None)

        return await self.db.run(work)

    async def keep(self, scene: str, image: bytes, content_type: str) -> None:
        """Keep a scene's code until the scene expires (the first image kept wins; a racing one is dropped)."""

        async def work(cur: aiomysql.Cursor) -> None:
            # content_type is assigned before image: MySQL evaluates the assignments in order, on the new values.
            await cur.execute(
                "INSERT INTO wxa_scenes (scene, content_type, image, expires_at) "
                "SELECT scene, %s, %s, expires_at FROM login_scenes WHERE scene = %s "
                "ON DUPLICATE KEY UPDATE content_type = IF(image IS NULL, VALUES(content_type), content_type), "
                "image = COALESCE(image, VALUES(image))",
                (content_type, image, scene))

        await self.db.run(work)

    async def claim(self, scene: str, user_id: int) -> int | None:
        """Make ``user_id`` the scene's owner unless it has one; returns the owner (None: no such scene)."""

        async def work(cur: aiomysql.Cursor) -> int | None:
            await cur.execute(
                "INSERT INTO wxa_scenes (scene, owner_id, expires_at) "
                "SELECT scene, %s, expires_at FROM login_scenes WHERE scene = %s "
                "ON DUPLICATE KEY UPDATE owner_id = COALESCE(owner_id, VALUES(owner_id))", (user_id, scene))
            await cur.execute("SELECT owner_id FROM wxa_scenes WHERE scene = %s", (scene,))
            row = await fetchone(cur)
            return int(row["owner_id"]) if row is not None and row["owner_id"] is not None else None

        return await self.db.run(work)

    async def purge(self, batch: int) -> int:
        """Codes of scenes that have expired: up to ``batch`` rows; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM wxa_scenes WHERE expires_at < UTC_TIMESTAMP(3) LIMIT %s", (batch,)))

        return await self.db.run(work)
