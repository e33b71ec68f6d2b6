"""A private MariaDB instance for tests that stop, freeze or cut the database.

It has its own data directory and port, so killing it never touches the machine's shared server.
``mariadb-install-db`` and ``mariadbd`` come with Debian's ``mariadb-server`` package.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiomysql


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name)
                                       if p.exists()), None)


def missing_reason() -> str | None:
    """Why a private instance cannot be started here (None when it can)."""
    for name in ("mariadb-install-db", "mariadbd"):
        if _binary(name) is None:
            return f"{name} not found: install Debian's mariadb-server package (apt-get install mariadb-server)"
    return None


class PrivateMariaDB:
    """One mariadbd process the test owns: start, kill -9, SIGSTOP/SIGCONT, restart on the same data."""

    def __init__(self, root: Path, port: int | None = None, host: str = "127.0.0.1",
                 prefix: tuple[str, ...] = (), options: tuple[str, ...] = ()) -> None:
        """``host``: the address to listen on; ``prefix``: what runs it elsewhere (``ip netns exec <ns>``);
        ``options``: more server options (``--name=value``).

        Off loopback, the test still talks to it through its Unix socket (a path works in any network
        namespace), clients are not looked up in DNS, and root may connect from anywhere.
        """
        self.root = root
        self.datadir = root / "data"
        self.port = port or free_port()
        self.host = host
        self.prefix = prefix
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    async def start(self, timeout: float = 30) -> None:
        if not self.datadir.exists():
            self.install()
        args = [
            *self.prefix, _binary("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
            f"--bind-address={self.host}", *(["--skip-name-resolve"] if self.host != "127.0.0.1" else []),
            f"--socket={self.root / 'mysqld.sock'}", f"--pid-file={self.root / 'pid'}",
            "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=1", "--max-connections=200", f"--log-error={self.root / 'error.log'}",
            *self.options,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await self.wait_ready(timeout)
        if self.host != "127.0.0.1":
            await self.query("CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY ''")
            await self.query("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%%' WITH GRANT OPTION")

    async def wait_ready(self, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await self.query("SELECT 1")
                return
            except Exception:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"mariadbd exited; see {self.root / 'error.log'}") from None
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def kill9(self) -> None:
        """Crash it: no shutdown, no flush beyond what InnoDB already made durable."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    async def stop(self) -> None:
        if self.process is None:
            return
        os.kill(self.process.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), 30)
        except TimeoutError:
            self.process.kill()
            self.process.wait()
        self.process = None

    async def query(self, sql: str, args: tuple[Any, ...] = (), db: str | None = None) -> list[tuple[Any, ...]]:
        where: dict[str, Any] = {"host": "127.0.0.1", "port": self.port} if self.host == "127.0.0.1" else \
            {"unix_socket": str(self.root / "mysqld.sock")}
        conn = await aiomysql.connect(**where, user="root", password="", db=db, autocommit=True, charset="utf8mb4",
                                      connect_timeout=2)
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql, args)
                return list(await cur.fetchall())
        finally:
            conn.close()


def app_database(db: PrivateMariaDB, query_timeout: float = 10.0) -> Any:
    """The application's own Database object (pool, retries, session settings) on the private instance."""
    from harness import DATABASE
    from wxlogin.config import MySQLSettings, Secret
    from wxlogin.store.db import Database

    return Database(MySQLSettings(host="127.0.0.1", port=db.port, user="root", password=Secret(""), database=DATABASE,
                                  pool_min=1, pool_max=4, connect_timeout=2.0, acquire_timeout=2.0,
                                  query_timeout=query_timeout))
