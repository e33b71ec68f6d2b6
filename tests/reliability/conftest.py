"""Fixtures of the reliability suite: processes it owns and may break.

- ``private_db``   (session) a private MariaDB (own data directory and port); tests may kill or freeze it.
- ``fake_wechat``  (session) the scriptable WeChat stand-in on a free port.
- ``wx_server``    (session) ``server.py`` in a subprocess, sandbox off, WeChat = the stand-in,
                   [wechat] timeout 1.5 s, database on the private instance.
- ``sandbox_proc`` (session) ``server.py`` in a subprocess with the sandbox on (for the QR flow races).
- ``rel_sql``      one query on the suite's database.
- after every test: the database oracles (no user without a login method, no '' unionid), and the
                   rate-limit buckets emptied.

``WXLOGIN_RELIABILITY=long`` (``make check-reliability``) scales the volumes up; the figures table is
printed at the end of the run and written to ``.reliability-figures.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from harness import DATABASE, LONG, mariadb
from harness.fakewechat import FakeWeChat
from harness.figures import FIGURES
from harness.serverproc import ROOT, ServerProcess, merge, settings_for
from wxlogin.sandbox.people import OPERATOR, unionid_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.any_seen():
        return
    table = FIGURES.table()
    mode = "long (make check-reliability)" if LONG else "fast (make test)"
    terminalreporter.write_sep("=", f"reliability figures, {mode}")
    terminalreporter.write_line(table)
    (ROOT / ".reliability-figures.md").write_text(f"Reliability figures, {mode}:\n\n{table}\n")


@pytest.fixture(scope="session")
async def private_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[mariadb.PrivateMariaDB]:
    reason = mariadb.missing_reason()
    if reason:
        pytest.fail(reason)
    db = mariadb.PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    await db.start()
    await db.query(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
    yield db
    await db.stop()


@pytest.fixture(scope="session")
async def fake_wechat() -> AsyncIterator[FakeWeChat]:
    fake = FakeWeChat(slow_seconds=3.0)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def make_server(private_db: mariadb.PrivateMariaDB, fake_wechat: FakeWeChat,
                workdir: Path) -> Callable[..., ServerProcess]:
    """Settings for a server process: WeChat = the stand-in unless the sandbox is asked for."""

    def make(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None,
             sandbox: bool = False, mysql_port: int | None = None, args: tuple[str, ...] = ()) -> ServerProcess:
        wechat: dict[str, Any] = {"sandbox": sandbox, "timeout": 1.5, "connect_timeout": 1.0}
        if not sandbox:
            wechat.update(open_base=fake_wechat.url, api_base=fake_wechat.url)
        data = settings_for(mysql_port or private_db.port, DATABASE, {"wechat": wechat})
        if sandbox:
            data["server"]["secret_keys"] = ["dev-insecure-reliability-sandbox-key-000001"]
        return ServerProcess(workdir, merge(data, overrides or {}), env, args)

    return make


@pytest.fixture(scope="session")
async def wx_server(make_server: Callable[..., ServerProcess]) -> AsyncIterator[ServerProcess]:
    server = await make_server().start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def sandbox_proc(make_server: Callable[..., ServerProcess]) -> AsyncIterator[ServerProcess]:
    server = await make_server(sandbox=True).start()
    yield server
    await server.stop()


@pytest.fixture
async def rel_sql(private_db: mariadb.PrivateMariaDB) -> Callable[..., Awaitable[list[tuple[Any, ...]]]]:
    async def run(query: str, *args: Any) -> list[tuple[Any, ...]]:
        return await private_db.query(query, args, db=DATABASE)

    return run


@pytest.fixture(autouse=True)
async def db_oracles(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After each test that used the suite's database: no half-written account, no '' unionid."""
    yield
    if "private_db" not in request.fixturenames:
        return
    db: mariadb.PrivateMariaDB = request.getfixturevalue("private_db")
    if db.process is None:
        return
    await db.wait_ready()
    # The sandbox's operator account is seeded without a login method on purpose (server.py
    # seed_sandbox_operator; its first sign-in attaches one by the unionid): not half-written.
    orphans = await db.query(
        "SELECT COUNT(*) FROM users u LEFT JOIN user_login_methods m ON m.user_id = u.id "
        "WHERE m.id IS NULL AND NOT u.unionid <=> %s", (unionid_for(OPERATOR),), db=DATABASE)
    empty = await db.query("SELECT COUNT(*) FROM users WHERE unionid = ''", db=DATABASE)
    dupes = await db.query("SELECT COUNT(*) FROM (SELECT unionid FROM users WHERE unionid IS NOT NULL "
                           "GROUP BY unionid HAVING COUNT(*) > 1) d", db=DATABASE)
    FIGURES.users_duplicated += dupes[0][0]
    # Every test starts with full rate-limit buckets (the suite's database is not emptied between tests).
    if await db.query("SHOW TABLES LIKE 'rate_limits'", db=DATABASE):
        await db.query("DELETE FROM rate_limits", db=DATABASE)
    assert orphans[0][0] == 0, "a user row exists without its login method"
    assert empty[0][0] == 0, "an empty unionid was stored instead of NULL"
    assert dupes[0][0] == 0
