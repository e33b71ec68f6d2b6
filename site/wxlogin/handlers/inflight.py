"""Counts requests being handled, so a shutdown can let them finish before closing connections."""

from __future__ import annotations

import asyncio


class InFlight:
    """Incremented when a handler starts, decremented when it finishes (see BaseHandler)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count = max(self.count - 1, 0)
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:  # asyncio.TimeoutError is this builtin since 3.11
            return False
