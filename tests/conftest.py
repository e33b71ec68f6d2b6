"""Fixtures: the real app, a real MariaDB database and the WeChat sandbox over real HTTP. No mocks.

- ``test_db``        (session) creates the database ``wxlogin_test`` from scratch and migrates it.
- ``clean_db``       empties every table; used by every test that touches the server or the database.
- ``server``         (session) the app with the sandbox on, listening on a free 127.0.0.1 port.
- ``start_server``   starts another app with overridden settings (key rotation, short lifetimes, ...);
                     stopped at the end of the test.
- ``client``         an httpx.AsyncClient with its own cookie jar (one browser), redirects not followed.
- ``new_client``     a factory for more browsers.
- ``sql``            runs one query on the test database and returns all rows.
- ``flows``          helpers that walk the sandbox like a person: ``qr_callback_url``, ``login``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomysql
import httpx
import pytest
import tornado.httpserver
import tornado.netutil

from helpers import Flows
from wxlogin.app import Assets, make_app
from wxlogin.config import Settings, settings_from_mapping
from wxlogin.services import Services, build_services
from wxlogin.store.migrations import TABLES, create_database, migrate

ROOT = Path(__file__).resolve().parents[1]
# Parallel checkouts (git worktrees) on one machine each set their own name.
TEST_DATABASE = os.environ.get("WXLOGIN_TEST_DATABASE", "wxlogin_test")
TEST_KEY = "test-dev-insecure-key-0000000000000000000001"


def base_config() -> dict[str, Any]:
    with open(ROOT / "settings.toml", "rb") as handle:
        data = tomllib.load(handle)
    data["mysql"]["database"] = TEST_DATABASE
    data["mysql"]["pool_max"] = 30
    data["server"]["secret_keys"] = [TEST_KEY]
    data["wechat"]["http_client"] = "simple"
    data["ratelimit"]["enabled"] = False
    data["admin"]["user_ids"] = []  # no operators unless a test names one (ids run on across tests)
    return data


def merge(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class ServerHandle:
    url: str
    settings: Settings
    services: Services
    app: Any
    http_server: tornado.httpserver.HTTPServer

    @property
    def sandbox(self) -> Any:
        return self.app.settings.get("sandbox")

    async def stop(self) -> None:
        self.http_server.stop()
        await self.http_server.close_all_connections()
        await self.services.close()


async def launch(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> ServerHandle:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    data = merge(base_config(), {"server": {"port": port, "public_url": url}})
    data = merge(data, overrides or {})
    settings = settings_from_mapping(data, env or {})
    services = build_services(settings)
    app = make_app(settings, services, Assets.beside(ROOT))
    http_server = tornado.httpserver.HTTPServer(app, max_body_size=settings.server.max_body_size)
    http_server.add_sockets(sockets)
    return ServerHandle(url=url, settings=settings, services=services, app=app, http_server=http_server)


@pytest.fixture(scope="session")
async def test_db() -> AsyncIterator[Settings]:
    settings = settings_from_mapping(merge(base_config(), {"server": {"port": 1}}), {})
    conn = await aiomysql.connect(host=settings.mysql.host, port=settings.mysql.port, user=settings.mysql.user,
                                  password=settings.mysql.password.value, autocommit=True)
    async with conn.cursor() as cur:
        await cur.execute("SET SESSION sql_notes = 0")
        await cur.execute(f"DROP DATABASE IF EXISTS `{TEST_DATABASE}`")
    conn.close()
    await create_database(settings.mysql)
    await migrate(settings.mysql)
    yield settings


async def _run_sql(settings: Settings, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = await aiomysql.connect(host=settings.mysql.host, port=settings.mysql.port, user=settings.mysql.user,
                                  password=settings.mysql.password.value, db=TEST_DATABASE, autocommit=True,
                                  charset="utf8mb4")
    try:
        async with conn.cursor() as cur:
            await cur.execute(query, args)
            return list(await cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
async def sql(test_db: Settings) -> Callable[..., Awaitable[list[tuple[Any, ...]]]]:
    async def run(query: str, *args: Any) -> list[tuple[Any, ...]]:
        return await _run_sql(test_db, query, args)

    return run


@pytest.fixture
async def clean_db(test_db: Settings) -> None:
    conn = await aiomysql.connect(host=test_db.mysql.host, port=test_db.mysql.port, user=test_db.mysql.user,
                                  password=test_db.mysql.password.value, db=TEST_DATABASE, autocommit=True)
    async with conn.cursor() as cur:
        await cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in TABLES:
            await cur.execute(f"DELETE FROM {table}")
    conn.close()


@pytest.fixture(scope="session")
async def _session_server(test_db: Settings) -> AsyncIterator[ServerHandle]:
    handle = await launch()
    yield handle
    await handle.stop()


@pytest.fixture
async def server(_session_server: ServerHandle, clean_db: None) -> ServerHandle:
    return _session_server


@pytest.fixture
async def start_server(test_db: Settings, clean_db: None) -> AsyncIterator[Callable[..., Awaitable[ServerHandle]]]:
    started: list[ServerHandle] = []

    async def start(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> ServerHandle:
        handle = await launch(overrides, env)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        await handle.stop()


@pytest.fixture
async def new_client() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(**kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 20)
        c = httpx.AsyncClient(follow_redirects=False, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
async def client(new_client: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return new_client()


@pytest.fixture
def flows(server: ServerHandle) -> Flows:
    return Flows(server)


# --- Chromium for tests/browser (Debian's chromium driven by Playwright) --------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/ensure-chromium.sh installs it as root)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        await instance.close()
