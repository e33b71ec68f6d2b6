"""The aiomysql pool behind a fair queue: bounded waits, transactions, MySQL errors turned into domain errors.

Every wait on MySQL is bounded (``acquire_timeout``, ``query_timeout``), so a frozen or dead server
gives a quick ``DatabaseUnavailable`` (a 503) instead of a hung request. A connection that failed or
timed out mid-statement is closed, never returned to the pool, because its protocol state is unknown.

Busy is not down: requests beyond ``pool_max`` wait in our FIFO queue (at most ``queue_limit`` of them),
and one that is turned away or runs out of time there while MySQL shows no sign of failure gets
``Overloaded`` (503 with Retry-After), never ``DatabaseUnavailable``. Only evidence against MySQL itself
(connect errors, a connect or query that used its whole timeout, operational errors) opens the breaker.

Contention is not down either: a statement waiting for rows another transaction holds (``FOR UPDATE`` of
one person, possibly by an app host that died mid-login and whose transaction MySQL keeps open) is ended
by the server itself, with ER_LOCK_WAIT_TIMEOUT (1205), after ``innodb_lock_wait_timeout``, which every
connection sets to a whole number of seconds below ``query_timeout`` (``lock_wait_seconds``). So the wait
never reaches the query timeout, which would trip the breaker and answer 503 to everyone; that one person
gets ``Overloaded`` (503 with Retry-After) instead, as does a deadlock (1213) that outlived the retries,
and everyone else is served meanwhile.

Round trips are what a login pays for (about 65 µs of aiomysql CPU each, bench/README.md), so every
statement goes through ``Cursor``, which counts them (``Database.round_trips``) and lets a write whose
result nobody reads wait (``defer``) to ride in the next packet: a transaction opens with its first
statement (``START TRANSACTION`` in the same packet, not a ``BEGIN`` of its own) and its deferred writes
go with ``COMMIT``. aiomysql always sends ``CLIENT_MULTI_STATEMENTS``, so several statements per packet
need nothing new from the server; they do need SQL text that is never built from values, which
tests/unit/test_sql_static.py proves for every store module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiomysql
import pymysql

from wxlogin import dbbudget, metrics
from wxlogin.config import MySQLSettings
from wxlogin.errors import DatabaseUnavailable, Overloaded

logger = logging.getLogger(__name__)

T = TypeVar("T")

ER_DUP_ENTRY = 1062
ER_LOCK_DEADLOCK = 1213
ER_LOCK_WAIT_TIMEOUT = 1205
ER_NO_REFERENCED_ROW = 1452  # a foreign key names a row that is not there (deleted a moment ago)
# A lock wait timeout is not retried: it already waited ``lock_wait_seconds`` for the holder, and another
# attempt would wait as long again, past the request's budget and into the query timeout.
RETRYABLE_ERRORS = (ER_DUP_ENTRY, ER_LOCK_DEADLOCK)
CONTENTION_ERRORS = (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT)  # busy rows of one person, not MySQL down
# Errors about one statement's values (PyMySQL raises some of them as OperationalError): a healthy server
# refusing what we sent. They say nothing against MySQL, so they must not trip the breaker, which would
# answer 503 to everyone in the process for a second because of one odd input (a review found /admin's
# IP filter doing it with "é"). Raised as they are: the caller validates its input, and a bug stays visible.
STATEMENT_ERRORS = (
    1267,  # ER_CANT_AGGREGATE_2COLLATIONS: a value outside a column's charset compared with it
    1270,  # ER_CANT_AGGREGATE_3COLLATIONS
    1271,  # ER_CANT_AGGREGATE_NCOLLATIONS
    1300,  # ER_INVALID_CHARACTER_STRING
    1366,  # ER_TRUNCATED_WRONG_VALUE_FOR_FIELD (incorrect string value)
)
MAX_TRANSACTION_ATTEMPTS = 4
# How long before ``query_timeout`` the server must have ended a lock wait by itself: the 1205 still has to
# travel back and be read on a busy event loop before our own timeout fires.
LOCK_WAIT_MARGIN = 0.5
BREAKER_SECONDS = 1.0
OVERLOAD_RETRY_AFTER = 1  # seconds; a burst drains in well under that at our throughput


def error_number(exc: BaseException) -> int | None:
    """Return the MySQL error number carried by a PyMySQL exception, if any."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def lock_wait_seconds(query_timeout: float) -> int:
    """The session's ``innodb_lock_wait_timeout``: whole seconds, ``LOCK_WAIT_MARGIN`` below ``query_timeout``.

    MySQL takes whole seconds and at least 1, so a ``query_timeout`` under 1.5 s gets 1 s, which does not
    end before it (``lock_waits_end_first``): there a lock wait still runs into the query timeout and is
    taken for MySQL failing, as before this setting existed.
    """
    return max(1, math.floor(query_timeout - LOCK_WAIT_MARGIN))


def lock_waits_end_first(query_timeout: float) -> bool:
    """Whether the server ends a row lock wait (1205) before ``query_timeout`` ends the statement."""
    return lock_wait_seconds(query_timeout) + LOCK_WAIT_MARGIN <= query_timeout


START_TRANSACTION = "START TRANSACTION"


class Cursor(aiomysql.Cursor):  # type: ignore[misc]  # aiomysql ships no type information
    """aiomysql's cursor that counts round trips and sends deferred writes with the next statement.

    ``execute`` sends what waits (``START TRANSACTION`` of a transaction not opened yet, deferred writes)
    and its own statement as one multi-statement packet, and leaves the cursor on the last statement's
    result, so callers read rows, ``rowcount`` and ``lastrowid`` exactly as before. A deferred write's
    error (a duplicate key, say) surfaces from the packet that carries it; in a transaction that is at
    the latest the commit, which ``Database.transaction`` retries like any other.
    """

    def __init__(self, connection: aiomysql.Connection, echo: bool = False) -> None:
        super().__init__(connection, echo)
        self._waiting: list[str] = []  # statements with their values already escaped in
        self._counter: Database | None = None
        self.sent = False  # whether any packet went out (so a transaction may be open on the server)

    def defer(self, query: str, args: tuple[Any, ...] | None = None) -> None:
        """Queue a write whose result nobody reads; it goes out with the next packet (or the commit).

        If ``work`` raises before that packet, the write is never sent (in a transaction it would have been
        rolled back anyway).
        """
        self._waiting.append(self.mogrify(query, args))

    async def execute(self, query: str, args: Any = None) -> int:
        if args is not None:
            query = self.mogrify(query, args)
        return await self._send([*self._waiting, query])

    async def flush(self, *, commit: bool = False) -> None:
        """Send what waits (and ``COMMIT``, if asked and a transaction was opened); nothing waits: no packet."""
        statements = self._waiting
        if statements == [START_TRANSACTION]:
            statements = []  # the transaction never ran a statement: nothing to open, nothing to commit
        if commit and (statements or self.sent):
            statements = [*statements, "COMMIT"]
        if statements:
            await self._send(statements)

    async def _send(self, statements: list[str]) -> int:
        self._waiting = []
        self.sent = True
        if self._counter is not None:
            self._counter.round_trips += 1
        await super().execute(";\n".join(statements))
        for _ in range(len(statements) - 1):
            await self.nextset()  # an earlier statement's error is raised here, and stops the packet
        return int(self.rowcount)


class QueueFull(Exception):
    """The admission queue already holds ``queue_limit`` waiters."""


class Admission:
    """A first-come-first-served line of at most ``limit`` waiters for ``permits`` connections.

    Why not just aiomysql's own waiting: it waits on an asyncio.Condition, which on Python 3.11 loses the
    wake-up when the woken waiter is cancelled (our bounded acquire cancels), and lets newcomers overtake
    a woken waiter. With one permit per pooled connection no more callers are inside aiomysql than it
    has connections, so its Condition never has a waiter; here a freed permit goes straight to the
    oldest waiter, and a waiter that gives up in the same turn hands it on, so none is ever lost.
    """

    def __init__(self, permits: int, limit: int) -> None:
        self._free = permits
        self.limit = limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Recorded only when someone has to wait (the fast path above records nothing).
        self._waits = {result: metrics.DB_WAITS.labels(result) for result in ("served", "timeout", "full", "failed")}

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self, timeout: float) -> None:
        """Take a permit, waiting in line at most ``timeout`` seconds (TimeoutError), or QueueFull at once."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        if len(self._waiters) >= self.limit:
            self._waits["full"].inc()
            raise QueueFull
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        result = "served"
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException as exc:
            result = "timeout" if isinstance(exc, TimeoutError) else "failed"
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.leave()  # the permit arrived in the turn we gave up: pass it on, do not drop it
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            self._waits[result].inc()

    def leave(self) -> None:
        """Give a permit back: to the oldest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def fail_waiters(self, detail: str) -> None:
        """MySQL just failed: answer everyone in line now rather than let them queue on a dead server."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(DatabaseUnavailable(detail))


class Database:
    """Owns the aiomysql pool; the only object in the program that talks to MySQL."""

    def __init__(self, settings: MySQLSettings) -> None:
        self.settings = settings
        self._pool: aiomysql.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._down_until = 0.0
        self._failed_at = float("-inf")
        self._admission = Admission(settings.pool_max, settings.queue_limit)
        self._breaker_open = metrics.DB_BREAKER_OPEN.labels("mysql")
        self._breaker_reported = False  # the gauge is written on changes only, not on every check
        self.round_trips = 0  # packets of statements sent to MySQL since start (tests/handlers/test_round_trips.py)
        self.lock_wait = lock_wait_seconds(settings.query_timeout)
        self._lock_waits_end_first = lock_waits_end_first(settings.query_timeout)

    def _trip(self) -> None:
        """After a failure, answer 'unavailable' at once for a moment instead of queueing on a dead server.

        One request then waits for at most one timeout, not one per statement it would have run, and a
        frozen MySQL does not collect a pile of waiting requests (those already in line are answered now);
        the first call after the pause probes again. Only evidence against MySQL may call this.
        """
        now = asyncio.get_running_loop().time()
        self._down_until = now + BREAKER_SECONDS
        self._failed_at = now
        metrics.DB_BREAKER_TRIPS.labels("mysql").inc()
        if not self._breaker_reported:
            self._breaker_reported = True
            self._breaker_open.set(1)
        self._admission.fail_waiters("recently failed")

    def _check_breaker(self) -> None:
        if asyncio.get_running_loop().time() < self._down_until:
            raise DatabaseUnavailable("recently failed")
        if self._breaker_reported:
            self._breaker_reported = False
            self._breaker_open.set(0)

    def _out_of_time(self, detail: str) -> Overloaded | DatabaseUnavailable:
        """A request ran out of time waiting: busy unless MySQL failed within one request's allowance.

        Queueing is not evidence against MySQL, so this never trips the breaker.
        """
        window = self.settings.acquire_timeout + self.settings.query_timeout
        if asyncio.get_running_loop().time() - self._failed_at < window:
            return DatabaseUnavailable(detail)
        return Overloaded(OVERLOAD_RETRY_AFTER)

    def _contended(self, exc: BaseException, attempts: int) -> Overloaded:
        """A row lock wait or deadlock that outlived its retries: this person's rows are busy, MySQL is fine.

        Never trips the breaker: other people's rows are not locked, and their requests go on being served.
        """
        number = error_number(exc)
        what = "row lock wait timed out" if number == ER_LOCK_WAIT_TIMEOUT else "deadlock"
        logger.warning("MySQL %s (%s) after %d attempt(s): answering 503 overloaded, not a MySQL failure",
                       what, number, attempts)
        metrics.DB_CONTENTION.labels(str(number)).inc()
        return Overloaded(max(OVERLOAD_RETRY_AFTER, self.lock_wait if number == ER_LOCK_WAIT_TIMEOUT else 0))

    def _timeout_is_evidence(self, wait: float) -> bool:
        """Whether a statement that ran out of ``wait`` seconds is evidence that MySQL is down.

        Besides the rule for a wait cut short (``_counts_against_mysql``): a statement waiting for a row
        lock is ended by the server after ``lock_wait`` seconds, so only a wait that outlived that (with the
        margin) proves MySQL stopped answering. A shorter one may have been waiting for a lock.
        """
        if not _counts_against_mysql(wait, self.settings.query_timeout):
            return False
        return not self._lock_waits_end_first or wait >= self.lock_wait + LOCK_WAIT_MARGIN

    def connect_kwargs(self, with_database: bool = True) -> dict[str, Any]:
        """Connection arguments shared by the pool and the set-up tool."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "user": s.user,
            "password": s.password.value,
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": s.connect_timeout,
            "local_infile": False,
            # aiomysql sends "SET sql_mode=<value>" verbatim, hence the quotes; the session's lock wait rides
            # in the same SET (one statement, once per new connection, no round trip of its own): a row lock
            # wait ends with 1205 before query_timeout would take it for MySQL being down.
            "sql_mode": "'STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', "
                        f"SESSION innodb_lock_wait_timeout = {self.lock_wait:d}",
            # READ COMMITTED: no gap locks, so concurrent first logins of one person queue on the
            # unique keys instead of deadlocking on gaps, and a retry sees the winner's rows.
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        }
        if s.unix_socket:
            kwargs["unix_socket"] = s.unix_socket
        else:
            kwargs.update(host=s.host, port=s.port)
        if with_database:
            kwargs["db"] = s.database
        return kwargs

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
                except (TimeoutError, OSError, pymysql.err.MySQLError) as exc:
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
        stats = {"size": 0, "free": 0, "max": self.settings.pool_max, "waiting": self._admission.waiting}
        if self._pool is not None:
            stats.update(size=self._pool.size, free=self._pool.freesize, max=self._pool.maxsize)
        return stats

    def sample_metrics(self) -> None:
        """Write the pool's gauges (connections in use, the pool's size limit, requests in line) from its state
        now: sampled (each second, and at each scrape) instead of written on every lend and return, which would
        cost every statement two mmap writes in multiprocess mode."""
        stats = self.pool_stats
        metrics.DB_CONNECTIONS.labels("in_use").set(stats["size"] - stats["free"])
        metrics.DB_CONNECTIONS.labels("max").set(self.settings.pool_max)
        metrics.DB_WAITING.labels("admission").set(stats["waiting"])

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiomysql.Connection]:
        """Lend a connection for a bounded time; broken connections are discarded, not pooled."""
        self._check_breaker()
        wait = dbbudget.allowance(self.settings.acquire_timeout)
        if wait <= 0:
            raise self._out_of_time("request budget spent")
        pool = await self._ensure_pool()
        with dbbudget.Meter():
            conn = await self._lend(pool, wait)
        try:
            yield conn
        except BaseException as exc:
            if _connection_is_suspect(exc):
                conn.close()
            raise
        finally:
            try:
                pool.release(conn)
            finally:
                self._admission.leave()

    async def _lend(self, pool: aiomysql.Pool, wait: float) -> aiomysql.Connection:
        """Wait in line for a permit, then take a connection; within ``wait`` seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            await self._admission.enter(wait)
        except QueueFull:
            raise Overloaded(OVERLOAD_RETRY_AFTER) from None
        except TimeoutError:
            raise self._out_of_time("queue") from None
        return await self._acquire(pool, deadline - loop.time())

    async def _acquire(self, pool: aiomysql.Pool, wait: float) -> aiomysql.Connection:
        """pool.acquire() for a permit holder, who gets a free connection or a new one at once.

        So an acquire that uses its whole ``acquire_timeout`` means MySQL is not accepting connections.
        The caller stops waiting after ``wait`` (its request's budget may be shorter than that), without
        waiting for a cancellation to unwind: aiomysql may be stuck in a handshake with a frozen server.
        The acquire itself runs on until done or until its own ``acquire_timeout``; then it returns a late
        connection to the pool and the permit to the line. The permit stays taken until then, so
        aiomysql never holds more callers than connections.
        """
        limit = self.settings.acquire_timeout
        task = asyncio.ensure_future(pool.acquire())
        overdue = asyncio.get_running_loop().call_later(limit, task.cancel)
        try:
            done, _ = await asyncio.wait({task}, timeout=max(wait, 0.0))
        except asyncio.CancelledError:
            self._abandon(pool, task, overdue)
            raise
        if not done:
            self._abandon(pool, task, overdue)
            if not _counts_against_mysql(wait, limit):
                raise self._out_of_time("acquire")
            task.cancel()
            logger.warning("cannot get a MySQL connection within %.1fs (pool %s)", limit, self.pool_stats)
            self._trip()
            raise DatabaseUnavailable("acquire")
        overdue.cancel()
        if task.cancelled() or task.exception() is not None:
            self._admission.leave()
            exc = None if task.cancelled() else task.exception()
            if exc is not None and not isinstance(exc, (OSError, pymysql.err.MySQLError)):
                raise exc
            logger.warning("cannot get a MySQL connection: %s (pool %s)",
                           _describe(exc) if exc else "TimeoutError", self.pool_stats)
            self._trip()
            raise DatabaseUnavailable("acquire")
        return task.result()

    def _abandon(self, pool: aiomysql.Pool, task: asyncio.Future[aiomysql.Connection],
                 overdue: asyncio.TimerHandle) -> None:
        def finished(done: asyncio.Future[aiomysql.Connection]) -> None:
            overdue.cancel()
            try:
                if done.cancelled() or isinstance(done.exception(), (OSError, pymysql.err.MySQLError)):
                    # Cancelled only by its own acquire_timeout (or after we already tripped): evidence.
                    self._trip()
                elif done.exception() is None:
                    pool.release(done.result())
            finally:
                self._admission.leave()

        task.add_done_callback(finished)

    async def run(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        """Run ``work`` with a cursor in autocommit mode, bounded by ``query_timeout``.

        Not retried (earlier statements of ``work`` are committed already): a lock wait timeout or a
        deadlock answers ``Overloaded``.
        """
        try:
            return await self._bounded(self._run_plain, work)
        except pymysql.err.OperationalError as exc:
            if error_number(exc) in CONTENTION_ERRORS:
                raise self._contended(exc, 1) from None
            raise

    async def transaction(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retrying it on deadlock or duplicate key.

        ``work`` must be safe to run again from the start: a duplicate key means a concurrent
        transaction created the row we wanted, and the retry finds it. A lock wait timeout (not retried,
        see ``RETRYABLE_ERRORS``) or a deadlock on the last attempt answers ``Overloaded``.
        """
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                return await self._bounded(self._run_transaction, work)
            except pymysql.err.MySQLError as exc:
                number = error_number(exc)
                if number in CONTENTION_ERRORS and (number not in RETRYABLE_ERRORS
                                                    or attempt == MAX_TRANSACTION_ATTEMPTS):
                    raise self._contended(exc, attempt) from None
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
                    raise self._out_of_time("request budget spent")
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for wraps every statement in a new Task.
                    with dbbudget.Meter():
                        async with asyncio.timeout(wait):
                            return await runner(conn, work)
                except TimeoutError:
                    if self._timeout_is_evidence(wait):
                        raise
                    conn.close()  # the wire may hold half a reply
                    raise self._out_of_time("query") from None
        except TimeoutError:
            logger.warning("MySQL query exceeded %.1fs", self.settings.query_timeout)
            self._trip()
            raise DatabaseUnavailable("timeout") from None
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
            if error_number(exc) in CONTENTION_ERRORS:
                raise  # busy rows, not MySQL down: run and transaction answer it
            if error_number(exc) in STATEMENT_ERRORS:
                logger.error("MySQL refused a statement's values: %s", _describe(exc))
                raise
            logger.warning("MySQL unavailable: %s", _describe(exc))
            self._trip()
            raise DatabaseUnavailable("operational") from None

    async def _cursor(self, conn: aiomysql.Connection) -> Cursor:
        cur = await conn.cursor(Cursor)
        assert isinstance(cur, Cursor)
        cur._counter = self
        return cur

    async def _run_plain(self, conn: aiomysql.Connection, work: Callable[[Cursor], Awaitable[T]]) -> T:
        async with await self._cursor(conn) as cur:
            result = await work(cur)
            await cur.flush()
            return result

    async def _run_transaction(self, conn: aiomysql.Connection, work: Callable[[Cursor], Awaitable[T]]) -> T:
        cur = await self._cursor(conn)
        cur.defer(START_TRANSACTION)  # opened by the first statement's packet: no BEGIN round trip of its own
        try:
            result = await work(cur)
            await cur.flush(commit=True)
        except BaseException as exc:
            if _connection_is_suspect(exc):
                # Never await a rollback here: on a frozen server it would hang past every timeout.
                # Closing the connection makes the server roll the transaction back itself.
                conn.close()
            elif cur.sent:
                self.round_trips += 1
                await conn.rollback()
            raise
        await cur.close()
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
        except Overloaded:
            # Busy is not down: MySQL is serving the requests ahead in line, and a load balancer
            # must not take a healthy server out of rotation for a burst.
            return True


def _counts_against_mysql(wait: float, bound: float) -> bool:
    """Whether running out of ``wait`` seconds on a connect or a statement is evidence that MySQL is down.

    A healthy server answers in milliseconds, so a wait of at least half its timeout that ran out is
    evidence. A shorter one was cut short by a request budget spent queueing, and proves nothing.
    """
    return wait >= bound / 2


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
