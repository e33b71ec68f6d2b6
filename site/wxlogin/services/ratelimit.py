"""A sliding-window limit on attempts (logins per IP, decryptions per token).

Kept in process memory: with N processes a client gets at most N times the limit, which still stops
floods and padding-oracle probing; the counters need no shared store to stay correct.
"""

from __future__ import annotations

import math
import time
from collections import deque

from wxlogin.errors import RateLimited

_MAX_KEYS = 100_000


class RateLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0, enabled: bool = True) -> None:
        self.limit = limit
        self.window = window
        self.enabled = enabled
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> None:
        """Count one attempt; raise RateLimited (with Retry-After seconds) when over the limit."""
        if not self.enabled:
            return
        now = time.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= _MAX_KEYS:
                self._prune(now)
            hits = self._hits[key] = deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            raise RateLimited(max(1, math.ceil(self.window - (now - hits[0]))))
        hits.append(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.window]:
            del self._hits[key]
