"""Login scenes: a MINIMAL stand-in for the scene core's ``SceneService`` (issue 14, issue14.md's interface).

The scene core (create, state, complete, the waiting page) is built by another engineer at the same time.
This file has only the three transitions the mini-program code login calls, with the interface's exact
signatures and rules, so the mini-program API runs against real SQL before the core lands. **At merge the
scene core's version replaces this file.**
"""

from __future__ import annotations

from wxlogin.models import SceneStatus
from wxlogin.store.scenes import SceneStore

_OPEN = (SceneStatus.WAITING, SceneStatus.SCANNED)


class SceneService:
    """The scene's state machine: WAITING -> SCANNED -> CONFIRMED (or REFUSED); expiry ends it."""

    def __init__(self, store: SceneStore) -> None:
        self.store = store

    async def scanned(self, scene: str) -> bool:
        """WAITING -> SCANNED; False if unknown, expired or not waiting."""
        return await self.store.move(scene, (SceneStatus.WAITING,), SceneStatus.SCANNED)

    async def confirm(self, scene: str, user_id: int) -> bool:
        """WAITING|SCANNED -> CONFIRMED with the user who confirmed; False otherwise."""
        return await self.store.move(scene, _OPEN, SceneStatus.CONFIRMED, user_id)

    async def refuse(self, scene: str) -> bool:
        """WAITING|SCANNED -> REFUSED; False otherwise."""
        return await self.store.move(scene, _OPEN, SceneStatus.REFUSED)
