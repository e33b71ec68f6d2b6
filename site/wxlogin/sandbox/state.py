"""The sandbox's memory of what WeChat would remember: QR sessions, codes, tokens, session keys.

Everything expires the way WeChat's does (codes after 5 minutes, access tokens after 2 hours) and
codes are single-use. It lives in the serving process: the sandbox is for one developer machine.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass, field

CODE_TTL = 300
ACCESS_TOKEN_TTL = 7200
REFRESH_TOKEN_TTL = 30 * 24 * 3600
QR_TTL = 300
_MAX_ENTRIES = 200_000


@dataclass
class QrSession:
    """One QR code shown on a desktop: waiting, then confirmed (with a code) or denied."""

    uuid: str
    appid: str
    redirect_uri: str
    state: str
    created: float = field(default_factory=time.time)
    status: str = "waiting"  # waiting | confirmed | denied
    code: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


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

    def __init__(self) -> None:
        self.qr: dict[str, QrSession] = {}
        self.codes: dict[str, Grant] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.session_keys: dict[tuple[str, str], str] = {}  # (appid, person) -> current session_key

    def new_qr(self, appid: str, redirect_uri: str, state: str) -> QrSession:
        self._prune()
        session = QrSession(uuid=secrets.token_urlsafe(12), appid=appid, redirect_uri=redirect_uri, state=state)
        self.qr[session.uuid] = session
        return session

    def get_qr(self, uuid: str) -> QrSession | None:
        session = self.qr.get(uuid)
        if session is None or time.time() - session.created > QR_TTL:
            return None
        return session

    def issue_code(self, appid: str, person: str, scope: str, snapshot: bool = False) -> str:
        self._prune()
        code = "sb" + secrets.token_hex(15)
        self.codes[code] = Grant(appid=appid, person=person, scope=scope, snapshot=snapshot)
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

    def _prune(self) -> None:
        now = time.time()
        for store, ttl in ((self.codes, CODE_TTL), (self.qr, QR_TTL), (self.access_tokens, ACCESS_TOKEN_TTL)):
            if len(store) > _MAX_ENTRIES // 4:
                for key in [k for k, v in store.items() if now - v.created > ttl]:
                    del store[key]
