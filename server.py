"""Serve wxlogin: `python server.py --config settings.toml [--processes N]`.

Loads and validates the settings, applies migrations once (in the parent, before any worker exists),
builds the services (pool, WeChat client), serves the app, and on SIGTERM/SIGINT stops accepting, lets
in-flight requests finish, closes the pool. With N > 1 (or [server] processes), the parent binds the
port, forks N workers that share it, restarts a worker that dies, and passes SIGTERM/SIGINT on to them.
Nothing a login needs lives in one worker's memory (states, the double-callback cache and sessions are
in MySQL or signed), so any worker can finish what another started. Templates and static files are the
ones beside this file (templates/, static/), wherever the package itself is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "site"))

import pymysql  # noqa: E402
import tornado.httpserver  # noqa: E402
import tornado.netutil  # noqa: E402

from wxlogin.app import Assets, make_app  # noqa: E402
from wxlogin.config import SANDBOX_PREFIX, ConfigError, Settings, load_settings  # noqa: E402
from wxlogin.errors import DatabaseUnavailable, Overloaded  # noqa: E402
from wxlogin.logsetup import configure_logging  # noqa: E402
from wxlogin.sandbox.people import OPERATOR, unionid_for  # noqa: E402
from wxlogin.services import build_services  # noqa: E402
from wxlogin.store.migrations import migrate  # noqa: E402
from wxlogin.store.setup import seed_account  # noqa: E402

logger = logging.getLogger("wxlogin.server")
PURGE_INTERVAL = 600
DRAIN_SECONDS = 10


def announce(settings: Settings) -> None:
    """Say loudly what this process talks to, so a sandbox or a stand-in is never mistaken for WeChat."""
    wx = settings.wechat
    if wx.sandbox:
        logger.warning("SANDBOX MODE: WeChat is emulated at %s; nobody here logs in with real WeChat", wx.open_base)
    elif not wx.is_official:
        logger.warning("WeChat bases are NOT the official ones: open_base=%s api_base=%s", wx.open_base, wx.api_base)
    logger.info("serving %s on %s:%d", settings.server.public_url, settings.server.host, settings.server.port)
    # Where a person starts: the address to open, and in the sandbox, who to play without a phone.
    logger.info("sign in at %s/login", settings.server.public_url)
    if wx.sandbox:
        logger.info("no phone? the sandbox's test people are at %s%s/", settings.server.public_url, SANDBOX_PREFIX)
    # Said at every start: who can use /admin. Outside the sandbox, the development file's account 1 would be
    # whoever signed up first.
    operators = settings.admin.user_ids
    level = logging.WARNING if operators and not wx.sandbox and operators == (1,) else logging.INFO
    logger.log(level, "operator console /admin: %s", f"accounts {', '.join(map(str, operators))}"
               if operators else "nobody ([admin] user_ids is empty)")


async def migrate_once(settings: Settings) -> None:
    """Bring the schema up to date; called once per start, before any worker exists."""
    try:
        applied = await migrate(settings.mysql)
        if applied:
            logger.info("database schema migrated to version %d", applied[-1])
    except DatabaseUnavailable as exc:
        logger.warning("could not check the schema at start-up (%s); continuing, pages will say 503", exc.detail)


async def seed_sandbox_operator(settings: Settings) -> None:
    """In the sandbox, make the first of ``[admin] user_ids`` the sandbox's operator person (README "The sandbox").

    Only where that account does not exist yet (a fresh database): the operator's first scan then lands on it.
    """
    if not (settings.wechat.sandbox and settings.admin.user_ids):
        return
    user_id = settings.admin.user_ids[0]
    try:
        if await seed_account(settings.mysql, user_id, unionid_for(OPERATOR) or "", OPERATOR.nickname):
            logger.info("sandbox: account %d is the operator %s (sign in as them for /admin)", user_id,
                        OPERATOR.nickname)
    except (DatabaseUnavailable, OSError, pymysql.err.MySQLError) as exc:
        logger.warning("sandbox: could not seed the operator account (%s)", exc)


async def serve(settings: Settings, assets: Assets, sockets: list[socket.socket] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain and close."""
    services = build_services(settings)
    app = make_app(settings, services, assets)
    server = tornado.httpserver.HTTPServer(
        app, xheaders=False, max_body_size=settings.server.max_body_size, max_header_size=16 * 1024,
        idle_connection_timeout=60, body_timeout=15,
    )
    if sockets:
        server.add_sockets(sockets)
    else:
        server.listen(settings.server.port, settings.server.host)
    announce(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if loop.get_debug():  # PYTHONASYNCIODEBUG=1: asyncio logs every callback that holds the loop too long
        logger.warning("asyncio debug mode: callbacks slower than %.0f ms are logged",
                       1000 * loop.slow_callback_duration)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def purge_forever() -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            with contextlib.suppress(DatabaseUnavailable, Overloaded):
                await services.maintenance.purge_expired()

    purger = asyncio.create_task(purge_forever())
    # Closed accounts past their grace period (issue 16): every [accounts] purge_interval, one process at a time
    # across machines (a MySQL named lock inside run_once).
    deleter = asyncio.create_task(services.deletion.run_forever())
    await stop.wait()
    logger.info("shutting down: no new connections, draining in-flight requests")
    server.stop()
    services.scenes.shutdown()  # waiting pages (SSE, long-poll) end now and reconnect to another process
    purger.cancel()
    deleter.cancel()
    if not await app.settings["in_flight"].wait_idle(DRAIN_SECONDS):
        logger.warning("%d requests still running after %ds; closing anyway",
                       app.settings["in_flight"].count, DRAIN_SECONDS)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=DRAIN_SECONDS)
    except TimeoutError:
        logger.warning("some connections were still open after %ds", DRAIN_SECONDS)
    await services.close()
    logger.info("stopped")


def run_workers(settings: Settings, assets: Assets, count: int) -> int:
    """Bind once, fork ``count`` workers sharing the socket, keep them running until told to stop."""
    sockets = tornado.netutil.bind_sockets(settings.server.port, settings.server.host)
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                asyncio.run(serve(settings, assets, sockets))
            finally:
                os._exit(0)
        children[pid] = index

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for index in range(count):
        spawn(index)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("%d workers serving on %s:%d", count, settings.server.host, settings.server.port)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is not None and not stopping:
            logger.warning("worker %d (pid %d) exited with status %d; starting a new one", index, pid, status)
            time.sleep(1)  # a worker that dies at start must not become a fork storm
            spawn(index)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve wxlogin.")
    parser.add_argument("--config", default="settings.toml", help="path to settings.toml")
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes sharing the port (default [server] processes; 0 = one per CPU)")
    args = parser.parse_args(argv)
    configure_logging()
    env = dict(os.environ)
    if args.processes is not None:
        env["WXLOGIN_SERVER_PROCESSES"] = str(args.processes)
    try:
        settings = load_settings(args.config, env)
    except ConfigError as exc:
        print(f"wxlogin: configuration error: {exc}", file=sys.stderr)
        return 2
    assets = Assets.beside(HERE)
    if assets.missing():
        print(f"wxlogin: {assets.missing()[0]} does not exist (templates/ and static/ sit beside server.py)",
              file=sys.stderr)
        return 2
    count = settings.server.processes or (os.cpu_count() or 1)
    asyncio.run(migrate_once(settings))  # here, not in serve(): N workers would each migrate
    asyncio.run(seed_sandbox_operator(settings))
    if count == 1:
        asyncio.run(serve(settings, assets))
        return 0
    return run_workers(settings, assets, count)


if __name__ == "__main__":
    sys.exit(main())
