"""Frozen dataclasses that cross layers: identities, profiles, users, login methods and events."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


# StrEnum, not (str, Enum): str() and format() of a (str, Enum) member give "Channel.WEB", and PyMySQL
# formats a parameter inside a sequence (``login_method IN %s``) with str(). A StrEnum member is its value.
class Channel(enum.StrEnum):
    """One way of logging in with WeChat; each has its own appid."""

    WEB = "web"  # website application, QR code (snsapi_login)
    MP = "mp"  # official account, WeChat browser (snsapi_base / snsapi_userinfo)
    APP = "app"  # mobile application (OpenSDK code)
    MINIPROGRAM = "miniprogram"  # mini-program (wx.login + jscode2session)


@dataclass(frozen=True)
class WeChatIdentity:
    """Who WeChat's server says the person is, for one appid."""

    channel: Channel
    appid: str
    openid: str
    unionid: str | None


@dataclass(frozen=True)
class WeChatProfile:
    """The public profile WeChat handed us; placeholders are the anonymised 微信用户 values."""

    nickname: str
    avatar_url: str
    is_placeholder: bool = False


@dataclass(frozen=True)
class WeChatTokens:
    """A user-level OAuth grant from /sns/oauth2/access_token (never the mini-program session_key)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    openid: str
    unionid: str | None
    is_snapshot_user: bool = False


@dataclass(frozen=True)
class User:
    id: int
    nickname: str
    avatar_url: str
    profile_is_placeholder: bool
    unionid: str | None
    session_version: int
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    # Closing (注销): when the deletion job may delete the account (naive UTC, as MySQL keeps it); None: not closing.
    deletion_scheduled_at: datetime | None = None

    @property
    def deletion_pending(self) -> bool:
        """The person closed the account and the grace period runs: only restore, export and sign out work."""
        return self.deletion_scheduled_at is not None


@dataclass(frozen=True)
class LoginMethod:
    id: int
    user_id: int
    channel: Channel
    appid: str
    openid: str
    unionid: str | None
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class LinkedMethod:
    """A login method as ``GET /api/me`` shows it: only what the answer prints.

    The bearer check loads these with every /api/me, in its one query; each column read costs the driver
    CPU (bench/README.md), and the openid and unionid need not leave MySQL for it.
    """

    channel: Channel
    appid: str
    created_at: datetime


@dataclass(frozen=True)
class LoginEvent:
    created_at: datetime
    channel: str
    outcome: str
    ip: str
    user_agent: str


@dataclass(frozen=True)
class LoginResult:
    """What login-or-register did: the user, whether it was created, and any unionid conflict."""

    user: User
    created: bool
    conflict_user_id: int | None = None


@dataclass(frozen=True)
class SessionClaims:
    """The contents of a session cookie or bearer token once its signature and age are checked."""

    user_id: int
    sid: str
    session_version: int
    issued_at: int  # when this session (or token) was minted: its absolute lifetime counts from here
    # When the account's WeChat last signed this session in (claim "wat"): a scan, a tap, a code. Only such a
    # sign-in sets it; a session minted again for another reason (after an unlink) keeps the old value. None: a
    # cookie from before the claim existed, never "recent".
    wechat_at: int | None = None


@dataclass(frozen=True)
class RequestContext:
    """Where a login attempt came from, for the audit trail."""

    ip: str
    user_agent: str


@dataclass(frozen=True)
class WeChatAnswer:
    """What WeChat said when a call failed: its errcode (None: no usable answer) and the rid its support asks for."""

    errcode: int | None
    rid: str = ""


@dataclass(frozen=True)
class EncryptedGrant:
    """WeChat credentials to keep for a login method, already encrypted (never stored in clear)."""

    scope: str = ""
    access_token_enc: bytes | None = None
    refresh_token_enc: bytes | None = None
    access_token_expires_in: int = 0
    session_key_enc: bytes | None = None


class CallbackStatus(enum.StrEnum):
    """Where a claimed OAuth state stands (``oauth_callbacks.status``)."""

    PENDING = "pending"  # claimed; its callback is still exchanging the code
    OK = "ok"  # finished: logged in (or linked) ``user_id``
    FAILED = "failed"  # finished without a login: error, refusal, snapshot user, or purged
    # Finished by asking for consent (snsapi_userinfo): a repeat of the callback asks again at once.
    CONSENT = "consent"


@dataclass(frozen=True)
class CallbackClaim:
    """The record of a consumed OAuth state: who it logged in, if it has finished."""

    fresh: bool
    same_code: bool
    status: CallbackStatus
    user_id: int | None


class SceneKind(enum.StrEnum):
    """What a desktop scan-login scene is shown as (``login_scenes.kind``)."""

    FOLLOW = "follow"  # a temporary parametric QR of the official account: scan to follow
    MINIPROGRAM = "miniprogram"  # a mini-program code (getwxacodeunlimit) the mini-program confirms


class SceneStatus(enum.StrEnum):
    """Where a scene stands (``login_scenes.status``); EXPIRED is also computed from ``expires_at``."""

    WAITING = "waiting"  # shown, nobody scanned yet
    SCANNED = "scanned"  # the phone has it open (mini-program); waiting for the confirmation
    CONFIRMED = "confirmed"  # the phone confirmed: the scene names a user, the desktop may complete once
    REFUSED = "refused"  # the phone refused
    EXPIRED = "expired"  # its life ended before it was confirmed (or completed)
    DONE = "done"  # the desktop completed the sign-in; never again

    @property
    def is_final(self) -> bool:
        """Nothing more will happen to the scene (a waiting page stops listening)."""
        return self in (SceneStatus.REFUSED, SceneStatus.EXPIRED, SceneStatus.DONE)


@dataclass(frozen=True)
class PushEvent:
    """One message WeChat pushed to an app's server URL, once its signature (and envelope) checked out.

    Missing optional fields are ``""``. ``fields`` holds everything else WeChat sent, flattened (nested
    names joined with ``_``: ``trace_id``, ``result_suggest``), read-only.
    """

    to_user: str  # the app's original id (gh_...)
    from_user: str  # the person's openid under the pushing app's appid
    create_time: int
    msg_type: str  # "event" for events; other message types are acknowledged, not dispatched
    event: str  # WeChat's Event value, case as sent: "subscribe", "SCAN", "wxa_media_check"
    event_key: str
    ticket: str
    msg_id: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class PhoneNumber:
    """A phone number WeChat attested (``getuserphonenumber``), normalised: country code and national digits.

    Personal data: its repr shows only the masked form, so a stray log line or traceback cannot leak it.
    The full number exists only here and in MySQL; everything shown anywhere is ``masked``.
    """

    country_code: str = field(repr=False)  # digits, no "+", no leading zero: "86"
    national: str = field(repr=False)  # digits: "13800000000"

    @property
    def e164(self) -> str:
        """The stored, unique form: "+" country code national number ("+8613800000000")."""
        return f"+{self.country_code}{self.national}"

    @property
    def masked(self) -> str:
        """What the API and the pages show: "138****0000", or "+852 61****67" outside China."""
        digits = self.national
        n = len(digits)
        shown = (3, 4) if n >= 11 else (2, 2) if n >= 8 else (1, 1)
        middle = "*" * max(0, n - sum(shown))
        masked = digits[: shown[0]] + middle + digits[n - shown[1]:]
        return masked if self.country_code == "86" else f"+{self.country_code} {masked}"

    def __repr__(self) -> str:
        return f"PhoneNumber({self.masked!r})"


@dataclass(frozen=True)
class BoundPhone:
    """The phone number bound to an account, and since when."""

    number: PhoneNumber
    bound_at: datetime
