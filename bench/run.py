"""`make bench`: one run, one table of throughput and cost. Tornado hello world, /login, /api/me, the full
desktop QR login (rate limits off, then on), the mini-program login, phone binding, the overload case, 1,000
pages waiting on follow-login scenes, the soak, and the seed-style Flask peer; then WeChat 50 ms away and
two server processes against the peer's four workers. `--only overload` runs just the overload case.

Everything runs here on 127.0.0.1: a private MariaDB the benchmark starts and owns (so nobody else's queries
land in its statement counter, and its CPU is ours to measure), the WeChat stand-in in its own process, the
server with the sandbox off, and wrk (Debian) with bench/replay.lua over pre-generated requests (valid
states with their binding cookies, single-use codes), so the load generator does no crypto and little work.

Every case reports, beside req/s and latency, what it cost: the server's CPU-seconds per request (from
/proc: the parent and all workers summed, sampled before and after the measured window; bench/cpu.py),
MySQL's statements per request (its `Questions` counter: about one round trip each) and CPU per request, and
how much CPU everyone else on the machine used meanwhile (the noise).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402  (the bench driver may block; it is not the server)

from bench import cpu  # noqa: E402
from harness.mariadb import PrivateMariaDB, free_port, missing_reason  # noqa: E402
from harness.serverproc import merge, to_toml  # noqa: E402
from wxlogin.signing import Signing  # noqa: E402

FORWARD_SECRET = secrets.token_urlsafe(32)  # per run: nothing outside the run needs it
KEY = "bench-secret-key-000000000000000000000000000001"
PY = sys.executable
CONCURRENCY = 50
OVERLOAD_CONNECTIONS = 256  # several times what one process serves at once with a pool of 20
SCENE_SSE, SCENE_POLL = 800, 200  # case 9: 1,000 waiting pages, as tests/reliability/test_scene_waiters.py
CLIENT_IPS = 1000  # case 4 with rate limits: this many clients behind the trusted local proxy (X-Forwarded-For)
UNLIMITED = 10_000_000  # per-minute limits no benchmark client reaches: the cost of counting, not of refusing

# Case names, used again by the ratios.
HELLO, LOGIN, ME = "1 hello world", "2 GET /login", "3 GET /api/me"
QR, QR_LIMITED, MP = "4 QR callback login", "4 QR login, rate limits on", "5 mini-program login"
PEER, PHONE, HALF = "6 peer (Flask, 4 workers)", "8 phone binding", "4 QR login at half its peak"
QR_FAR, PEER_FAR = "4 QR login, WeChat +50 ms", "6 peer, WeChat +50 ms"
QR_TWO, MP_TWO = "4 QR login, 2 processes", "5 mini-program login, 2 processes"
OVER_MP, OVER_ME = "7 overload: mini-program login", "7 overload: GET /api/me"


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None, log: Path | None = None):
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (closed by the finally below)
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not isinstance(out, int):
            out.close()


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (the workers), in MiB."""
    return sum(_status_mb(p, "VmRSS") for p in cpu.tree(pid))


def peak_rss_mb(pid: int) -> list[float]:
    """Peak resident memory of each serving process (the workers, or the process itself), in MiB."""
    return [_status_mb(p, "VmHWM") for p in cpu.children(pid) or [pid]]


def wrk(url: str, lines: Path | None, seconds: int, connections: int = CONCURRENCY,
        pace_ms: float | None = None, codes: bool = False) -> dict[str, Any]:
    """One wrk run; with ``pace_ms`` each connection waits that long after every answer (bench/paced.lua);
    with ``codes`` the answers are also counted by status and error code (bench/codes.lua)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if lines is not None and pace_ms is not None:
        args += ["-s", str(ROOT / "bench" / "paced.lua"), url, "--", str(lines), f"{pace_ms:.2f}"]
    elif lines is not None and codes:
        args += ["-s", str(ROOT / "bench" / "codes.lua"), url, "--", str(lines)]
    elif lines is not None:
        args += ["-s", str(ROOT / "bench" / "replay.lua"), url, "--", str(lines)]
    else:
        args.append(url)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def ms(label: str) -> float:  # "50%", "99%" of the distribution, or "Latency" (the mean)
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    result: dict[str, Any] = {
        "rps": rps, "p50": ms("50%"), "p99": ms("99%"), "avg": ms("Latency"), "requests": total,
        "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)}
    if codes:
        result["codes"] = {m.group(1): int(m.group(2)) for m in re.finditer(r"^CODE (.+) (\d+)$", out, re.M)}
    return result


def phone_digits(person: str) -> str:
    """The number the stand-in gives a person (tests/harness/fakewechat.py), to keep the bench's numbers apart."""
    return str(int(hashlib.sha256(person.encode()).hexdigest(), 16))[-9:]


def settle(pid: int, quiet: float = 0.02, step: float = 0.25, limit: float = 5.0) -> None:
    """Wait until the server has finished what an earlier run left in flight (wrk stops with requests still
    being served): until it uses under ``quiet`` CPU-seconds in ``step``, at most ``limit`` seconds. Otherwise
    their CPU and statements would land in the next window without their requests."""
    deadline = time.monotonic() + limit
    last = cpu.tree_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(step)
        now = cpu.tree_cpu(pid)
        if now - last < quiet:
            return
        last = now


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Bench:
    def __init__(self, seconds: int, workdir: Path, soak_seconds: int = 0) -> None:
        self.seconds = seconds
        self.soak_seconds = soak_seconds
        self.workdir = workdir
        with open(ROOT / "settings.toml", "rb") as handle:
            self.base = tomllib.load(handle)
        self.mysql = dict(self.base["mysql"])
        self.signing = Signing([KEY])
        self.results: dict[str, dict[str, Any]] = {}
        self.rss: dict[str, float] = {}
        self.scenes: dict[str, float] = {}
        self.counter = 0
        self.database = "wxlogin_bench"
        self.private: PrivateMariaDB | None = None
        self.pids: dict[str, int] = {}  # process trees sampled around every case: "mysql", "standin", "server"
        self.started = datetime.datetime.now(datetime.UTC)
        self.load_start = loadavg()
        self.phones: set[str] = set()

    # --- the private MariaDB ------------------------------------------------------------------
    @contextmanager
    def database_server(self) -> Iterator[None]:
        """A MariaDB of the benchmark's own (tests/harness/mariadb.py); the shared server where none can start."""
        if missing_reason() is not None:
            print(f"  (no private MariaDB: {missing_reason()}; using the shared server, whose statement counter "
                  "and CPU other users share)", flush=True)
            yield
            return
        self.private = PrivateMariaDB(self.workdir / "mariadb")
        asyncio.run(self.private.start(60))
        assert self.private.process is not None
        self.mysql.update(host="127.0.0.1", port=self.private.port, user="root", password="")
        self.pids["mysql"] = self.private.process.pid
        try:
            yield
        finally:
            asyncio.run(self.private.stop())

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        password = "" if self.private else os.environ.get("WXLOGIN_MYSQL_PASSWORD", self.mysql["password"])
        return pymysql.connect(host=self.mysql["host"], port=self.mysql["port"], user=self.mysql["user"],
                               password=password, database=database, autocommit=True)

    def status(self, name: str) -> int | None:
        """One of MariaDB's global counters (only meaningful on the private instance)."""
        if self.private is None:
            return None
        with self.stats_conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
            return int(cur.fetchone()[1])

    def packets_to_mysql(self) -> dict[str, int] | None:
        """Per open TCP connection to the private MariaDB (except this script's own): the data segments the
        client has sent so far (ss's ``data_segs_out``). On loopback one command is one segment, so the sum is the
        round trips, where ``Questions`` counts the statements (several may share one packet)."""
        if self.private is None:
            return None
        mine = f":{self.stats_conn._sock.getsockname()[1]}"
        out = subprocess.run(["ss", "-tinH", "state", "established", f"( dport = :{self.private.port} )"],
                             capture_output=True, text=True).stdout
        counts: dict[str, int] = {}
        local = ""
        for line in out.splitlines():
            if not line[:1].isspace():
                parts = line.split()
                local = parts[2] if len(parts) >= 4 else parts[0]  # Recv-Q Send-Q Local Peer (state is filtered)
            elif (found := re.search(r"\bdata_segs_out:(\d+)", line)) and not local.endswith(mine):
                counts[local] = int(found.group(1))
        return counts

    def questions(self) -> int | None:
        """MariaDB's count of client statements so far."""
        return self.status("Questions")

    # --- measuring a window -------------------------------------------------------------------
    def window(self, run: Callable[[], dict[str, Any]], server: int) -> dict[str, Any]:
        """Run one case, sampling CPU (server tree, MySQL, stand-in, the machine) and MySQL's statements around it."""
        pids = {**self.pids, "server": server}
        settle(server)
        q0, p0 = self.questions(), self.packets_to_mysql()
        before = cpu.sample(pids, time.monotonic())
        result = run()
        after = cpu.sample(pids, time.monotonic())
        q1, p1 = self.questions(), self.packets_to_mysql()
        if p0 is not None and p1 is not None:
            # A connection opened meanwhile counts whole (its handshake too); one closed meanwhile is lost, so
            # this is only shown for servers that keep a pool (not for the peer's connection per login).
            result["round_trips"] = sum(n - p0.get(local, 0) for local, n in p1.items())
        cost = cpu.cost(before, after)
        result.update(cpu=cost.trees, seconds=cost.seconds, others=cost.others)
        if q0 is not None and q1 is not None:
            result["statements"] = q1 - q0 - 1  # the SHOW that read q1 counts itself
            # Pools keep what they opened: the connections open now are about the most the case used at once
            # (this script's own one included).
            result["connections"] = self.status("Threads_connected")
        return result

    def measure(self, name: str, url: str, lines: Path | None, server: int, connections: int = CONCURRENCY,
                codes: bool = False, unpooled: bool = False) -> dict[str, Any]:
        print(f"  {name} ...", flush=True)
        self.results[name] = self.window(lambda: wrk(url, lines, self.seconds, connections, codes=codes), server)
        self.results[name]["unpooled"] = unpooled
        return self.results[name]

    def alternate(self, first: tuple[str, str, int], second: tuple[str, str, int], per_run: int,
                  rounds: int = 2) -> None:
        """Case 4 with rate limits off and on, in turns, both from the same CLIENT_IPS client addresses, so
        they differ only in the limits."""
        turn = max(1, self.seconds // rounds)
        self.turns(first, second, lambda _name: self.qr_requests(per_run // rounds, many_clients=True), rounds, turn)

    def turns(self, first: tuple[str, str, int], second: tuple[str, str, int], make_lines: Callable[[str], Path],
              rounds: int, turn: int) -> None:
        """Two (name, url, server pid) in turns (A B A B …, ``turn`` seconds each), summed per name into results,
        so a difference between them is not whatever the machine's other users did in one window only."""
        parts: dict[str, list[dict[str, Any]]] = {first[0]: [], second[0]: []}
        for _ in range(rounds):
            for name, url, pid in (first, second):
                print(f"  {name} ({turn} s turn) ...", flush=True)
                lines = make_lines(name)
                parts[name].append(self.window(lambda url=url, lines=lines: wrk(url, lines, turn), pid))
        for name, runs in parts.items():
            total: dict[str, Any] = {key: sum(m[key] for m in runs)
                                     for key in ("requests", "errors", "seconds", "others", "statements",
                                                 "round_trips")
                                     if all(key in m for m in runs)}
            total["cpu"] = {tree: sum(m["cpu"][tree] for m in runs) for tree in runs[0]["cpu"]}
            total["rps"] = total["requests"] / total["seconds"]
            total["p50"] = sorted(m["p50"] for m in runs)[len(runs) // 2]
            total["p99"] = max(m["p99"] for m in runs)
            total["avg"] = sum(m["avg"] * m["requests"] for m in runs) / max(1, total["requests"])
            total["connections"] = runs[-1].get("connections", "")
            self.results[name] = total

    # --- pre-generated requests ---------------------------------------------------------------
    def lines(self, name: str, rows: list[str]) -> Path:
        path = self.workdir / f"{name}.tsv"
        path.write_text("\n".join(rows) + "\n")
        return path

    def qr_requests(self, count: int, many_clients: bool = False) -> Path:
        rows = []
        for i in range(count):
            self.counter += 1
            person = f"new{self.counter}" if i % 2 == 0 else f"ret{i % 200}"
            state, secret = self.signing.make_state("web", "/")
            row = f"GET\t/auth/wechat/callback/web?code=ok.{person}.{self.counter}&state={state}\twxstate={secret}\t\t"
            if many_clients:
                n = self.counter % CLIENT_IPS
                row += f"\t10.1.{n // 256}.{n % 256}"
            rows.append(row)
        return self.lines(f"qr{self.counter}", rows)

    def mp_requests(self, count: int) -> Path:
        rows = []
        for i in range(count):
            self.counter += 1
            person = f"mpnew{self.counter}" if i % 2 == 0 else f"mpret{i % 200}"
            rows.append("POST\t/api/miniprogram/login\t\t\t" + json.dumps({"code": f"ok.{person}.{self.counter}"}))
        return self.lines(f"mp{self.counter}", rows)

    def peer_requests(self, count: int) -> Path:
        rows = []
        for i in range(count):
            self.counter += 1
            person = f"pnew{self.counter}" if i % 2 == 0 else f"pret{i % 200}"
            rows.append(f"GET\t/callback?code=ok.{person}.{self.counter}\t\t\t")
        return self.lines(f"peer{self.counter}", rows)

    def phone_requests(self, tokens: list[str], count: int) -> Path:
        """getPhoneNumber codes, each for a number nobody holds yet, spread over ``tokens`` (a new number
        replaces the account's old one, so most binds after the first per account are replacements)."""
        rows = []
        while len(rows) < count:
            self.counter += 1
            person = f"ph{self.counter}"
            digits = phone_digits(person)
            if digits in self.phones:
                continue  # the stand-in would hand out a number another account holds: 409, not a bench case
            self.phones.add(digits)
            token = tokens[len(rows) % len(tokens)]
            rows.append(f"POST\t/api/miniprogram/phone\t\tBearer {token}\t" + json.dumps({"code": f"ok.{person}.1"}))
        return self.lines(f"phone{self.counter}", rows)

    # --- processes ----------------------------------------------------------------------------
    def reset_databases(self, names: tuple[str, ...] = ("wxlogin_bench", "wxlogin_peer")) -> None:
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute("SET sql_notes = 0")
            for db in names:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
                cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
            if "wxlogin_peer" in names:
                cur.execute("USE wxlogin_peer")
                from bench.peer.app import SCHEMA

                for statement in SCHEMA:
                    cur.execute(statement)
        conn.close()

    def server_config(self, port: int, wechat: str, processes: int = 1, ratelimit: bool = False) -> Path:
        limits: dict[str, Any] = {"enabled": ratelimit}
        if ratelimit:
            limits.update(dict.fromkeys(("login_per_minute", "decrypt_per_minute", "callback_per_minute",
                                         "start_per_minute", "phone_per_user_per_day", "phone_per_ip_per_minute"),
                                        UNLIMITED))
        data = merge(self.base, {
            "server": {"port": port, "public_url": f"http://127.0.0.1:{port}", "secret_keys": [KEY],
                       "processes": processes},
            "mysql": {"database": self.database, "pool_max": 20, "host": self.mysql["host"],
                      "port": self.mysql["port"], "user": self.mysql["user"], "password": self.mysql["password"]},
            # Outside the sandbox the start-up check refuses follow_login without a way for the scan's event
            # to arrive: a forward secret (case 9 writes the scenes itself; nothing is forwarded).
            "wechat": {"sandbox": False, "open_base": wechat, "api_base": wechat, "http_client": "curl",
                       "max_clients": 200, "mp": {"forward_secret": FORWARD_SECRET}},
            "ratelimit": limits,
        })
        path = self.workdir / f"settings-{port}-{processes}-{int(ratelimit)}.toml"
        path.write_text(to_toml(data))
        return path

    def warm_returning(self, url: str, qr: bool) -> None:
        """Register the 'returning' half of the people before measuring."""
        path = (self.qr_requests if qr else self.mp_requests)(3000)
        # As many connections as the measured runs: the pool opens what they need (each new connection's session
        # set-up statements) here, not inside a measured window.
        subprocess.run(["wrk", "-t1", f"-c{CONCURRENCY}", "-d3s", "-s", str(ROOT / "bench" / "replay.lua"), url,
                        "--", str(path)], capture_output=True, check=True)

    def at_half_peak(self, app: str, peak: float, server: int) -> None:
        """Case 4 at half its measured peak rate: paced connections, the pace calibrated by a short probe."""
        target, connections = peak / 2, 20
        pace = connections / target * 1000  # ms per cycle per connection, before subtracting latency
        print(f"  {HALF} (target {target:.0f} req/s) ...", flush=True)
        probe = wrk(app, self.qr_requests(int(target * 6)), 3, connections, pace)
        pace = max(0.0, connections / target * 1000 - probe["avg"])
        lines = self.qr_requests(int(target * self.seconds * 1.5))
        result = self.window(lambda: wrk(app, lines, self.seconds, connections, pace), server)
        result["target"] = target
        self.results[HALF] = result

    def overload(self, app: str, token: str, server: int) -> None:
        """Case 7: bursts of OVERLOAD_CONNECTIONS clients that never pause, mini-program logins then /api/me.

        Past one process's capacity the requests queue for MySQL; the answers are counted by error code,
        and on this healthy database none may be ``database_unavailable``.
        """
        for name, lines in ((OVER_MP, self.mp_requests(int(self.seconds * 2500))),
                            (OVER_ME, self.lines("me", [f"GET\t/api/me\t\tBearer {token}\t"]))):
            self.measure(f"{name}, {OVERLOAD_CONNECTIONS} connections", app, lines, server, OVERLOAD_CONNECTIONS,
                         codes=True)

    def run_overload_only(self) -> None:
        """`--only overload`: the stand-in and one server process, then case 7 alone, on its own database."""
        self.database = "wxlogin_bench_overload"
        with self.database_server():
            self.stats_conn = self.connect()
            self.reset_databases((self.database,))
            log = self.workdir / "bench.log"
            stand_port, app_port = free_port(), free_port()
            wechat = f"http://127.0.0.1:{stand_port}"
            with process([PY, "bench/standin.py", str(stand_port)], log=log) as standin:
                self.pids["standin"] = standin.pid
                wait_http(f"{wechat}/")
                app = f"http://127.0.0.1:{app_port}"
                with process([PY, "server.py", "--config", str(self.server_config(app_port, wechat))],
                             log=log) as server:
                    wait_http(f"{app}/healthz")
                    self.overload(app, self.api_token(app), server.pid)

    def soak(self, app: str, pid: int, seconds: int, peak: float) -> None:
        """Case 4 at full load for ``seconds``, sampling the server's RSS every second."""
        name = f"4 QR login, soak {seconds} s"
        print(f"  soak: QR login for {seconds} s ...", flush=True)
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not done.wait(1.0):
                samples.append((time.monotonic() - start, rss_mb(pid)))

        # Enough single-use lines for the fastest this can run: case 4's peak may have been measured while
        # others held the machine, and a replay file that wraps around resends used codes (all errors).
        lines = self.qr_requests(int(max(peak * 2.5, 1200) * seconds))
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            self.results[name] = self.window(lambda: wrk(app, lines, seconds), pid)
        finally:
            done.set()
            sampler.join()
        minute = min(60.0, seconds / 2)
        self.rss["soak first minute"] = max(mb for t, mb in samples if t <= minute)
        self.rss["soak last minute"] = max(mb for t, mb in samples if t >= samples[-1][0] - minute)

    def phone_binding(self, app: str, server: int) -> None:
        """Case 8: POST /api/miniprogram/phone, the stand-in playing getuserphonenumber (one WeChat call each)."""
        tokens = [self.api_token(app, f"ok.phoneuser{i}.1") for i in range(200)]
        self.measure(PHONE, app, self.phone_requests(tokens, int(self.seconds * 2500)), server)

    def scene_waiters(self, port: int, server: int) -> None:
        """Case 9: 1,000 pages waiting on follow-login scenes (800 SSE, 200 long-poll), as browsers hold them.

        The scenes are written straight into MySQL (as /login would: the row and the binding secret's SHA-256).
        While every page waits, the server's CPU, its RSS and MySQL's statements are sampled for one window; then
        one UPDATE (a push landing on another process) refuses them all, and every page must hear it.
        """
        print(f"  9 {SCENE_SSE + SCENE_POLL} pages waiting on follow-login scenes ...", flush=True)
        alphabet = string.ascii_letters + string.digits
        scenes = [("".join(secrets.choice(alphabet) for _ in range(32)), secrets.token_hex(16))
                  for _ in range(SCENE_SSE + SCENE_POLL)]
        conn = self.connect(self.database)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO login_scenes (scene, kind, binding, status, next_path, created_at, expires_at)"
                            " VALUES (%s, 'follow', %s, 'waiting', '/', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + "
                            "INTERVAL 300 SECOND)", [(s, hashlib.sha256(k.encode()).digest()) for s, k in scenes])
        figures = asyncio.run(self._hold_pages(port, scenes, server, conn))
        conn.close()
        self.scenes.update(figures)

    async def _hold_pages(self, port: int, scenes: list[tuple[str, str]], server: int,
                          conn: pymysql.connections.Connection) -> dict[str, float]:
        statuses: list[int] = []
        finals: list[bool] = []
        listening = 0
        all_listening = asyncio.Event()

        def request(path: str, scene: str, secret: str, extra: str = "") -> bytes:
            return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: wxscene={scene}_{secret}\r\n{extra}\r\n"
                    ).encode()

        async def sse(scene: str, secret: str) -> None:
            nonlocal listening
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request(f"/login/scene/{scene}/events", scene, secret, "Accept: text/event-stream\r\n"))
                head = await reader.readuntil(b"\r\n\r\n")
                statuses.append(int(head.split(b" ", 2)[1]))
                seen = b""
                while b'"state": "waiting"' not in seen:
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    seen += chunk
                listening += 1
                if listening == SCENE_SSE:
                    all_listening.set()
                while not seen.endswith(b"0\r\n\r\n"):
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    seen += chunk
                finals.append(b'"refused"' in seen)
            finally:
                writer.close()

        async def long_poll(scene: str, secret: str) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request(f"/login/scene/{scene}/wait?after=waiting", scene, secret))
                head = await reader.readuntil(b"\r\n\r\n")
                statuses.append(int(head.split(b" ", 2)[1]))
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                finals.append(b'"refused"' in await reader.readexactly(length))
            finally:
                writer.close()

        rss_before = rss_mb(server)
        tasks: list[asyncio.Task[None]] = []
        async with asyncio.timeout(60):
            for start in range(0, len(scenes), 100):  # pages arrive over a moment, not in one instant
                for index in range(start, start + 100):
                    scene, secret = scenes[index]
                    tasks.append(asyncio.create_task((sse if index < SCENE_SSE else long_poll)(scene, secret)))
                await asyncio.sleep(0.05)
            await all_listening.wait()
            await asyncio.sleep(1.0)  # the long-polls are in as well, the connect lookups done

            def idle() -> dict[str, Any]:
                time.sleep(self.seconds)
                return {}

            held = await asyncio.to_thread(self.window, idle, server)
            rss_waiting = rss_mb(server)
            with conn.cursor() as cur:
                cur.execute("UPDATE login_scenes SET status = 'refused' WHERE status = 'waiting'")
            await asyncio.gather(*tasks)
        return {"pages": len(scenes), "cores": held["cpu"]["server"] / held["seconds"],
                "statements_per_second": held.get("statements", -1) / held["seconds"],
                "mysql_cores": held["cpu"].get("mysql", 0.0) / held["seconds"],
                "others": held["others"] / held["seconds"],
                "rss_before": rss_before, "rss_waiting": rss_waiting,
                "not_200": sum(1 for s in statuses if s != 200), "heard_end": sum(finals)}

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> None:
        with self.database_server():
            self.stats_conn = self.connect()
            self._run()
        self.load_end = loadavg()

    def _run(self) -> None:
        self.reset_databases()
        log = self.workdir / "bench.log"
        stand_port, hello_port, app_port, limited_port, peer_port = (free_port() for _ in range(5))
        wechat = f"http://127.0.0.1:{stand_port}"
        per_run = int(self.seconds * 2500)  # more lines than the fastest case can use: no code is sent twice
        with process([PY, "bench/hello.py", str(hello_port)]) as hello, \
                process([PY, "bench/standin.py", str(stand_port)], log=log) as standin:
            self.pids["standin"] = standin.pid
            wait_http(f"http://127.0.0.1:{hello_port}/")
            wait_http(f"{wechat}/")
            self.measure(HELLO, f"http://127.0.0.1:{hello_port}/", None, hello.pid)
            config = self.server_config(app_port, wechat)
            app, limited = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{limited_port}"
            limits_on = self.server_config(limited_port, wechat, ratelimit=True)
            with process([PY, "server.py", "--config", str(config)], log=log) as server:
                wait_http(f"{app}/healthz")
                self.rss["start"] = rss_mb(server.pid)
                self.measure(LOGIN, f"{app}/login", None, server.pid)
                token = self.api_token(app)
                me = self.lines("me", [f"GET\t/api/me\t\tBearer {token}\t"])
                self.measure(ME, app, me, server.pid)
                self.warm_returning(app, qr=True)
                with process([PY, "server.py", "--config", str(limits_on)], log=log) as limited_server:
                    wait_http(f"{limited}/healthz")
                    self.warm_returning(limited, qr=True)
                    self.alternate((QR, app, server.pid), (QR_LIMITED, limited, limited_server.pid), per_run)
                self.rss["after case 4"] = rss_mb(server.pid)
                self.warm_returning(app, qr=False)
                self.measure(MP, app, self.mp_requests(per_run), server.pid)
                self.phone_binding(app, server.pid)
                self.at_half_peak(app, self.results[QR]["rps"], server.pid)
                self.overload(app, token, server.pid)
                self.scene_waiters(app_port, server.pid)
                if self.soak_seconds:
                    self.soak(app, server.pid, self.soak_seconds, self.results[QR]["rps"])
                self.rss["end"] = rss_mb(server.pid)
                self.rss["peak"] = max(peak_rss_mb(server.pid))
            peer_env = {"PEER_WECHAT": wechat, "PEER_MYSQL_PORT": str(self.mysql["port"])}
            gunicorn = [PY, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{peer_port}", "--log-level", "warning",
                        "bench.peer.app:app"]
            with process(gunicorn, env=peer_env, log=log) as peer:
                wait_http(f"http://127.0.0.1:{peer_port}/callback?code=x")
                self.measure(PEER, f"http://127.0.0.1:{peer_port}", self.peer_requests(per_run), peer.pid,
                             unpooled=True)
            # two server processes against the peer's four workers, WeChat still close
            two = self.server_config(app_port, wechat, processes=2)
            with process([PY, "server.py", "--config", str(two)], log=log) as server:
                wait_http(f"{app}/healthz")
                time.sleep(1)
                self.measure(QR_TWO, app, self.qr_requests(per_run), server.pid)
                self.measure(MP_TWO, app, self.mp_requests(per_run), server.pid)
                self.rss["2 processes, peak per worker"] = max(peak_rss_mb(server.pid))
        # WeChat 50 ms away
        with process([PY, "bench/standin.py", str(stand_port), "0.05"], log=log) as standin:
            self.pids["standin"] = standin.pid
            wait_http(f"{wechat}/")
            with process([PY, "server.py", "--config", str(config)], log=log) as server:
                wait_http(f"{app}/healthz")
                self.measure(QR_FAR, app, self.qr_requests(per_run), server.pid)
            with process(gunicorn, env=peer_env, log=log) as peer:
                wait_http(f"http://127.0.0.1:{peer_port}/callback?code=x")
                self.measure(PEER_FAR, f"http://127.0.0.1:{peer_port}", self.peer_requests(per_run), peer.pid,
                             unpooled=True)

    def api_token(self, app: str, code: str = "ok.benchreader.1") -> str:
        request = urllib.request.Request(f"{app}/api/miniprogram/login", method="POST",
                                         data=json.dumps({"code": code}).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(request))["token"]

    # --- the tables ---------------------------------------------------------------------------
    @staticmethod
    def per_request_ms(m: dict[str, Any], tree: str) -> float | None:
        if tree not in m.get("cpu", {}) or not m["requests"]:
            return None
        return m["cpu"][tree] / m["requests"] * 1000

    def header(self) -> str:
        end = getattr(self, "load_end", loadavg())
        return (f"wxlogin benchmark, {self.started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
                f"wrk -t1 -c{CONCURRENCY} -d{self.seconds}s (case 7: -c{OVERLOAD_CONNECTIONS}); load average "
                f"{self.load_start} at the start, {end} at the end")

    def cases_table(self) -> list[str]:
        lines = [self.header(), "",
                 "| case | req/s | p50 ms | p99 ms | requests | errors | server CPU ms/req | of it kernel "
                 "| server cores | MySQL round trips/req | MySQL statements/req | MySQL CPU ms/req | MySQL conns "
                 "| others' cores |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

        def show(value: float | None, digits: int = 3) -> str:
            return "" if value is None else f"{value:.{digits}f}"

        for name, m in self.results.items():
            statements = m["statements"] / m["requests"] if "statements" in m and m["requests"] else None
            trips = m["round_trips"] / m["requests"] if "round_trips" in m and m["requests"] and not m.get(
                "unpooled") else None
            cores = m["cpu"]["server"] / m["seconds"] if "cpu" in m else None
            kernel = m["cpu"]["server kernel"] / m["cpu"]["server"] * 100 if m["cpu"].get("server") else None
            lines.append(
                f"| {name} | {m['rps']:.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {m['requests']} | {m['errors']} "
                f"| {show(self.per_request_ms(m, 'server'))} | {show(kernel, 0)} % | {show(cores, 2)} "
                f"| {show(trips, 2)} | {show(statements, 2)} "
                f"| {show(self.per_request_ms(m, 'mysql'))} | {m.get('connections', '')} "
                f"| {show(m['others'] / m['seconds'], 2)} |")
        counted = {name: m["codes"] for name, m in self.results.items() if "codes" in m}
        if counted:
            lines += ["", "| overload case | answers by code | database_unavailable | 5xx |", "|---|---|---:|---:|"]
            for name, codes in counted.items():
                shown = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))
                down = sum(n for code, n in codes.items() if code.endswith(" database_unavailable"))
                five = sum(n for code, n in codes.items() if code[:1] == "5")
                lines.append(f"| {name} | {shown} | {down} | {five} |")
        if self.scenes:
            s = self.scenes
            lines += ["", "| case 9: pages waiting on follow-login scenes | server cores | MySQL statements/s "
                          "| MySQL cores | RSS before → while waiting (MiB) | KiB per page | not 200 | heard the end "
                          "| others' cores |", "|---|---:|---:|---:|---|---:|---:|---:|---:|",
                      f"| {s['pages']:.0f} (800 SSE, 200 long-poll), {self.seconds} s | {s['cores']:.3f} "
                      f"| {s['statements_per_second']:.1f} | {s['mysql_cores']:.3f} "
                      f"| {s['rss_before']:.1f} → {s['rss_waiting']:.1f} "
                      f"| {(s['rss_waiting'] - s['rss_before']) * 1024 / s['pages']:.1f} | {s['not_200']:.0f} "
                      f"| {s['heard_end']:.0f} | {s['others']:.2f} |"]
        return lines

    def report(self) -> str:
        r = self.results
        lines = self.cases_table()

        def ratio(a: str, b: str) -> float:
            return r[a]["rps"] / r[b]["rps"]

        def per_cpu(a: str, b: str, trees: tuple[str, ...] = ("server",)) -> float:
            """Requests per CPU-second of ``a`` against ``b``'s (the inverse ratio of CPU per request)."""
            cost = {name: sum(r[name]["cpu"].get(t, 0.0) for t in trees) / r[name]["requests"] for name in (a, b)}
            return cost[b] / cost[a]

        rows: list[tuple[str, str, str, bool | None]] = [
            (name, f"{value:.2f}", "" if target is None else f"≥ {target}", None if target is None else value >= target)
            for name, value, target in [
                ("4/6 QR logins per server-CPU-second vs the peer's", per_cpu(QR, PEER), 2.5),
                ("5/6 mini-program logins per server-CPU-second vs the peer's", per_cpu(MP, PEER), 3),
                ("4/6 QR login with WeChat +50 ms, one process, throughput vs the peer", ratio(QR_FAR, PEER_FAR), 10),
                ("2/1 /login vs hello world, throughput", ratio(LOGIN, HELLO), 0.6),
                ("3/1 /api/me vs hello world, throughput", ratio(ME, HELLO), 0.35),
                ("4/6 QR login vs the peer, throughput (one process against four)", ratio(QR, PEER), None),
                ("5/6 mini-program login vs the peer, throughput", ratio(MP, PEER), None),
                ("4/6 QR logins per CPU-second of server + MySQL vs the peer's", per_cpu(QR, PEER, ("server", "mysql")),
                 None),
                ("2/1 /login vs hello world, per server-CPU-second", per_cpu(LOGIN, HELLO), None),
                ("3/1 /api/me vs hello world, per server-CPU-second", per_cpu(ME, HELLO), None),
                ("4/6 QR login, 2 processes vs the peer's 4 workers, throughput", ratio(QR_TWO, PEER), None),
                ("4/6 QR login, 2 processes vs the peer, per server-CPU-second", per_cpu(QR_TWO, PEER), None),
                ("5/6 mini-program, 2 processes vs the peer's 4 workers, throughput", ratio(MP_TWO, PEER), None),
                ("5/6 mini-program, 2 processes vs the peer, per server-CPU-second", per_cpu(MP_TWO, PEER), None),
                ("2 processes / 1 process (case 4), throughput", ratio(QR_TWO, QR), None),
            ]
        ]
        half = r[HALF]
        rows.append((f"case 4 p99 at half its peak ({half['rps']:.0f} req/s, aimed at {half['target']:.0f})",
                     f"{half['p99']:.1f} ms", "≤ 30 ms", half["p99"] <= 30))
        failed = [name for name, m in r.items() if m["errors"]]
        if self.scenes and (self.scenes["not_200"] or self.scenes["heard_end"] != self.scenes["pages"]):
            failed.append("9 waiting pages")
        rows.append(("errors in every case", ", ".join(failed) or "0", "0", not failed))
        if "soak first minute" in self.rss:
            first, last = self.rss["soak first minute"], self.rss["soak last minute"]
            change = (last - first) / first * 100
            rows.append((f"RSS, last minute of the soak against the first ({first:.1f} → {last:.1f} MiB)",
                         f"{change:+.1f} %", "within 10 %", abs(change) <= 10))
        lines += ["", "| ratio | measured | target | met |", "|---|---:|---:|---|"]
        for name, measured, target, met in rows:
            lines.append(f"| {name} | {measured} | {target} | {'' if met is None else 'yes' if met else '**no**'} |")
        off, on = r[QR], r[QR_LIMITED]
        if "statements" in off and "statements" in on:
            cpu_delta = self.per_request_ms(on, "server") - self.per_request_ms(off, "server")
            mysql_delta = self.per_request_ms(on, "mysql") - self.per_request_ms(off, "mysql")
            statements_delta = on["statements"] / on["requests"] - off["statements"] / off["requests"]
            trips_delta = (on.get("round_trips", 0) / on["requests"] - off.get("round_trips", 0) / off["requests"])
            lines += ["", f"Shared rate limits (case 4 from {CLIENT_IPS} client addresses, limits on against off): "
                          f"{cpu_delta:+.3f} ms of server CPU per login, {trips_delta:+.2f} MySQL round trips and "
                          f"{statements_delta:+.2f} statements per login, {mysql_delta:+.3f} ms of MySQL CPU per "
                          "login."]
        lines += ["", f"RSS (MiB) of the one-process server: at start {self.rss['start']:.0f}, after case 4 "
                      f"{self.rss['after case 4']:.0f}, at the end {self.rss['end']:.0f}, peak {self.rss['peak']:.0f}; "
                      f"with 2 processes, peak per worker {self.rss['2 processes, peak per worker']:.0f}."]
        noise = [m["others"] / m["seconds"] for m in r.values()]
        lines += ["", f"Noise: other users of the machine took {min(noise):.2f} to {max(noise):.2f} cores "
                      f"(mean {sum(noise) / len(noise):.2f}) of {os.cpu_count()} during the measured windows."]
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--only", choices=["overload"], help="run just this case (no ratios, no RSS)")
    parser.add_argument("--soak", type=int, default=150,
                        help="seconds of case 4 at full load for the RSS check (0 skips it; at least 120 "
                             "compares a first and a last minute)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wxbench-") as tmp:
        bench = Bench(args.seconds, Path(tmp), args.soak)
        if args.only == "overload":
            bench.run_overload_only()
            print("\n" + "\n".join(bench.cases_table()))
            return 0  # a partial run does not replace bench/last-results.md
        started = time.monotonic()
        bench.run()
        table = bench.report() + f"\n\nThe whole run took {(time.monotonic() - started) / 60:.1f} minutes."
    print("\n" + table)
    (ROOT / "bench" / "last-results.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
