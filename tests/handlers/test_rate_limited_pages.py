"""Site rate limits seen from the browser: flow starts are counted (the login page is not), a refusal is the
429 page with Retry-After, and the limiter's behaviour when MySQL does not answer."""

from __future__ import annotations

import re

from harness.mariadb import free_port


def error_code(page) -> str | None:
    match = re.search(r'data-error-code="([^"]+)"', page.text)
    return match.group(1) if match else None


async def test_flow_starts_are_limited_per_client_and_the_login_page_is_not(start_server, new_client):
    limited = await start_server({"ratelimit": {"enabled": True, "start_per_minute": 3}})
    client = new_client()

    pages = [await client.get(f"{limited.url}/login") for _ in range(10)]
    starts = [await client.get(f"{limited.url}/auth/wechat/web", params={"next": "/"}) for _ in range(3)]
    refused_web = await client.get(f"{limited.url}/auth/wechat/web")
    refused_mp = await client.get(f"{limited.url}/auth/wechat/mp")

    assert [p.status_code for p in pages] == [200] * 10, "reloading the QR page is never limited"
    assert [s.status_code for s in starts] == [302] * 3
    for refused in (refused_web, refused_mp):
        assert refused.status_code == 429 and error_code(refused) == "rate_limited"
        assert refused.headers["retry-after"] == "20", "one start frees up every 60/3 seconds"
        assert "no-store" in refused.headers["cache-control"]
        assert "set-cookie" not in refused.headers, "a refused start binds no state"


async def test_without_mysql_starts_go_on_and_logins_are_the_documented_503(start_server, new_client):
    # The limiter needs MySQL. A start writes nothing, so it goes on uncounted; an API login would need
    # MySQL a moment later anyway, so it gets the same 503 it always got, before any WeChat call.
    dead = {"port": free_port(), "connect_timeout": 0.5, "acquire_timeout": 0.5, "query_timeout": 0.5}
    server = await start_server({"ratelimit": {"enabled": True}, "mysql": dead})
    client = new_client()

    start = await client.get(f"{server.url}/auth/wechat/web")
    login = await client.post(f"{server.url}/api/app/login", json={"code": "sbnope"})

    assert start.status_code == 302
    assert login.status_code == 503 and login.json()["error"] == "database_unavailable"
