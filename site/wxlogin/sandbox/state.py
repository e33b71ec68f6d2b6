"""The sandbox's memory of what WeChat would remember: QR sessions, codes, tokens, session keys, and
the apps' own access tokens (``stable_token``, ``/cgi-bin/token``).

Everything expires the way WeChat's does (codes after 5 minutes, access tokens after 2 hours) and
codes are single-use. It lives in the serving process: the sandbox is for one developer machine.
Sandbox endpoints that take an app token check it with ``check_app_token``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

CODE_TTL = 300
ACCESS_TOKEN_TTL = 7200
REFRESH_TOKEN_TTL = 30 * 24 * 3600
QR_TTL = 300
_MAX_ENTRIES = 200_000

APP_TOKEN_TTL = 7200
APP_TOKEN_OVERLAP = 300  # a replaced app token stays valid this long (normal renewal, force, /cgi-bin/token)
FORCE_PER_DAY = 20  # stable_token force_refresh: 20 a day, at least 30 s apart
FORCE_GAP = 30
BASIC_TOKEN_PER_DAY = 2000  # /cgi-bin/token's daily quota (about 2,000 for an official account)
_APP_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,512}$")


class Refused(Exception):
    """WeChat answers this errcode instead of a token."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass
class AppTokenRecord:
    """One app access token WeChat handed out."""

    appid: str
    kind: str  # stable (stable_token) | basic (/cgi-bin/token): separate, neither replaces the other
    expires_at: float
    revoked: bool = False


def china_day(when: float) -> int:
    """WeChat's day (China, UTC+8), as a day number: daily limits start again at its midnight."""
    return int((when + 8 * 3600) // 86400)


@dataclass
class QrSession:
    """One QR code shown on a desktop: waiting, then confirmed (with a code) or denied."""

    uuid: str
    appid: str
    redirect_uri: str
    state: str
    created: float = field(default_factory=time.time)
    status: str = "waiting"  # waiting | scanned (the phone opened it) | confirmed | denied
    code: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # replaced at each change (see ``move``)

    def move(self, status: str) -> None:
        """Change the status and wake the long-polls waiting on the old one (each waits on its own event)."""
        self.status = status
        fired, self.changed = self.changed, asyncio.Event()
        fired.set()


@dataclass
class FollowQr:
    """A temporary parametric QR code of an official account (/cgi-bin/qrcode/create, QR_STR_SCENE)."""

    code: str  # what follows /q/ in its url
    ticket: str
    appid: str
    scene_str: str
    expires_at: float


@dataclass
class FollowState:
    """Scan to follow (sandbox/follow.py): the codes handed out, and who follows which official account."""

    codes: dict[str, FollowQr] = field(default_factory=dict)  # by code
    seen: dict[tuple[str, str], str] = field(default_factory=dict)  # (appid, openid) -> person key
    following: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)  # -> (since, scene_str)

    def new_code(self, appid: str, scene_str: str, seconds: int) -> FollowQr:
        now = time.time()
        if len(self.codes) > _MAX_ENTRIES // 4:
            for key in [k for k, v in self.codes.items() if v.expires_at < now]:
                del self.codes[key]
        qr = FollowQr(code=secrets.token_urlsafe(16), ticket="gQ" + secrets.token_urlsafe(72), appid=appid,
                      scene_str=scene_str, expires_at=now + seconds)
        self.codes[qr.code] = qr
        return qr

    def code(self, code: str) -> FollowQr | None:
        qr = self.codes.get(code)
        return qr if qr is not None and qr.expires_at > time.time() else None


@dataclass
class PhoneGrant:
    """A getPhoneNumber button's code: one person's number, single-use, 5 minutes from the tap."""

    appid: str
    person: str
    created: float = field(default_factory=time.time)
    used: bool = False
    attempts: int = 0
    fault_played: bool = False  # a scripted app-token fault (people.APP_TOKEN_FAULTS) happens once


@dataclass
class Grant:
    appid: str
    person: str
    scope: str
    created: float = field(default_factory=time.time)
    used: bool = False
    snapshot: bool = False
    attempts: int = 0


class SandboxState:
    """In-memory stores, pruned as they grow."""

    def __init__(self, qr_ttl: int = QR_TTL) -> None:
        self.qr_ttl = qr_ttl  # the site's [wechat] qr_max_age: WeChat's 5 minutes unless a test shortens it
        self.qr: dict[str, QrSession] = {}
        self.codes: dict[str, Grant] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.session_keys: dict[tuple[str, str], str] = {}  # (appid, person) -> current session_key
        self.app_tokens: dict[str, AppTokenRecord] = {}  # every app token handed out, by token
        self.stable_current: dict[str, str] = {}  # appid -> the stable token normal mode hands out
        self.basic_current: dict[str, str] = {}  # appid -> the latest /cgi-bin/token token
        self.stale: set[str] = set()  # appids whose normal mode keeps handing out a revoked token
        self.forced: dict[str, list[float]] = {}  # appid -> when forced refreshes rotated the token
        self.basic_calls: dict[tuple[str, int], int] = {}  # (appid, china_day) -> /cgi-bin/token calls
        # (appid, force_refresh) of the latest stable_token calls, so tests can count them
        self.stable_calls: collections.deque[tuple[str, bool]] = collections.deque(maxlen=10_000)
        self.phone_codes: dict[str, PhoneGrant] = {}
        # Every getuserphonenumber call that named a code (tests count them), and the paid successes per appid.
        self.phone_calls: collections.deque[str] = collections.deque(maxlen=10_000)
        self.phone_billed: collections.Counter[str] = collections.Counter()
        self.session_checks: collections.deque[str] = collections.deque(maxlen=10_000)  # openids checked
        self.follow = FollowState()  # scan to follow: parametric QR codes and followers
        # Mini-program codes (issue 14, sandbox/wxacode.py): the scenes getwxacodeunlimit drew (tests count the
        # calls), errcodes queued on demand (45009, 41030), and the bearer token the sandbox's mini-program holds
        # per (appid, person), as a real one keeps its token in storage.
        self.wxacode_calls: collections.deque[str] = collections.deque(maxlen=10_000)
        self.wxacode_faults: list[int] = []
        self.miniprogram_tokens: dict[tuple[str, str], str] = {}

    def new_qr(self, appid: str, redirect_uri: str, state: str) -> QrSession:
        self._prune()
        session = QrSession(uuid=secrets.token_urlsafe(12), appid=appid, redirect_uri=redirect_uri, state=state)
        self.qr[session.uuid] = session
        return session

    def get_qr(self, uuid: str) -> QrSession | None:
        session = self.qr.get(uuid)
        if session is None or self.qr_left(session) <= 0:
            return None
        return session

    def qr_left(self, session: QrSession) -> float:
        """Seconds until this QR code expires."""
        return session.created + self.qr_ttl - time.time()

    def issue_code(self, appid: str, person: str, scope: str, snapshot: bool = False) -> str:
        self._prune()
        code = "sb" + secrets.token_hex(15)
        self.codes[code] = Grant(appid=appid, person=person, scope=scope, snapshot=snapshot)
        return code

    def issue_phone_code(self, appid: str, person: str) -> str:
        """What the getPhoneNumber button hands the mini-program (not a wx.login code)."""
        self._prune()
        code = "sbph" + secrets.token_hex(16)
        self.phone_codes[code] = PhoneGrant(appid=appid, person=person)
        return code

    def issue_tokens(self, grant: Grant) -> tuple[str, str]:
        access = "sbat_" + secrets.token_urlsafe(48)
        refresh = "sbrt_" + secrets.token_urlsafe(48)
        self.access_tokens[access] = Grant(grant.appid, grant.person, grant.scope, snapshot=grant.snapshot)
        self.refresh_tokens[refresh] = Grant(grant.appid, grant.person, grant.scope, snapshot=grant.snapshot)
        return access, refresh

    def rotate_session_key(self, appid: str, person: str) -> str:
        """A new wx.login invalidates the previous session_key, as WeChat's does."""
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.session_keys[(appid, person)] = key
        return key

    def expire_access_tokens(self, person: str | None = None) -> int:
        """Developer switch: age access tokens past their lifetime (to exercise refresh)."""
        count = 0
        for grant in self.access_tokens.values():
            if person is None or grant.person == person:
                grant.created -= ACCESS_TOKEN_TTL + 1
                count += 1
        return count

    def expire_refresh_tokens(self, person: str | None = None) -> int:
        count = 0
        for grant in self.refresh_tokens.values():
            if person is None or grant.person == person:
                grant.created -= REFRESH_TOKEN_TTL + 1
                count += 1
        return count

    # --- the apps' own access tokens ------------------------------------------------------------

    def stable_token(self, appid: str, force: bool) -> tuple[str, int]:
        """POST /cgi-bin/stable_token: (token, expires_in), or Refused.

        Normal mode hands out the same token, ``expires_in`` counting down, until its last 5 minutes;
        then a new one, the old one living on until it expires. A forced refresh rotates it (the old
        one lives 5 more minutes), at most 20 a day; within 30 s of the previous one it does not
        rotate and hands out the current token ("否则不会刷新").
        """
        now = time.time()
        self.stable_calls.append((appid, force))
        current = self.stable_current.get(appid, "")
        record = self.app_tokens.get(current)
        if force:
            today = china_day(now)
            done = [t for t in self.forced.get(appid, []) if china_day(t) == today]
            if len(done) >= FORCE_PER_DAY:
                raise Refused(45009, "reach max api daily quota limit")
            if record is not None and done and now - done[-1] < FORCE_GAP:
                return current, max(0, int(record.expires_at - now))
            self.forced[appid] = [*done, now]
            self.stale.discard(appid)
            if record is not None:
                record.expires_at = min(record.expires_at, now + APP_TOKEN_OVERLAP)
            return self._new_app_token(appid, "stable", now)
        if record is not None and (appid in self.stale
                                   or (not record.revoked and record.expires_at - now > APP_TOKEN_OVERLAP)):
            return current, max(0, int(record.expires_at - now))
        return self._new_app_token(appid, "stable", now)

    def basic_token(self, appid: str) -> tuple[str, int]:
        """GET /cgi-bin/token: a new token on every call; the previous one dies 5 minutes later."""
        now = time.time()
        key = (appid, china_day(now))
        if self.basic_calls.get(key, 0) >= BASIC_TOKEN_PER_DAY:
            raise Refused(45009, "reach max api daily quota limit")
        self.basic_calls[key] = self.basic_calls.get(key, 0) + 1
        previous = self.app_tokens.get(self.basic_current.get(appid, ""))
        if previous is not None:
            previous.expires_at = min(previous.expires_at, now + APP_TOKEN_OVERLAP)
        return self._new_app_token(appid, "basic", now)

    def _new_app_token(self, appid: str, kind: str, now: float) -> tuple[str, int]:
        self._prune()
        token = "sbapp_" + secrets.token_urlsafe(96)
        self.app_tokens[token] = AppTokenRecord(appid=appid, kind=kind, expires_at=now + APP_TOKEN_TTL)
        (self.stable_current if kind == "stable" else self.basic_current)[appid] = token
        return token, APP_TOKEN_TTL

    def check_app_token(self, token: str) -> int | None:
        """The errcode an API answers for this app token, or None when it is valid."""
        if not token:
            return 41001
        if not _APP_TOKEN_RE.match(token):
            return 40014
        record = self.app_tokens.get(token)
        if record is None or record.revoked:
            return 40001
        if record.expires_at <= time.time():
            return 42001
        return None

    def app_token_appid(self, token: str) -> str | None:
        """Which app a valid token belongs to (endpoints that act for an app need it)."""
        record = self.app_tokens.get(token)
        return record.appid if record is not None and self.check_app_token(token) is None else None

    def revoke_app_tokens(self, appid: str, keep_handing: bool = False) -> int:
        """Developer switch: every live token of ``appid`` now answers 40001.

        ``keep_handing``: stable_token's normal mode goes on handing out the revoked token until a forced
        refresh (the case where only force_refresh helps); otherwise it hands out a new one.
        """
        count = 0
        for record in self.app_tokens.values():
            if record.appid == appid and not record.revoked:
                record.revoked = True
                count += 1
        if keep_handing:
            self.stale.add(appid)
        return count

    def reset_app_tokens(self) -> None:
        """Forget every app token, forced refresh and quota count (tests start from a clean WeChat)."""
        for table in (self.app_tokens, self.stable_current, self.basic_current, self.forced, self.basic_calls):
            table.clear()
        self.stale.clear()
        self.stable_calls.clear()

    def age_app_token(self, appid: str, seconds: float) -> None:
        """Developer switch: move the current stable token ``seconds`` closer to its expiry."""
        record = self.app_tokens.get(self.stable_current.get(appid, ""))
        if record is not None:
            record.expires_at -= seconds

    def _prune(self) -> None:
        now = time.time()
        stores: tuple[tuple[dict[str, Any], int], ...] = (
            (self.codes, CODE_TTL), (self.qr, self.qr_ttl), (self.access_tokens, ACCESS_TOKEN_TTL),
            (self.phone_codes, CODE_TTL))
        for store, ttl in stores:
            if len(store) > _MAX_ENTRIES // 4:
                for key in [k for k, v in store.items() if now - v.created > ttl]:
                    del store[key]
        if len(self.app_tokens) > _MAX_ENTRIES // 4:
            for token in [t for t, r in self.app_tokens.items() if r.expires_at < now]:
                del self.app_tokens[token]
