"""Housekeeping that no single request owns: the health probes and purging rows nobody needs any more."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from wxlogin.config import PUSH_KINDS, NamedApp, RetentionSettings, WeChatApp, WeChatSettings
from wxlogin.errors import DatabaseUnavailable, WxLoginError
from wxlogin.services.apptoken import AppTokenService
from wxlogin.store import CallbackStore, Database, EventStore, RateLimitStore, UserStore
from wxlogin.store.pushes import PushStore
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)

PURGE_BATCH = 1000  # rows per DELETE: short statements, short row locks, small undo
PURGE_PAUSE = 0.05  # seconds between batches, so logins get the table and the pool in between
# The deep probe's answer is reused this long and shared by concurrent probes: /healthz is public, so
# probing it in a loop costs WeChat at most one call per app per process every 10 s.
DEEP_CHECK_REUSE = 10.0
# /login asks whether anyone can sign in before it shows a live QR; the answer is reused this long and
# shared by concurrent views, so a busy login page costs MySQL one ping per process every 2 s.
READY_REUSE = 2.0


def token_apps(wechat: WeChatSettings) -> dict[str, WeChatApp]:
    """The apps the deep health check covers, by label: every app with an app access token (each official
    account and mini-program: the default ``mp``/``miniprogram`` and the named ``miniprogram/shop``...)."""
    return {NamedApp(kind, name, app).label: app for kind in PUSH_KINDS for name, app in wechat.push_apps(kind).items()}


class MaintenanceService:
    """Answers load balancers and keeps every table that grows with traffic at its retention."""

    def __init__(self, db: Database, retention: RetentionSettings, users: UserStore, callbacks: CallbackStore,
                 events: EventStore, limits: RateLimitStore, pushes: PushStore, batch: int = PURGE_BATCH,
                 pause: float = PURGE_PAUSE, app_tokens: AppTokenService | None = None,
                 wechat: WeChatClient | None = None, token_apps: Mapping[str, WeChatApp] | None = None,
                 more_purges: Sequence[tuple[str, Callable[[int], Awaitable[int]]]] = ()) -> None:
        self.db = db
        self.app_tokens = app_tokens
        self.wechat = wechat
        self.token_apps = dict(token_apps or {})
        self._deep: tuple[float, dict[str, str]] | None = None
        self._deep_task: asyncio.Task[dict[str, str]] | None = None
        self._ready: tuple[float, bool] | None = None  # (reuse until, answer) of sign_in_ready
        self._ready_task: asyncio.Task[bool] | None = None
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
            *more_purges,  # (table, purge) of other services: avatar checks WeChat never answered
        )

    def sample_metrics(self) -> None:
        """Refresh this process's sampled gauges (the MySQL pool's); server.py calls it each second."""
        self.db.sample_metrics()

    async def database_ready(self) -> bool:
        """True when MySQL answers a trivial query within the timeouts."""
        try:
            return await self.db.ping()
        except DatabaseUnavailable:
            return False

    async def sign_in_ready(self) -> bool:
        """Whether anyone can sign in now (MySQL answers): ``database_ready``, reused for ``READY_REUSE``
        seconds and shared by concurrent callers, for pages that must not query MySQL on every view."""
        if self._ready is not None and time.monotonic() < self._ready[0]:
            return self._ready[1]
        if self._ready_task is None or self._ready_task.done():
            # Its own context, as the deep probe's: shared by every waiting view, it belongs to none of them.
            loop = asyncio.get_running_loop()
            self._ready_task = loop.create_task(self._probe_ready(), context=contextvars.Context())
        return await asyncio.shield(self._ready_task)

    async def _probe_ready(self) -> bool:
        ready = await self.database_ready()
        self._ready = (time.monotonic() + READY_REUSE, ready)
        return ready

    async def check_app_tokens(self) -> dict[str, str]:
        """For each app that has an app token (``token_apps``, by label): "ok" when a call made with it
        works, else the error code. Catches a wrong secret or a server IP missing from WeChat's whitelist
        (40164) before a person's request does; for operators (``/healthz?deep=1``), not load balancers."""
        if self._deep is not None and time.monotonic() < self._deep[0]:
            return dict(self._deep[1])
        if self._deep_task is None or self._deep_task.done():
            # Its own context: shared by every concurrent probe, so it belongs to none of their requests.
            self._deep_task = asyncio.get_running_loop().create_task(self._check_app_tokens(),
                                                                     context=contextvars.Context())
        return dict(await asyncio.shield(self._deep_task))

    async def _check_app_tokens(self) -> dict[str, str]:
        results: dict[str, str] = {}
        if self.app_tokens is not None and self.wechat is not None:
            for kind, app in self.token_apps.items():
                try:
                    await self.app_tokens.call(app, self.wechat.api_domain_ip)
                    results[kind] = "ok"
                except WxLoginError as exc:
                    results[kind] = exc.code
                    logger.warning("deep health check: the app token of %s (%s) fails: %s", kind, app.appid, exc.code)
        self._deep = (time.monotonic() + DEEP_CHECK_REUSE, results)
        return results

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
