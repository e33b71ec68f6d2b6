"""The aiomysql pool: bounded acquire and queries, transactions, and MySQL errors turned into domain errors.

Every wait on MySQL is bounded (``acquire_timeout``, ``query_timeout``), so a frozen or dead server
gives a quick ``DatabaseUnavailable`` (a 503) instead of a hung request. A connection that failed or
timed out mid-statement is closed, never returned to the pool, because its protocol state is unknown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiomysql
import pymysql

from wxlogin import dbbudget
from wxlogin.config import MySQLSettings
from wxlogin.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

ER_DUP_ENTRY = 1062
ER_LOCK_DEADLOCK = 1213
ER_LOCK_WAIT_TIMEOUT = 1205
RETRYABLE_ERRORS = (ER_DUP_ENTRY, ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT)
MAX_TRANSACTION_ATTEMPTS = 4
BREAKER_SECONDS = 1.0


def error_number(exc: BaseException) -> int | None:
    """Return the MySQL error number carried by a PyMySQL exception, if any."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class Database:
    """Owns the aiomysql pool; the only object in the program that talks to MySQL."""

    def __init__(self, settings: MySQLSettings) -> None:
        self.settings = settings
        self._pool: aiomysql.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._down_until = 0.0

    def _trip(self) -> None:
        """After a failure, answer 'unavailable' at once for a moment instead of queueing on a dead server.

        One request then waits for at most one timeout, not one per statement it would have run, and a
        frozen MySQL does not collect a pile of waiting requests; the first call after the pause probes again.
        """
        self._down_until = asyncio.get_running_loop().time() + BREAKER_SECONDS

    def _check_breaker(self) -> None:
        if asyncio.get_running_loop().time() < self._down_until:
            raise DatabaseUnavailable("recently failed")

    def connect_kwargs(self, with_database: bool = True) -> dict[str, Any]:
        """Connection arguments shared by the pool and the set-up tool."""
        s = self.settings
        kwargs: dict[str, Any] = dict(
            user=s.user,
            password=s.password.value,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=s.connect_timeout,
            local_infile=False,
            # aiomysql sends "SET sql_mode=<value>" verbatim, hence the quotes.
            sql_mode="'STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'",
            # READ COMMITTED: no gap locks, so concurrent first logins of one person queue on the
            # unique keys instead of deadlocking on gaps, and a retry sees the winner's rows.
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
        if s.unix_socket:
            kwargs["unix_socket"] = s.unix_socket
        else:
            kwargs.update(host=s.host, port=s.port)
        if with_database:
            kwargs["db"] = s.database
        return kwargs

    async def open(self) -> None:
        """Create the pool (lazily retried later if MySQL is down now)."""
        await self._ensure_pool()

    async def _ensure_pool(self) -> aiomysql.Pool:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                s = self.settings
                try:
                    self._pool = await asyncio.wait_for(
                        aiomysql.create_pool(
                            minsize=s.pool_min, maxsize=s.pool_max, pool_recycle=s.pool_recycle, **self.connect_kwargs()
                        ),
                        timeout=s.connect_timeout + s.acquire_timeout,
                    )
                except (asyncio.TimeoutError, OSError, pymysql.err.MySQLError) as exc:
                    logger.warning("cannot create the MySQL pool: %s", _describe(exc))
                    self._trip()
                    raise DatabaseUnavailable("pool") from None
        return self._pool

    async def close(self) -> None:
        """Close every connection; waits for connections in use to come back."""
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    @property
    def pool_stats(self) -> dict[str, int]:
        if self._pool is None:
            return {"size": 0, "free": 0, "max": self.settings.pool_max}
        return {"size": self._pool.size, "free": self._pool.freesize, "max": self._pool.maxsize}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiomysql.Connection]:
        """Lend a connection for a bounded time; broken connections are discarded, not pooled."""
        self._check_breaker()
        wait = dbbudget.allowance(self.settings.acquire_timeout)
        if wait <= 0:
            raise DatabaseUnavailable("request budget spent")
        pool = await self._ensure_pool()
        try:
            with dbbudget.Meter():
                conn = await _acquire_within(pool, wait)
        except (asyncio.TimeoutError, OSError, pymysql.err.MySQLError) as exc:
            logger.warning("cannot get a MySQL connection: %s (pool %s)", _describe(exc), self.pool_stats)
            self._trip()
            raise DatabaseUnavailable("acquire") from None
        try:
            yield conn
        except BaseException as exc:
            if _connection_is_suspect(exc):
                conn.close()
            raise
        finally:
            pool.release(conn)

    async def run(self, work: Callable[[aiomysql.Cursor], Awaitable[T]]) -> T:
        """Run ``work`` with a cursor in autocommit mode, bounded by ``query_timeout``."""
        return await self._bounded(self._run_plain, work)

    async def transaction(self, work: Callable[[aiomysql.Cursor], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retrying it on deadlock, lock timeout or duplicate key.

        ``work`` must be safe to run again from the start: a duplicate key means a concurrent
        transaction created the row we wanted, and the retry finds it.
        """
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                return await self._bounded(self._run_transaction, work)
            except pymysql.err.MySQLError as exc:
                number = error_number(exc)
                if number not in RETRYABLE_ERRORS or attempt == MAX_TRANSACTION_ATTEMPTS:
                    raise
                logger.info("transaction retry %d after MySQL error %s", attempt, number)
                await asyncio.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    async def _bounded(self, runner: Callable[..., Awaitable[T]], work: Callable[..., Awaitable[T]]) -> T:
        try:
            async with self.connection() as conn:
                wait = dbbudget.allowance(self.settings.query_timeout)
                if wait <= 0:
                    raise DatabaseUnavailable("request budget spent")
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps every statement in a new Task.
                with dbbudget.Meter():
                    async with asyncio.timeout(wait):
                        return await runner(conn, work)
        except asyncio.TimeoutError:
            logger.warning("MySQL query exceeded %.1fs", self.settings.query_timeout)
            self._trip()
            raise DatabaseUnavailable("timeout") from None
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
            if error_number(exc) in RETRYABLE_ERRORS:
                raise
            logger.warning("MySQL unavailable: %s", _describe(exc))
            self._trip()
            raise DatabaseUnavailable("operational") from None

    @staticmethod
    async def _run_plain(conn: aiomysql.Connection, work: Callable[[aiomysql.Cursor], Awaitable[T]]) -> T:
        async with conn.cursor() as cur:
            return await work(cur)

    @staticmethod
    async def _run_transaction(conn: aiomysql.Connection, work: Callable[[aiomysql.Cursor], Awaitable[T]]) -> T:
        await conn.begin()
        try:
            async with conn.cursor() as cur:
                result = await work(cur)
            await conn.commit()
        except BaseException as exc:
            if _connection_is_suspect(exc):
                # Never await a rollback here: on a frozen server it would hang past every timeout.
                # Closing the connection makes the server roll the transaction back itself.
                conn.close()
            else:
                await conn.rollback()
            raise
        return result

    async def ping(self) -> bool:
        """Return True when a trivial query succeeds within the timeouts."""

        async def select_one(cur: aiomysql.Cursor) -> bool:
            await cur.execute("SELECT 1")
            row = await cur.fetchone()
            return bool(row == (1,))

        try:
            return await self.run(select_one)
        except DatabaseUnavailable:
            return False


async def _acquire_within(pool: aiomysql.Pool, seconds: float) -> aiomysql.Connection:
    """pool.acquire() that gives up after ``seconds`` without waiting for the cancellation to finish.

    asyncio.wait_for would wait until the cancelled acquire has unwound, and aiomysql's acquire may first
    have to retake the pool's lock from another caller stuck in a handshake with a frozen server; that
    wait is unbounded. A late connection is handed straight back to the pool.
    """
    task = asyncio.ensure_future(pool.acquire())
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _abandon(pool, task)
        raise
    if not done:
        _abandon(pool, task)
        raise asyncio.TimeoutError
    return task.result()


def _abandon(pool: aiomysql.Pool, task: asyncio.Future[aiomysql.Connection]) -> None:
    task.cancel()
    task.add_done_callback(lambda t: _return_late_connection(pool, t))


def _return_late_connection(pool: aiomysql.Pool, task: asyncio.Future[aiomysql.Connection]) -> None:
    if not task.cancelled() and task.exception() is None:
        pool.release(task.result())


def _connection_is_suspect(exc: BaseException) -> bool:
    """True when the wire may hold half a reply: cancellation, I/O or client-side (2xxx) errors."""
    if isinstance(exc, pymysql.err.MySQLError):
        number = error_number(exc)
        return number is None or number >= 2000
    return isinstance(exc, (asyncio.CancelledError, asyncio.TimeoutError, OSError))


def _describe(exc: BaseException) -> str:
    number = error_number(exc)
    name = type(exc).__name__
    return f"{name} {number}" if number is not None else name
