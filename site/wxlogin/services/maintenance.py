"""Housekeeping that no single request owns: the health probe and purging rows nobody needs any more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wxlogin.config import RetentionSettings
from wxlogin.errors import DatabaseUnavailable
from wxlogin.store import CallbackStore, Database, EventStore, RateLimitStore, UserStore
from wxlogin.store.pushes import PushStore

logger = logging.getLogger(__name__)

PURGE_BATCH = 1000  # rows per DELETE: short statements, short row locks, small undo
PURGE_PAUSE = 0.05  # seconds between batches, so logins get the table and the pool in between


class MaintenanceService:
    """Answers load balancers and keeps every table that grows with traffic at its retention."""

    def __init__(self, db: Database, retention: RetentionSettings, users: UserStore, callbacks: CallbackStore,
                 events: EventStore, limits: RateLimitStore, pushes: PushStore, batch: int = PURGE_BATCH,
                 pause: float = PURGE_PAUSE) -> None:
        self.db = db
        self.retention = retention
        self.batch = batch
        self.pause = pause
        days = retention.login_events_days
        self._purges: tuple[tuple[str, Callable[[int], Awaitable[int]]], ...] = (
            ("oauth_callbacks", callbacks.purge_consumed),  # states older than an hour
            ("revoked_sessions", users.purge_expired_revocations),  # sessions that expired anyway
            ("rate_limits", limits.purge_idle),  # buckets that are full again
            ("login_events", lambda batch: events.purge_older_than(days, batch)),  # the audit trail's retention
            ("wechat_pushes", pushes.purge_old),  # pushes taken more than a day ago (WeChat retries in seconds)
        )

    async def database_ready(self) -> bool:
        """True when MySQL answers a trivial query within the timeouts."""
        try:
            return await self.db.ping()
        except DatabaseUnavailable:
            return False

    async def purge_expired(self) -> int:
        """Delete, batch after batch, until nothing past its lifetime is left; returns how many rows went.

        One batch per run could not keep up with a client that creates rows faster than a batch per
        interval. Rows that qualify are old, so new traffic cannot add to them and the loop ends.
        """
        total = 0
        for table, purge in self._purges:
            removed = 0
            while True:
                count = await purge(self.batch)
                removed += count
                if count < self.batch:
                    break
                await asyncio.sleep(self.pause)
            if removed:
                logger.info("purged %d rows from %s", removed, table)
            total += removed
        return total
