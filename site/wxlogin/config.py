"""Typed, frozen settings built once from settings.toml plus environment overrides.

Every key can be overridden from the environment as ``WXLOGIN_<TABLE>_<KEY>`` (for example
``WXLOGIN_WECHAT_WEB_SECRET`` or ``WXLOGIN_SERVER_SECRET_KEYS`` as a comma-separated list), which is
how secrets stay out of the file in production. Every validation error names the key at fault.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

OFFICIAL_OPEN_BASE = "https://open.weixin.qq.com"
OFFICIAL_API_BASE = "https://api.weixin.qq.com"
SANDBOX_PREFIX = "/_sandbox"
# Keys that contain this marker are the checked-in development keys; they only ever run the sandbox.
DEV_KEY_MARKER = "dev-insecure"
_APPID_RE = re.compile(r"^wx[0-9a-f]{16}$")


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


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    public_url: str
    secret_keys: tuple[Secret, ...]
    session_max_age: int = 30 * 24 * 3600
    session_idle_timeout: int = 7 * 24 * 3600
    api_token_max_age: int = 7 * 24 * 3600
    state_max_age: int = 600
    max_body_size: int = 2 * 1024 * 1024
    debug: bool = False
    processes: int = 1

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def public_origin(self) -> str:
        """scheme://host[:port] of public_url, as browsers send it in the Origin header."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class MySQLSettings:
    host: str
    port: int
    user: str
    password: Secret
    database: str
    unix_socket: str = ""
    pool_min: int = 2
    pool_max: int = 20
    queue_limit: int = 1000
    connect_timeout: float = 3.0
    acquire_timeout: float = 3.0
    query_timeout: float = 3.0
    pool_recycle: int = 3600


@dataclass(frozen=True)
class WeChatApp:
    appid: str
    secret: Secret


@dataclass(frozen=True)
class WeChatSettings:
    sandbox: bool
    open_base: str
    api_base: str
    timeout: float
    connect_timeout: float
    max_clients: int
    http_client: str
    web: WeChatApp
    mp: WeChatApp
    app: WeChatApp
    miniprogram: WeChatApp
    sandbox_allow_public: bool = False

    @property
    def is_official(self) -> bool:
        return self.open_base == OFFICIAL_OPEN_BASE and self.api_base == OFFICIAL_API_BASE


@dataclass(frozen=True)
class RateLimitSettings:
    enabled: bool = True
    login_per_minute: int = 30
    decrypt_per_minute: int = 20
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    mysql: MySQLSettings
    wechat: WeChatSettings
    ratelimit: RateLimitSettings


# ---------------------------------------------------------------------------------------------
# Reading


_REQUIRED = object()


class _Reader:
    """Pulls typed values out of one TOML table, applying environment overrides."""

    def __init__(self, data: Mapping[str, Any], path: str, env: Mapping[str, str]) -> None:
        self.data = data
        self.path = path
        self.env = env

    def _raw(self, key: str, default: Any) -> Any:
        env_name = "WXLOGIN_" + (self.path + "_" + key).replace(".", "_").upper()
        if env_name in self.env:
            return self.env[env_name]
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise ConfigError(f"[{self.path}] {key} is missing")
        return default

    def str(self, key: str, default: Any = None) -> str:
        value = self._raw(key, "" if default is None else default)
        if not isinstance(value, str):
            raise ConfigError(f"[{self.path}] {key} must be a string, not {type(value).__name__}")
        return value.strip()

    def required_str(self, key: str) -> str:
        value = self._raw(key, _REQUIRED)
        if not isinstance(value, str):
            raise ConfigError(f"[{self.path}] {key} must be a string, not {type(value).__name__}")
        if not value.strip():
            raise ConfigError(f"[{self.path}] {key} is empty")
        return value.strip()

    def int(self, key: str, default: int | None = None, lo: int = 0, hi: int = 2**31) -> int:
        """Read a whole number; no default means the key is required."""
        value = self._raw(key, _REQUIRED if default is None else default)
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or isinstance(value, float):
            raise ConfigError(f"[{self.path}] {key} must be a whole number, not {value!r}")
        if not lo <= number <= hi:
            raise ConfigError(f"[{self.path}] {key} must be between {lo} and {hi}, not {number}")
        return number

    def float(self, key: str, default: float, lo: float = 0.0, hi: float = 3600.0) -> float:
        value = self._raw(key, default)
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ConfigError(f"[{self.path}] {key} must be a number, not {value!r}")
        if not lo < number <= hi:
            raise ConfigError(f"[{self.path}] {key} must be above {lo} and at most {hi}, not {number}")
        return number

    def bool(self, key: str, default: bool) -> bool:
        value = self._raw(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"[{self.path}] {key} must be true or false, not {value!r}")

    def str_list(self, key: str, default: Any = None) -> tuple[str, ...]:
        value = self._raw(key, _REQUIRED if default is None else default)
        if isinstance(value, str):
            value = [part for part in value.split(",")]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"[{self.path}] {key} must be a list of strings")
        return tuple(v.strip() for v in value if v.strip())

    def table(self, key: str) -> _Reader:
        sub = self.data.get(key, {})
        if not isinstance(sub, dict):
            raise ConfigError(f"[{self.path}] {key} must be a table")
        return _Reader(sub, f"{self.path}.{key}", self.env)



def _check_base_url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"[wechat] {key} must be an http(s) base URL, not {value!r}")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_app(reader: _Reader, name: str) -> WeChatApp:
    table = reader.table(name)
    appid = table.required_str("appid")
    if not _APPID_RE.match(appid):
        raise ConfigError(f"[wechat.{name}] appid must look like wx followed by 16 hex digits, not {appid!r}")
    return WeChatApp(appid=appid, secret=Secret(table.required_str("secret")))


def settings_from_mapping(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate Settings from parsed TOML data and an environment."""
    env = os.environ if env is None else env
    srv = _Reader(data.get("server", {}), "server", env)
    public_url = srv.required_str("public_url").rstrip("/")
    if urlsplit(public_url).scheme not in ("http", "https") or urlsplit(public_url).path not in ("", "/"):
        raise ConfigError(f"[server] public_url must be an http(s) origin without a path, not {public_url!r}")
    keys = srv.str_list("secret_keys")
    if not keys:
        raise ConfigError("[server] secret_keys is empty")
    server = ServerSettings(
        host=srv.required_str("host"),
        port=srv.int("port", lo=0, hi=65535),
        public_url=public_url,
        secret_keys=tuple(Secret(k) for k in keys),
        session_max_age=srv.int("session_max_age", 30 * 24 * 3600, lo=60),
        session_idle_timeout=srv.int("session_idle_timeout", 7 * 24 * 3600, lo=30),
        api_token_max_age=srv.int("api_token_max_age", 7 * 24 * 3600, lo=5),
        state_max_age=srv.int("state_max_age", 600, lo=1, hi=3600),
        max_body_size=srv.int("max_body_size", 2 * 1024 * 1024, lo=1024, hi=64 * 1024 * 1024),
        debug=srv.bool("debug", False),
        processes=srv.int("processes", 1, lo=0, hi=256),
    )

    db = _Reader(data.get("mysql", {}), "mysql", env)
    pool_min = db.int("pool_min", 2, lo=0, hi=500)
    pool_max = db.int("pool_max", 20, lo=1, hi=500)
    if pool_min > pool_max:
        raise ConfigError(f"[mysql] pool_min ({pool_min}) must not exceed pool_max ({pool_max})")
    mysql = MySQLSettings(
        host=db.required_str("host"),
        port=db.int("port", 3306, lo=1, hi=65535),
        user=db.required_str("user"),
        password=Secret(db.str("password")),
        database=db.required_str("database"),
        unix_socket=db.str("unix_socket"),
        pool_min=pool_min,
        pool_max=pool_max,
        queue_limit=db.int("queue_limit", 1000, lo=1, hi=100_000),
        connect_timeout=db.float("connect_timeout", 3.0, hi=60),
        acquire_timeout=db.float("acquire_timeout", 3.0, hi=60),
        query_timeout=db.float("query_timeout", 3.0, hi=60),
        pool_recycle=db.int("pool_recycle", 3600, lo=10),
    )
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", mysql.database):
        raise ConfigError(f"[mysql] database must be letters, digits and _, not {mysql.database!r}")

    wx = _Reader(data.get("wechat", {}), "wechat", env)
    sandbox = wx.bool("sandbox", False)
    default_base = public_url + SANDBOX_PREFIX if sandbox else ""
    open_base = _check_base_url(wx.str("open_base") or default_base or OFFICIAL_OPEN_BASE, "open_base")
    api_base = _check_base_url(wx.str("api_base") or default_base or OFFICIAL_API_BASE, "api_base")
    http_client = wx.str("http_client", "curl")
    if http_client not in ("curl", "simple"):
        raise ConfigError(f"[wechat] http_client must be 'curl' or 'simple', not {http_client!r}")
    wechat = WeChatSettings(
        sandbox=sandbox,
        open_base=open_base,
        api_base=api_base,
        timeout=wx.float("timeout", 5.0, hi=60),
        connect_timeout=wx.float("connect_timeout", 2.0, hi=60),
        max_clients=wx.int("max_clients", 200, lo=1, hi=5000),
        http_client=http_client,
        web=_read_app(wx, "web"),
        mp=_read_app(wx, "mp"),
        app=_read_app(wx, "app"),
        miniprogram=_read_app(wx, "miniprogram"),
        sandbox_allow_public=wx.bool("sandbox_allow_public", False),
    )

    rl = _Reader(data.get("ratelimit", {}), "ratelimit", env)
    ratelimit = RateLimitSettings(
        enabled=rl.bool("enabled", True),
        login_per_minute=rl.int("login_per_minute", 30, lo=1),
        decrypt_per_minute=rl.int("decrypt_per_minute", 20, lo=1),
        trusted_proxies=rl.str_list("trusted_proxies", []),
    )

    settings = Settings(server=server, mysql=mysql, wechat=wechat, ratelimit=ratelimit)
    _check_production_rules(settings)
    return settings


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
    elif not _is_loopback(settings.server.host) and not settings.wechat.sandbox_allow_public:
        raise ConfigError(
            f"[server] host {settings.server.host!r} is not a loopback address and [wechat] sandbox is on; "
            "the sandbox lets anyone log in as anyone, so set [wechat] sandbox_allow_public = true "
            "if you really mean to expose it"
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
