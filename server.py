"""Serve wxlogin: `python server.py --config settings.toml [--processes N]`; check it: `--check`.

Loads and validates the settings, applies migrations once (in the parent, before any worker exists),
builds the services (pool, WeChat client), serves the app, and on SIGTERM/SIGINT stops accepting, lets
in-flight requests finish, closes the pool. With N > 1 (or [server] processes), the parent binds the
port, forks N workers that share it, restarts a worker that dies, and passes SIGTERM/SIGINT on to them.
Nothing a login needs lives in one worker's memory (states, the double-callback cache and sessions are
in MySQL or signed), so any worker can finish what another started. Templates and static files are the
ones beside this file (templates/, static/), wherever the package itself is installed.

Metrics (``[metrics] listen``): the parent gives every process a fresh private directory for its values
before it forks (wxlogin/metrics.py), binds the metrics port, and worker 0 serves the sum of all workers
there (a single process serves it itself); a worker that exits is forgotten from the live gauges, and the
directory is removed when the parent ends.

``--check`` prints the configuration check's findings (services/configcheck.py) and exits 1 on an error. The
server runs the same checks at start-up, after the migrations and before forking, without the calls to
WeChat, and refuses to start on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "site"))

import pymysql  # noqa: E402
import tornado.httpserver  # noqa: E402
import tornado.netutil  # noqa: E402

from wxlogin import metrics  # noqa: E402
from wxlogin.app import Assets, make_app, make_metrics_app, push_urls  # noqa: E402
from wxlogin.config import SANDBOX_PREFIX, AdminSettings, ConfigError, Settings, load_settings  # noqa: E402
from wxlogin.errors import DatabaseUnavailable, Overloaded  # noqa: E402
from wxlogin.logsetup import configure_logging  # noqa: E402
from wxlogin.sandbox.people import OPERATOR, unionid_for  # noqa: E402
from wxlogin.services import build_services  # noqa: E402
from wxlogin.services.configcheck import Finding, Level  # noqa: E402
from wxlogin.services.wiring import build_config_check  # noqa: E402
from wxlogin.store.migrations import migrate  # noqa: E402
from wxlogin.store.setup import seed_account  # noqa: E402

logger = logging.getLogger("wxlogin.server")
PURGE_INTERVAL = 600
DRAIN_SECONDS = 10
METRICS_SAMPLE = 1.0  # seconds between samples of a worker's pool gauges (metrics on only)


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
    # Said at every start: who can use /admin (the effective list: in the sandbox, with its seeded operator).
    operators = settings.admin.user_ids
    logger.info("operator console /admin: %s", f"accounts {', '.join(map(str, operators))}"
                if operators else "nobody ([admin] user_ids is empty)")


async def migrate_once(settings: Settings) -> bool:
    """Bring the schema up to date; called once per start, before any worker exists. False: MySQL is down."""
    try:
        applied = await migrate(settings.mysql)
        if applied:
            logger.info("database schema migrated to version %d", applied[-1])
    except DatabaseUnavailable as exc:
        logger.warning("could not check the schema at start-up (%s); continuing, pages will say 503", exc.detail)
        return False
    return True


async def check_config(settings: Settings, *, wechat: bool, mysql: bool = True, startup: bool = False
                       ) -> list[Finding]:
    """The configuration check's findings, the push endpoints' URLs (from the routes) last.

    ``startup``: the server's own check, where MySQL not answering is a warning, not a refusal."""
    check, close = build_config_check(settings)
    try:
        findings = await check.run(wechat=wechat, mysql=mysql, startup=startup)
    finally:
        await close()
    for table, url in push_urls(settings):
        findings.append(Finding(Level.OK, table, f"server URL to paste into WeChat's console: {url}"))
    return findings


def run_check(settings: Settings) -> int:
    """``--check``: every finding, one line each; 1 when any is an error."""
    # The findings say what failed; the client's own warnings (each unreachable call, each retry) would repeat it.
    logging.getLogger("wxlogin").setLevel(logging.ERROR)
    findings = asyncio.run(check_config(settings, wechat=True))
    for finding in findings:
        print(finding.line())
    errors = sum(f.level is Level.ERROR for f in findings)
    warnings = sum(f.level is Level.WARNING for f in findings)
    print(f"{errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def start_metrics(settings: Settings) -> list[socket.socket]:
    """Metrics on: a fresh private directory for every process's values, and the listener's socket."""
    where = settings.metrics.host_port
    if where is None:
        metrics.use_directory(None)  # an inherited PROMETHEUS_MULTIPROC_DIR must not collect our values
        return []
    directory = tempfile.mkdtemp(prefix="wxlogin-metrics-")
    parent = os.getpid()
    # Only the parent removes it (workers leave with os._exit, which runs no atexit handler).
    atexit.register(lambda: os.getpid() == parent and shutil.rmtree(directory, ignore_errors=True))
    metrics.use_directory(directory)
    sockets = tornado.netutil.bind_sockets(where[1], where[0])
    logger.info("metrics on http://%s/metrics (not the public port)", settings.metrics.listen)
    return sockets


async def seed_sandbox_operator(settings: Settings) -> Settings:
    """In the sandbox, the sandbox's operator person's account, and the settings the services get: with it an operator.

    The account is the one carrying the operator's unionid, created on a fresh database (README "The sandbox"):
    the operator's first scan lands on it. Only in sandbox mode: the shipped ``[admin] user_ids`` is empty, so
    outside it nobody is an operator until the file names someone (never whoever signed up first).
    """
    if not settings.wechat.sandbox:
        return settings
    try:
        user_id, created = await seed_account(settings.mysql, unionid_for(OPERATOR) or "", OPERATOR.nickname)
    except (DatabaseUnavailable, OSError, pymysql.err.MySQLError) as exc:
        logger.warning("sandbox: could not seed the operator account (%s); no sandbox operator", exc)
        return settings
    logger.info("sandbox: account %d is the operator %s%s (sign in as them for /admin)", user_id, OPERATOR.nickname,
                ", created now" if created else "")
    if user_id in settings.admin.user_ids:
        return settings
    return replace(settings, admin=AdminSettings(user_ids=(*settings.admin.user_ids, user_id)))


async def serve(settings: Settings, assets: Assets, sockets: list[socket.socket] | None = None,
                metrics_sockets: list[socket.socket] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain and close. ``metrics_sockets``: this process serves /metrics."""
    services = build_services(settings)
    app = make_app(settings, services, assets)
    metrics.WORKERS.labels("web").set(1)
    server = tornado.httpserver.HTTPServer(
        app, xheaders=False, max_body_size=settings.server.max_body_size, max_header_size=16 * 1024,
        idle_connection_timeout=60, body_timeout=15,
    )
    if sockets:
        server.add_sockets(sockets)
    else:
        server.listen(settings.server.port, settings.server.host)
    metrics_server = None
    if metrics_sockets:
        metrics_server = tornado.httpserver.HTTPServer(make_metrics_app(services), idle_connection_timeout=60)
        metrics_server.add_sockets(metrics_sockets)
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
    sampler = None
    if settings.metrics.listen:
        async def sample_forever() -> None:
            while True:
                services.maintenance.sample_metrics()
                await asyncio.sleep(METRICS_SAMPLE)

        sampler = asyncio.create_task(sample_forever())
    await stop.wait()
    logger.info("shutting down: no new connections, draining in-flight requests")
    server.stop()
    if metrics_server is not None:
        metrics_server.stop()
    services.scenes.shutdown()  # waiting pages (SSE, long-poll) end now and reconnect to another process
    purger.cancel()
    deleter.cancel()
    if sampler is not None:
        sampler.cancel()
    if not await app.settings["in_flight"].wait_idle(DRAIN_SECONDS):
        logger.warning("%d requests still running after %ds; closing anyway",
                       app.settings["in_flight"].count, DRAIN_SECONDS)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=DRAIN_SECONDS)
    except TimeoutError:
        logger.warning("some connections were still open after %ds", DRAIN_SECONDS)
    await services.close()
    logger.info("stopped")


def run_workers(settings: Settings, assets: Assets, count: int, metrics_sockets: list[socket.socket]) -> int:
    """Bind once, fork ``count`` workers sharing the socket, keep them running until told to stop.

    Worker 0 (and whichever replaces it) also serves the metrics listener: every worker's values, added up.
    """
    sockets = tornado.netutil.bind_sockets(settings.server.port, settings.server.host)
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                asyncio.run(serve(settings, assets, sockets, metrics_sockets if index == 0 else None))
            finally:
                os._exit(0)
        children[pid] = index

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # The parent records nothing more (its migrations and start-up check did, once): its live gauges leave the
    # sums, so a breaker its check saw open cannot stay "open" for as long as it lives.
    metrics.process_exited(os.getpid())
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
        metrics.process_exited(pid)  # its live gauges (pool, queue, breaker) leave the sums; counters stay
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
    parser.add_argument("--check", action="store_true",
                        help="check the configuration (WeChat, MySQL, URLs, secrets), print the findings, exit "
                             "non-zero on an error")
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
    if args.check:
        return run_check(settings)
    count = settings.server.processes or (os.cpu_count() or 1)
    try:
        metrics_sockets = start_metrics(settings)  # before anything records a value, and before forking
    except OSError as exc:
        print(f"wxlogin: configuration error: [metrics] listen {settings.metrics.listen}: cannot listen there "
              f"({exc.strerror})", file=sys.stderr)
        return 2
    mysql_up = asyncio.run(migrate_once(settings))  # here, not in serve(): N workers would each migrate
    if mysql_up:
        settings = asyncio.run(seed_sandbox_operator(settings))  # the sandbox's operator joins [admin] user_ids
    # The configuration check without WeChat (no wait on it, no quota spent), after the migrations, before forking.
    findings = asyncio.run(check_config(settings, wechat=False, mysql=mysql_up, startup=True))
    for finding in findings:
        if finding.level is Level.WARNING:
            logger.warning("configuration: %s", finding.line())
    errors = [f for f in findings if f.level is Level.ERROR]
    if errors:
        print(f"wxlogin: configuration error: {errors[0].key}: {errors[0].message}"
              + (f" (and {len(errors) - 1} more: python server.py --check)" if len(errors) > 1 else ""),
              file=sys.stderr)
        return 2
    if count == 1:
        asyncio.run(serve(settings, assets, metrics_sockets=metrics_sockets))
        return 0
    return run_workers(settings, assets, count, metrics_sockets)


if __name__ == "__main__":
    sys.exit(main())
