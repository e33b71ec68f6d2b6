"""The WeChat protocol client: browser URLs, code exchange, userinfo, refresh, token check, jscode2session.

It knows nothing of Tornado handlers. Every call has explicit timeouts, follows no redirects, reads at
most ``MAX_BODY`` bytes, decodes the body as UTF-8 itself (WeChat labels it ``encoding=utf-8``, not
``charset``) and parses with ``strict=False`` (nicknames carry raw control characters). Success means
the expected field is present, not merely "no errcode". It retries once, only on a network error or
errcode -1, so WeChat sees at most two requests per call (libcurl's own re-sends included, see
``_OneSend``). URLs carry the secret and the code, so they are never logged; errcode and errmsg (with
WeChat's ``rid``) are.

Every reply is validated before it reaches MySQL or a template: IDs, tokens, scope and session_key
must be the ASCII WeChat sends and fit their columns by encoded bytes (tokens are stored sealed, which
adds ``SEALED_OVERHEAD`` bytes), nicknames lose control, format (bidi overrides) and lone-surrogate
characters, avatars must be https on WeChat's avatar hosts (http is upgraded), or, with the sandbox
on, under the sandbox's own base. A reply that cannot be used is ``WeChatUnavailable`` (502), never a
500. Within a request all calls share one deadline (``wxdeadline``), the client's queue included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from wxlogin import metrics, wxdeadline
from wxlogin.config import WeChatApp, WeChatSettings
from wxlogin.errors import (
    AccessTokenExpired,
    AppTokenInvalid,
    CodeInvalid,
    PhoneCodeInvalid,
    RefreshTokenExpired,
    ScopeUnauthorized,
    WeChatBusy,
    WeChatError,
    WeChatMisconfigured,
    WeChatRateLimited,
    WeChatRiskBlocked,
    WeChatTimeout,
    WeChatUnavailable,
)
from wxlogin.models import PhoneNumber, WeChatProfile, WeChatTokens
from wxlogin.wechat.crypto import session_key_signature

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BODY = 64 * 1024
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # openid, unionid: VARCHAR(64) ascii (always fullmatch)
PLACEHOLDER_NICKNAME = "微信用户"

# Column sizes (store/migrations.py). Tokens are sealed (crypto.TokenCipher: version, key id, nonce and
# tag before the ciphertext) into VARBINARY columns, so their bound is in encoded bytes plus that overhead.
SEALED_OVERHEAD = 1 + 4 + 12 + 16
TOKEN_COLUMN_BYTES = 1024      # access_token_enc, refresh_token_enc VARBINARY(1024)
SESSION_KEY_COLUMN_BYTES = 256  # session_key_enc VARBINARY(256)
NICKNAME_CHARS = 100           # users.nickname VARCHAR(100), utf8mb4: characters (code points)
AVATAR_BYTES = 1024            # users.avatar_url VARCHAR(1024); avatars are ASCII, so bytes = characters
SCOPE_BYTES = 64               # user_login_methods.scope VARCHAR(64) ascii
# WeChat's tokens are printable ASCII (the protocol reference says: reserve 512 characters), so a
# token's characters are its bytes; anything else is not a token WeChat issued.
MAX_TOKEN_BYTES = 512
assert MAX_TOKEN_BYTES + SEALED_OVERHEAD <= TOKEN_COLUMN_BYTES
_TOKEN_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_TOKEN_BYTES}}}")
_SCOPE_RE = re.compile(rf"[\x21-\x7e]{{0,{SCOPE_BYTES}}}")
_SESSION_KEY_RE = re.compile(r"[A-Za-z0-9+/]{22}==")  # base64 of 16 bytes: AES-128's key (protocol 5.5)
assert 24 + SEALED_OVERHEAD <= SESSION_KEY_COLUMN_BYTES
MAX_ERRMSG = 300
# A phone number WeChat attests: a country code (no leading zero) and national digits, at most 15 in all
# (E.164); ASCII digits only (``\d`` would also take other scripts' digits).
_COUNTRY_CODE_RE = re.compile(r"[1-9][0-9]{0,3}")
_NATIONAL_RE = re.compile(r"[0-9]{4,14}")
STALE_SESSION_KEY = 87009  # /wxa/checksession: the signature (so the session_key) is not the current one
# --- issue 14: getwxacodeunlimit answers an image, not JSON (the one binary answer; begin) ---------------------
# A mini-program code (430 px wide by default, 1280 at most) is some tens of KiB; anything over this is refused.
MAX_WXA_CODE = 1024 * 1024
UNKNOWN_PAGE = 41030  # getwxacodeunlimit: the page is not in the published mini-program (check_path)
_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
# Where _fetch_json puts an image answer in its dict: JSON never yields a WxaCode, so no reply can fake one.
_IMAGE_KEY = "\x00image"
# --- issue 14 (end) ------------------------------------------------------------------------------------------

# WeChat's avatar hosts (protocol reference: thirdwx.qlogo.cn, wx.qlogo.cn) and their subdomains.
AVATAR_HOSTS = ("thirdwx.qlogo.cn", "wx.qlogo.cn")
# RFC 3986 characters, less the quote: what an avatar URL may contain (no space, quotes, <, >, \\).
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")
# Dropped from nicknames and WeChat's error messages: control (Cc), format (Cf: the bidi embeddings,
# overrides and isolates U+202A-U+202E, U+2066-U+2069, the marks U+200E, U+200F, U+061C, zero-width
# spaces, BOM), lone surrogates (Cs, from JSON "\\ud800" escapes: MySQL and templates cannot encode
# them) and line/paragraph separators. Kept: ZWNJ and ZWJ, which scripts and emoji sequences need.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEEP_FORMAT = frozenset({"\u200c", "\u200d"})

# errcode -> error class (protocol reference, section 8). Anything else is a generic WeChatError.
_ERRCODES: dict[int, type[WeChatError]] = {
    -1: WeChatBusy,
    40029: CodeInvalid, 40163: CodeInvalid, 42003: CodeInvalid, 41008: CodeInvalid,
    45011: WeChatRateLimited, 45009: WeChatRateLimited,
    40226: WeChatRiskBlocked, 50002: WeChatRiskBlocked,
    40013: WeChatMisconfigured, 40125: WeChatMisconfigured, 40002: WeChatMisconfigured,
    41002: WeChatMisconfigured, 41004: WeChatMisconfigured, 40066: WeChatMisconfigured,
    40164: WeChatMisconfigured, 48004: WeChatMisconfigured, 43001: WeChatMisconfigured,
    42001: AccessTokenExpired, 40001: AccessTokenExpired, 40014: AccessTokenExpired,
    40030: RefreshTokenExpired, 42002: RefreshTokenExpired, 42007: RefreshTokenExpired,
    48001: ScopeUnauthorized, 50001: ScopeUnauthorized,
}


@dataclass(frozen=True)
class UserInfo:
    openid: str
    unionid: str | None
    profile: WeChatProfile


@dataclass(frozen=True)
class MiniProgramSession:
    """jscode2session's answer; ``session_key`` must never leave the server."""

    openid: str
    unionid: str | None
    session_key: str


@dataclass(frozen=True)
class AppToken:
    """The app's own access token (/cgi-bin/stable_token); its repr never shows the token."""

    access_token: str = field(repr=False)
    expires_in: int  # seconds, as WeChat counts them (normal mode: at least 300, at most 7200)


@dataclass(frozen=True)
class WxaCode:
    """A mini-program code WeChat drew (getwxacodeunlimit): the image and its type, judged by its bytes."""

    image: bytes = field(repr=False)
    content_type: str  # image/png or image/jpeg


@dataclass(frozen=True)
class ContentVerdict:
    """A content check's answer: ``suggest`` is pass, review or risky; ``label`` WeChat's category (100 = normal)."""

    suggest: str
    label: int
    trace_id: str


SUGGESTIONS = ("pass", "review", "risky")
TRACE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # avatar_checks.trace_id VARCHAR(128) ascii (fullmatch)


@dataclass(frozen=True)
class ParametricQr:
    """/cgi-bin/qrcode/create's answer: ``url`` is what the QR code encodes (we render it ourselves)."""

    ticket: str = field(repr=False)
    url: str
    expire_seconds: int


@dataclass(frozen=True)
class FollowerInfo:
    """/cgi-bin/user/info: whether the person follows the account, and their unionid (no profile since 2021)."""

    openid: str
    unionid: str | None
    subscribed: bool


QR_URL_BYTES = 512  # WeChat's are "http://weixin.qq.com/q/" + about 22 characters
_QR_URL_RE = re.compile(rf"https?://[\x21-\x7e]{{1,{QR_URL_BYTES}}}")
_TICKET_RE = re.compile(r"[\x21-\x7e]{1,512}")


# WeChat asks for room for at least 512 characters; more than this is not a token but a broken answer.
MAX_APP_TOKEN = 1024
_APP_TOKEN_RE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_APP_TOKEN}}}$")
_CHINA = timedelta(hours=8)


LIBCURL_PREREQ = 0x075000  # 7.80.0, the first libcurl with CURLOPT_PREREQFUNCTION (see _OneSend)


def make_http_client(settings: WeChatSettings) -> AsyncHTTPClient:
    """Build the HTTP client for WeChat: curl (keep-alive) when available, bounded in flight."""
    if settings.http_client == "curl":
        try:
            import pycurl
            from tornado.curl_httpclient import CurlAsyncHTTPClient

            if hasattr(pycurl, "PREREQFUNCTION") and pycurl.version_info()[2] >= LIBCURL_PREREQ:
                return CurlAsyncHTTPClient(force_instance=True, max_clients=settings.max_clients)
            # Without the pre-request callback libcurl's silent re-sends cannot be bounded (see _OneSend).
            logger.warning("libcurl %s is older than 7.80; using Tornado's simple HTTP client for WeChat",
                           pycurl.version_info()[1])
        except ImportError:  # pycurl missing: the simple client still works, without keep-alive
            logger.warning("pycurl is not installed; using Tornado's simple HTTP client for WeChat")
    # The connection's bound is the largest answer any call takes (a mini-program code); each call's own cap
    # (64 KiB of JSON) is enforced while reading (_fetch_json's collect).
    return SimpleAsyncHTTPClient(force_instance=True, max_clients=settings.max_clients,
                                 max_body_size=max(MAX_BODY, MAX_WXA_CODE))


class _OneSend:
    """One fetch's curl settings: the request goes out once, so the only retry is ours (``_get``).

    libcurl re-sends a request by itself when a reused keep-alive connection dies before any response
    byte ("Connection died, retrying a fresh connect"); no option turns that off, and its "fresh"
    connect may be another pooled connection that dies too (up to 5 re-sends). On top of our one retry
    WeChat then saw three or more code exchanges for one login, and a code is single-use. The
    pre-request callback (CURLOPT_PREREQFUNCTION, called before every send on a new or reused
    connection) lets the first send through and refuses any other: the transfer fails as a network
    error and ``_get`` retries once on a fresh connection (CURLOPT_FRESH_CONNECT), which libcurl never
    re-sends. First attempts keep reusing connections: keep-alive matters for throughput. Counting
    libcurl's re-sends afterwards (debug lines, connection counters) could skip our retry, but not stop
    libcurl's own second and third re-send; refusing before the send bounds both. The simple client
    never re-sends (it opens one connection per request) and ignores ``prepare_curl_callback``.

    The same callback carries the request's deadline: Tornado's curl client queues requests beyond
    ``max_clients`` without one, and ``prepare`` runs when the request leaves that queue. A request whose
    caller has given up (``abandon``) or whose deadline has passed is dropped there, never sent (its
    code would be spent for a person who already has an answer); one that goes out gets only the time
    left as its libcurl timeouts, so it frees its connection by the deadline.
    """

    __slots__ = ("abandoned", "deadline", "fresh", "sends")

    def __init__(self, fresh: bool, deadline: float) -> None:
        self.fresh = fresh
        self.deadline = deadline  # in the event loop's clock (time.monotonic)
        self.sends = 0
        self.abandoned = False

    @property
    def resend_refused(self) -> bool:
        return self.sends > 1

    def abandon(self) -> None:
        """The caller answered without this request: it must not go out any more."""
        self.abandoned = True

    def prepare(self, curl: Any) -> None:
        import pycurl

        left_ms = int((self.deadline - asyncio.get_running_loop().time()) * 1000)
        if self.abandoned or left_ms <= 0:
            # Tornado turns an exception here into a failed fetch (HTTP 599) without sending anything.
            raise _Abandoned()
        # Tornado reuses curl handles between requests, so every option is set every time.
        curl.setopt(pycurl.FRESH_CONNECT, 1 if self.fresh else 0)
        curl.setopt(pycurl.PREREQFUNCTION, self._before_send)
        curl.setopt(pycurl.TIMEOUT_MS, left_ms)  # the whole transfer, connecting included

    def _before_send(self, *_connection: Any) -> int:
        self.sends += 1
        ok = self.sends == 1 and not self.abandoned
        return 0 if ok else 1  # CURL_PREREQFUNC_OK, CURL_PREREQFUNC_ABORT


class _Abandoned(Exception):
    """A queued request left the queue after its caller's deadline: dropped, never sent."""


def _consume(future: asyncio.Future[HTTPResponse]) -> None:
    """Retrieve a fetch's outcome, so a fetch the caller stopped waiting for logs nothing when it ends."""
    if not future.cancelled():
        future.exception()


MIN_RETRY_BUDGET = 0.5  # seconds: below this, a retry could not finish and only delays the error page


class WeChatClient:
    """Talks to WeChat (or the sandbox, or a test stand-in) at the configured bases."""

    def __init__(self, settings: WeChatSettings, http: AsyncHTTPClient | None = None) -> None:
        self.settings = settings
        self.open_base = settings.open_base
        self.api_base = settings.api_base
        self._http = http or make_http_client(settings)
        # The sandbox's avatars live under its own base (http on loopback); only when it is on.
        self._sandbox_avatars = f"{settings.api_base}/" if settings.sandbox and settings.api_base else ""

    def close(self) -> None:
        self._http.close()

    # --- URLs the browser visits ----------------------------------------------------------

    def qrconnect_url(self, appid: str, redirect_uri: str, state: str, embedded: bool, lang: str = "") -> str:
        """The website-application QR page; ``embedded`` builds what wxLogin.js puts in its iframe (``stylelite``)."""
        params = [
            ("appid", appid), ("redirect_uri", redirect_uri), ("response_type", "code"),
            ("scope", "snsapi_login"), ("state", state),
        ]
        if embedded:
            params += [("login_type", "jssdk"), ("self_redirect", "false"), ("styletype", ""),
                       ("sizetype", ""), ("bgcolor", ""), ("rst", "")]
        if lang == "en":
            params.append(("lang", "en"))
        if embedded:
            # WeChat's compact QR (wxLogin.js ``stylelite: 1``): no heading of its own, so the login page's
            # heading is the only one (the classic page's CSS override, ``href``, is ignored with it).
            params.append(("stylelite", "1"))
        return f"{self.open_base}/connect/qrconnect?{urlencode(params, quote_via=quote)}#wechat_redirect"

    def authorize_url(self, appid: str, redirect_uri: str, scope: str, state: str) -> str:
        """The official account's web authorisation, parameters in the documented order."""
        params = [
            ("appid", appid), ("redirect_uri", redirect_uri), ("response_type", "code"),
            ("scope", scope), ("state", state),
        ]
        return f"{self.open_base}/connect/oauth2/authorize?{urlencode(params, quote_via=quote)}#wechat_redirect"

    # --- back-channel calls ---------------------------------------------------------------

    async def exchange_code(self, app: WeChatApp, code: str) -> WeChatTokens:
        """Exchange an authorisation code for a user access token (/sns/oauth2/access_token)."""
        data = await self._get(
            "/sns/oauth2/access_token",
            {"appid": app.appid, "secret": app.secret.value, "code": code, "grant_type": "authorization_code"},
        )
        return _parse("/sns/oauth2/access_token", lambda: _tokens(data))

    async def refresh(self, app: WeChatApp, refresh_token: str) -> WeChatTokens:
        """Renew a user access token with its refresh token (/sns/oauth2/refresh_token)."""
        data = await self._get(
            "/sns/oauth2/refresh_token",
            {"appid": app.appid, "grant_type": "refresh_token", "refresh_token": refresh_token},
        )
        return _parse("/sns/oauth2/refresh_token", lambda: _tokens(data))

    async def check_token(self, access_token: str, openid: str) -> bool:
        """Return True while a user access token is valid (/sns/auth)."""
        try:
            await self._get("/sns/auth", {"access_token": access_token, "openid": openid}, expect=None)
        except (AccessTokenExpired, ScopeUnauthorized):
            return False
        except WeChatError as exc:
            if exc.errcode == 40003:
                return False
            raise
        return True

    async def userinfo(self, access_token: str, openid: str) -> UserInfo:
        """Read the person's public profile (/sns/userinfo)."""
        data = await self._get(
            "/sns/userinfo", {"access_token": access_token, "openid": openid, "lang": "zh_CN"}
        )
        return _parse("/sns/userinfo", lambda: self._userinfo(data, openid))

    def _userinfo(self, data: dict[str, Any], openid: str) -> UserInfo:
        if _require_id(data, "openid") != openid:
            raise WeChatUnavailable(errmsg="userinfo for another openid")  # its unionid is not this person's
        return UserInfo(openid=openid, unionid=_optional_id(data, "unionid"),
                        profile=self.profile_from(data.get("nickname"), data.get("headimgurl")))

    def profile_from(self, nickname: Any, avatar_url: Any) -> WeChatProfile:
        """``profile_from`` with this client's allowed avatar bases (the sandbox's own, when it is on)."""
        return profile_from(nickname, avatar_url, self._sandbox_avatars)

    async def jscode2session(self, app: WeChatApp, js_code: str) -> MiniProgramSession:
        """Exchange a mini-program wx.login code (/sns/jscode2session)."""
        data = await self._get(
            "/sns/jscode2session",
            {"appid": app.appid, "secret": app.secret.value, "js_code": js_code, "grant_type": "authorization_code"},
        )
        return _parse("/sns/jscode2session", lambda: MiniProgramSession(
            openid=_require_id(data, "openid"), unionid=_optional_id(data, "unionid"), session_key=_session_key(data)
        ))

    # --- the app's own access token, and the calls made with it (issue 13) ---------------------
    # Calls that take the app token are methods whose first argument is ``access_token``; they go
    # through ``_app_get``/``_app_post``, which turn 40001/40014/42001 into AppTokenInvalid (a person's
    # token refused is AccessTokenExpired instead). services/apptoken.py is their only caller.

    async def stable_token(self, app: WeChatApp, force_refresh: bool = False) -> AppToken:
        """The app's access token (POST /cgi-bin/stable_token with a JSON body).

        Normal mode hands every caller the same token until its last 5 minutes, so any process may ask.
        A forced refresh is never retried here: WeChat may have counted an attempt whose answer was lost
        against its 20 a day. 40013/40125/40164 are WeChatMisconfigured (the errcode table); 45009 (a
        daily limit) is WeChatRateLimited with a Retry-After that runs to China's midnight.
        """
        payload = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret.value,
                   "force_refresh": force_refresh}
        try:
            data = await self._post_json("/cgi-bin/stable_token", {}, payload, expect="access_token",
                                         retry=not force_refresh)
        except WeChatRateLimited as exc:
            if exc.errcode != 45009:
                raise
            what = "forced refreshes (20 a day)" if force_refresh else "token calls"
            logger.warning("stable_token for %s: WeChat's daily limit of %s is spent (45009)", app.appid, what)
            limited = WeChatRateLimited(errcode=45009, errmsg=f"daily limit of stable_token {what} reached",
                                        rid=exc.rid)
            limited.retry_after = _seconds_to_china_midnight()
            raise limited from None
        token = data.get("access_token")
        if not isinstance(token, str) or not _APP_TOKEN_RE.match(token):
            raise WeChatUnavailable(errmsg="stable_token answered without a usable access_token")
        try:
            expires_in = int(data["expires_in"])
        except (KeyError, TypeError, ValueError):
            expires_in = 300  # the least WeChat promises: we will ask again soon rather than trust a guess
        return AppToken(access_token=token, expires_in=max(1, min(expires_in, 7200)))

    async def api_domain_ip(self, access_token: str) -> list[str]:
        """WeChat's API server addresses (GET /cgi-bin/get_api_domain_ip): the cheapest call that proves an
        app token works (the official account's and the mini-program's network check)."""
        data = await self._app_get("/cgi-bin/get_api_domain_ip", access_token, {}, expect="ip_list")
        ips = data.get("ip_list")
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise WeChatUnavailable(errmsg="get_api_domain_ip answered without a list of addresses")
        return [ip[:64] for ip in ips[:1000]]

    async def phone_number(self, access_token: str, appid: str, code: str, openid: str | None) -> PhoneNumber:
        """The number behind a getPhoneNumber code (POST /wxa/business/getuserphonenumber). Costs money.

        Never retried (``retry=False``): an answer lost on the way may still have been a paid success, and
        the code is single-use anyway. With ``openid`` WeChat also checks that the code is that person's.
        40029 (wrong, expired, used, another app's or person's code) is PhoneCodeInvalid. The number is
        never logged; errors name only the field that was wrong.
        """
        payload = {"code": code, **({"openid": openid} if openid else {})}
        try:
            data = await self._app_post("/wxa/business/getuserphonenumber", access_token, payload,
                                        expect="phone_info", retry=False)
        except CodeInvalid as exc:
            raise PhoneCodeInvalid(f"errcode {exc.errcode}") from None
        return _parse("/wxa/business/getuserphonenumber", lambda: parse_phone_info(data, appid))

    async def check_session_key(self, access_token: str, openid: str, session_key: str) -> bool:
        """Whether WeChat still holds this session_key for the person (GET /wxa/checksession); False on 87009.

        The signature is HMAC-SHA256 keyed with the key over the empty message, so it depends on the stored
        key alone. It travels in the query, as WeChat wants; URLs are never logged.
        """
        params = {"openid": openid, "signature": session_key_signature(session_key), "sig_method": "hmac_sha256"}
        try:
            await self._app_get("/wxa/checksession", access_token, params, expect=None)
        except WeChatError as exc:
            if exc.errcode == STALE_SESSION_KEY:
                return False
            raise
        return True

    async def msg_sec_check(self, access_token: str, openid: str, content: str, scene: int = 1) -> ContentVerdict:
        """WeChat's text check, version 2 (POST /wxa/msg_sec_check): ``pass``, ``review`` or ``risky``.

        ``openid`` is the person's under the mini-program (WeChat wants one who visited within 2 hours);
        scene 1 is a profile. A check changes nothing at WeChat, so the client's single retry is safe.
        """
        payload = {"version": 2, "openid": openid, "scene": scene, "content": content}
        data = await self._app_post("/wxa/msg_sec_check", access_token, payload, expect="result")
        return _parse("/wxa/msg_sec_check", lambda: _verdict(data))

    async def media_check_async(self, access_token: str, openid: str, media_url: str, scene: int = 1) -> str:
        """Ask WeChat to check an image (POST /wxa/media_check_async, version 2); returns the ``trace_id``.

        WeChat fetches ``media_url`` itself and pushes the verdict (``wxa_media_check``) within 30 minutes.
        Not retried: a lost answer would leave a second check (and quota) behind for one upload.
        """
        payload = {"media_url": media_url, "media_type": 2, "version": 2, "openid": openid, "scene": scene}
        data = await self._app_post("/wxa/media_check_async", access_token, payload, expect="trace_id", retry=False)
        return _parse("/wxa/media_check_async", lambda: _trace_id(data.get("trace_id")))

    # --- scan to follow (issue 14): the official account's parametric QR codes and followers ---------

    async def create_qrcode(self, access_token: str, scene_str: str, expire_seconds: int) -> ParametricQr:
        """A temporary QR_STR_SCENE code (POST /cgi-bin/qrcode/create): its ticket and the ``url`` it encodes.

        Retried once like any call: a lost answer only leaves an unused ticket behind (daily quota ~100,000).
        """
        payload = {"expire_seconds": expire_seconds, "action_name": "QR_STR_SCENE",
                   "action_info": {"scene": {"scene_str": scene_str}}}
        data = await self._app_post("/cgi-bin/qrcode/create", access_token, payload, expect="url")
        return _parse("/cgi-bin/qrcode/create", lambda: _parametric_qr(data, expire_seconds))

    async def follower_info(self, access_token: str, openid: str) -> FollowerInfo:
        """Whether ``openid`` follows the official account, and its unionid (GET /cgi-bin/user/info).

        No nickname or avatar: WeChat stopped returning them on 2021-12-27.
        """
        data = await self._app_get("/cgi-bin/user/info", access_token, {"openid": openid, "lang": "zh_CN"},
                                   expect="subscribe")
        return _parse("/cgi-bin/user/info", lambda: _follower(data, openid))

    async def wxa_code_unlimited(self, access_token: str, scene: str, page: str, width: int = 430) -> WxaCode:
        """A mini-program code that opens ``page`` with ``scene`` (POST /wxa/getwxacodeunlimit).

        The answer is the image itself, or JSON with an errcode: 45009 (over 5,000 a minute) is
        WeChatRateLimited, 41030 (``page`` is not in the published mini-program) WeChatMisconfigured, since
        only an operator can fix the setting. ``check_path`` stays on and the release version is drawn.
        """
        payload = {"scene": scene, "page": page, "check_path": True, "env_version": "release", "width": width,
                   "is_hyaline": False}
        try:
            data = await self._app_post("/wxa/getwxacodeunlimit", access_token, payload, expect=None,
                                        image_cap=MAX_WXA_CODE)
        except WeChatError as exc:
            if exc.errcode != UNKNOWN_PAGE:
                raise
            raise WeChatMisconfigured(errcode=exc.errcode, errmsg=f"page {page!r} is not published (41030)",
                                      rid=exc.rid) from None
        code = data.get(_IMAGE_KEY)
        if not isinstance(code, WxaCode):
            raise WeChatUnavailable(errmsg="getwxacodeunlimit answered JSON without an errcode")
        return code

    async def _app_get(self, path: str, access_token: str, params: dict[str, str],
                       expect: str | None) -> dict[str, Any]:
        """GET an API that takes the app's access token (in the query, as WeChat wants; never logged)."""
        try:
            return await self._get(path, {"access_token": access_token, **params}, expect=expect)
        except AccessTokenExpired as exc:
            raise AppTokenInvalid(errcode=exc.errcode, errmsg=exc.errmsg, rid=exc.rid) from None

    async def _app_post(self, path: str, access_token: str, payload: dict[str, Any], expect: str | None,
                        retry: bool = True, image_cap: int = 0) -> dict[str, Any]:
        """POST JSON to an API that takes the app's access token; ``retry=False`` for calls not safe twice;
        ``image_cap``: the answer may be an image of at most that many bytes (see ``_fetch_json``)."""
        try:
            return await self._post_json(path, {"access_token": access_token}, payload, expect=expect, retry=retry,
                                         image_cap=image_cap)
        except AccessTokenExpired as exc:
            raise AppTokenInvalid(errcode=exc.errcode, errmsg=exc.errmsg, rid=exc.rid) from None

    async def _post_json(self, path: str, query: dict[str, str], payload: dict[str, Any], expect: str | None,
                         retry: bool = True, image_cap: int = 0) -> dict[str, Any]:
        """POST a JSON body, with the same answer checks, deadline and single retry as ``_get``."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        url = f"{self.api_base}{path}" + (f"?{urlencode(query)}" if query else "")
        return await self._call(url, path, expect, body, retry, image_cap)

    async def _get(self, path: str, params: dict[str, str], expect: str | None = "openid") -> dict[str, Any]:
        return await self._call(f"{self.api_base}{path}?{urlencode(params)}", path, expect)

    async def _call(self, url: str, path: str, expect: str | None, body: bytes | None = None,
                    retry: bool = True, image_cap: int = 0) -> dict[str, Any]:
        """One WeChat call (GET, or POST of ``body``): bounded in time, checked, retried at most once."""
        # One call never takes longer than [wechat] timeout in all: a retry only spends what is left,
        # so a timed-out first attempt is not retried and a person waits at most `timeout` per call.
        # Within a request every call also ends by the request's deadline (wxdeadline), and the bound
        # covers the whole call, waiting in the HTTP client's queue for a connection included.
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.settings.timeout
        request = wxdeadline.current()
        if request is not None:
            deadline = min(deadline, request.start(now))
        if deadline - now <= 0:
            logger.warning("WeChat %s not called: the request's WeChat deadline has passed", path)
            raise _timed_out()
        sends: list[_OneSend] = []
        # Success only once an answer is in hand: a call cancelled (the person left, the server stops) or ended
        # by an unexpected exception must not count as errcode 0.
        result = "error"
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._attempts(url, path, expect, deadline, sends, body, retry, image_cap)
            result = "0"
            return answer
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        except TimeoutError:
            result = "timeout"
            for once in sends:
                once.abandon()
            where = "in flight" if sends and sends[-1].sends else "waiting for a connection"
            logger.warning("WeChat %s: no answer by the deadline (%s)", path, where)
            raise _timed_out() from None
        except WeChatError as exc:
            result = _metric_result(exc)
            raise
        finally:
            metrics.WECHAT_CALLS.labels(path, result).inc()
            metrics.WECHAT_SECONDS.labels(path).observe(loop.time() - now)

    async def _attempts(self, url: str, path: str, expect: str | None, deadline: float,
                        sends: list[_OneSend], body: bytes | None, retry: bool, image_cap: int = 0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                # The retry goes out on a fresh connection: libcurl will not re-send it (see _OneSend).
                left = max(deadline - loop.time(), 0.05)
                once = _OneSend(fresh=attempt == 2, deadline=deadline)
                sends.append(once)
                data = await self._fetch_json(url, path, left, once, body, image_cap)
                errcode = data.get("errcode")
                if errcode not in (None, 0, "0"):
                    raise _error_for(errcode, data.get("errmsg"))
                if expect is not None and expect not in data:
                    raise WeChatUnavailable(errmsg=f"{path} answered without {expect}")
                return data
            except (WeChatUnavailable, WeChatBusy) as exc:
                retryable = isinstance(exc, WeChatBusy) or (isinstance(exc, WeChatUnavailable) and exc.network)
                if not retry or attempt == 2 or not retryable or deadline - loop.time() < MIN_RETRY_BUDGET:
                    raise
                logger.info("WeChat %s failed (%s); retrying once", path, exc.code)
                await asyncio.sleep(random.uniform(0.05, 0.15))
        raise AssertionError("unreachable")

    async def _fetch_json(self, url: str, path: str, timeout: float, once: _OneSend,
                          body: bytes | None = None, image_cap: int = 0) -> dict[str, Any]:
        """One send; the answer's JSON object. With ``image_cap`` an ``image/*`` answer of at most that many
        bytes is taken too, as ``{_IMAGE_KEY: WxaCode}`` (getwxacodeunlimit); JSON keeps its 64 KiB cap."""
        chunks: list[bytes] = []
        size = 0
        too_big = False
        cap = max(MAX_BODY, image_cap)

        def collect(chunk: bytes) -> None:
            nonlocal size, too_big
            size += len(chunk)
            if size > cap:
                too_big = True
            else:
                chunks.append(chunk)

        request = HTTPRequest(
            url, method="GET" if body is None else "POST", body=body,
            headers=None if body is None else {"Content-Type": "application/json; charset=utf-8"},
            connect_timeout=min(self.settings.connect_timeout, timeout),
            request_timeout=timeout, follow_redirects=False,
            streaming_callback=collect, validate_cert=True, decompress_response=True,
            prepare_curl_callback=once.prepare,
        )
        try:
            future = self._http.fetch(request, raise_error=False)
            future.add_done_callback(_consume)
            # Shielded: when the deadline cancels this wait, the fetch itself is not cancelled (Tornado
            # would log its late outcome as an error); _OneSend drops it if it is still queued.
            response: HTTPResponse = await asyncio.shield(future)
        except _Abandoned:  # left the queue just as the deadline passed
            logger.warning("WeChat %s: no answer by the deadline (waiting for a connection)", path)
            raise _timed_out() from None
        except (TimeoutError, OSError, HTTPClientError) as exc:
            raise _network_error(path, exc, once.resend_refused) from None
        if response.code == 599:
            raise _network_error(path, response.error, once.resend_refused)
        if too_big:
            logger.warning("WeChat %s answered more than %d bytes; refused", path, cap)
            raise WeChatUnavailable(errmsg="body too large")
        if response.code != 200:
            logger.warning("WeChat %s answered HTTP %d", path, response.code)
            raise WeChatUnavailable(errmsg=f"HTTP {response.code}")
        if image_cap and _is_image(response):
            return {_IMAGE_KEY: _wxa_code(path, b"".join(chunks))}
        if size > MAX_BODY:  # the image cap let it in; JSON keeps its own
            logger.warning("WeChat %s answered more than %d bytes of JSON; refused", path, MAX_BODY)
            raise WeChatUnavailable(errmsg="body too large")
        text = b"".join(chunks).decode("utf-8", "replace")
        try:
            # NaN and Infinity are not JSON WeChat sends (and int(Infinity) would be an OverflowError).
            data = json.loads(text, strict=False, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            logger.warning("WeChat %s answered a body that is not JSON (%d bytes)", path, len(text))
            raise WeChatUnavailable(errmsg="not JSON") from None
        if not isinstance(data, dict):
            raise WeChatUnavailable(errmsg="not a JSON object")
        return data


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _is_image(response: HTTPResponse) -> bool:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower().startswith("image/")


def _wxa_code(path: str, image: bytes) -> WxaCode:
    """An image answer, typed by its first bytes (never by the header): PNG or JPEG, else unusable."""
    for magic, content_type in _IMAGE_TYPES:
        if image.startswith(magic):
            return WxaCode(image=image, content_type=content_type)
    logger.warning("WeChat %s answered an image that is neither PNG nor JPEG (%d bytes)", path, len(image))
    raise WeChatUnavailable(errmsg="image neither PNG nor JPEG")


def _timed_out() -> WeChatTimeout:
    error = WeChatTimeout(errmsg="network: deadline")
    error.network = True
    return error


def _seconds_to_china_midnight() -> int:
    """Seconds until WeChat's day ends (China, UTC+8): when a daily limit is given back."""
    china_now = datetime.now(UTC) + _CHINA
    midnight = (china_now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - china_now).total_seconds()) + 1)


def _network_error(path: str, exc: BaseException | None, resend_refused: bool = False) -> WeChatUnavailable:
    what = type(exc).__name__
    text = str(exc).lower()
    timed_out = isinstance(exc, asyncio.TimeoutError) or "timeout" in text or "timed out" in text
    detail = " (timeout)" if timed_out else ""
    if resend_refused:  # libcurl wanted to send again: a kept-alive connection closed without an answer
        detail = " (kept-alive connection closed without an answer; libcurl's re-send refused)"
    logger.warning("WeChat %s unreachable: %s%s", path, what, detail)
    error = (WeChatTimeout if timed_out else WeChatUnavailable)(errmsg=f"network: {what}")
    error.network = True
    return error


def _error_for(errcode: Any, errmsg: Any) -> WeChatError:
    number = _errcode(errcode)
    message = clean_text(str(errmsg or ""), MAX_ERRMSG)
    rid = ""
    match = re.search(r"rid:\s*([0-9a-zA-Z-]+)", message)
    if match:
        rid = match.group(1)
    cls = _ERRCODES.get(number, WeChatError) if number is not None else WeChatError
    logger.warning("WeChat errcode %s: %s", number, message)
    return cls(errcode=number, errmsg=message, rid=rid)


def _metric_result(exc: WeChatError) -> str:
    """The errcode label of a failed call: WeChat's errcode when it is one we know (a bounded set of label
    values whatever an upstream sends), else what kind of failure it was."""
    if exc.errcode is not None:
        return str(exc.errcode) if exc.errcode in _ERRCODES else "other"
    if isinstance(exc, WeChatTimeout):
        return "timeout"
    if isinstance(exc, WeChatUnavailable):
        return "network" if exc.network else "bad_reply"
    return "other"


def _errcode(value: Any) -> int | None:
    """WeChat's errcode as a number: an int, or a string of ASCII digits; anything else is None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,12}", value):
        return int(value)
    return None


def _parse(path: str, parse: Callable[[], T]) -> T:
    """Run one reply's validation: whatever goes wrong in it is WeChat answering nonsense (502), not a 500."""
    try:
        return parse()
    except WeChatUnavailable as exc:
        logger.warning("WeChat %s answered an unusable reply: %s", path, exc.errmsg)
        raise
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as exc:
        logger.warning("WeChat %s answered an unusable reply: %s", path, type(exc).__name__)
        raise WeChatUnavailable(errmsg=f"unusable reply ({type(exc).__name__})") from None


def _require_id(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise WeChatUnavailable(errmsg=f"missing or malformed {key}")
    return value


def _optional_id(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None  # an unbound app: NULL, never '', or every such person would share one account
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise WeChatUnavailable(errmsg=f"malformed {key}")
    return value


def _tokens(data: dict[str, Any]) -> WeChatTokens:
    access = data.get("access_token")
    if not isinstance(access, str) or not _TOKEN_RE.fullmatch(access):
        raise WeChatUnavailable(errmsg="token response without a usable access_token")
    refresh = data.get("refresh_token")
    if not isinstance(refresh, str) or not _TOKEN_RE.fullmatch(refresh):
        refresh = ""  # no refresh later: the person authorises again when the access token expires
    scope = data.get("scope") or ""
    if not isinstance(scope, str) or not _SCOPE_RE.fullmatch(scope):
        raise WeChatUnavailable(errmsg="token response with a malformed scope")
    try:
        expires_in = max(0, min(int(data.get("expires_in") or 7200), 86400))
    except (TypeError, ValueError, OverflowError):
        expires_in = 7200
    return WeChatTokens(
        access_token=access,
        refresh_token=refresh,
        expires_in=expires_in,
        scope=scope,
        openid=_require_id(data, "openid"),
        unionid=_optional_id(data, "unionid"),
        is_snapshot_user=str(data.get("is_snapshotuser", "0")) == "1",
    )


def parse_phone_info(data: dict[str, Any], appid: str) -> PhoneNumber:
    """``phone_info`` of a getuserphonenumber answer: digits only, E.164's 15 digits at most, for our app."""
    info = data.get("phone_info")
    if not isinstance(info, dict):
        raise WeChatUnavailable(errmsg="getuserphonenumber answered without phone_info")
    country = info.get("countryCode")
    if isinstance(country, int) and not isinstance(country, bool):
        country = str(country)
    national = info.get("purePhoneNumber")
    if not isinstance(country, str) or not _COUNTRY_CODE_RE.fullmatch(country):
        raise WeChatUnavailable(errmsg="getuserphonenumber answered a malformed countryCode")
    if not isinstance(national, str) or not _NATIONAL_RE.fullmatch(national) or len(country + national) > 15:
        raise WeChatUnavailable(errmsg="getuserphonenumber answered a malformed purePhoneNumber")
    watermark = info.get("watermark")
    if not isinstance(watermark, dict) or watermark.get("appid") != appid:
        raise WeChatUnavailable(errmsg="getuserphonenumber answered another app's watermark")
    return PhoneNumber(country_code=country, national=national)

def _parametric_qr(data: dict[str, Any], asked: int) -> ParametricQr:
    url, ticket = data.get("url"), data.get("ticket")
    if not isinstance(url, str) or not _QR_URL_RE.fullmatch(url):
        raise WeChatUnavailable(errmsg="qrcode/create answered without a usable url")
    if not isinstance(ticket, str) or not _TICKET_RE.fullmatch(ticket):
        raise WeChatUnavailable(errmsg="qrcode/create answered without a usable ticket")
    seconds = data.get("expire_seconds", asked)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 < seconds <= 2_592_000:
        seconds = asked
    return ParametricQr(ticket=ticket, url=url, expire_seconds=seconds)


def _follower(data: dict[str, Any], openid: str) -> FollowerInfo:
    if _require_id(data, "openid") != openid:
        raise WeChatUnavailable(errmsg="user/info for another openid")  # its unionid is not this person's
    subscribed = data.get("subscribe") in (1, "1")
    return FollowerInfo(openid=openid, unionid=_optional_id(data, "unionid") if subscribed else None,
                        subscribed=subscribed)


def _trace_id(value: Any) -> str:
    if not isinstance(value, str) or not TRACE_ID_RE.fullmatch(value):
        raise WeChatUnavailable(errmsg="missing or malformed trace_id")
    return value


def _verdict(data: dict[str, Any]) -> ContentVerdict:
    result = data.get("result")
    suggest = result.get("suggest") if isinstance(result, dict) else None
    if suggest not in SUGGESTIONS:
        raise WeChatUnavailable(errmsg="content check without a known suggest")
    label = result.get("label", 0) if isinstance(result, dict) else 0
    trace = data.get("trace_id")
    return ContentVerdict(suggest=str(suggest), label=int(label) if isinstance(label, int) else 0,
                          trace_id=trace if isinstance(trace, str) and TRACE_ID_RE.fullmatch(trace) else "")


def _session_key(data: dict[str, Any]) -> str:
    session_key = data.get("session_key")
    if not isinstance(session_key, str) or not _SESSION_KEY_RE.fullmatch(session_key):
        raise WeChatUnavailable(errmsg="jscode2session without a usable session_key")
    return session_key


def clean_text(value: str, limit: int) -> str:
    """Drop control, format (bidi) and lone-surrogate characters and line separators; trim; cap at ``limit``."""
    kept = "".join(ch for ch in value[: 4 * limit]
                   if ch in _KEEP_FORMAT or unicodedata.category(ch) not in _DROP_CATEGORIES)
    return kept.strip()[:limit].strip()


def clean_avatar(url: Any, extra_prefix: str = "") -> str:
    """An avatar URL a page may show: https on WeChat's avatar hosts (http upgraded), else ''.

    ``extra_prefix``: one more allowed base (the sandbox's own avatars, only when the sandbox is on).
    """
    if not isinstance(url, str) or not url or len(url) > AVATAR_BYTES or not _URL_CHARS.fullmatch(url):
        return ""  # ASCII only: no lone surrogate, space or quote reaches MySQL or a template
    if extra_prefix and url.startswith(extra_prefix):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or port is not None or parts.netloc.lower() != host:
        return ""  # no user info, no port: only the host itself
    if not any(host == allowed or host.endswith("." + allowed) for allowed in AVATAR_HOSTS):
        return ""  # a tracking pixel or any other site: the page would load it for every visitor
    # WeChat serves the same avatar over https; an http one would be mixed content on our pages.
    cleaned = f"https://{host}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return cleaned if len(cleaned) <= AVATAR_BYTES else ""


def profile_from(nickname: Any, avatar_url: Any, extra_avatar_prefix: str = "") -> WeChatProfile:
    """Clean a WeChat profile: nickname without control/format/surrogate characters, WeChat avatar, placeholder."""
    name = clean_text(nickname if isinstance(nickname, str) else "", NICKNAME_CHARS)
    avatar = clean_avatar(avatar_url, extra_avatar_prefix)
    placeholder = name == PLACEHOLDER_NICKNAME
    return WeChatProfile(nickname=name, avatar_url=avatar, is_placeholder=placeholder)
