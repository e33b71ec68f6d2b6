"""The Prometheus metrics (issue 16): each metric object defined once here, recorded where the event happens.

A foundation module: it imports nothing of wxlogin above it, so the store (pool, breaker), the WeChat client
(calls, latency, errcode) and the services (logins, app-token refreshes) can all record into it without a
layer importing another. Only this module imports ``prometheus_client`` (an import contract says so).

Cost per request: recording is a dict lookup and a float add (an mmap write in multiprocess mode, about 3 µs),
never I/O or SQL, and only per event (a login, a WeChat call, a wait in line, a breaker change). The pool's
gauges are sampled by each worker each second (``Database.sample_metrics``) rather than written on every lend.
Label values are bounded sets (channels, outcome codes, WeChat paths, errcodes), never ids.

Workers (``[server] processes`` > 1): server.py calls ``use_directory`` with a fresh private directory
before it forks, so every process writes its values there and ``render`` (in whichever process serves the
metrics listener) adds them up with the library's ``MultiProcessCollector``. Every metric has labels, so no
value exists before ``use_directory`` switches the value class (prometheus_client picks it when first
imported, which here is before the settings are read). Gauges declare how processes combine: the pool's
connections add up over live processes (``livesum``); the breaker is open if it is open anywhere (``livemax``).
``process_exited`` forgets a dead worker's live gauges; its counters stay (a total never goes back).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

# --- logins (services/login.py, services/scenes.py) ------------------------------------------------------
LOGINS = Counter("wxlogin_logins", "Login attempts by channel and outcome (success, conflict, or the error code).",
                 ("channel", "outcome"))

# --- WeChat (wechat/client.py): one observation per call (its retry included), by API path -----------------
WECHAT_CALLS = Counter("wxlogin_wechat_calls", "WeChat API calls by endpoint and result: errcode 0 for success, "
                       "WeChat's errcode, or timeout / network / bad_reply when there is none, cancelled "
                       "(the caller left first), error (an unexpected exception).",
                       ("endpoint", "errcode"))
WECHAT_SECONDS = Histogram("wxlogin_wechat_call_seconds", "Duration of WeChat API calls (retry included).",
                           ("endpoint",), buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0))

# --- app access tokens (services/apptoken.py) -------------------------------------------------------------
APP_TOKEN_REFRESHES = Counter("wxlogin_app_token_refreshes", "App access tokens fetched from WeChat "
                              "(kind: normal or forced; result: ok or the error code).",
                              ("app", "kind", "result"))

# --- MySQL (store/db.py) ----------------------------------------------------------------------------------
DB_CONNECTIONS = Gauge("wxlogin_db_pool_connections", "MySQL pool connections by state (in_use: lent out; "
                       "max: pool_max), summed over live worker processes.", ("state",), multiprocess_mode="livesum")
DB_WAITING = Gauge("wxlogin_db_admission_waiting", "Requests waiting in the FIFO admission queue for a MySQL "
                   "connection, summed over live worker processes.", ("queue",), multiprocess_mode="livesum")
DB_WAITS = Counter("wxlogin_db_admission_waits", "Requests that had to queue for a MySQL connection, by how "
                   "the wait ended (served, timeout, full).", ("result",))
DB_BREAKER_OPEN = Gauge("wxlogin_db_breaker_open", "1 while the MySQL breaker answers 503 at once after a failure "
                        "(in any live worker).", ("breaker",), multiprocess_mode="livemax")
# --- processes (server.py) -----------------------------------------------------------------------------
# In multiprocess mode "liveall" gives one sample per live worker, labelled with its pid.
WORKERS = Gauge("wxlogin_worker_up", "1 per live worker process (labelled pid when workers are added up).",
                ("role",), multiprocess_mode="liveall")
DB_BREAKER_TRIPS = Counter("wxlogin_db_breaker_trips", "Times the MySQL breaker opened.", ("breaker",))
DB_CONTENTION = Counter("wxlogin_db_contention", "Requests answered 503 overloaded because rows they needed stayed "
                        "locked: MySQL error 1205 (lock wait timeout) or 1213 (deadlock after the retries).",
                        ("error",))


def use_directory(path: str | None) -> None:
    """Record into ``path`` from now on, in this process and every process it forks (multiprocess mode);
    None: in this process's memory (an inherited PROMETHEUS_MULTIPROC_DIR is dropped).

    Call it before the first metric value exists (every metric here is labelled, so before the first
    recording) and before forking.
    """
    if path is None:
        os.environ.pop(ENV_DIR, None)
    else:
        os.environ[ENV_DIR] = path
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_directory() -> str | None:
    return os.environ.get(ENV_DIR) or None


def process_exited(pid: int) -> None:
    """A worker is gone: drop its live gauges (pool, queue, breaker) from the sums."""
    directory = multiprocess_directory()
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class _Snapshot(Collector):
    """Gauges computed at scrape time by the caller (a MySQL count), added to one scrape only."""

    def __init__(self, gauges: Mapping[str, tuple[str, float]]) -> None:
        self.gauges = gauges

    def collect(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, help_text, value=value) for name, (help_text, value) in self.gauges.items()]


def render(scraped: Mapping[str, tuple[str, float]] | None = None) -> bytes:
    """The exposition text: every process's values (multiprocess mode) or this one's, plus ``scraped``."""
    directory = multiprocess_directory()
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    if not scraped:
        return generate_latest(registry)
    combined = CollectorRegistry()
    combined.register(_Registry(registry))
    combined.register(_Snapshot(scraped))
    return generate_latest(combined)


class _Registry(Collector):
    """One registry's metrics as a collector of another (so a scrape adds its snapshot without registering
    it in the process-wide registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> list[Metric]:
        return list(self.registry.collect())
