"""The configuration check (issue 16): ``python server.py --check --config PATH`` and the same at start-up.

Most failed WeChat integrations are configuration mistakes found only when a person is stuck on WeChat's
error page. This walks the settings and says, per settings key, ``ok``, ``warning`` or ``error``:

- each app's appid and secret work, asking WeChat (``--check`` only, see below): official accounts and
  mini-programs get their app token (``stable_token``, normal mode: it hands out the current token, spends
  no forced refresh); website and mobile applications, which have no app token, exchange a code that cannot
  be valid: WeChat checks appid (40013) and secret (40125) before the code (40029 = both fine). A website or
  mobile app whose appid gets an app token is an official account's or mini-program's: its scope would fail;
- ``[metrics] listen``: loopback or a private network, never a public address or every interface;
- ``[server] public_url``: https outside the sandbox (plain http on loopback or a private-network address
  literal is only a warning: a test network), and the exact host to enter as the redirect domain;
- the scopes and app kinds agree (scan-to-follow needs a push endpoint or forwarding);
- secrets are strong (length, estimated entropy, not the development ones outside the sandbox);
- MySQL: version, the database's charset and collation, the connections' sql_mode, and the clock;
  ``[mysql] query_timeout`` long enough for a row lock wait to end before it (warning only).

The push endpoints' URLs come from the routes (wxlogin/app.py ``push_urls``) and are added by server.py.

At start-up (``wechat=False``) nothing is asked of WeChat: a restart must not wait on an unreachable WeChat
nor spend its daily call quota, and the sandbox (which answers those calls in development) is not serving yet.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from wxlogin.config import DEV_KEY_MARKER, DEV_PUSH_MARKER, NamedApp, Secret, Settings
from wxlogin.errors import (
    CodeInvalid,
    DatabaseUnavailable,
    Overloaded,
    WeChatError,
    WeChatMisconfigured,
    WeChatUnavailable,
)
from wxlogin.store.db import lock_wait_seconds, lock_waits_end_first
from wxlogin.store.ops import OpsStore, ServerFacts
from wxlogin.wechat.client import WeChatClient

# What store/db.py sets on every connection; the check proves MySQL took it.
REQUIRED_SQL_MODES = ("STRICT_TRANS_TABLES", "NO_ZERO_DATE", "NO_ENGINE_SUBSTITUTION", "ERROR_FOR_DIVISION_BY_ZERO")
EXPECTED_CHARSET = "utf8mb4"
EXPECTED_COLLATION = "utf8mb4_unicode_ci"  # store/migrations.py creates every table with it
MIN_MARIADB = (10, 6)
MIN_MYSQL = (8, 0)
CLOCK_WARNING = 5.0  # seconds between this machine's clock and MySQL's
# Beyond this, lifetimes written by MySQL (states, scenes, app tokens) and checked here by this machine's clock
# disagree by more than a WeChat code lives (5 minutes).
CLOCK_ERROR = 300.0
MIN_KEY_BITS = 128  # estimated entropy of a signing key
PROBE_CODE = "wxlogin-config-check"  # never a valid code: WeChat answers 40029 once appid and secret are right
APPSECRET_RE = re.compile(r"^[0-9a-f]{32}$")  # what WeChat's console hands out


# What the check says of WeChat's errcodes: a fixed description, never WeChat's errmsg, which may echo what we
# sent (the login code does not store it for the same reason). Other errcodes are printed as numbers only.
ERRCODE_MEANINGS: dict[int, str] = {
    -1: "WeChat is busy, try again",
    40001: "invalid credential (the secret, or an app token WeChat no longer accepts)",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40125: "invalid appsecret",
    40164: "this machine's IP address is not on the app's IP whitelist (IP白名单)",
    41002: "appid missing",
    41004: "appsecret missing",
    43001: "the call needs GET",
    45009: "the daily quota of this API is spent",
    45011: "called too often, wait a minute",
    48001: "the app has no right to this API",
    48004: "the API is banned for this app (see WeChat's console)",
    89503: "the call waits for an administrator's confirmation in WeChat (IP risk)",
}


def describe_errcode(exc: WeChatError) -> str:
    """``errcode N (fixed description; rid R)`` of a WeChat error: its errcode, what it means, WeChat's rid."""
    meaning = ERRCODE_MEANINGS.get(exc.errcode) if exc.errcode is not None else None
    details = [part for part in (meaning, f"rid {exc.rid}" if exc.rid else "") if part]
    return f"errcode {exc.errcode}" + (f" ({'; '.join(details)})" if details else "")


class Level(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str  # the settings key at fault, as config errors name it: "[wechat.mp] secret"
    message: str

    def line(self) -> str:
        return f"{self.level.value:<8} {self.key}: {self.message}"


def _ok(key: str, message: str) -> Finding:
    return Finding(Level.OK, key, message)


def _warn(key: str, message: str) -> Finding:
    return Finding(Level.WARNING, key, message)


def _error(key: str, message: str) -> Finding:
    return Finding(Level.ERROR, key, message)


def entropy_bits(value: str) -> float:
    """A rough upper bound of a string's entropy: its length times the Shannon entropy of its characters.

    It catches the usual weak keys (a word repeated, "0000...", "changeme-changeme...") without pretending to
    measure randomness; a key from ``secrets.token_urlsafe(32)`` scores about 200 bits.
    """
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)


# Named rather than ``is_private``: that one also holds 0.0.0.0/8 (every address, to a listener) and the
# documentation and benchmark ranges, which are no test network of ours.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "169.254.0.0/16", "fe80::/10",  # link-local
    "fc00::/7",  # unique local (RFC 4193)
))


def _is_private(host: str) -> bool:
    """An address literal of a private network (RFC 1918, unique-local, link-local); never a name, which
    could resolve anywhere tomorrow."""
    if not _is_ip(host):
        return False
    address = ipaddress.ip_address(host)
    return any(address.version == net.version and address in net for net in PRIVATE_NETWORKS)


class ConfigCheck:
    """Runs every check; ``run`` returns the findings in settings order."""

    def __init__(self, settings: Settings, ops: OpsStore, wechat: WeChatClient) -> None:
        self.settings = settings
        self.ops = ops
        self.wechat = wechat

    async def run(self, *, wechat: bool, mysql: bool = True, startup: bool = False) -> list[Finding]:
        """``startup``: the server's own check, where a MySQL that stops answering is a warning (see ``mysql``)."""
        findings = [*self.public_url(), *self.metrics(), *self.secrets(), *self.app_kinds(), *self.query_timeout()]
        if mysql:
            findings += await self.mysql(startup=startup)
        if wechat:
            for found in self.settings.wechat.all_apps():
                findings.append(await self.app_works(found))
        return findings

    # --- [server] public_url ------------------------------------------------------------------------------

    def public_url(self) -> Iterator[Finding]:
        key = "[server] public_url"
        url = self.settings.server.public_url
        parts = urlsplit(url)
        host = parts.hostname or ""
        sandbox = self.settings.wechat.sandbox
        if parts.scheme != "https" and not sandbox:
            if _is_loopback(host):
                yield _warn(key, f"{url} is plain http on this machine: fine for a local stand-in of WeChat, "
                                 "but WeChat itself can only send people back to an https site")
            elif _is_private(host):
                # A test network (the multi-host test's namespaces, a LAN lab): nobody from outside reaches it.
                yield _warn(key, f"{url} is plain http on a private network: test networks only: WeChat's pages "
                                 "need https on a public domain")
            else:
                yield _error(key, f"{url} is not https: outside the sandbox the site must be served over https "
                                  "(session cookies are Secure there, and WeChat's pages send people back to it)")
        else:
            yield _ok(key, f"{url} ({'the sandbox' if sandbox else 'https'})")
        # A domain string, not a URL: no scheme, no path, no port (wechat-protocol.md 1.1 and 2.1).
        yield _ok(key, f"enter exactly this as the redirect domain in WeChat's console (网站应用 授权回调域, "
                       f"公众号 网页授权域名): {host}")
        if not sandbox:
            if parts.port not in (None, 443):
                yield _warn(key, f"port {parts.port}: an official account's 网页授权域名 takes a domain without a "
                                 "port, so its login works only on 443")
            if _is_ip(host) and not _is_loopback(host):
                yield _warn(key, f"{host} is an IP address: WeChat's redirect domain must be a domain name "
                                 "(ICP-filed for sites in mainland China)")

    # --- [metrics] listen ----------------------------------------------------------------------------------

    def metrics(self) -> Iterator[Finding]:
        """The metrics must never be public: they tell anyone who asks the site's traffic and failures."""
        where = self.settings.metrics.host_port
        if where is None:
            return
        key = "[metrics] listen"
        host = where[0]
        if _is_loopback(host) or _is_private(host):
            network = "loopback" if _is_loopback(host) else "a private network"
            yield _ok(key, f"{self.settings.metrics.listen} ({network})")
        elif _is_ip(host):
            everywhere = ipaddress.ip_address(host).is_unspecified
            yield _warn(key, f"{self.settings.metrics.listen} is "
                             f"{'every interface, public ones included' if everywhere else 'a public address'}: "
                             "the metrics must never be public; listen on loopback or a private network address")
        else:
            yield _warn(key, f"{self.settings.metrics.listen}: {host!r} is a name, which may resolve to a public "
                             "address; the metrics must never be public: listen on a loopback or private address")

    # --- secrets ----------------------------------------------------------------------------------------

    def secrets(self) -> Iterator[Finding]:
        sandbox = self.settings.wechat.sandbox
        keys = self.settings.server.secret_keys
        for index, secret in enumerate(keys):
            key = f"[server] secret_keys[{index}]"
            value = secret.value
            bits = entropy_bits(value)
            if DEV_KEY_MARKER in value:
                if sandbox:
                    yield _ok(key, "the development key (the sandbox only)")
                else:
                    yield _error(key, "the development key; outside the sandbox set real random keys")
            elif len(value) < 32:
                yield _error(key, f"{len(value)} characters; at least 32 random ones")
            elif bits < MIN_KEY_BITS:
                yield _warn(key, f"looks weak (about {bits:.0f} bits of entropy, want {MIN_KEY_BITS}+); make one "
                                 "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
            else:
                yield _ok(key, f"{len(value)} characters, about {bits:.0f} bits")
        if len({k.value for k in keys}) != len(keys):
            yield _warn("[server] secret_keys", "the same key is listed twice")
        for found in self.settings.wechat.all_apps():
            yield from self._app_secret(found)
        forward = self.settings.wechat.mp.forward_secret.value
        if forward:
            yield self._strength("[wechat.mp] forward_secret", forward, MIN_KEY_BITS)

    def _app_secret(self, found: NamedApp) -> Iterator[Finding]:
        sandbox = self.settings.wechat.sandbox
        secret = found.app.secret.value
        if not sandbox and not APPSECRET_RE.match(secret):
            yield _warn(f"{found.table} secret", "does not look like WeChat's AppSecret (32 hex digits from the "
                                                 "console's 开发 > 基本配置)")
        push_token: Secret | None = getattr(found.app, "push_token", None)
        aes: Secret | None = getattr(found.app, "push_aes_key", None)
        if push_token is None or not push_token.value:
            return
        token_key = f"{found.table} push_token"
        dev = push_token.value.startswith(DEV_PUSH_MARKER) or bool(aes and aes.value.startswith(DEV_PUSH_MARKER))
        if dev:
            if sandbox:
                yield _ok(token_key, "the development push keys (the sandbox only)")
            else:
                yield _warn(token_key, "the development push keys: outside the sandbox this app gets no push "
                                       "endpoint; set the Token and EncodingAESKey from WeChat's console")
            return
        yield self._strength(token_key, push_token.value, 64, hint="WeChat allows 3-32 letters and digits: use 32")
        if aes is not None and not aes.value and not sandbox:
            yield _warn(f"{found.table} push_aes_key", "empty: plain mode, pushes travel unencrypted; choose safe "
                                                       "mode (安全模式) in WeChat's console and set the key here")

    @staticmethod
    def _strength(key: str, value: str, want_bits: int, hint: str = "") -> Finding:
        bits = entropy_bits(value)
        if bits < want_bits:
            return _warn(key, f"looks weak ({len(value)} characters, about {bits:.0f} bits of entropy, want "
                              f"{want_bits}+){'; ' + hint if hint else ''}")
        return _ok(key, f"{len(value)} characters, about {bits:.0f} bits")

    # --- scopes and app kinds -------------------------------------------------------------------------------

    def app_kinds(self) -> Iterator[Finding]:
        wx = self.settings.wechat
        mp = wx.mp
        if mp.follow_login:
            key = "[wechat.mp] follow_login"
            dev = mp.push_token.value.startswith(DEV_PUSH_MARKER) and not wx.sandbox
            if mp.forward_secret.value:
                yield _ok(key, "scan events arrive forwarded (forward_secret)")
            elif not mp.push_token.value or dev:
                yield _error(key, "scan to follow needs the official account's scan events: set [wechat.mp] "
                                  "push_token (its server URL) or forward_secret (forwarding)")
            else:
                yield _ok(key, "scan events arrive at the official account's push endpoint")
        yield _ok("[wechat.web] appid", "QR login (snsapi_login) needs a website application (网站应用) of the open "
                                        "platform; the official account's web login (snsapi_base/userinfo) "
                                        "uses [wechat.mp]; both under one open platform account for one unionid")

    # --- MySQL ------------------------------------------------------------------------------------------

    def query_timeout(self) -> Iterator[Finding]:
        """Silent when fine: a row lock wait ends (1205, answered 503 overloaded) before the statement timeout."""
        timeout = self.settings.mysql.query_timeout
        if not lock_waits_end_first(timeout):
            yield _warn("[mysql] query_timeout",
                        f"{timeout:g} s is under 1.5 s: MySQL's lock wait is whole seconds (at least "
                        f"{lock_wait_seconds(timeout)} s), so a statement waiting for another transaction's rows runs "
                        "into the query timeout, which opens the breaker (503 to everyone for a second) instead of "
                        "answering that one request 503 overloaded")

    async def mysql(self, *, startup: bool = False) -> list[Finding]:
        try:
            facts = await self.ops.server_facts()
        except (DatabaseUnavailable, Overloaded) as exc:
            where = f"MySQL at {self._where()} does not answer ({exc.code})"
            if startup:
                # A brief outage between the migrations and this query must not refuse the start: a MySQL down
                # at migration time lets the server start (its pages say 503), so one down a moment later must too.
                return [_warn("[mysql] host", f"{where}: its checks were skipped; the pages say 503 until it does")]
            return [_error("[mysql] host", where)]
        return list(self._mysql_facts(facts))

    def _where(self) -> str:
        m = self.settings.mysql
        return m.unix_socket or f"{m.host}:{m.port}"

    def _mysql_facts(self, facts: ServerFacts) -> Iterator[Finding]:
        key = "[mysql] host"
        numbers = tuple(int(n) for n in re.findall(r"\d+", facts.version)[:2])
        mariadb = "mariadb" in facts.version.lower()
        floor = MIN_MARIADB if mariadb else MIN_MYSQL
        name = "MariaDB" if mariadb else "MySQL"
        if len(numbers) < 2 or numbers < floor:
            yield _error(key, f"{name} {facts.version}; the app needs {name} {'.'.join(map(str, floor))} or later")
        else:
            yield _ok(key, f"{name} {facts.version}")
        db_key = "[mysql] database"
        if facts.charset != EXPECTED_CHARSET:
            yield _error(db_key, f"{self.settings.mysql.database!r} has character set {facts.charset!r}, not "
                                 f"{EXPECTED_CHARSET!r} (nicknames with emoji would not fit): "
                                 f"ALTER DATABASE ... CHARACTER SET {EXPECTED_CHARSET} COLLATE {EXPECTED_COLLATION}")
        elif facts.collation != EXPECTED_COLLATION:
            yield _warn(db_key, f"default collation {facts.collation!r}; the app's tables use {EXPECTED_COLLATION} "
                                "(set by the migrations), tables added by hand would not")
        else:
            yield _ok(db_key, f"{facts.charset}, {facts.collation}")
        modes = set(facts.sql_mode.split(","))
        missing = [mode for mode in REQUIRED_SQL_MODES if mode not in modes]
        if missing:
            yield _error("[mysql] user", f"the connections' sql_mode lacks {', '.join(missing)} (MySQL did not "
                                         f"take the app's setting): {facts.sql_mode!r}")
        else:
            yield _ok("[mysql] user", f"sql_mode {facts.sql_mode}")
        skew = facts.clock_skew
        clock = f"MySQL's clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} this machine's"
        if abs(skew) > CLOCK_ERROR:
            yield _error(key, f"{clock}: states, scenes and tokens would expire early or late; run NTP on both")
        elif abs(skew) > CLOCK_WARNING:
            yield _warn(key, f"{clock}; run NTP (chrony, systemd-timesyncd) on both machines")
        else:
            yield _ok(key, f"clocks agree ({abs(skew):.1f} s apart)")

    # --- WeChat: do the appid and secret work? -----------------------------------------------------------------

    async def app_works(self, found: NamedApp) -> Finding:
        key = f"{found.table} secret"
        try:
            if found.kind in ("mp", "miniprogram"):
                await self.wechat.stable_token(found.app)
                return _ok(key, f"WeChat accepts appid {found.app.appid} and its secret (stable_token)")
            # 40029 (CodeInvalid): appid and secret were accepted, only the (deliberately invalid) code was not.
            with contextlib.suppress(CodeInvalid):
                await self.wechat.exchange_code(found.app, PROBE_CODE)
            return await self._no_app_token(found, key)
        except WeChatMisconfigured as exc:
            return _error(self._misconfigured_key(found, exc), f"WeChat refuses it: {describe_errcode(exc)}")
        except WeChatUnavailable as exc:
            hint = "; start the server (make run) and check again" if self.settings.wechat.sandbox else ""
            return _warn(key, f"not verified: WeChat at {self.settings.wechat.api_base} is not reachable "
                              f"({exc.code}){hint}")
        except WeChatError as exc:
            return _warn(key, f"not verified: WeChat answered {describe_errcode(exc)}")

    @staticmethod
    def _misconfigured_key(found: NamedApp, exc: WeChatError) -> str:
        return f"{found.table} appid" if exc.errcode == 40013 else f"{found.table} secret"

    async def _no_app_token(self, found: NamedApp, key: str) -> Finding:
        """A website or mobile application has no app token: one that gets one is another kind of app."""
        try:
            await self.wechat.stable_token(found.app)
        except WeChatError:
            return _ok(key, f"WeChat accepts appid {found.app.appid} and its secret (code exchange)")
        scope = "snsapi_login" if found.kind == "web" else "the mobile app's snsapi_userinfo"
        return _error(f"{found.table} appid", f"{found.app.appid} is an official account's or a mini-program's "
                                              f"(it gets an app token): {scope} needs a "
                                              f"{'website' if found.kind == 'web' else 'mobile'} application's appid "
                                              "from the open platform (open.weixin.qq.com)")
