"""The shipped nginx site (deploy/nginx/wxlogin.conf) in front of a server: what it lets through.

Production never serves the sandbox, even if [wechat] sandbox were switched on by mistake: nginx
answers 404 for /_sandbox in every spelling that reaches the same path after normalisation.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness import nginx
from harness.mariadb import free_port
from harness.serverproc import ServerProcess

SPELLINGS = ["/_sandbox", "/_sandbox/", "/_sandbox/sns/userinfo", "//_sandbox/", "/%5Fsandbox/", "/%5fsandbox",
             "/static/../_sandbox/", "/./_sandbox/", "/_sandbox%2F", "/_sandbox?x=1"]


async def _until_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(100):
            try:
                await client.get(url + "/healthz")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError("nginx did not come up")


@pytest.mark.parametrize("path", SPELLINGS)
async def test_the_shipped_nginx_blocks_the_sandbox_in_every_spelling(sandbox_proc: ServerProcess, tmp_path,
                                                                      path: str) -> None:
    port = free_port()
    proc = nginx.start(tmp_path, port, [sandbox_proc.settings["server"]["port"]])
    try:
        await _until_up(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=5, follow_redirects=False) as client:
            # A raw path: httpx must not normalise it before nginx sees it.
            request = client.build_request("GET", f"http://127.0.0.1:{port}/")
            request.url = request.url.copy_with(raw_path=path.encode())
            blocked = await client.send(request)
            direct = await client.get(sandbox_proc.url + "/_sandbox/")
            through = await client.get(f"http://127.0.0.1:{port}/login")
    finally:
        proc.terminate()
        proc.wait(5)
    assert direct.status_code == 200, "control: the server behind nginx does serve its sandbox"
    assert through.status_code == 200, "control: nginx passes ordinary pages through"
    assert blocked.status_code == 404, (path, blocked.status_code)
    assert "wxlogin" not in blocked.text and "SANDBOX" not in blocked.text  # nginx's own 404, not the app's
