"""Metrics (issue 16) from the real server.py: on their own listener only, and every worker's values added up.

- The public port has no /metrics (404), in the in-process app and in server.py with metrics on; the metrics
  port answers it and serves nothing else of the site.
- ``[server] processes = 2``: logins made through both workers (each on a new connection, so the kernel hands
  them to either) appear once each in the scraped total; the per-worker value files (in the private directory
  the parent made for this start) show that both workers counted some. A worker killed mid-run keeps its counts
  in the total and leaves the live gauges. The directory is gone once the server stopped.

The sandbox runs in one process only, so the two-worker site talks to WeChat played by a second server.py with
the sandbox on (its /_sandbox is the site's api_base and open_base): the real sandbox over HTTP, no stand-in.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TEST_DATABASE
from harness.mariadb import free_port
from harness.serverproc import ServerProcess, merge, settings_for

MYSQL_PORT = 3306


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in an exposition text (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def samples(text: str, name: str) -> list[dict[str, str]]:
    return [s.labels for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def site_settings(overrides: dict | None = None) -> dict:
    data = settings_for(MYSQL_PORT, TEST_DATABASE, overrides)
    data["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
    return data


async def mini_program_login(site_url: str, sandbox_url: str, person: str) -> int:
    """One mini-program login as ``person``: wx.login in the sandbox, then the site's API, each on a new
    connection (a fresh client), so either worker may take it."""
    async with httpx.AsyncClient(timeout=30) as phone:
        handed = await phone.post(f"{sandbox_url}/_sandbox/dev/wx.login", json={"person": person})
        assert handed.status_code == 200, handed.text
    async with httpx.AsyncClient(timeout=30) as api:
        login = await api.post(f"{site_url}/api/miniprogram/login", json=handed.json())
    return login.status_code


async def test_the_public_app_has_no_metrics_route(server, client):
    answer = await client.get(server.url + "/metrics")
    assert answer.status_code == 404
    assert "wxlogin_" not in answer.text


@pytest.fixture
async def sandbox_site(tmp_path, clean_db):
    """server.py, sandbox on (one process), metrics on."""
    data = site_settings()
    data["server"]["secret_keys"] = ["dev-insecure-metrics-test-key-000000000001"]
    proc = ServerProcess(tmp_path, data)
    await proc.start()
    yield proc
    await proc.stop()


async def test_metrics_are_served_on_their_own_listener_and_never_on_the_public_one(sandbox_site):
    metrics_url = f"http://{sandbox_site.settings['metrics']['listen']}"
    async with httpx.AsyncClient(timeout=30) as client:
        public = await client.get(sandbox_site.url + "/metrics")
        assert public.status_code == 404 and "wxlogin_" not in public.text
        scraped = await client.get(metrics_url + "/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "wxlogin_db_pool_connections" in scraped.text
        # Nothing of the site on the metrics port: no pages, no sandbox, no health probe.
        for path in ("/", "/login", "/healthz", "/_sandbox/", "/api/me"):
            assert (await client.get(metrics_url + path)).status_code == 404, path


async def test_metrics_move_with_real_logins(sandbox_site, sql):
    metrics_url = f"http://{sandbox_site.settings['metrics']['listen']}/metrics"
    async with httpx.AsyncClient(timeout=30) as client:
        before = (await client.get(metrics_url)).text
        for person in ("zhangsan", "lisi"):
            assert await mini_program_login(sandbox_site.url, sandbox_site.url, person) == 200
        # A refused code: a failed login and WeChat's errcode 40029.
        refused = await client.post(sandbox_site.url + "/api/miniprogram/login", json={"code": "not-a-code"})
        assert refused.status_code >= 400
        after = (await client.get(metrics_url)).text
    logins = "wxlogin_logins_total"
    assert sample(after, logins, channel="miniprogram", outcome="success") - \
        sample(before, logins, channel="miniprogram", outcome="success") == 2
    calls = "wxlogin_wechat_calls_total"
    assert sample(after, calls, endpoint="/sns/jscode2session", errcode="0") - \
        sample(before, calls, endpoint="/sns/jscode2session", errcode="0") == 2
    assert sample(after, calls, endpoint="/sns/jscode2session", errcode="40029") - \
        sample(before, calls, endpoint="/sns/jscode2session", errcode="40029") == 1
    assert sample(after, logins, channel="miniprogram", outcome="code_invalid") - \
        sample(before, logins, channel="miniprogram", outcome="code_invalid") == 1
    seconds = "wxlogin_wechat_call_seconds_count"
    assert sample(after, seconds, endpoint="/sns/jscode2session") - \
        sample(before, seconds, endpoint="/sns/jscode2session") == 3
    assert sample(after, "wxlogin_db_pool_connections", state="max") == 20  # the worker's pool_max

    # Closed accounts waiting for the deletion job: counted in MySQL at scrape time.
    assert sample(after, "wxlogin_pending_deletions") == 0
    await sql("UPDATE users SET deletion_scheduled_at = UTC_TIMESTAMP(3) + INTERVAL 15 DAY ORDER BY id LIMIT 1")
    async with httpx.AsyncClient(timeout=30) as client:
        assert sample((await client.get(metrics_url)).text, "wxlogin_pending_deletions") == 1

    # The deep health probe takes each official account's and mini-program's app token: fetched from WeChat once.
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(sandbox_site.url + "/healthz?deep=1")).status_code == 200
        deep = (await client.get(metrics_url)).text
    refreshes = "wxlogin_app_token_refreshes_total"
    for app in ("mp", "miniprogram"):
        assert sample(deep, refreshes, app=app, kind="normal", result="ok") == 1, app
    assert sample(deep, calls, endpoint="/cgi-bin/stable_token", errcode="0") == 2
    assert sample(after, "wxlogin_db_breaker_open", breaker="mysql") == 0


def per_worker_logins(directory: Path) -> dict[int, float]:
    """Logins counted by each worker: its own counter file, read alone."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(re.findall(r"\d+", path.name)[0])
        alone = directory.parent / f"alone-{pid}"
        alone.mkdir(exist_ok=True)
        (alone / path.name).write_bytes(path.read_bytes())
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(alone))
        counts[pid] = sum(s.value for family in registry.collect() for s in family.samples
                          if s.name == "wxlogin_logins_total" and s.labels.get("outcome") == "success")
    return counts


@pytest.fixture
async def wechat_and_two_workers(tmp_path, clean_db):
    """WeChat: server.py with the sandbox on. The site: server.py, sandbox off, processes = 2, metrics on."""
    wechat = ServerProcess(tmp_path / "wechat", merge(settings_for(MYSQL_PORT, TEST_DATABASE), {
        "server": {"secret_keys": ["dev-insecure-metrics-wechat-key-0000000001"]}}))
    await wechat.start()
    sandbox = f"{wechat.url}/_sandbox"
    site_env = {"TMPDIR": str(tmp_path)}  # so the test finds the metrics directory the parent makes
    site = ServerProcess(tmp_path / "site", site_settings({
        "server": {"processes": 2},
        "wechat": {"sandbox": False, "open_base": sandbox, "api_base": sandbox},
    }), env=site_env)
    await site.start()
    yield wechat, site, tmp_path
    await site.stop()
    await wechat.stop()


async def test_two_workers_are_added_up(wechat_and_two_workers):
    wechat, site, tmp = wechat_and_two_workers
    metrics_url = f"http://{site.settings['metrics']['listen']}/metrics"
    [directory] = list(tmp.glob("wxlogin-metrics-*"))
    made = 0
    # Until both workers have taken some (the kernel decides who accepts; each login is a new connection).
    while made < 10 or (len([n for n in per_worker_logins(directory).values() if n]) < 2 and made < 200):
        assert await mini_program_login(site.url, wechat.url, f"worker{made}") == 200
        made += 1
    per_worker = per_worker_logins(directory)
    assert len([n for n in per_worker.values() if n]) == 2, per_worker
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(metrics_url)).text
    assert sample(text, "wxlogin_logins_total", channel="miniprogram", outcome="success") == made
    assert sum(per_worker.values()) == made
    live = {labels["pid"] for labels in samples(text, "wxlogin_worker_up")}
    assert len(live) == 2
    assert sample(text, "wxlogin_db_pool_connections", state="max") == 2 * 20  # both workers' pools, summed

    # A worker dies: the parent starts another; the dead one's counts stay, its live gauges leave.
    victim = next(pid for pid in per_worker if str(pid) in live and pid != _serving_worker(text, live, site))
    os.kill(victim, signal.SIGKILL)
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            text = (await client.get(metrics_url)).text
            pids = {labels["pid"] for labels in samples(text, "wxlogin_worker_up")}
            if str(victim) not in pids and len(pids) == 2:
                break
            await asyncio.sleep(0.2)  # the parent waits a second before it starts the replacement
    assert sample(text, "wxlogin_logins_total", channel="miniprogram", outcome="success") == made
    await site.stop()
    assert not directory.exists(), "the parent removes the metrics directory when it ends"


def _serving_worker(text: str, live: set[str], site: ServerProcess) -> int:
    """The worker that serves the metrics listener (worker 0): the lowest pid, the first one forked."""
    return min(int(pid) for pid in live)


def test_metrics_on_the_sites_own_port_are_refused():
    from wxlogin.config import ConfigError, settings_from_mapping

    data = settings_for(MYSQL_PORT, TEST_DATABASE)
    data["metrics"] = {"listen": f"127.0.0.1:{data['server']['port']}"}
    with pytest.raises(ConfigError, match=r"\[metrics\] listen .* the site's own port"):
        settings_from_mapping(data, env={})
    data["metrics"] = {"listen": "nonsense"}
    with pytest.raises(ConfigError, match=r"\[metrics\] listen must be host:port"):
        settings_from_mapping(data, env={})
