"""The configuration check (issue 16): each misconfiguration it lists is caught, against the real MariaDB and
the sandbox over HTTP as WeChat (the in-process site's /_sandbox, whose apps are the test settings' apps).

One test per finding; the CLI (``server.py --check``: exit codes, one line per finding) and the start-up refusal
run server.py in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from typing import Any

import aiomysql
import pytest

from conftest import ROOT, TEST_DATABASE, base_config, merge
from harness.mariadb import free_port
from harness.serverproc import to_toml
from server import check_config
from wxlogin.config import Settings, settings_from_mapping
from wxlogin.errors import WeChatError, WeChatMisconfigured
from wxlogin.services.configcheck import ConfigCheck, Finding, Level, entropy_bits
from wxlogin.store.ops import ServerFacts

STRONG = secrets.token_urlsafe(32)
PUSH_TOKEN = secrets.token_hex(16)  # WeChat's Token: letters and digits, at most 32


def sandbox_settings(server: Any, overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None
                     ) -> Settings:
    """The test settings with the running test site as WeChat (its sandbox knows these apps and secrets)."""
    port = int(server.url.rsplit(":", 1)[1])
    data = merge(base_config(), {"server": {"public_url": server.url, "port": port}})
    return settings_from_mapping(merge(data, overrides or {}), env=env or {})


def production_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Outside the sandbox (checked without calling WeChat): real-looking keys, no development push keys."""
    return settings_from_mapping(production_data(overrides), env={})


def production_data(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    data = merge(base_config(), {
        "server": {"public_url": "https://login.example.com", "secret_keys": [STRONG]},
        "wechat": {"sandbox": False,
                   "web": {"secret": secrets.token_hex(16)}, "app": {"secret": secrets.token_hex(16)},
                   "mp": {"secret": secrets.token_hex(16), "push_token": PUSH_TOKEN, "push_aes_key": "A" * 43},
                   "miniprogram": {"secret": secrets.token_hex(16), "push_token": "", "push_aes_key": ""}},
    })
    return merge(data, overrides or {})


def about(findings: list[Finding], key: str, level: Level | None = None) -> list[Finding]:
    return [f for f in findings if f.key == key and (level is None or f.level is level)]


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level is Level.ERROR]


async def offline(settings: Settings, mysql: bool = True) -> list[Finding]:
    return await check_config(settings, wechat=False, mysql=mysql)


# --- WeChat: appid and secret ---------------------------------------------------------------------------------


async def test_a_working_configuration_has_no_error(server):
    findings = await check_config(sandbox_settings(server), wechat=True)
    assert errors(findings) == [], [f.line() for f in errors(findings)]
    for table in ("[wechat.web]", "[wechat.mp]", "[wechat.app]", "[wechat.miniprogram]"):
        [found] = about(findings, f"{table} secret")
        assert found.level is Level.OK and "WeChat accepts" in found.message


async def test_a_wrong_secret_of_an_official_account_is_errcode_40125(server):
    findings = await check_config(sandbox_settings(server, {"wechat": {"mp": {"secret": "not-the-secret"}}}),
                                  wechat=True)
    [found] = errors(findings)
    assert found.key == "[wechat.mp] secret" and "40125" in found.message
    assert "not-the-secret" not in found.line()  # a secret never appears in what the check prints
    # WeChat's errmsg ("invalid appsecret rid: …") is not printed: a fixed description and the rid are.
    assert "(invalid appsecret; rid " in found.message and "rid: " not in found.message


class Refusing:
    """A client whose WeChat refuses with an errmsg echoing what was sent (real WeChat's hints can): the
    sandbox never echoes, so this shape of answer is played here, below the HTTP layer."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def stable_token(self, app: Any) -> None:
        raise self.exc

    async def exchange_code(self, app: Any, code: str) -> None:
        raise self.exc


ECHO = "invalid appsecret, hints: [secret=SENT-SECRET-123] rid: 6566-aa"


@pytest.mark.parametrize("exc, level, expected", [
    (WeChatMisconfigured(errcode=40125, errmsg=ECHO, rid="6566-aa"), Level.ERROR,
     "WeChat refuses it: errcode 40125 (invalid appsecret; rid 6566-aa)"),
    (WeChatMisconfigured(errcode=40164, errmsg="invalid ip 198.51.100.4, not in whitelist rid: 77", rid="77"),
     Level.ERROR, "WeChat refuses it: errcode 40164 (this machine's IP address is not on the app's IP whitelist"),
    (WeChatError(errcode=61999, errmsg="unknown: echo SENT-SECRET-123", rid=""), Level.WARNING,
     "not verified: WeChat answered errcode 61999"),
])
async def test_the_check_prints_errcode_description_and_rid_never_errmsg(exc, level, expected):
    check = ConfigCheck(production_settings(), None, Refusing(exc))  # type: ignore[arg-type]  # no MySQL here
    findings = [await check.app_works(found) for found in check.settings.wechat.all_apps()]
    assert {f.level for f in findings} == {level}
    for found in findings:
        assert found.message.startswith(expected), found.line()
        assert exc.errmsg not in found.line() and "SENT-SECRET" not in found.line() and "hints" not in found.line()


async def test_a_wrong_secret_of_a_website_app_is_errcode_40125(server):
    findings = await check_config(sandbox_settings(server, {"wechat": {"web": {"secret": "wrong"}}}), wechat=True)
    [found] = errors(findings)
    assert found.key == "[wechat.web] secret" and "40125" in found.message


async def test_an_unknown_appid_is_errcode_40013(server):
    unknown = {"wechat": {"miniprogram": {"appid": "wx00000000000000ff"}}}
    findings = await check_config(sandbox_settings(server, unknown), wechat=True)
    [found] = errors(findings)
    assert found.key == "[wechat.miniprogram] appid" and "40013" in found.message


async def test_an_official_accounts_appid_in_the_website_table_is_the_wrong_kind(server):
    wx = server.settings.wechat
    swapped = {"wechat": {"web": {"appid": wx.mp.appid, "secret": wx.mp.secret.value},
                          "mp": {"appid": "wx00000000000000fe"}}}
    findings = await check_config(sandbox_settings(server, swapped), wechat=True)
    [web] = about(findings, "[wechat.web] appid", Level.ERROR)
    assert "official account" in web.message and "snsapi_login" in web.message


async def test_wechat_unreachable_is_a_warning_not_an_error(test_db, server):
    port = free_port()  # nothing listens there: the sandbox of a site that is not running
    data = merge(base_config(), {"server": {"public_url": f"http://127.0.0.1:{port}", "port": port},
                                 "wechat": {"timeout": 1.0, "connect_timeout": 0.5}})
    findings = await check_config(settings_from_mapping(data, env={}), wechat=True)
    assert errors(findings) == []
    unverified = [f for f in findings if "not verified" in f.message]
    assert len(unverified) == 4 and all(f.level is Level.WARNING for f in unverified)
    assert "make run" in unverified[0].message


# --- [server] public_url --------------------------------------------------------------------------------------


async def test_public_url_over_http_outside_the_sandbox_is_an_error(test_db):
    findings = await offline(production_settings({"server": {"public_url": "http://login.example.com"}}))
    [found] = errors(findings)
    assert found.key == "[server] public_url" and "https" in found.message


async def test_public_url_over_http_on_loopback_outside_the_sandbox_is_a_warning(test_db):
    findings = await offline(production_settings({"server": {"public_url": "http://127.0.0.1:8080"}}))
    assert errors(findings) == []
    assert about(findings, "[server] public_url", Level.WARNING)


@pytest.mark.parametrize("url", ["http://10.20.30.1:8080", "http://172.16.5.9", "http://192.168.1.20:8000",
                                 "http://[fd00::1]:8080", "http://169.254.10.1"])
async def test_public_url_over_http_on_a_private_address_is_a_warning(test_db, url):
    findings = await offline(production_settings({"server": {"public_url": url}}), mysql=False)
    assert errors(findings) == [], [f.line() for f in errors(findings)]
    assert any("test networks only" in f.message for f in about(findings, "[server] public_url", Level.WARNING))


@pytest.mark.parametrize("url", ["http://8.8.8.8:8080", "http://172.32.0.1", "http://0.0.0.0:8080",
                                 "http://203.0.113.7", "http://[2001:db8::1]", "http://10.example.com",
                                 "http://intranet"])
async def test_public_url_over_http_on_a_public_address_or_any_name_is_an_error(test_db, url):
    findings = await offline(production_settings({"server": {"public_url": url}}), mysql=False)
    [found] = errors(findings)
    assert found.key == "[server] public_url" and "is not https" in found.message


async def test_the_redirect_domain_is_printed_exactly(test_db):
    findings = await offline(production_settings({"server": {"public_url": "https://login.example.com"}}))
    domain = [f for f in about(findings, "[server] public_url") if "redirect domain" in f.message]
    assert [f.message.rsplit(": ", 1)[1] for f in domain] == ["login.example.com"]  # no scheme, path or port
    assert errors(findings) == []


async def test_a_port_or_an_ip_address_in_public_url_is_a_warning(test_db):
    findings = await offline(production_settings({"server": {"public_url": "https://203.0.113.7:8443"}}))
    warnings = [f.message for f in about(findings, "[server] public_url", Level.WARNING)]
    assert any("port 8443" in m for m in warnings) and any("IP address" in m for m in warnings)
    domain = next(f.message for f in findings if "redirect domain" in f.message)
    assert domain.endswith(": 203.0.113.7")


# --- [metrics] listen -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:9108", "[::]:9108", "8.8.8.8:9108", "[2001:4860::8888]:9108",
                                    "metrics.example.com:9108"])
async def test_metrics_on_a_public_address_or_every_interface_is_a_warning(test_db, listen):
    findings = await offline(production_settings({"metrics": {"listen": listen}}), mysql=False)
    [found] = about(findings, "[metrics] listen")
    assert found.level is Level.WARNING and "never be public" in found.message


@pytest.mark.parametrize("listen", ["127.0.0.1:9108", "[::1]:9108", "localhost:9108", "10.1.2.3:9108",
                                    "192.168.0.5:9108", "[fd12::5]:9108"])
async def test_metrics_on_loopback_or_a_private_address_is_ok(test_db, listen):
    findings = await offline(production_settings({"metrics": {"listen": listen}}), mysql=False)
    assert [f.level for f in about(findings, "[metrics] listen")] == [Level.OK]


# --- secrets -------------------------------------------------------------------------------------------------


async def test_a_weak_signing_key_is_a_warning(test_db):
    findings = await offline(production_settings({"server": {"secret_keys": ["ab" * 20]}}))
    [found] = about(findings, "[server] secret_keys[0]")
    assert found.level is Level.WARNING and "weak" in found.message
    strong = about(await offline(production_settings()), "[server] secret_keys[0]")
    assert [f.level for f in strong] == [Level.OK]


async def test_a_query_timeout_too_short_for_a_lock_wait_is_a_warning(test_db):
    """MySQL's lock wait is whole seconds, at least 1: under 1.5 s of query_timeout it cannot end first."""
    [found] = about(await offline(production_settings({"mysql": {"query_timeout": 1.0}}), mysql=False),
                    "[mysql] query_timeout")
    assert found.level is Level.WARNING and "overloaded" in found.message
    assert about(await offline(production_settings(), mysql=False), "[mysql] query_timeout") == []


async def test_a_weak_push_token_and_forward_secret_are_warnings(test_db):
    findings = await offline(production_settings({"wechat": {"mp": {"push_token": "abc",
                                                                    "forward_secret": "x" * 40}}}))
    assert about(findings, "[wechat.mp] push_token", Level.WARNING)
    assert about(findings, "[wechat.mp] forward_secret", Level.WARNING)


async def test_development_push_keys_outside_the_sandbox_are_a_warning(test_db):
    dev = base_config()["wechat"]["mp"]
    findings = await offline(production_settings({"wechat": {"desktop_methods": ["qr"],
                                                             "mp": {"push_token": dev["push_token"],
                                                                    "push_aes_key": dev["push_aes_key"],
                                                                    "follow_login": False}}}))
    [found] = about(findings, "[wechat.mp] push_token", Level.WARNING)
    assert "development" in found.message


async def test_an_app_secret_unlike_wechats_is_a_warning(test_db):
    findings = await offline(production_settings({"wechat": {"app": {"secret": "my-app-secret"}}}))
    [found] = about(findings, "[wechat.app] secret")
    assert found.level is Level.WARNING and "32 hex" in found.message


async def test_plain_mode_pushes_outside_the_sandbox_are_a_warning(test_db):
    findings = await offline(production_settings({"wechat": {"mp": {"push_aes_key": ""}}}))
    assert about(findings, "[wechat.mp] push_aes_key", Level.WARNING)


def test_entropy_estimate_tells_random_from_repeated():
    assert entropy_bits(secrets.token_urlsafe(32)) > 128
    assert entropy_bits("0" * 64) == 0
    assert entropy_bits("changeme" * 5) < 128


# --- scopes and app kinds -------------------------------------------------------------------------------------


async def test_scan_to_follow_without_scan_events_is_an_error(test_db):
    findings = await offline(production_settings({"wechat": {"mp": {"push_token": "", "push_aes_key": ""}}}))
    [found] = errors(findings)
    assert found.key == "[wechat.mp] follow_login" and "push_token" in found.message
    forwarded = await offline(production_settings({"wechat": {"mp": {"push_token": "", "push_aes_key": "",
                                                                     "forward_secret": STRONG}}}))
    assert errors(forwarded) == []


# --- MySQL -------------------------------------------------------------------------------------------------


async def test_mysql_facts_of_the_test_database_are_fine(test_db):
    findings = await offline(production_settings())
    for key in ("[mysql] host", "[mysql] database", "[mysql] user"):
        assert about(findings, key) and not about(findings, key, Level.ERROR), key
    assert any("clocks agree" in f.message for f in findings)


@pytest.fixture
async def other_database(test_db):
    """A database of this test's own with another charset or collation (dropped afterwards)."""
    name = f"{TEST_DATABASE}_charset"
    mysql = test_db.mysql
    conn = await aiomysql.connect(host=mysql.host, port=mysql.port, user=mysql.user, password=mysql.password.value)

    async def drop() -> None:
        async with conn.cursor() as cur:
            # Asked first: DROP DATABASE IF EXISTS of a missing one leaves a note aiomysql turns into a warning.
            if await cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)):
                await cur.execute(f"DROP DATABASE `{name}`")

    async def make(charset: str, collation: str) -> str:
        await drop()
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET {charset} COLLATE {collation}")
        return name

    yield make
    await drop()
    conn.close()


async def test_a_database_in_latin1_is_an_error(other_database):
    name = await other_database("latin1", "latin1_swedish_ci")
    findings = await offline(production_settings({"mysql": {"database": name}}))
    [found] = errors(findings)
    assert found.key == "[mysql] database" and "latin1" in found.message


async def test_a_database_with_another_collation_is_a_warning(other_database):
    name = await other_database("utf8mb4", "utf8mb4_general_ci")
    findings = await offline(production_settings({"mysql": {"database": name}}))
    assert errors(findings) == []
    [found] = about(findings, "[mysql] database")
    assert found.level is Level.WARNING and "utf8mb4_general_ci" in found.message


async def test_mysql_not_answering_is_an_error(test_db):
    findings = await offline(production_settings({"mysql": {"port": free_port(), "connect_timeout": 1.0}}))
    [found] = errors(findings)
    assert found.key == "[mysql] host" and "does not answer" in found.message


async def test_mysql_not_answering_at_start_up_is_a_warning(test_db):
    # MySQL answered the migrations, then stopped (a brief outage): the start must not be refused for it, as a
    # MySQL down at migration time does not refuse it either.
    settings = production_settings({"mysql": {"port": free_port(), "connect_timeout": 1.0}})
    findings = await check_config(settings, wechat=False, mysql=True, startup=True)
    assert errors(findings) == [], [f.line() for f in errors(findings)]
    [found] = about(findings, "[mysql] host", Level.WARNING)
    assert "does not answer" in found.message


async def test_the_server_starts_when_mysql_stops_answering_after_the_migrations(test_db, tmp_path):
    """server.py itself: MySQL (through a proxy that lets only the first connection through, the migrations')
    answers the migrations, then no more. The start-up check warns and the server serves (its pages say 503)."""
    mysql = test_db.mysql
    connections = 0

    async def first_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections > 1:
            writer.close()  # MySQL stopped answering
            return
        up_reader, up_writer = await asyncio.open_connection(mysql.host, mysql.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(first_only, "127.0.0.1", 0)
    port = free_port()
    data = production_data({"server": {"public_url": f"http://127.0.0.1:{port}", "port": port, "processes": 1},
                            "mysql": {"host": "127.0.0.1", "port": proxy.sockets[0].getsockname()[1],
                                      "connect_timeout": 1.0}})
    config = tmp_path / "settings.toml"
    config.write_text(to_toml(data))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WXLOGIN_")}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "server.py"), "--config", str(config),
                                                cwd=ROOT, env=clean, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(120):
            while line := (await proc.stderr.readline()).decode():
                seen.append(line)
                if "sign in at" in line:  # announce(): the server got past the check and serves
                    break
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        proxy.close()
    text = "".join(seen)
    assert "configuration error" not in text, text
    assert "[mysql] host: MySQL at" in text and "does not answer" in text, text
    assert any("sign in at" in line for line in seen), text


GOOD_FACTS = ServerFacts(version="10.11.6-MariaDB", charset="utf8mb4", collation="utf8mb4_unicode_ci",
                         sql_mode="STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO",
                         clock_skew=0.2)


def facts_findings(**changes: Any) -> list[Finding]:
    """The verdicts on facts MariaDB cannot be made to show here (an old version, a refused sql_mode, a clock
    off by minutes); the facts themselves are read from the real server in the tests above."""
    from dataclasses import replace

    check = ConfigCheck(production_settings(), None, None)  # type: ignore[arg-type]  # no I/O below
    return list(check._mysql_facts(replace(GOOD_FACTS, **changes)))


def test_an_old_mysql_is_an_error():
    assert [f.key for f in errors(facts_findings(version="10.3.39-MariaDB"))] == ["[mysql] host"]
    assert [f.key for f in errors(facts_findings(version="5.7.44-log"))] == ["[mysql] host"]
    assert errors(facts_findings(version="8.0.36")) == []


def test_a_sql_mode_without_strict_tables_is_an_error():
    [found] = errors(facts_findings(sql_mode="NO_ENGINE_SUBSTITUTION"))
    assert found.key == "[mysql] user" and "STRICT_TRANS_TABLES" in found.message


def test_a_clock_off_by_seconds_warns_and_by_minutes_refuses():
    [warned] = [f for f in facts_findings(clock_skew=-12.0) if f.level is Level.WARNING]
    assert "12.0 s behind" in warned.message
    [refused] = errors(facts_findings(clock_skew=900.0))
    assert refused.key == "[mysql] host" and "ahead" in refused.message


# --- the push endpoints' URLs -----------------------------------------------------------------------------------


async def test_push_urls_come_from_the_routes(test_db):
    named = {"wechat": {"more": {"mp": {"news": {"appid": "wxa0b1c2d3e4f50012", "secret": secrets.token_hex(16),
                                                  "push_token": "NewsToken" + "x" * 20}}},
                        "mp": {"forward_secret": STRONG}}}
    findings = await offline(production_settings(named), mysql=False)
    urls = {f.key: f.message.rsplit(" ", 1)[1] for f in findings if "server URL" in f.message}
    assert urls == {
        "[wechat.mp] push_token": "https://login.example.com/wechat/push/mp",
        "[wechat.more.mp.news] push_token": "https://login.example.com/wechat/push/mp/news",
        "[wechat.mp] forward_secret": "https://login.example.com/wechat/forward/mp",
    }  # the mini-program has no push token in these settings: no URL


# --- the command line and the start-up --------------------------------------------------------------------------


async def run_server_py(tmp_path, data: dict[str, Any], *args: str, env: dict[str, str] | None = None
                        ) -> tuple[int, str, str]:
    config = tmp_path / "settings.toml"
    config.write_text(to_toml(data))
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("WXLOGIN_")}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "server.py"), "--config", str(config),
                                                *args, cwd=ROOT, env={**clean, **(env or {})},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cli_data(server: Any) -> dict[str, Any]:
    port = int(server.url.rsplit(":", 1)[1])
    return merge(base_config(), {"server": {"public_url": server.url, "port": port}})


async def test_check_on_the_command_line_exits_zero_when_all_is_well(server, tmp_path):
    code, out, _ = await run_server_py(tmp_path, cli_data(server), "--check")
    assert code == 0, out
    assert out.strip().endswith("0 error(s), 0 warning(s)")
    assert f"ok       [wechat.mp] push_token: server URL to paste into WeChat's console: {server.url}/wechat/push/mp" \
        in out.splitlines()


async def test_check_on_the_command_line_exits_non_zero_on_an_error(server, tmp_path):
    code, out, _ = await run_server_py(tmp_path, cli_data(server), "--check",
                                       env={"WXLOGIN_WECHAT_MINIPROGRAM_SECRET": "wrong-secret"})
    assert code == 1, out
    [line] = [line for line in out.splitlines() if line.startswith("error")]
    assert line.startswith("error    [wechat.miniprogram] secret: WeChat refuses it: errcode 40125")


async def test_the_server_refuses_to_start_on_an_error_naming_the_key(test_db, tmp_path):
    port = free_port()
    data = merge(base_config(), {"server": {"public_url": f"http://127.0.0.1:{port}", "port": port},
                                 "wechat": {"mp": {"push_token": "", "push_aes_key": ""}}})
    code, _, err = await run_server_py(tmp_path, data)
    assert code == 2
    [line] = err.strip().splitlines()[-1:]
    assert line.startswith("wxlogin: configuration error: [wechat.mp] follow_login: ")
