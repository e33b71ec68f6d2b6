"""Mini-program codes drawn for login scenes (``wxa_codes``, migration 9), and what a scene is (kind, status).

The image is kept for the scene's life, so every process and machine serves a scene's code from MySQL and
WeChat's ``getwxacodeunlimit`` (a quota) is asked once per scene. ``scene`` reads the scene's row (the
columns issue14.md fixes for ``login_scenes``) so the mini-program's API can say *why* a step failed.
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

    @property
    def is_miniprogram(self) -> bool:
        return self.kind == SceneKind.MINIPROGRAM

    @property
    def settled(self) -> bool:
        """Confirmed or signed in: the scene has done its one job."""
        return self.status in (SceneStatus.CONFIRMED, SceneStatus.DONE)


class WxaCodeStore:
    """SQL for ``wxa_codes``, and the one read of ``login_scenes`` the mini-program API needs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def scene(self, scene: str) -> SceneFacts | None:
        """The scene's kind, status, expiry and its code if drawn already (one statement), or None."""

        async def work(cur: aiomysql.Cursor) -> SceneFacts | None:
            await cur.execute(
                "SELECT s.kind, s.status, s.expires_at <= UTC_TIMESTAMP(3) AS expired, c.image, c.content_type "
                "FROM login_scenes s LEFT JOIN wxa_codes c ON c.scene = s.scene WHERE s.scene = %s", (scene,))
            row = await fetchone(cur)
            if row is None:
                return None
            return SceneFacts(kind=str(row["kind"]), status=str(row["status"]), expired=bool(row["expired"]),
                              image=bytes(row["image"]) if row["image"] is not None else None,
                              content_type=str(row["content_type"] or ""))

        return await self.db.run(work)

    async def keep(self, scene: str, image: bytes, content_type: str) -> None:
        """Keep a scene's code until the scene expires (the first image kept wins; a racing one is dropped)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                "INSERT IGNORE INTO wxa_codes (scene, content_type, image, expires_at) "
                "SELECT scene, %s, %s, expires_at FROM login_scenes WHERE scene = %s",
                (content_type, image, scene))

        await self.db.run(work)

    async def purge(self, batch: int) -> int:
        """Codes of scenes that have expired: up to ``batch`` rows; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM wxa_codes WHERE expires_at < UTC_TIMESTAMP(3) LIMIT %s", (batch,)))

        return await self.db.run(work)
