"""Nothing blocks the IOLoop: the server runs in asyncio debug mode while MySQL and WeChat are slow.

With ``PYTHONASYNCIODEBUG=1`` asyncio logs "Executing <handle> took N seconds" for every callback that
holds the loop longer than 100 ms. Every MySQL round trip takes over 120 ms (a latency proxy delays each
direction by 60 ms) and every WeChat answer 150 ms (the stand-in), so a single blocking call anywhere on
the request path (a synchronous driver, an HTTP client that blocks, a sleep) would hold the loop past
that line and be logged. The control case proves
the detector fires on exactly such a call.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys

from harness.fakewechat import FakeWeChat
from harness.faultproxy import FaultProxy
from harness.serverproc import ROOT
from harness.web import counted_client, session_set, start_web_login, web_callback

WECHAT_LATENCY = 0.15  # longer than asyncio's 0.1 s slow-callback line
MYSQL_LATENCY = 0.06  # each way: a round trip takes over 0.12 s
SLOW_LINE = "took"  # asyncio: "Executing <Task ...> took 0.151 seconds"

BLOCKING_CONTROL = """
import asyncio, time
from wxlogin.logsetup import configure_logging
configure_logging()
async def handler():
    time.sleep(0.15)  # what a blocking driver call against a slow server does
asyncio.run(handler())
"""


def slow_callbacks(log: str) -> list[str]:
    return [line for line in log.splitlines() if "asyncio" in line and "Executing" in line and SLOW_LINE in line]


def test_the_detector_catches_a_blocking_call():
    env = {**os.environ, "PYTHONASYNCIODEBUG": "1", "PYTHONPATH": str(ROOT / "site")}
    run = subprocess.run([sys.executable, "-c", BLOCKING_CONTROL], env=env, capture_output=True, text=True,
                         timeout=30)
    assert len(slow_callbacks(run.stderr)) == 1, run.stderr


async def test_no_callback_blocks_the_loop_with_slow_mysql_and_wechat(make_server, private_db):
    proxy = FaultProxy(private_db.port)
    await proxy.start()
    wechat = FakeWeChat(latency=WECHAT_LATENCY)
    await wechat.start()
    server = make_server(
        {"wechat": {"open_base": wechat.url, "api_base": wechat.url, "timeout": 3.0},
         "mysql": {"pool_min": 1, "pool_max": 8, "connect_timeout": 10.0, "acquire_timeout": 10.0,
                   "query_timeout": 10.0}},
        env={"PYTHONASYNCIODEBUG": "1"}, mysql_port=proxy.port,
    )
    await server.start()
    try:
        proxy.latency = MYSQL_LATENCY
        statuses = await asyncio.gather(*(_one_of_each(server.url, i) for i in range(4)))
    finally:
        proxy.latency = 0
        await server.stop()
        await proxy.close()
        await wechat.close()
    log = server.log()
    assert "asyncio debug mode" in log, "the server did not run in asyncio debug mode"
    assert statuses == [(302, True, 200, 200, 200)] * 4, statuses
    assert slow_callbacks(log) == []


async def _one_of_each(base: str, n: int) -> tuple[int, bool, int, int, int]:
    """A desktop QR login, then /account with its cookie, /login, a mini-program login and /api/me."""
    person = f"loop{n}{secrets.token_hex(3)}"
    async with counted_client() as client:
        state = await start_web_login(client, base)
        callback = await web_callback(client, base, f"ok.{person}.{secrets.token_hex(4)}", state)
        account = await client.get(f"{base}/account")
        login_page = await client.get(f"{base}/login", headers={"Cookie": ""})
        mp = await client.post(f"{base}/api/miniprogram/login", json={"code": f"ok.mp{person}.{secrets.token_hex(4)}"})
        token = mp.json().get("token", "none")
        me = await client.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
    return callback.status_code, session_set(callback), account.status_code, login_page.status_code, me.status_code
