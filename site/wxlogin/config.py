"""Typed, frozen settings built once from settings.toml plus environment overrides.

Every key is declared once, as a field of the dataclasses below: its type, its default (no default: the
key is required and must not be empty) and its limits, through ``setting(...)``. One generic reader
(``_read_table``) turns a TOML table into a dataclass from those declarations; rules that involve several
keys live in ``_check_rules``. Adding a key is one line here plus its line in settings.toml
(tests/unit/test_config.py checks that the two agree).

Every key can be overridden from the environment as ``WXLOGIN_<TABLE>_<KEY>`` (for example
``WXLOGIN_WECHAT_WEB_SECRET`` or ``WXLOGIN_SERVER_SECRET_KEYS`` as a comma-separated list), which is
how secrets stay out of the file in production. Every validation error names the key at fault.

Further apps of a kind (issue 13) are *named tables*: a field typed ``Mapping[str, <table>]`` holds any
number of tables of one declaration, ``[wechat.more.miniprogram.<name>]``; the reader refuses unknown keys
and bad names there, and takes their environment overrides too (``WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_SECRET``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OFFICIAL_OPEN_BASE = "https://open.weixin.qq.com"
OFFICIAL_API_BASE = "https://api.weixin.qq.com"
SANDBOX_PREFIX = "/_sandbox"
# A login calls WeChat twice (code exchange, userinfo); each call gets at most [wechat] timeout, the two
# together (queueing for a connection included) at most this much more (see wxdeadline).
LOGIN_DEADLINE_MARGIN = 1.0
# Keys that contain this marker are the checked-in development keys; they only ever run the sandbox.
DEV_KEY_MARKER = "dev-insecure"
# Push tokens and EncodingAESKeys are letters and digits only, so theirs is this; outside the sandbox an app
# whose push keys start with it gets no push endpoint (services/pushes.py says so at start-up).
DEV_PUSH_MARKER = "devinsecure"
_APPID_RE = re.compile(r"^wx[0-9a-f]{16}$")
# Names of further apps of a kind ([wechat.more.<kind>.<name>]): they appear in URLs (/wechat/push/<kind>/<name>),
# in API requests ({"app": "<name>"}) and in environment names, so lower case, digits and _ only.
APP_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
# The kinds of app that can have further apps; the website application (QR login) is one per site.
MORE_KINDS = ("mp", "app", "miniprogram")
PUSH_KINDS = ("mp", "miniprogram")  # the kinds WeChat pushes events to (and that have an app access token)


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class Secret:
    """A string whose repr never shows its value (so it cannot leak through logs or tracebacks)."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')" if self.value else "Secret('')"

    def __str__(self) -> str:
        return self.__repr__()


# ---------------------------------------------------------------------------------------------
# Declaring a key


def setting(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] = (), check: Callable[[str, str], str] | None = None,
            dev: str = "") -> Any:
    """Declare one key of a settings table.

    ``default``: used when neither the file nor the environment sets the key; without one the key is
    required and a string, secret or list must not be empty. ``lo``/``hi``: limits of a number (whole
    numbers lo <= n <= hi, default 0..2**31; decimals lo < x <= hi, default 0..3600). ``choices``: the only
    strings allowed. ``check(value, label)``: validates and normalises a string (raises ConfigError naming
    ``label``). ``dev``: why settings.toml, the development file, sets another value than the default;
    the rule (checked by a test) is that settings.toml holds the default unless ``dev`` says why not.
    """
    metadata = {"lo": lo, "hi": hi, "choices": choices, "check": check, "dev": dev}
    if default is dataclasses.MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def _origin(value: str, label: str) -> str:
    origin = value.rstrip("/")
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        raise ConfigError(f"{label} must be an http(s) origin without a path, not {origin!r}")
    return origin


def _base_url(value: str, label: str) -> str:
    """An http(s) base URL without query or fragment; empty stays empty (it means "the default base")."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{label} must be an http(s) base URL, not {value!r}")
    return value.rstrip("/")


def _time_zone(value: str, label: str) -> str:
    """An IANA zone name the system's tz database knows (Asia/Shanghai, UTC, ...)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{label} must be an IANA time zone such as 'Asia/Shanghai', not {value!r}") from None
    return value


def _database_name(value: str, label: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", value):
        raise ConfigError(f"{label} must be letters, digits and _, not {value!r}")
    return value


def _push_token(value: str, label: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9]{3,32}", value):
        raise ConfigError(f"{label} must be 3 to 32 letters and digits (WeChat's rule for the Token), or empty")
    return value


def _aes_key(value: str, label: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9]{43}", value):
        raise ConfigError(f"{label} must be WeChat's EncodingAESKey (43 letters and digits), or empty for plain mode")
    return value


def _appid(value: str, label: str) -> str:
    if not _APPID_RE.match(value):
        raise ConfigError(f"{label} must look like wx followed by 16 hex digits, not {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# The keys: one line each. Tables are frozen, keyword-only dataclasses (so declaration order is free).


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    host: str = setting()
    port: int = setting(lo=0, hi=65535)
    public_url: str = setting(check=_origin)
    secret_keys: tuple[Secret, ...] = setting()
    session_max_age: int = setting(30 * 24 * 3600, lo=60)
    session_idle_timeout: int = setting(7 * 24 * 3600, lo=30)
    api_token_max_age: int = setting(7 * 24 * 3600, lo=5)
    state_max_age: int = setting(600, lo=1, hi=3600)
    max_body_size: int = setting(2 * 1024 * 1024, lo=1024, hi=64 * 1024 * 1024)
    debug: bool = setting(False)
    processes: int = setting(1, lo=0, hi=256)
    # How often one process reads the state of every scene its waiting pages watch (one query for all).
    scene_poll_interval: float = setting(0.5, hi=10)
    # The zone pages show times in (the database keeps UTC); people in China expect Beijing time.
    time_zone: str = setting("Asia/Shanghai", check=_time_zone)

    @property
    def zone(self) -> ZoneInfo:
        """``time_zone`` as a tzinfo (zoneinfo caches one instance per name)."""
        return ZoneInfo(self.time_zone)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def public_origin(self) -> str:
        """scheme://host[:port] of public_url, as browsers send it in the Origin header."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, kw_only=True)
class MySQLSettings:
    host: str = setting()
    port: int = setting(3306, lo=1, hi=65535)
    user: str = setting()
    password: Secret = setting(Secret(""))
    database: str = setting(check=_database_name)
    unix_socket: str = setting("")
    pool_min: int = setting(2, lo=0, hi=500)
    pool_max: int = setting(20, lo=1, hi=500)
    queue_limit: int = setting(1000, lo=1, hi=100_000)  # requests that may wait for a connection
    connect_timeout: float = setting(3.0, hi=60)
    acquire_timeout: float = setting(3.0, hi=60)
    query_timeout: float = setting(3.0, hi=60)
    pool_recycle: int = setting(3600, lo=10)


@dataclass(frozen=True, kw_only=True)
class WeChatApp:
    appid: str = setting(check=_appid)
    secret: Secret = setting()


_PUSH_DEV = "the sandbox pushes events to the development site"


@dataclass(frozen=True, kw_only=True)
class WeChatPushApp(WeChatApp):
    """An app WeChat pushes events to (its console's "server URL"); no push_token: no push endpoint."""

    push_token: Secret = setting(Secret(""), check=_push_token, dev=_PUSH_DEV)
    push_aes_key: Secret = setting(Secret(""), check=_aes_key, dev=_PUSH_DEV)  # empty: plain mode


def _forward_secret(value: str, label: str) -> str:
    # HMAC-SHA256 keys: at least 32 printable ASCII characters, so a guessable word cannot be the key.
    if value and not re.fullmatch(r"[\x21-\x7e]{32,256}", value):
        raise ConfigError(f"{label} must be 32 to 256 printable ASCII characters (no spaces), or empty")
    return value


def _miniprogram_page(value: str, label: str) -> str:
    if len(value) > 128 or (value and not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,7}", value)):
        raise ConfigError(f"{label} must be a mini-program page path such as 'pages/login/index' (no leading /), "
                          f"or empty, not {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class WeChatMpApp(WeChatPushApp):
    """The default official account: also the one whose parametric QR codes sign desktops in (issue 14)."""

    # "scan to follow" on the desktop login page (desktop_methods)
    follow_login: bool = setting(False, dev="the sandbox plays the follow QR's phone and its pushes")
    # Forwarding mode: a system that owns the account's server URL forwards the scan events, signed with this
    # shared secret, to /wechat/forward/mp (README "Scan to follow the official account"). Empty: no endpoint.
    forward_secret: Secret = setting(Secret(""), check=_forward_secret)


@dataclass(frozen=True, kw_only=True)
class WeChatMiniProgramApp(WeChatPushApp):
    """The default mini-program: also the one whose codes sign desktops in (issue 14)."""

    # The page a mini-program code opens (getwxacodeunlimit's "page", no leading slash); empty: no mini-program
    # code login. Only the default mini-program shows codes on /login.
    code_login_page: str = setting("", check=_miniprogram_page, dev="the sandbox plays the mini-program's login page")


# The desktop login methods /login can offer ([wechat] desktop_methods): the website QR (snsapi_login), the
# official account's parametric QR (scan to follow) and the mini-program code.
DESKTOP_METHODS = ("qr", "follow", "miniprogram")


def _no_apps() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class MoreApps:
    """[wechat.more.<kind>.<name>]: further apps of a kind under the same open platform (so the same unionids).

    Each takes the keys of its kind's default table ([wechat.mp], [wechat.app], [wechat.miniprogram]); the
    name (``APP_NAME_RE``) is how the API ({"app": "<name>"}) and the push URL (/wechat/push/<kind>/<name>)
    choose it. Empty by default: the single-app settings work unchanged.
    """

    mp: Mapping[str, WeChatPushApp] = field(default_factory=_no_apps)
    app: Mapping[str, WeChatApp] = field(default_factory=_no_apps)
    miniprogram: Mapping[str, WeChatPushApp] = field(default_factory=_no_apps)


@dataclass(frozen=True)
class NamedApp:
    """One configured app: its kind, its name ("" for the default app of ``[wechat.<kind>]``) and its keys."""

    kind: str
    name: str
    app: WeChatApp

    @property
    def table(self) -> str:
        return f"[wechat.more.{self.kind}.{self.name}]" if self.name else f"[wechat.{self.kind}]"

    @property
    def label(self) -> str:
        """How logs, URLs and the deep health check name it: ``miniprogram``, ``miniprogram/shop``."""
        return f"{self.kind}/{self.name}" if self.name else self.kind


@dataclass(frozen=True, kw_only=True)
class WeChatSettings:
    sandbox: bool = setting(False, dev="development runs the built-in WeChat sandbox")
    # Empty: the sandbox when sandbox = true, else the official base. After loading, always the base in use.
    open_base: str = setting("", check=_base_url)
    api_base: str = setting("", check=_base_url)
    timeout: float = setting(5.0, hi=60)
    connect_timeout: float = setting(2.0, hi=60)
    max_clients: int = setting(200, lo=1, hi=5000)
    http_client: str = setting("curl", choices=("curl", "simple"))
    sandbox_allow_public: bool = setting(False)
    # The desktop /login page's methods, in tab order (the first is shown first); see DESKTOP_METHODS.
    desktop_methods: tuple[str, ...] = setting(("qr",), dev="development shows every method the sandbox plays")
    scene_max_age: int = setting(300, lo=30, hi=3600)  # a follow QR or mini-program code lives this long
    # How long WeChat's website QR stays scannable (5 minutes): the login page dims it after this, and the
    # sandbox's QR codes expire after it. Short only in tests of the expired state.
    qr_max_age: int = setting(300, lo=2, hi=3600)
    web: WeChatApp
    mp: WeChatMpApp
    app: WeChatApp
    miniprogram: WeChatMiniProgramApp
    more: MoreApps = field(default_factory=MoreApps)

    # --- the one registry of apps: everything that chooses an app goes through these ------------------

    def apps(self, kind: str) -> Mapping[str, WeChatApp]:
        """Every app of ``kind`` ("web", "mp", "app", "miniprogram") by name, "" (the default app) first."""
        if kind not in ("web", *MORE_KINDS):
            raise KeyError(kind)
        default: WeChatApp = getattr(self, kind)
        more: Mapping[str, WeChatApp] = getattr(self.more, kind) if kind in MORE_KINDS else {}
        return MappingProxyType({"": default, **more})

    def push_apps(self, kind: str) -> Mapping[str, WeChatPushApp]:
        """The apps of a kind WeChat pushes to ("mp", "miniprogram"), by name, "" first."""
        if kind not in PUSH_KINDS:
            raise KeyError(kind)
        default: WeChatPushApp = getattr(self, kind)
        return MappingProxyType({"": default, **getattr(self.more, kind)})

    def all_apps(self) -> Iterator[NamedApp]:
        """Every configured app: the four defaults, then the further ones kind by kind."""
        for kind in ("web", *MORE_KINDS):
            for name, app in self.apps(kind).items():
                yield NamedApp(kind, name, app)

    def app_by_appid(self, appid: str) -> NamedApp | None:
        """The configured app with this appid (appids are unique across all apps: the reader checks)."""
        return next((found for found in self.all_apps() if found.app.appid == appid), None)

    @property
    def is_official(self) -> bool:
        return self.open_base == OFFICIAL_OPEN_BASE and self.api_base == OFFICIAL_API_BASE

    @property
    def login_deadline(self) -> float:
        """All of one request's WeChat waiting (queue, calls, retry): ``timeout`` plus a margin for its second call."""
        return self.timeout + LOGIN_DEADLINE_MARGIN


@dataclass(frozen=True, kw_only=True)
class RateLimitSettings:
    enabled: bool = setting(True)
    login_per_minute: int = setting(30, lo=1)
    decrypt_per_minute: int = setting(20, lo=1)
    # The shipped nginx runs on the app machine and overwrites X-Forwarded-For (deploy/); a remote peer is
    # never loopback, so it cannot choose its own address.
    trusted_proxies: tuple[str, ...] = setting(("127.0.0.1", "::1"))
    callback_per_minute: int = setting(60, lo=1)  # callbacks that reach WeChat, per client IP
    start_per_minute: int = setting(60, lo=1)  # /auth/wechat/web|mp starts, per client IP
    # Phone numbers (issue 13): each success costs the site money, so per account a day and per IP a minute.
    phone_per_user_per_day: int = setting(10, lo=1)
    phone_per_ip_per_minute: int = setting(10, lo=1)
    session_check_per_minute: int = setting(5, lo=1)  # WeChat checksession calls per account (stale keys)
    profile_per_user_per_minute: int = setting(10, lo=1)  # nickname and avatar fill-ins (WeChat check quota)
    scene_waits_per_ip: int = setting(100, lo=1)  # open waiting-page connections per client IP, per process


@dataclass(frozen=True)
class RetentionSettings:
    login_events_days: int = setting(180, lo=1, hi=36500)  # the audit trail is purged after this


@dataclass(frozen=True)
class AccountSettings:
    deletion_grace_days: int = setting(15, lo=0, hi=365)  # a closed account is deleted after this; 0: next job run
    purge_interval: int = setting(3600, lo=10, hi=86400)  # seconds between runs of the deletion job
    # "A recent sign-in": closing an account, a full export and every operator action need a WeChat sign-in
    # (scan or tap) at most this many seconds old; older sessions are sent through WeChat again first.
    reauth_window: int = setting(300, lo=30, hi=3600)


def _listen(value: str, label: str) -> str:
    """host:port (an IPv6 host in brackets), or empty (off)."""
    if not value:
        return value
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{label} must be host:port such as '127.0.0.1:9108', or empty (off), not {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """Prometheus metrics (issue 16), on a listener of their own: never the public port."""

    # host:port of the metrics listener (GET /metrics); empty: no metrics served. Keep it on loopback or a
    # private network: the shipped nginx does not proxy it.
    listen: str = setting("", check=_listen)

    @property
    def host_port(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, kw_only=True)
class AdminSettings:
    """The operator console (/admin): who may use it. Everyone else gets 404 there, as if it did not exist."""

    # Account ids (users.id). Empty: nobody, the console answers 404 to all. In sandbox mode the server adds the
    # sandbox's operator person's account itself (server.py seed_sandbox_operator, README "The sandbox").
    user_ids: tuple[int, ...] = setting(())


# --- the site's own brand (issue 15): never WeChat's name, mark or green; WeChat's mark sits on its button only

DEFAULT_PRIMARY = "#2563eb"  # static/css/site.css repeats it as --brand (a test keeps the two equal)
_COLOUR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
_STATIC_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_.-]+)*\.(?:svg|png|ico|webp)$")
AA_CONTRAST = 4.5  # WCAG 2.2 AA for normal text: white text on the primary colour (buttons) must reach it


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """#rgb or #rrggbb as three 0-255 channels."""
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def contrast_with_white(colour: str) -> float:
    """WCAG contrast ratio of white text on ``colour``."""
    r, g, b = (_channel(c) for c in hex_rgb(colour))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 1.05 / (luminance + 0.05)


def _colour(value: str, label: str) -> str:
    if not _COLOUR_RE.match(value):
        raise ConfigError(f"{label} must be a colour like #2563eb, not {value!r}")
    ratio = contrast_with_white(value)
    if ratio < AA_CONTRAST:
        # The primary colour is the background of white button text; WeChat's #07c160 gives 2.38:1.
        raise ConfigError(f"{label} {value} gives white text a contrast of {ratio:.2f}:1; WCAG AA needs "
                          f"{AA_CONTRAST}:1, so choose a darker colour")
    return value.lower()


def _logo(value: str, label: str) -> str:
    """A file under static/ (``img/logo.svg``) or an https URL (the pages' CSP loads images from https only)."""
    if value.startswith("https://"):
        if not urlsplit(value).netloc:
            raise ConfigError(f"{label} must be a path under static/ or an https URL, not {value!r}")
        return value
    if not _STATIC_PATH_RE.match(value) or ".." in value.split("/"):
        raise ConfigError(f"{label} must be a path under static/ such as 'img/logo.svg' (svg, png, ico or webp) "
                          f"or an https URL, not {value!r}")
    return value


def _page_link(value: str, label: str) -> str:
    """Empty (the built-in placeholder page), a path on this site, or an http(s) URL."""
    if not value:
        return value
    parts = urlsplit(value)
    if value.startswith("/") and not value.startswith("//") and "\\" not in value and not parts.scheme:
        return value
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    raise ConfigError(f"{label} must be a path on this site (/terms) or an http(s) URL, not {value!r}")


def _one_line(value: str, label: str) -> str:
    if len(value) > 100 or any(ch in value for ch in "\r\n\t"):
        raise ConfigError(f"{label} must be one line of at most 100 characters")
    return value


@dataclass(frozen=True, kw_only=True)
class BrandSettings:
    """What people see of the site: its name, logo and colour, the legal links and the footer's lines."""

    name: str = setting("wxlogin", check=_one_line)  # page titles read "登录 · <name>"
    logo: str = setting("img/logo.svg", check=_logo)  # also the favicon
    primary: str = setting(DEFAULT_PRIMARY, check=_colour)  # buttons and accents (--brand)
    description: str = setting("", check=_one_line)  # the pages' meta description; empty: a built-in sentence
    # The legal line on every login page links to these; empty: a built-in page that says it is a placeholder.
    terms_url: str = setting("", check=_page_link)
    privacy_url: str = setting("", check=_page_link)
    icp: str = setting("", check=_one_line)  # ICP filing number (京ICP备…号) in the footer; empty: none shown
    support: str = setting("", check=_one_line)  # customer service: an e-mail, a phone number or an https URL


@dataclass(frozen=True, kw_only=True)
class Settings:
    server: ServerSettings
    mysql: MySQLSettings
    wechat: WeChatSettings
    ratelimit: RateLimitSettings
    retention: RetentionSettings
    accounts: AccountSettings = field(default_factory=AccountSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    brand: BrandSettings = field(default_factory=BrandSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


# ---------------------------------------------------------------------------------------------
# Reading: one generic reader for every declared key

T = TypeVar("T")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Key:
    """One declared key: the table it lives in, its name, its type and its declaration."""

    table: str
    name: str
    kind: Any
    spec: dataclasses.Field[Any]

    @property
    def label(self) -> str:
        return f"[{self.table}] {self.name}"

    @property
    def env_name(self) -> str:
        return "WXLOGIN_" + f"{self.table}_{self.name}".replace(".", "_").upper()

    @property
    def required(self) -> bool:
        return self.spec.default is dataclasses.MISSING

    @property
    def default(self) -> Any:
        return self.spec.default

    @property
    def dev_reason(self) -> str:
        return str(self.spec.metadata.get("dev", ""))

    def parse(self, value: Any) -> Any:
        """Validate one raw value (from TOML, or a string from the environment) into the declared type."""
        meta = self.spec.metadata
        if self.kind is bool:
            return self._bool(value)
        if self.kind is int:
            return self._int(value, int(meta["lo"] if meta["lo"] is not None else 0),
                             int(meta["hi"] if meta["hi"] is not None else 2**31))
        if self.kind is float:
            return self._float(value, float(meta["lo"] or 0.0), float(meta["hi"] or 3600.0))
        if self.kind in (str, Secret):
            text = self._str(value)
            if meta["choices"] and text not in meta["choices"]:
                allowed = " or ".join(repr(choice) for choice in meta["choices"])
                raise ConfigError(f"{self.label} must be {allowed}, not {text!r}")
            if meta["check"] is not None:
                text = meta["check"](text, self.label)
            return Secret(text) if self.kind is Secret else text
        if self.kind == tuple[int, ...]:
            return self._int_list(value)
        if self.kind in (tuple[str, ...], tuple[Secret, ...]):
            items = self._str_list(value)
            return tuple(Secret(v) for v in items) if self.kind == tuple[Secret, ...] else items
        raise TypeError(f"{self.label}: no reader for type {self.kind!r}")  # a declaration mistake

    def _str(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{self.label} must be a string, not {type(value).__name__}")
        if self.required and not value.strip():
            raise ConfigError(f"{self.label} is empty")
        return value.strip()

    def _int(self, value: Any, lo: int, hi: int) -> int:
        try:
            number = int(value) if not isinstance(value, (bool, float)) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ConfigError(f"{self.label} must be a whole number, not {value!r}")
        if not lo <= number <= hi:
            raise ConfigError(f"{self.label} must be between {lo} and {hi}, not {number}")
        return number

    def _float(self, value: Any, lo: float, hi: float) -> float:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ConfigError(f"{self.label} must be a number, not {value!r}")
        if not lo < number <= hi:
            raise ConfigError(f"{self.label} must be above {lo} and at most {hi}, not {number}")
        return number

    def _bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{self.label} must be true or false, not {value!r}")

    def _int_list(self, value: Any) -> tuple[int, ...]:
        if isinstance(value, str):  # from the environment: "1,42"
            value = [self._int(v, 1, 2**63 - 1) for v in (part.strip() for part in value.split(",")) if v]
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{self.label} must be a list of whole numbers")
        return tuple(self._int(v, 1, 2**63 - 1) for v in value)

    def _str_list(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):  # from the environment: "old,new"
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.label} must be a list of strings")
        items = tuple(v.strip() for v in value if v.strip())
        if self.required and not items:
            raise ConfigError(f"{self.label} is empty")
        return items


def _is_table(kind: Any) -> bool:
    return dataclasses.is_dataclass(kind) and kind is not Secret  # Secret is a value, not a [table]


_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    """Each field of a settings dataclass with its resolved type (computed once per class)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple((spec, hints[spec.name]) for spec in dataclasses.fields(cls))
    return found


def _named_tables(kind: Any) -> type | None:
    """The table class of a ``Mapping[str, <table>]`` field (any number of named tables), else None."""
    if typing.get_origin(kind) is not Mapping:
        return None
    _, value = typing.get_args(kind)
    return typing.cast(type, value) if _is_table(value) else None


def declared_keys(cls: type = Settings, table: str = "") -> list[Key]:
    """Every key below ``cls`` in declaration order, sub-tables such as [wechat.web] included.

    Named tables ([wechat.more.<kind>.<name>]) are left out: they are optional and repeat a declaration
    listed here already (settings.toml shows them in a commented example).
    """
    keys: list[Key] = []
    for spec, kind in _fields(cls):
        path = f"{table}.{spec.name}" if table else spec.name
        if _named_tables(kind) is not None:
            continue
        if _is_table(kind):
            keys.extend(declared_keys(typing.cast(type, kind), path))
        else:
            keys.append(Key(table, spec.name, kind, spec))
    return keys


def _env_prefix(table: str) -> str:
    return "WXLOGIN_" + table.replace(".", "_").upper() + "_"


def _refuse_unknown(cls: type, data: Mapping[str, Any], table: str, env: Mapping[str, str]) -> None:
    """A table that holds named tables, or is one, takes no key it does not declare (file or environment).

    A misspelt key there would otherwise be dropped in silence (a push_token that never arrives).
    """
    names = [spec.name for spec, _ in _fields(cls)]
    for name in data:
        if name not in names:
            raise ConfigError(f"[{table}] {name} is not a setting here (known: {', '.join(names)})")
    prefix = _env_prefix(table)
    for env_name in env:
        rest = env_name.removeprefix(prefix)
        if rest != env_name and not any(rest == n.upper() or rest.startswith(n.upper() + "_") for n in names):
            raise ConfigError(f"{env_name} names no setting of [{table}] (known: {', '.join(names)})")


def _read_named_tables(cls: type[T], data: Any, table: str, env: Mapping[str, str]) -> Mapping[str, T]:
    """Every ``[<table>.<name>]``: from the file, plus names only the environment gives (then their appid must
    come from there too, so a misspelt name in an environment variable fails loudly)."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{table}] must be a table")
    declared = [spec.name for spec, _ in _fields(cls)]
    keys = sorted(declared, key=len, reverse=True)  # the longest first: push_aes_key before a shorter ending
    names = list(data)
    prefix = _env_prefix(table)
    for env_name in env:
        rest = env_name.removeprefix(prefix)
        if rest == env_name:
            continue
        key = next((k for k in keys if rest.endswith("_" + k.upper())), None)
        if key is None:
            raise ConfigError(f"{env_name} names no setting of [{table}.<name>] (known: {', '.join(declared)})")
        name = rest[: -len(key) - 1].lower()
        if name not in names:
            names.append(name)
    apps: dict[str, T] = {}
    for name in names:
        path = f"{table}.{name}"
        if not APP_NAME_RE.match(name):
            raise ConfigError(f"[{path}]: a name is 1 to 32 of a-z, 0-9 and _, not {name!r}")
        sub = data.get(name, {})
        if not isinstance(sub, dict):
            raise ConfigError(f"[{path}] must be a table")
        _refuse_unknown(cls, sub, path, {})  # its environment names were parsed above (a name may hold _)
        apps[name] = _read_table(cls, sub, path, env)
    return MappingProxyType(apps)


def _read_table(cls: type[T], data: Any, table: str, env: Mapping[str, str]) -> T:
    """Build the dataclass ``cls`` from one TOML table (and the environment), key by declared key."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{table}] must be a table")
    values: dict[str, Any] = {}
    for spec, kind in _fields(cls):
        path = f"{table}.{spec.name}" if table else spec.name
        named = _named_tables(kind)
        if named is not None:
            values[spec.name] = _read_named_tables(named, data.get(spec.name, {}), path, env)
            continue
        if _is_table(kind):
            sub = data.get(spec.name, {})
            if isinstance(sub, dict) and any(_named_tables(k) for _, k in _fields(typing.cast(type, kind))):
                _refuse_unknown(typing.cast(type, kind), sub, path, env)
            values[spec.name] = _read_table(typing.cast(type, kind), sub, path, env)
            continue
        key = Key(table, spec.name, kind, spec)
        if key.env_name in env:
            values[spec.name] = key.parse(env[key.env_name])
        elif spec.name in data:
            values[spec.name] = key.parse(data[spec.name])
        elif key.required:
            raise ConfigError(f"{key.label} is missing")
        # else: the dataclass fills in the declared default
    return cls(**values)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from_mapping(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate Settings from parsed TOML data and an environment."""
    env = os.environ if env is None else env
    settings = _read_table(Settings, dict(data), "", env)
    return _check_rules(settings)


def _check_rules(settings: Settings) -> Settings:
    """The rules that involve more than one key; returns the settings with the WeChat bases resolved."""
    mysql = settings.mysql
    if mysql.pool_min > mysql.pool_max:
        raise ConfigError(f"[mysql] pool_min ({mysql.pool_min}) must not exceed pool_max ({mysql.pool_max})")
    _check_distinct_appids(settings.wechat)
    metrics_at = settings.metrics.host_port
    if metrics_at is not None and metrics_at[1] == settings.server.port and settings.server.port != 0:
        raise ConfigError(f"[metrics] listen {settings.metrics.listen!r} is the site's own port: metrics need a "
                          "listener of their own, which the public (and nginx) never reach")
    _check_desktop_methods(settings.wechat)
    wechat = _resolve_bases(settings.wechat, settings.server.public_url)
    settings = dataclasses.replace(settings, wechat=wechat)
    _check_production_rules(settings)
    return settings


def _check_distinct_appids(wx: WeChatSettings) -> None:
    """One appid, one app: logins are keyed by (appid, openid) and pushes, tokens and the API find the app by
    its appid, so two tables with one appid would mix two apps' people, keys and tokens."""
    seen: dict[str, str] = {}
    for found in wx.all_apps():
        first = seen.setdefault(found.app.appid, found.table)
        if first != found.table:
            raise ConfigError(f"{found.table} appid {found.app.appid} is {first}'s already: "
                              "every app has its own appid")


def _check_desktop_methods(wx: WeChatSettings) -> None:
    """Each desktop method named once, known, and switched on where it has its own switch."""
    methods = wx.desktop_methods
    if not methods:
        raise ConfigError("[wechat] desktop_methods is empty (at least one of " + ", ".join(DESKTOP_METHODS) + ")")
    for method in methods:
        if method not in DESKTOP_METHODS:
            raise ConfigError(f"[wechat] desktop_methods: {method!r} is not one of {', '.join(DESKTOP_METHODS)}")
    if len(set(methods)) != len(methods):
        raise ConfigError("[wechat] desktop_methods names a method twice")
    if "follow" in methods and not wx.mp.follow_login:
        raise ConfigError("[wechat] desktop_methods has \"follow\" but [wechat.mp] follow_login is false")
    if "miniprogram" in methods and not wx.miniprogram.code_login_page:
        raise ConfigError("[wechat] desktop_methods has \"miniprogram\" but [wechat.miniprogram] code_login_page "
                          "is empty")


def _resolve_bases(wx: WeChatSettings, public_url: str) -> WeChatSettings:
    """Empty bases become the sandbox's (sandbox = true) or WeChat's own.

    With the sandbox on, a base that points anywhere else is refused: the login page would embed that
    site's QR page while the start-up log says the sandbox is in use (and WeChat's real page cannot
    finish a sandbox login).
    """
    if not wx.sandbox:
        return dataclasses.replace(wx, open_base=wx.open_base or OFFICIAL_OPEN_BASE,
                                   api_base=wx.api_base or OFFICIAL_API_BASE)
    sandbox_base = public_url + SANDBOX_PREFIX
    for name, value in (("open_base", wx.open_base), ("api_base", wx.api_base)):
        if value and value != sandbox_base:
            raise ConfigError(
                f"[wechat] {name} = {value!r} but [wechat] sandbox = true, which emulates WeChat at "
                f"{sandbox_base}; leave {name} empty, or set sandbox = false to use {value}"
            )
    return dataclasses.replace(wx, open_base=sandbox_base, api_base=sandbox_base)


def _check_production_rules(settings: Settings) -> None:
    """Refuse combinations that would be unsafe in production."""
    keys = settings.server.secret_keys
    if not settings.wechat.sandbox:
        for index, key in enumerate(keys):
            if DEV_KEY_MARKER in key.value:
                raise ConfigError(
                    f"[server] secret_keys[{index}] is the development key; set WXLOGIN_SERVER_SECRET_KEYS "
                    "to real random keys (outside the sandbox the development keys are refused)"
                )
            if len(key.value) < 32:
                raise ConfigError(f"[server] secret_keys[{index}] is shorter than 32 characters")
    elif settings.server.processes != 1:
        raise ConfigError(
            f"[server] processes = {settings.server.processes} with [wechat] sandbox on; the sandbox keeps its "
            "codes in one process's memory, so run it with processes = 1"
        )
    elif not settings.wechat.sandbox_allow_public:
        # The sandbox signs with a public development key and lets anyone log in as anyone: it must not be
        # reachable from outside, whether by its bind address or through a proxy serving a public origin.
        if not _is_loopback(settings.server.host):
            raise ConfigError(
                f"[server] host {settings.server.host!r} is not a loopback address and [wechat] sandbox is on; "
                "the sandbox lets anyone log in as anyone, so set [wechat] sandbox_allow_public = true "
                "if you really mean to expose it"
            )
        public_host = urlsplit(settings.server.public_url).hostname or ""
        if not _is_loopback(public_host):
            raise ConfigError(
                f"[server] public_url {settings.server.public_url!r} is not a loopback URL and [wechat] sandbox "
                "is on; a proxy would expose the sandbox (and its public development key) to everyone, so set "
                "[wechat] sandbox_allow_public = true if you really mean to expose it"
            )


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from a TOML file (plus environment overrides) and validate them."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"settings file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {str(path)!r} is not valid TOML: {exc}") from None
    return settings_from_mapping(data, env)
