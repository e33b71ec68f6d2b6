"""The app's own access token: one token per appid, shared by every process and machine.

- **Fetched** with ``POST /cgi-bin/stable_token`` in normal mode, which hands every caller the same token
  until its last 5 minutes, and **kept in MySQL** (``app_tokens``, sealed with ``TokenCipher``). Never
  ``/cgi-bin/token``: each of its calls replaces the token every other process holds.
- **One refresher at a time** across processes: the row's lease (store/apptokens.py says why a lease and
  not GET_LOCK). Inside a process, one fetch per appid in flight: concurrent callers share it.
- **Refreshed ahead**, once less than ``REFRESH_MARGIN`` (5 minutes) remains: that is when WeChat's normal
  mode hands out the successor while the old token stays valid. When the refresh fails, the old token
  keeps serving until it expires.
- **Cached in process memory** for at most ``CACHE_SECONDS`` (60 s), never past the refresh point, so the
  hot path reads MySQL about once a minute per appid and process. Safe because a token WeChat renews in
  normal mode stays valid 5 minutes after its successor appears, and no entry outlives the refresh point;
  a token that dies early (a forced refresh elsewhere, a revocation) is answered 40001, on which ``call``
  drops the entry and reads MySQL, where the refresher stored the new one: one more API call, no fetch.
- **Recovery**: a call answered 40001/40014/42001 (``AppTokenInvalid``) replaces the token only if it is
  still the one that failed, then runs once more. ``force_refresh`` only when WeChat hands back that very
  token, and within WeChat's limits (20 a China day, 30 s apart), counted in MySQL; never on a network
  error or a busy WeChat.
- **A down WeChat** sees one fetch (and the client's one retry) per appid per process, then nothing for
  ``FAILURE_BACKOFF`` seconds: callers in between get the same error at once.
The token is never logged (``AppToken``'s repr hides it, and no message here includes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from wxlogin import metrics
from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import AppTokenInvalid, WeChatError, WeChatRateLimited, WeChatUnavailable, WxLoginError
from wxlogin.store.apptokens import AppTokenStore
from wxlogin.wechat.client import AppToken, WeChatClient
from wxlogin.wechat.crypto import TokenCipher

logger = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_MARGIN = 300.0  # seconds left when we renew: WeChat's normal mode renews in the last 5 minutes
CACHE_SECONDS = 60.0  # longest a process serves the token from memory without reading MySQL
MIN_REFRESH_GAP = 30.0  # a token WeChat says expires sooner than the margin is asked for again after this
WAIT_SLICE = 1.0  # memory life of the old token while another process renews it
FAILURE_BACKOFF = 5.0  # after a failed fetch, this process fetches again only after this
FORCE_PER_DAY = 20  # WeChat's limits on force_refresh
FORCE_GAP = 30
_POLL_FIRST, _POLL_MAX = 0.05, 0.5  # waiting for another process's refresh: 50 ms doubling to 0.5 s


@dataclass
class _Cached:
    token: str
    fresh_until: float  # monotonic: served from memory until then
    expires_at: float  # monotonic: WeChat's expiry as seen from here


@dataclass
class _Failed:
    error: WeChatError
    until: float  # monotonic: answer this error without a fetch until then


class AppTokenService:
    """The access token of each app (official account, mini-program) and calls made with it."""

    def __init__(self, settings: Settings, store: AppTokenStore, wechat: WeChatClient, cipher: TokenCipher) -> None:
        self.settings = settings
        self.store = store
        self.wechat = wechat
        self.cipher = cipher
        # The lease outlives the holder's worst case: a normal fetch and a forced one (each within the
        # WeChat timeout) and its statements; a holder that crashes frees it by this much later.
        self.lease_seconds = 2 * settings.wechat.timeout + 2 * settings.mysql.query_timeout + 1
        self._cached: dict[str, _Cached] = {}
        self._failed: dict[str, _Failed] = {}
        self._inflight: dict[tuple[str, str | None], asyncio.Task[str]] = {}

    async def token(self, app: WeChatApp) -> str:
        """The app's current access token. Prefer ``call``: it also recovers from a refused token."""
        cached = self._cached.get(app.appid)
        if cached is not None:
            now = time.monotonic()
            failed = self._failed.get(app.appid)
            if now < cached.fresh_until or (failed is not None and now < min(failed.until, cached.expires_at)):
                return cached.token  # fresh, or the fetch just failed and this one has not expired yet
        return await self._shared(app, refused=None)

    async def call(self, app: WeChatApp, request: Callable[[str], Awaitable[T]]) -> T:
        """Run ``request(access_token)``; on AppTokenInvalid replace the token once and run it again."""
        token = await self.token(app)
        try:
            return await request(token)
        except AppTokenInvalid as exc:
            logger.warning("WeChat refused the app token of %s (errcode %s); replacing it", app.appid, exc.errcode)
        cached = self._cached.get(app.appid)
        if cached is not None and _same(cached.token, token):
            del self._cached[app.appid]
        return await request(await self._shared(app, refused=token))

    # --- one fetch in flight per (appid, refused token) in this process --------------------------

    async def _shared(self, app: WeChatApp, refused: str | None) -> str:
        failed = self._failed.get(app.appid)
        if failed is not None and time.monotonic() < failed.until:
            raise _again(failed.error)
        key = (app.appid, refused)
        task = self._inflight.get(key)
        if task is None:
            # A context of its own: the task serves every waiting request, so it must not spend (or be
            # cut short by) the MySQL budget of whichever request happened to start it.
            task = asyncio.get_running_loop().create_task(self._obtain(app, refused), context=contextvars.Context())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # A caller that gives up (its client left) does not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    def _finished(self, key: tuple[str, str | None], task: asyncio.Task[str]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch nobody waits for any more is not reported as lost

    async def _obtain(self, app: WeChatApp, refused: str | None) -> str:
        appid = app.appid
        try:
            token, remaining, keep_for = await self._from_store_or_wechat(app, refused)
        except WeChatError as exc:
            # No fetch from this process for a while; a refused token WeChat still hands out stays
            # refused until a forced refresh may be tried again.
            pause = float(FORCE_GAP) if isinstance(exc, AppTokenInvalid) else FAILURE_BACKOFF
            self._failed[appid] = _Failed(exc, time.monotonic() + pause)
            raise
        self._failed.pop(appid, None)
        now = time.monotonic()
        refresh_in = max(remaining - REFRESH_MARGIN, min(MIN_REFRESH_GAP, remaining / 2))
        fresh_for = min(CACHE_SECONDS, refresh_in, keep_for if keep_for is not None else CACHE_SECONDS)
        self._cached[appid] = _Cached(token=token, fresh_until=now + fresh_for, expires_at=now + remaining)
        return token

    # --- MySQL first, WeChat under the lease -------------------------------------------------------

    async def _from_store_or_wechat(self, app: WeChatApp, refused: str | None) -> tuple[str, float, float | None]:
        """(token, seconds it has left, how long to keep it in memory if shorter than usual)."""
        appid = app.appid
        deadline = time.monotonic() + self.lease_seconds
        pause = _POLL_FIRST
        while True:
            stored = await self.store.load(appid)
            current = self.cipher.decrypt(stored.token_enc)
            remaining = stored.remaining or 0.0
            usable = current is not None and remaining > 0 and not _same(current, refused)
            if current is not None and usable and remaining > REFRESH_MARGIN:
                return current, remaining, None
            if stored.leased:
                if current is not None and usable:
                    return current, remaining, WAIT_SLICE  # another process is renewing it; this one still works
                if time.monotonic() >= deadline:
                    raise WeChatUnavailable(errmsg="another process's refresh of the app token did not finish")
                await asyncio.sleep(pause)
                pause = min(2 * pause, _POLL_MAX)
                continue
            lease = secrets.token_urlsafe(16)
            if await self.store.claim(appid, lease, self.lease_seconds):
                return await self._refresh(app, lease, refused)
            # Someone claimed it between our read and our claim: read again (and wait for them).

    async def _refresh(self, app: WeChatApp, lease: str, refused: str | None) -> tuple[str, float, float | None]:
        """Holding the lease: fetch (forcing only if WeChat hands back the refused token) and store."""
        appid = app.appid
        saved = False
        try:
            stored = await self.store.load(appid)  # again: it may have changed between our read and our claim
            current = self.cipher.decrypt(stored.token_enc)
            remaining = stored.remaining or 0.0
            usable = current is not None and remaining > 0 and not _same(current, refused)
            if current is not None and usable and remaining > REFRESH_MARGIN:
                return current, remaining, None
            try:
                fetched = await self.wechat.stable_token(app)
            except WeChatError as exc:
                self._count(app, "normal", exc.code)
                if current is not None and usable:
                    logger.warning("cannot renew the app token of %s (%s); the current one serves for %d s more",
                                   appid, exc.code, int(remaining))
                    return current, remaining, FAILURE_BACKOFF
                raise
            self._count(app, "normal", "ok")
            forced = refused is not None and _same(fetched.access_token, refused)
            if forced:
                fetched = await self._force(app, lease)
                if refused is not None and _same(fetched.access_token, refused):
                    # WeChat does not rotate within 30 s of another forced refresh (made outside this site).
                    raise AppTokenInvalid(errmsg="a forced refresh handed back the refused app token")
            saved = await self.store.save(appid, lease, self.cipher.encrypt(fetched.access_token),
                                          fetched.expires_in)
            logger.info("app token of %s renewed%s; valid for %d s", appid, " by a forced refresh" if forced else "",
                        fetched.expires_in)
            return fetched.access_token, float(fetched.expires_in), None
        finally:
            if not saved:
                with contextlib.suppress(WxLoginError):  # the lease expires by itself anyway
                    await self.store.release(appid, lease)

    async def _force(self, app: WeChatApp, lease: str) -> AppToken:
        """WeChat still hands out the token it refuses: rotate it, if its limits allow one now."""
        if not await self.store.take_force(app.appid, lease, FORCE_PER_DAY, FORCE_GAP):
            logger.warning("the app token of %s is refused and WeChat still hands it out; a forced refresh is "
                           "not allowed yet (%d a day, %d s apart)", app.appid, FORCE_PER_DAY, FORCE_GAP)
            raise AppTokenInvalid(errmsg="WeChat still hands out the refused app token; no forced refresh allowed now")
        logger.warning("the app token of %s is refused and WeChat still hands it out; forcing a new one", app.appid)
        try:
            fetched = await self.wechat.stable_token(app, force_refresh=True)
        except WeChatError as exc:
            self._count(app, "forced", exc.code)
            # 45009: spent outside this site (another system with our secret): stop for today
            if isinstance(exc, WeChatRateLimited) and exc.errcode == 45009:
                await self.store.spend_all_forces(app.appid, FORCE_PER_DAY)
            raise
        self._count(app, "forced", "ok")
        return fetched

    def _count(self, app: WeChatApp, kind: str, result: str) -> None:
        """One token fetch from WeChat in the metrics, by the app's label (``mp``, ``miniprogram/shop``)."""
        found = self.settings.wechat.app_by_appid(app.appid)
        metrics.APP_TOKEN_REFRESHES.labels(found.label if found else "other", kind, result).inc()


def _same(token: str | None, other: str | None) -> bool:
    """Two tokens are the same (in constant time: tokens are secrets)."""
    if token is None or other is None:
        return False
    return hmac.compare_digest(token.encode("utf-8"), other.encode("utf-8"))


def _again(error: WeChatError) -> WeChatError:
    """A fresh copy of a remembered error (re-raising one instance would chain every traceback onto it)."""
    copy = type(error)(errcode=error.errcode, errmsg=error.errmsg, rid=error.rid)
    copy.retry_after = error.retry_after
    if isinstance(error, WeChatUnavailable) and isinstance(copy, WeChatUnavailable):
        copy.network = error.network
    return copy
