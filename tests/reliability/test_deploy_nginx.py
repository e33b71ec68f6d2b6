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


@pytest.mark.parametrize("path", SPELLINGS)
async def test_the_shipped_nginx_blocks_the_sandbox_in_every_spelling(sandbox_proc: ServerProcess, tmp_path,
                                                                      path: str) -> None:
    port = free_port()
    proc = nginx.start(tmp_path, port, [sandbox_proc.settings["server"]["port"]])
    try:
        await nginx.until_up(f"http://127.0.0.1:{port}")
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


async def test_the_shipped_nginx_lets_avatar_uploads_through_and_keeps_64k_elsewhere(wx_server: ServerProcess,
                                                                                     tmp_path) -> None:
    """wx.uploadFile's avatar (up to 1 MiB) must reach the app; every other route keeps nginx's 64 KiB."""
    port = free_port()
    proc = nginx.start(tmp_path, port, [wx_server.settings["server"]["port"]])
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" + b"\0" * 600_000
    body += b"\r\n--b--\r\n"
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Authorization": "Bearer nope"}
    try:
        await nginx.until_up(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=10) as client:
            avatar = await client.post(f"http://127.0.0.1:{port}/api/miniprogram/avatar", content=body,
                                       headers=headers)
            other = await client.post(f"http://127.0.0.1:{port}/api/miniprogram/profile", content=body,
                                      headers=headers)
            too_big = await client.post(f"http://127.0.0.1:{port}/api/miniprogram/avatar",
                                        content=body + b"\0" * (1 << 20), headers=headers)
    finally:
        proc.terminate()
        proc.wait(5)
    assert avatar.status_code == 401 and avatar.json()["error"] == "invalid_token"  # the app answered
    assert other.status_code == 413 and "invalid_token" not in other.text  # nginx's own limit
    assert too_big.status_code == 413


async def test_the_shipped_nginx_passes_a_waiting_pages_events_through_at_once(wx_server: ServerProcess, tmp_path,
                                                                              private_db) -> None:
    """Issue 14: the scan-login waiting page's SSE through the shipped site: unbuffered, long-lived."""
    from test_scene_waiters import insert_scenes, new_scene

    site = nginx.shipped_site(1, [1])
    events = site[site.index("location ~ \"^/login/scene/"):]
    events = events[:events.index("\n    }")]
    assert "proxy_buffering off;" in events and "proxy_read_timeout 1h;" in events
    scene, secret = new_scene()
    await insert_scenes(private_db, [(scene, secret)])
    port = free_port()
    proc = nginx.start(tmp_path, port, [wx_server.settings["server"]["port"]])
    try:
        await nginx.until_up(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=10) as client, asyncio.timeout(10):
            headers = {"Cookie": f"wxscene={scene}_{secret}"}
            async with client.stream("GET", f"http://127.0.0.1:{port}/login/scene/{scene}/events",
                                     headers=headers) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                async for line in lines:
                    if line.startswith("data:"):
                        assert '"waiting"' in line  # arrived while the stream is still open: not buffered
                        break
                await private_db.query("UPDATE login_scenes SET status = 'refused' WHERE scene = %s", (scene,),
                                       db="wxlogin_rel")
                async for line in lines:
                    if line.startswith("data:"):
                        assert '"refused"' in line
                        break
    finally:
        proc.terminate()
        proc.wait(5)
