"""Signed cookie sessions: issue, resolve (with revocation and idle/absolute lifetimes) and end.

A session is stateless on the happy path: the cookie carries ``{uid, sid, sv, iat}`` signed under its
own salt. Each request costs one indexed query that both loads the user and checks whether this
``sid`` was logged out; bumping ``users.session_version`` ends every session of a person at once.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from wxlogin.config import ServerSettings
from wxlogin.models import SessionClaims, User
from wxlogin.signing import Signing
from wxlogin.store import UserStore

_CLAIM_KEYS = {"uid", "sid", "sv", "iat"}
SID_LENGTH = 22  # secrets.token_urlsafe(16)
_SID_RE = re.compile(rf"^[A-Za-z0-9_-]{{{SID_LENGTH}}}$")


@dataclass(frozen=True)
class ResolvedSession:
    user: User
    claims: SessionClaims
    needs_refresh: bool  # re-sign the cookie to keep an active person inside the idle timeout


class SessionService:
    """Issues and checks the site's session cookies."""

    def __init__(self, settings: ServerSettings, signing: Signing, users: UserStore, reauth_window: int = 300) -> None:
        self.settings = settings
        self.reauth_window = reauth_window
        self.signing = signing
        self.users = users
        self._refresh_after = max(1, min(settings.session_idle_timeout // 10, 3600))

    def new_session(self, user: User) -> tuple[str, SessionClaims]:
        """Mint a fresh session (new sid, so a session can never be fixated) and its cookie value."""
        claims = SessionClaims(
            user_id=user.id, sid=secrets.token_urlsafe(16), session_version=user.session_version,
            issued_at=int(time.time()),
        )
        return self.cookie_value(claims), claims

    async def sign_in(self, user: User, current: SessionClaims | None) -> str:
        """Rotate: end the browser's current session, if any, and return the cookie of a fresh one.

        A login never upgrades an existing session (no fixation, and a shared computer's previous
        person is signed out), whoever was signed in before.
        """
        if current is not None:
            await self.end(current)
        value, _ = self.new_session(user)
        return value

    def signed_in_recently(self, claims: SessionClaims) -> bool:
        """Whether this session (or token) came from a WeChat sign-in within ``[accounts] reauth_window``.

        Every sign-in mints a new session (``sign_in`` rotates), so ``issued_at`` is the time of the last
        scan or tap; a refreshed cookie keeps it. Closing an account, a full export and operator actions
        need this; otherwise the person is sent through WeChat again.
        """
        return 0 <= time.time() - claims.issued_at <= self.reauth_window

    def cookie_value(self, claims: SessionClaims) -> str:
        return self.signing.dump_session(
            {"uid": claims.user_id, "sid": claims.sid, "sv": claims.session_version, "iat": claims.issued_at}
        )

    def parse(self, value: str | None) -> tuple[SessionClaims, int] | None:
        """Check signature, idle and absolute age of a cookie value without touching the database."""
        loaded = self.signing.load_session(value or "", max_age=self.settings.session_idle_timeout)
        if loaded is None:
            return None
        payload, signed_at = loaded
        claims = claims_from(payload)
        if claims is None or time.time() - claims.issued_at > self.settings.session_max_age:
            return None
        return claims, signed_at

    async def resolve(self, value: str | None) -> ResolvedSession | None:
        """Return the signed-in person for a cookie value, or None (anonymous)."""
        parsed = self.parse(value)
        if parsed is None:
            return None
        claims, signed_at = parsed
        user, revoked = await self.users.get_session_user(claims.user_id, claims.sid)
        if user is None or revoked or user.disabled or user.session_version != claims.session_version:
            return None
        return ResolvedSession(user, claims, needs_refresh=time.time() - signed_at > self._refresh_after)

    async def end(self, claims: SessionClaims, lifetime: int | None = None) -> None:
        """Log one session (or bearer token) out."""
        expires = claims.issued_at + (lifetime or self.settings.session_max_age) + 60
        await self.users.revoke_session(claims.sid, datetime.fromtimestamp(expires, UTC).replace(tzinfo=None))

    async def end_all(self, user_id: int) -> None:
        """Log a person out everywhere: every cookie and token they hold stops working."""
        await self.users.bump_session_version(user_id)


def claims_from(payload: dict[str, object]) -> SessionClaims | None:
    """Validate the shape of a signed payload (signed is not the same as well-formed)."""
    # "ch" (the channel) was in bearer tokens issued before 2026-11; accepted until they expire, unused.
    if set(payload) - {"ch"} != _CLAIM_KEYS:
        return None
    uid, sid, sv, iat = payload["uid"], payload["sid"], payload["sv"], payload["iat"]
    if not (isinstance(uid, int) and isinstance(sv, int) and isinstance(iat, int)):
        return None
    if any(isinstance(v, bool) for v in (uid, sv, iat)):  # True is an int to Python, not to us
        return None
    # Exactly what new_session mints: revoked_sessions.sid is CHAR(22), and a longer sid would be cut
    # there, so its logout would not stick.
    if not isinstance(sid, str) or not _SID_RE.match(sid):
        return None
    if iat > time.time() + 60:
        return None
    return SessionClaims(user_id=uid, sid=sid, session_version=sv, issued_at=iat)
