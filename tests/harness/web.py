"""Small HTTP helpers for the reliability suite: counted clients and the desktop login steps."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from harness.figures import count_response

TRACE_MARKERS = ("Traceback", "File \"/", "pymysql", "aiomysql", "SELECT ", "INSERT ", "tornado.web")


async def _count(response: httpx.Response) -> None:
    count_response(response.status_code)


def counted_client(**kwargs: Any) -> httpx.AsyncClient:
    """An httpx client whose every answer is counted in the figures (5xx outside 502/503/504 = defect)."""
    kwargs.setdefault("timeout", 30)
    return httpx.AsyncClient(follow_redirects=False, event_hooks={"response": [_count]}, **kwargs)


async def start_web_login(client: httpx.AsyncClient, base: str, next_path: str = "/") -> str:
    """Begin a desktop QR login; return the state (the binding cookie stays in ``client``)."""
    response = await client.get(f"{base}/auth/wechat/web", params={"next": next_path})
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["state"][0]


async def web_callback(client: httpx.AsyncClient, base: str, code: str, state: str) -> httpx.Response:
    return await client.get(f"{base}/auth/wechat/callback/web", params={"code": code, "state": state})


def error_code(page: httpx.Response) -> str | None:
    match = re.search(r'data-error-code="([^"]+)"', page.text)
    return match.group(1) if match else None


def session_set(response: httpx.Response) -> bool:
    """True when the response hands out a session cookie (clearing one does not count)."""
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        if "wxsid" in cookie and cookie["wxsid"].value:
            return True
    return False


def assert_clean_body(response: httpx.Response, secrets: tuple[str, ...] = ()) -> None:
    """No stack trace, SQL or secret in what the server said."""
    body = response.text
    for marker in TRACE_MARKERS + secrets:
        assert marker not in body, f"{marker!r} leaked into a {response.status_code} answer"
