"""Limits on attempts per client (logins, callbacks and flow starts per IP; decryptions per token).

Counted in MySQL (store/ratelimits.py), so every process on every machine spends one budget: a client
cannot get N times the limit by reaching N workers. ``per_minute`` hits may come at once; after that one
hit every 60/per_minute seconds. A refused hit is answered with ``RateLimited(retry_after)``, which the
handlers turn into 429 + Retry-After (the error page, or the API's ``rate_limited``).

When MySQL does not answer, the limiter raises ``DatabaseUnavailable`` (the documented 503) for
everything that needs MySQL to finish anyway: a callback or an API login would fail with that same 503 a
moment later. Refusing first spends no WeChat quota and leaves the client's code unspent (WeChat never
saw it), so a retry after the outage can still use it; the one visible difference is that a bad code
during an outage is a 503 rather than a 401. Letting them through instead would hand an attacker an
unlimited path to WeChat exactly while MySQL is down. Only flow starts (``fail_open``) go on without
counting: a start writes nothing, it worked during an outage before this limiter existed, and its
callback is counted (or refused with 503) when it comes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wxlogin.config import RateLimitSettings
from wxlogin.errors import DatabaseUnavailable, RateLimited
from wxlogin.store import RateLimitStore
from wxlogin.store.ratelimits import PHONE_USER_BUCKET, PROFILE_BUCKET, SESSION_CHECK_BUCKET, LimitHit

WINDOW_SECONDS = 60
DAY = 24 * 3600


class RateLimiter:
    """At most ``per_window`` hits per subject at once, then one per window/per_window (window: a minute).

    A longer ``window_seconds`` (a day for paid phone-number calls) is the same bucket, only slower to refill:
    ``per_window`` at once, then one every window/per_window seconds.
    """

    def __init__(self, store: RateLimitStore, bucket: str, per_window: int, enabled: bool = True,
                 fail_open: bool = False, window_seconds: int = WINDOW_SECONDS) -> None:
        self.store = store
        self.bucket = bucket
        self.window_ms = window_seconds * 1000
        self.interval_ms = max(1, self.window_ms // per_window)
        self.enabled = enabled
        self.fail_open = fail_open

    async def hit(self, subject: str) -> None:
        """Count one attempt; raise RateLimited (with Retry-After seconds) when over the limit."""
        if not self.enabled:
            return
        try:
            ahead = await self.store.hit(self.bucket, subject, self.interval_ms, self.window_ms)
        except DatabaseUnavailable:
            if self.fail_open:
                return
            raise
        if ahead > self.window_ms:
            raise self.refusal()

    def hit_for(self, subject: str) -> LimitHit | None:
        """The hit for a store statement that counts it in the same packet as its own work; None when off.

        Only for limiters that fail closed: when MySQL does not answer, neither does the work.
        """
        assert not self.fail_open
        return LimitHit.of(self.bucket, subject, self.interval_ms, self.window_ms) if self.enabled else None

    def refusal(self) -> RateLimited:
        # The refused hit left the bucket exactly one window ahead: one interval of quiet frees a hit.
        return RateLimited(max(1, math.ceil(self.interval_ms / 1000)))


@dataclass(frozen=True)
class RateLimits:
    """Every limiter of the site, each with its own bucket name in the shared table."""

    login: RateLimiter  # API logins per IP (each costs a WeChat code exchange)
    decrypt: RateLimiter  # open-data decryptions per bearer token (no padding-oracle probing)
    callback: RateLimiter  # browser callbacks per IP that reach the state claim (and then WeChat)
    start: RateLimiter  # /auth/wechat/web and /auth/wechat/mp per IP
    # Issue 13: phone numbers cost money per success; the session-key check spends WeChat quota.
    phone_user: RateLimiter  # phone-number calls per account, per day
    phone_ip: RateLimiter  # phone-number calls per IP, per minute
    session_check: RateLimiter  # checksession calls per account
    profile: RateLimiter  # nickname and avatar fill-ins per account (msg_sec_check, media_check_async quota)

    @classmethod
    def from_settings(cls, settings: RateLimitSettings, store: RateLimitStore) -> RateLimits:
        on = settings.enabled
        return cls(
            login=RateLimiter(store, "login", settings.login_per_minute, on),
            decrypt=RateLimiter(store, "decrypt", settings.decrypt_per_minute, on),
            callback=RateLimiter(store, "callback", settings.callback_per_minute, on),
            start=RateLimiter(store, "start", settings.start_per_minute, on, fail_open=True),
            # Keyed by account id: the buckets the deletion job clears with the account (store/ratelimits.py).
            phone_user=RateLimiter(store, PHONE_USER_BUCKET, settings.phone_per_user_per_day, on, window_seconds=DAY),
            phone_ip=RateLimiter(store, "phone_ip", settings.phone_per_ip_per_minute, on),
            session_check=RateLimiter(store, SESSION_CHECK_BUCKET, settings.session_check_per_minute, on),
            profile=RateLimiter(store, PROFILE_BUCKET, settings.profile_per_user_per_minute, on),
        )
