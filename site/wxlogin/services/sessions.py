"""Signed cookie sessions: issue, resolve (with revocation and idle/absolute lifetimes) and end.

A session is stateless on the happy path: the cookie carries ``{uid, sid, sv, iat, wat}`` signed under its
own salt (``wat``: when WeChat last signed it in, what "recent sign-in" means). Each request costs one
indexed query that both loads the user and checks whether this ``sid`` was logged out; bumping
``users.session_version`` ends every session of a person at once.
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
# Optional: "wat" (when WeChat signed the session in; older cookies lack it) and "ch" (see claims_from).
_OPTIONAL_KEYS = {"wat", "ch"}
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

    def new_session(self, user: User, wechat_at: int | None) -> tuple[str, SessionClaims]:
        """Mint a fresh session (new sid, so a session can never be fixated) and its cookie value.

        ``wechat_at``: when the account's WeChat signed this browser in (now, for a sign-in), or None.
        """
        claims = SessionClaims(
            user_id=user.id, sid=secrets.token_urlsafe(16), session_version=user.session_version,
            issued_at=int(time.time()), wechat_at=wechat_at,
        )
        return self.cookie_value(claims), claims

    async def sign_in(self, user: User, current: SessionClaims | None) -> str:
        """A WeChat sign-in (a scan, a tap, a confirmed scene): end the browser's current session, if any, and
        return the cookie of a fresh one, signed in by WeChat just now.

        A login never upgrades an existing session (no fixation, and a shared computer's previous
        person is signed out), whoever was signed in before. Only WeChat's own answer may call this: it is
        what makes the session "recent" (``signed_in_recently``).
        """
        if current is not None:
            await self.end(current)
        value, _ = self.new_session(user, wechat_at=int(time.time()))
        return value

    async def rotate(self, user: User, current: SessionClaims) -> str:
        """Mint this browser a fresh session for a reason other than a sign-in (after an unlink ended every one).

        The WeChat sign-in time is carried over, never renewed: holding a session, however old, must not
        be enough to make it "recent" (an unlink on a shared computer would otherwise unlock closing the account).
        """
        await self.end(current)
        wechat_at = current.wechat_at if current.user_id == user.id else None
        value, _ = self.new_session(user, wechat_at=wechat_at)
        return value

    def signed_in_recently(self, claims: SessionClaims) -> bool:
        """Whether the account's WeChat signed this session (or token) in within ``[accounts] reauth_window``.

        ``wechat_at`` is set only by a WeChat sign-in (``sign_in``, an API login) and kept by everything else
        (a refreshed cookie, ``rotate``); a session without it (minted before the claim existed) is not recent.
        Closing an account, a full export, linking or merging and operator actions need this; otherwise the
        person is sent through WeChat again.
        """
        return claims.wechat_at is not None and 0 <= time.time() - claims.wechat_at <= self.reauth_window

    def cookie_value(self, claims: SessionClaims) -> str:
        return self.signing.dump_session(payload_of(claims))

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


def payload_of(claims: SessionClaims) -> dict[str, object]:
    """What a cookie or a bearer token signs: ``wat`` only when WeChat signed the session in."""
    payload: dict[str, object] = {"uid": claims.user_id, "sid": claims.sid, "sv": claims.session_version,
                                  "iat": claims.issued_at}
    if claims.wechat_at is not None:
        payload["wat"] = claims.wechat_at
    return payload


def claims_from(payload: dict[str, object]) -> SessionClaims | None:
    """Validate the shape of a signed payload (signed is not the same as well-formed)."""
    # "ch" (the channel) was in bearer tokens issued before 2026-11; accepted until they expire, unused.
    # "wat" is missing from cookies and tokens minted before it existed: they are never "recent".
    if set(payload) - _OPTIONAL_KEYS != _CLAIM_KEYS:
        return None
    uid, sid, sv, iat, wat = payload["uid"], payload["sid"], payload["sv"], payload["iat"], payload.get("wat")
    if not (isinstance(uid, int) and isinstance(sv, int) and isinstance(iat, int)):
        return None
    if any(isinstance(v, bool) for v in (uid, sv, iat, wat)):  # True is an int to Python, not to us
        return None
    if wat is not None and (not isinstance(wat, int) or wat > time.time() + 60):
        return None
    # Exactly what new_session mints: revoked_sessions.sid is CHAR(22), and a longer sid would be cut
    # there, so its logout would not stick.
    if not isinstance(sid, str) or not _SID_RE.match(sid):
        return None
    if iat > time.time() + 60:
        return None
    return SessionClaims(user_id=uid, sid=sid, session_version=sv, issued_at=iat, wechat_at=wat)
