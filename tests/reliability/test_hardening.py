"""Hardening, proven on the server process: headers, rate limits behind proxies, one salt per purpose,
key rotation across restarts, logs without secrets, /healthz, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal

import httpx
import pytest

from harness.figures import FIGURES
from harness.mariadb import app_database
from harness.serverproc import KEY_1, KEY_2, SECRET_MARKER
from harness.web import counted_client, session_set, start_web_login, web_callback
from wxlogin.signing import Signing


def ok_code(person: str) -> str:
    return f"ok.{person}{secrets.token_hex(3)}.{secrets.token_hex(4)}"


async def _web_login(client: httpx.AsyncClient, base: str, person: str) -> httpx.Response:
    state = await start_web_login(client, base)
    response = await web_callback(client, base, ok_code(person), state)
    assert response.status_code == 302 and session_set(response), response.text[:300]
    return response


async def _api_login(client: httpx.AsyncClient, base: str, person: str) -> dict:
    response = await client.post(f"{base}/api/miniprogram/login", json={"code": ok_code(person)})
    assert response.status_code == 200, response.text
    return response.json()


# ---- headers ------------------------------------------------------------------------------------------

async def test_pages_carry_the_browser_security_headers(wx_server, fake_wechat):
    async with counted_client() as client:
        pages = [await client.get(f"{wx_server.url}{path}") for path in ("/", "/login", "/auth/wechat/web",
                                                                          "/auth/wechat/callback/web?state=x")]
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert f"frame-src {fake_wechat.url}" in csp, "the WeChat QR iframe from open_base must stay allowed"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] in ("same-origin", "no-referrer")
        assert page.headers["x-frame-options"] == "DENY"
        assert "server" not in page.headers


async def test_no_store_wherever_a_session_or_token_is_handed_out(wx_server):
    async with counted_client() as client:
        web = await _web_login(client, wx_server.url, "nostore")
        api = await client.post(f"{wx_server.url}/api/app/login", json={"code": ok_code("nostore")})
        me = await client.get(f"{wx_server.url}/api/me", headers={"Authorization": f"Bearer {api.json()['token']}"})
    for response in (web, api, me):
        assert "no-store" in response.headers["cache-control"]
    assert web.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in api.headers, "the API sets no cookies"


async def test_official_bases_are_not_assumed_and_the_stand_in_is_announced(wx_server, fake_wechat):
    log = wx_server.log()
    assert "WeChat bases are NOT the official ones" in log and fake_wechat.url in log


# ---- rate limits ----------------------------------------------------------------------------------------

async def test_login_rate_limit_per_forwarded_ip_only_behind_a_trusted_proxy(make_server):
    limits = {"enabled": True, "login_per_minute": 5, "decrypt_per_minute": 3}
    trusted = await make_server({"ratelimit": {**limits, "trusted_proxies": ["127.0.0.1"]}}).start()
    untrusted = await make_server({"ratelimit": {**limits, "trusted_proxies": []}}).start()
    try:
        async with counted_client() as client:
            async def burst(server, ip_for) -> list[int]:
                out = []
                for i in range(8):
                    r = await client.post(f"{server.url}/api/app/login", json={"code": ok_code("rl")},
                                          headers={"X-Forwarded-For": ip_for(i)})
                    out.append(r.status_code)
                    if r.status_code == 429:
                        assert int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "rate_limited"
                return out

            same = await burst(trusted, lambda i: "203.0.113.7")
            spread = await burst(trusted, lambda i: f"198.51.100.{i}")
            hops = await burst(trusted, lambda i: f"10.9.9.9, 192.0.2.{i}")
            spoofed = await burst(untrusted, lambda i: f"198.51.100.{i}")
    finally:
        await trusted.stop()
        await untrusted.stop()
    assert same == [200] * 5 + [429] * 3, "one client IP gets its budget, then 429"
    assert spread == [200] * 8, "behind the trusted proxy each forwarded IP has its own budget"
    assert hops == [200] * 8, "the hop our proxy appended (the last) is the client, not the first one"
    assert spoofed == [200] * 5 + [429] * 3, "X-Forwarded-For from an untrusted peer does not reset the counter"


async def test_decrypt_rate_limit_is_per_token(make_server):
    server = await make_server({"ratelimit": {"enabled": True, "login_per_minute": 50,
                                              "decrypt_per_minute": 4}}).start()
    try:
        async with counted_client() as client:
            first = (await _api_login(client, server.url, "dec1"))["token"]
            second = (await _api_login(client, server.url, "dec2"))["token"]
            bad = {"encryptedData": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}

            async def probe(token: str) -> int:
                r = await client.post(f"{server.url}/api/miniprogram/profile", json=bad,
                                      headers={"Authorization": f"Bearer {token}"})
                return r.status_code

            statuses = [await probe(first) for _ in range(7)]
            other = await probe(second)
    finally:
        await server.stop()
    assert statuses == [400] * 4 + [429] * 3
    assert other == 400, "another token is not limited by the first one's probing"


# ---- one salt per purpose ---------------------------------------------------------------------------

async def test_every_token_type_is_refused_in_every_other_slot(wx_server):
    async with counted_client() as client:
        web = await _web_login(client, wx_server.url, "salts")
        session = web.cookies["wxsid"]
        token = (await _api_login(client, wx_server.url, "salts"))["token"]
        await client.get(f"{wx_server.url}/login")
        xsrf = client.cookies.get("_xsrf")
    async with counted_client() as fresh:
        state = await start_web_login(fresh, wx_server.url)
        binding = fresh.cookies.get("wxstate")
    artefacts = {"session": session, "token": token, "state": state, "xsrf": xsrf, "binding": binding}
    tried = 0
    async with counted_client() as client:
        for name, value in artefacts.items():
            if name != "token":  # as a bearer token
                r = await client.get(f"{wx_server.url}/api/me", headers={"Authorization": f"Bearer {value}"})
                assert r.status_code == 401, name
                tried += 1
            if name != "session":  # as the session cookie
                r = await client.get(f"{wx_server.url}/account", headers={"Cookie": f"wxsid={value}"})
                assert r.status_code == 302, name
                tried += 1
            if name != "state":  # as the OAuth state, with this browser's own binding
                own = await start_web_login(client, wx_server.url)
                r = await client.get(f"{wx_server.url}/auth/wechat/callback/web",
                                     params={"code": ok_code("salt"), "state": value})
                assert r.status_code == 400 and not session_set(r), name
                assert own != value
                tried += 1
            if name != "xsrf":  # as the XSRF token of a signed-in browser's logout
                r = await client.post(f"{wx_server.url}/logout", data={"_xsrf": value},
                                      headers={"Cookie": f"wxsid={session}; _xsrf={xsrf}"})
                assert r.status_code == 403, name
                tried += 1
    FIGURES.bad_inputs_tried += tried
    assert tried == 16


# ---- key rotation across restarts ---------------------------------------------------------------------

async def test_key_rotation_across_restarts(make_server):
    """[K1] issues; [K1, K2] accepts K1's and signs with K2; [K2] alone refuses what only K1 signed."""
    phase1 = await make_server({"server": {"secret_keys": [KEY_1]}}).start()
    port = phase1.settings["server"]["port"]
    async with counted_client() as client:
        session1 = (await _web_login(client, phase1.url, "rot")).cookies["wxsid"]
        token1 = (await _api_login(client, phase1.url, "rot"))["token"]
        state_client = counted_client()
        state1 = await start_web_login(state_client, phase1.url)
    await phase1.stop()

    def same_port(keys):
        return make_server({"server": {"secret_keys": keys, "port": port, "public_url": phase1.url}})

    async def accepted(base, session, token) -> tuple[bool, bool]:
        async with counted_client() as c:
            page = await c.get(f"{base}/account", headers={"Cookie": f"wxsid={session}"})
            me = await c.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code in (200, 302) and me.status_code in (200, 401)
        return page.status_code == 200, me.status_code == 200

    phase2 = await same_port([KEY_1, KEY_2]).start()
    try:
        assert await accepted(phase2.url, session1, token1) == (True, True)
        done = await web_callback(state_client, phase2.url, ok_code("rot"), state1)
        assert done.status_code == 302 and session_set(done), "a login started under K1 finishes under [K1, K2]"
        async with counted_client() as client:
            token2 = (await _api_login(client, phase2.url, "rot2"))["token"]
            session2 = (await _web_login(client, phase2.url, "rot2")).cookies["wxsid"]
        assert Signing([KEY_2]).load_api_token(token2, 3600) is not None, "new tokens are signed with the newest key"
        assert Signing([KEY_2]).load_session(session2, 3600) is not None
    finally:
        await phase2.stop()

    phase3 = await same_port([KEY_2]).start()
    try:
        assert await accepted(phase3.url, session1, token1) == (False, False)
        assert await accepted(phase3.url, session2, token2) == (True, True)
        # A state signed with the removed key, with its matching binding cookie: refused all the same.
        state_k1, binding = Signing([KEY_1]).make_state("web", "/")
        async with counted_client(cookies={"wxstate": binding}) as client:
            r = await web_callback(client, phase3.url, ok_code("rot3"), state_k1)
        assert r.status_code == 400 and not session_set(r), "a state signed only with the removed key is refused"
    finally:
        await phase3.stop()
        await state_client.aclose()
    assert "Traceback" not in phase3.log()


# ---- logs ---------------------------------------------------------------------------------------------

async def test_logs_hold_no_secret_code_or_token_and_cannot_be_split(wx_server):
    injected = "abc\r\nFAKE login ok user=1"
    async with counted_client() as client:
        web = await _web_login(client, wx_server.url, "logs")
        session = web.cookies["wxsid"]
        api = await _api_login(client, wx_server.url, "logs")
        code = ok_code("logs")
        await client.post(f"{wx_server.url}/api/miniprogram/login", json={"code": code})
        await client.get(f"{wx_server.url}/api/me", headers={"Authorization": f"Bearer {api['token']}"})
        await client.get(f"{wx_server.url}/auth/wechat/callback/web", params={"code": injected, "state": "x"})
        await client.post(f"{wx_server.url}/api/app/login", json={"code": injected})
    log = wx_server.log()
    for secret in (SECRET_MARKER, "SKMARK", "U0tNQVJL", KEY_1, KEY_2, session, api["token"], code,
                   session.split(".")[-1], api["token"].split(".")[-1]):
        assert secret not in log, f"{secret[:12]}... appears in the log"
    assert not re.search(r"^FAKE", log, re.MULTILINE), "CR/LF in an input split a log line"
    assert "login ok" in log or "login success" in log or "success" in log


# ---- health and shutdown ------------------------------------------------------------------------------

async def test_healthz_reports_the_database(wx_server, make_server):
    async with counted_client() as client:
        up = await client.get(f"{wx_server.url}/healthz")
    assert up.status_code == 200 and up.json() == {"status": "ok", "database": "ok"}
    nowhere = await make_server({"mysql": {"port": 9, "connect_timeout": 0.5}}).start()
    try:
        async with counted_client() as client:
            down = await client.get(f"{nowhere.url}/healthz")
    finally:
        await nowhere.stop()
    assert down.status_code == 503 and down.json()["database"] == "unavailable"


async def test_sigterm_lets_in_flight_requests_finish_then_exits(make_server, fake_wechat):
    server = await make_server({"wechat": {"timeout": 4.0}}).start()
    fake_wechat.slow_seconds = 1.0  # "slow" now means a slow success, well inside the timeout
    try:
        async with counted_client() as client:
            state = await start_web_login(client, server.url)
            in_flight = asyncio.create_task(web_callback(client, server.url, f"slow.term.{secrets.token_hex(3)}",
                                                         state))
            await asyncio.sleep(0.4)
            server.signal(signal.SIGTERM)
            response = await in_flight
            code = await server.wait(15)
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{server.url}/healthz")
    finally:
        fake_wechat.slow_seconds = 3.0
        await server.stop()
    assert response.status_code == 302 and session_set(response), "the in-flight login finished"
    assert code == 0
    log = server.log()
    assert "shutting down" in log and log.rstrip().endswith("stopped")


async def test_api_sends_no_cors_headers(wx_server):
    async with counted_client() as client:
        preflight = await client.options(f"{wx_server.url}/api/me", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        read = await client.get(f"{wx_server.url}/api/me", headers={"Origin": "https://evil.example"})
    for response in (preflight, read):
        assert "access-control-allow-origin" not in response.headers
        assert response.status_code in (401, 405)


async def test_identity_columns_compare_exactly_and_sql_mode_is_strict(rel_sql, private_db):
    """oAbC and oabc are two people: every id column uses a binary collation; strict mode is on."""
    rows = await rel_sql(
        "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME IN ('openid', 'unionid', 'appid')")
    assert rows and all(collation.endswith("_bin") for *_, collation in rows), rows
    db = app_database(private_db)
    try:
        async def mode(cur):
            await cur.execute("SELECT @@SESSION.sql_mode")
            (sql_mode,) = await cur.fetchone()
            await cur.execute("SHOW SESSION VARIABLES WHERE Variable_name IN ('tx_isolation', 'transaction_isolation')")
            return sql_mode, (await cur.fetchone())[1]
        sql_mode, isolation = await db.run(mode)
    finally:
        await db.close()
    assert "STRICT_TRANS_TABLES" in sql_mode and isolation == "READ-COMMITTED"
