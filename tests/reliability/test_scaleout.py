"""Scale-out: any process can finish a login another one started.

Two server processes behind Debian's nginx: the login starts while only one of them is up and finishes
while only the other is; then logins through nginx round-robin all succeed. And `--processes 2` forks
two workers that share one port and stop together on SIGTERM.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from harness.mariadb import free_port
from harness.serverproc import ServerProcess
from harness.web import counted_client, session_set, start_web_login, web_callback

NGINX_CONF = """
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    upstream wxlogin {{
        server 127.0.0.1:{a} max_fails=0;
        server 127.0.0.1:{b} max_fails=0;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://wxlogin;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }}
    }}
}}
"""


def ok_code(person: str) -> str:
    return f"ok.{person}{secrets.token_hex(3)}.{secrets.token_hex(4)}"


@pytest.fixture
async def behind_nginx(make_server, tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed (make test installs nginx-light; or: apt-get install nginx-light)")
    port = free_port()
    public = {"server": {"public_url": f"http://127.0.0.1:{port}"}, "ratelimit": {"trusted_proxies": ["127.0.0.1"]}}
    a = make_server(public)
    b = make_server(public)
    await a.start()
    await b.start()
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(root=tmp_path, a=a.settings["server"]["port"],
                                                           b=b.settings["server"]["port"], port=port))
    proc = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as probe:
        for _ in range(50):
            try:
                await probe.get(f"{url}/healthz")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    yield url, a, b
    proc.terminate()
    proc.wait(10)
    await a.stop()
    await b.stop()


async def _restart(server: ServerProcess) -> None:
    server.process = None
    await server.start()


async def test_a_login_started_on_one_process_finishes_on_the_other(behind_nginx, rel_sql):
    url, a, b = behind_nginx
    async with counted_client() as client:
        await a.stop()  # only B is up: B starts the login
        state = await start_web_login(client, url)
        await _restart(a)
        await b.stop()  # only A is up: A finishes it
        done = await web_callback(client, url, ok_code("across"), state)
        assert done.status_code == 302 and session_set(done), done.text[:300]
        account = await client.get(f"{url}/account")
        assert account.status_code == 200, "A's session is recognised"
        replay = await web_callback(client, url, ok_code("across"), state)
        assert replay.status_code in (302, 400) and not session_set(replay), "the consumed state is shared"
        await _restart(b)
        assert (await client.get(f"{url}/account")).status_code == 200
        assert (await client.get(f"{url}/account")).status_code == 200, "and B recognises it too"
    assert "SANDBOX" not in a.log() + b.log()


async def test_round_robin_logins_through_nginx_all_succeed(behind_nginx):
    url, _a, _b = behind_nginx

    async def one(i: int) -> bool:
        async with counted_client() as client:
            state = await start_web_login(client, url)
            done = await web_callback(client, url, ok_code(f"rr{i}"), state)
            api = await client.post(f"{url}/api/miniprogram/login", json={"code": ok_code(f"rr{i}")})
            me = await client.get(f"{url}/api/me", headers={"Authorization": f"Bearer {api.json()['token']}"})
            return done.status_code == 302 and session_set(done) and me.status_code == 200

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert all(results)


async def test_processes_flag_forks_workers_that_share_the_port_and_stop_together(make_server):
    server = await make_server(args=("--processes", "2")).start()
    try:
        await asyncio.sleep(0.5)  # both workers are up, not only the first to answer /healthz
        workers = subprocess.run(["ps", "--ppid", str(server.process.pid), "-o", "pid="], capture_output=True,
                                 text=True).stdout.split()
        async with counted_client() as client:
            for i in range(10):
                state = await start_web_login(client, server.url)
                done = await web_callback(client, server.url, ok_code(f"fork{i}"), state)
                assert done.status_code == 302 and session_set(done)
        code = await server.stop()
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert len(workers) == 2
    assert code == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert server.log().count("stopped") == 2
