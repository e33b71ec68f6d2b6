"""Floods: one client hammering the browser callback, behind proxies we trust and proxies we do not, across
worker processes and behind nginx. The budget is per real client and shared by every process (MySQL).

A state costs the site nothing to mint (the login page embeds one), so the attack is: collect states,
then send a junk code with each. Without a limit every one of them reaches WeChat and writes an audit row.
"""

from __future__ import annotations

import asyncio
import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

from harness import nginx, scale
from harness.fakewechat import FakeWeChat
from harness.mariadb import free_port
from harness.web import assert_clean_body, counted_client, error_code, session_set

LIMIT = 5  # callbacks per minute per client in these tests: a burst of 5, then one every 12 s
LIMITS = {"enabled": True, "callback_per_minute": LIMIT, "start_per_minute": 1000, "login_per_minute": 1000,
          "decrypt_per_minute": 1000}
WARNING = "carry X-Forwarded-For or X-Real-IP, but 127.0.0.1 is not in [ratelimit] trusted_proxies"


async def mint_state(client: httpx.AsyncClient, base: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    """Open /login like a desktop browser; return the embedded QR's state and this browser's binding cookie."""
    page = await client.get(f"{base}/login", headers=headers or {})
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'<iframe src="([^"]+)"', page.text)
    assert match, "the desktop login page embeds the QR"
    state = parse_qs(urlsplit(html.unescape(match.group(1))).query)["state"][0]
    binding = page.cookies["wxstate"]
    client.cookies.clear()  # the next state gets its own browser
    return state, binding


async def junk_callback(client: httpx.AsyncClient, base: str, state: str, binding: str, code: str,
                        headers: dict[str, str] | None = None) -> httpx.Response:
    """The callback WeChat would send, with a code WeChat never issued (it answers 40029)."""
    response = await client.get(f"{base}/auth/wechat/callback/web", params={"code": code, "state": state},
                                headers={"Cookie": f"wxstate={binding}", **(headers or {})})
    assert_clean_body(response)
    return response


def exchanges(fake: FakeWeChat, prefix: str) -> int:
    """Code exchanges WeChat saw for codes starting with ``prefix``."""
    return sum(1 for c in fake.calls if c.path == "/sns/oauth2/access_token"
               and c.params.get("code", [""])[0].startswith(prefix))


def assert_limited(responses: list[httpx.Response]) -> None:
    """Exactly LIMIT callbacks got through (and failed on the junk code); every other one is the 429 page."""
    statuses = [r.status_code for r in responses]
    assert statuses.count(400) == LIMIT and statuses.count(429) == len(statuses) - LIMIT, statuses
    for r in responses:
        if r.status_code == 429:
            assert error_code(r) == "rate_limited"
            assert r.headers["retry-after"] == str(60 // LIMIT), "one interval of quiet frees the next hit"
            assert "no-store" in r.headers["cache-control"]
        else:
            assert error_code(r) == "code_invalid"


# ---- one client, one process -------------------------------------------------------------------------

async def test_callback_flood_is_refused_past_the_limit_and_wechat_sees_only_the_limit(
        make_server, fake_wechat, rel_sql):
    flood = scale(60, 300)
    server = await make_server({"ratelimit": LIMITS}).start()
    tag = f"junk.flood{secrets.token_hex(3)}"
    audit_before = (await rel_sql("SELECT COUNT(*) FROM login_events WHERE outcome = 'code_invalid'"))[0][0]
    try:
        async with counted_client() as client:
            states = [await mint_state(client, server.url) for _ in range(flood)]
            gate = asyncio.Semaphore(20)

            async def one(i: int, state: str, binding: str) -> httpx.Response:
                async with gate:
                    return await junk_callback(client, server.url, state, binding, f"{tag}.{i}")

            responses = await asyncio.gather(*(one(i, s, b) for i, (s, b) in enumerate(states)))
    finally:
        await server.stop()
    audit_after = (await rel_sql("SELECT COUNT(*) FROM login_events WHERE outcome = 'code_invalid'"))[0][0]
    assert_limited(list(responses))
    assert exchanges(fake_wechat, tag) == LIMIT, "a refused callback never reaches WeChat"
    assert audit_after - audit_before == LIMIT, "a refused callback writes no audit row"


# ---- behind proxies -------------------------------------------------------------------------------------

async def test_clients_behind_a_trusted_proxy_have_their_own_budgets(make_server, fake_wechat, rel_sql):
    # settings.toml trusts loopback, where the shipped nginx connects from: no override here.
    server = await make_server({"ratelimit": LIMITS}).start()
    tag = f"junk.proxied{secrets.token_hex(3)}"
    try:
        async with counted_client() as client:
            answers: dict[str, list[httpx.Response]] = {}
            for ip in ("198.51.100.21", "198.51.100.22"):
                forwarded = {"X-Forwarded-For": ip}
                states = [await mint_state(client, server.url, forwarded) for _ in range(LIMIT + 3)]
                answers[ip] = [await junk_callback(client, server.url, s, b, f"{tag}.{ip}.{i}", forwarded)
                               for i, (s, b) in enumerate(states)]
            # A person behind the same proxy, from a third address, is not touched by either flood.
            state, binding = await mint_state(client, server.url, {"X-Forwarded-For": "198.51.100.23"})
            person = await client.get(f"{server.url}/auth/wechat/callback/web",
                                      params={"code": f"ok.proxied{secrets.token_hex(3)}.x", "state": state},
                                      headers={"Cookie": f"wxstate={binding}", "X-Forwarded-For": "198.51.100.23"})
    finally:
        await server.stop()
    for responses in answers.values():
        assert_limited(responses)
    assert person.status_code == 302 and session_set(person), person.text[:300]
    assert exchanges(fake_wechat, tag) == 2 * LIMIT
    audited = dict(await rel_sql("SELECT ip, COUNT(*) FROM login_events WHERE outcome = 'code_invalid' "
                                 "AND ip IN ('198.51.100.21', '198.51.100.22') GROUP BY ip"))
    assert audited == {"198.51.100.21": LIMIT, "198.51.100.22": LIMIT}, "the audit names the real client"
    assert WARNING not in server.log(), "a trusted proxy is not warned about"


async def test_an_untrusted_proxy_is_named_once_and_its_clients_share_one_budget(make_server, fake_wechat):
    server = await make_server({"ratelimit": {**LIMITS, "trusted_proxies": []}}).start()
    tag = f"junk.untrusted{secrets.token_hex(3)}"
    try:
        async with counted_client() as client:
            first = {"X-Forwarded-For": "198.51.100.31"}
            second = {"X-Real-IP": "198.51.100.32"}
            states = [await mint_state(client, server.url, first) for _ in range(LIMIT + 3)]
            states += [await mint_state(client, server.url, second) for _ in range(3)]
            responses = [await junk_callback(client, server.url, s, b, f"{tag}.{i}", first if i < LIMIT + 3 else second)
                         for i, (s, b) in enumerate(states)]
    finally:
        await server.stop()
    assert_limited(responses)
    assert [r.status_code for r in responses[-3:]] == [429] * 3, "headers from an untrusted peer pick no budget"
    log = server.log()
    assert log.count(WARNING) == 1, f"one warning for the peer, not one per request ({log.count(WARNING)})"


# ---- across processes -----------------------------------------------------------------------------------

async def test_workers_of_one_server_share_the_budget(make_server, fake_wechat):
    # No trusted proxy, and the flood carries X-Forwarded-For: each worker then names the peer once in its
    # log, which proves both workers answered part of the flood.
    server = await make_server({"ratelimit": {**LIMITS, "trusted_proxies": []}}, args=("--processes", "2")).start()
    tag = f"junk.workers{secrets.token_hex(3)}"
    responses: list[httpx.Response] = []
    try:
        await asyncio.sleep(0.5)  # both workers are up, not only the first to answer /healthz
        async with counted_client() as minting:
            states = [await mint_state(minting, server.url) for _ in range(scale(120, 300))]
        # A new connection for every request, many at once: the kernel hands them to either worker.
        async with counted_client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for batch in range(0, len(states), 40):
                chunk = states[batch:batch + 40]
                responses += await asyncio.gather(*(
                    junk_callback(client, server.url, s, b, f"{tag}.{batch + i}", {"X-Forwarded-For": "203.0.113.9"})
                    for i, (s, b) in enumerate(chunk)))
                if server.log().count(WARNING) == 2:
                    break
    finally:
        await server.stop()
    assert_limited(responses)
    assert exchanges(fake_wechat, tag) == LIMIT, "two workers, one budget"
    assert server.log().count(WARNING) == 2, "the flood did not reach both workers"


async def test_workers_of_one_server_share_the_api_login_budget(make_server, fake_wechat):
    # The API's limit was counted in each process's memory before: two workers let 2x the limit through.
    limits = {**LIMITS, "login_per_minute": LIMIT, "trusted_proxies": []}
    server = await make_server({"ratelimit": limits}, args=("--processes", "2")).start()
    tag = f"junk.apiworkers{secrets.token_hex(3)}"
    responses: list[httpx.Response] = []
    try:
        await asyncio.sleep(0.5)
        async with counted_client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for batch in range(0, scale(120, 300), 40):
                responses += await asyncio.gather(*(
                    client.post(f"{server.url}/api/app/login", json={"code": f"{tag}.{batch + i}"},
                                headers={"X-Forwarded-For": "203.0.113.10"})
                    for i in range(40)))
                if server.log().count(WARNING) == 2:
                    break
    finally:
        await server.stop()
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) == LIMIT and statuses.count(429) == len(statuses) - LIMIT, statuses
    for r in responses:
        assert r.json()["error"] == ("rate_limited" if r.status_code == 429 else "code_invalid")
    assert exchanges(fake_wechat, tag) == LIMIT, "two workers, one budget"
    assert server.log().count(WARNING) == 2, "the flood did not reach both workers"


async def test_behind_the_shipped_nginx_each_client_has_one_budget_over_both_servers(
        make_server, fake_wechat, tmp_path):
    port = free_port()
    # trusted_proxies as settings.toml ships it (loopback, where nginx connects from).
    public = {"server": {"public_url": f"http://127.0.0.1:{port}"}, "ratelimit": LIMITS}
    a = await make_server(public).start()
    b = await make_server(public).start()
    # The shipped site, plus (test only) realip so that one machine can play clients on two others: nginx
    # takes the client's address from X-Test-Client as if the connection came from there.
    proc = nginx.start(tmp_path, port, [a.settings["server"]["port"], b.settings["server"]["port"]],
                       extra="set_real_ip_from 127.0.0.1; real_ip_header X-Test-Client;")
    url = f"http://127.0.0.1:{port}"
    tag = f"junk.nginx{secrets.token_hex(3)}"
    answers: dict[str, list[httpx.Response]] = {}
    try:
        await nginx.until_up(url)
        async with counted_client() as client:
            for ip in ("192.0.2.41", "192.0.2.42"):
                states = [await mint_state(client, url, {"X-Test-Client": ip}) for _ in range(LIMIT + 5)]
                # Each request also claims to be someone else: nginx replaces that header.
                answers[ip] = [await junk_callback(client, url, s, b_, f"{tag}.{ip}.{i}",
                                                   {"X-Test-Client": ip, "X-Forwarded-For": f"10.{i}.0.1"})
                               for i, (s, b_) in enumerate(states)]
    finally:
        proc.terminate()
        proc.wait(10)
        await a.stop()
        await b.stop()
    for responses in answers.values():
        assert_limited(responses)
    assert exchanges(fake_wechat, tag) == 2 * LIMIT, "per client, not per server and not per spoofed header"
    refused = "429 GET /auth/wechat/callback/web"
    assert refused in a.log() and refused in b.log(), "round robin: both servers refused with the shared count"
    assert WARNING not in a.log() + b.log()
