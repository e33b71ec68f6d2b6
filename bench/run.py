"""`make bench`: one run, one table. Tornado hello world, /login, /api/me, the full desktop QR login, the
mini-program login and the seed-style Flask peer, then the WeChat-latency and two-process variants, and
the overload case (`--only overload` runs just that one): bursts past one process's capacity, answers
counted by error code, where `database_unavailable` must be 0 on a healthy database.

Everything runs here on 127.0.0.1: MariaDB (the shared server, databases wxlogin_bench and
wxlogin_peer), the WeChat stand-in in its own process, the server with the sandbox off, and wrk
(Debian) with bench/replay.lua over pre-generated requests (valid states with their binding cookies,
single-use codes), so the load generator does no crypto and little work.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402  (the bench driver may block; it is not the server)

from harness.mariadb import free_port  # noqa: E402
from harness.serverproc import merge, to_toml  # noqa: E402
from wxlogin.signing import Signing  # noqa: E402

KEY = "bench-secret-key-000000000000000000000000000001"
PY = sys.executable
CONCURRENCY = 50
OVERLOAD_CONNECTIONS = 256  # several times what one process serves at once with a pool of 20


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


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers), in MiB."""
    return sum(_status_mb(p, "VmRSS") for p in [pid, *_children(pid)])


def peak_rss_mb(pid: int) -> list[float]:
    """Peak resident memory of each serving process (the workers, or the process itself), in MiB."""
    return [_status_mb(p, "VmHWM") for p in _children(pid) or [pid]]


def wrk(url: str, lines: Path | None, seconds: int, connections: int = CONCURRENCY,
        pace_ms: float | None = None, codes: bool = False) -> dict[str, float]:
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

    result = {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "avg": ms("Latency"), "requests": total,
              "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)}
    if codes:
        result["codes"] = {m.group(1): int(m.group(2)) for m in re.finditer(r"^CODE (.+) (\d+)$", out, re.M)}
    return result


class Bench:
    def __init__(self, seconds: int, workdir: Path, soak_seconds: int = 0) -> None:
        self.seconds = seconds
        self.soak_seconds = soak_seconds
        self.workdir = workdir
        with open(ROOT / "settings.toml", "rb") as handle:
            self.base = tomllib.load(handle)
        self.mysql = self.base["mysql"]
        self.signing = Signing([KEY])
        self.results: dict[str, dict[str, float]] = {}
        self.rss: dict[str, float] = {}
        self.counter = 0
        self.database = "wxlogin_bench"

    # --- pre-generated requests ---------------------------------------------------------------
    def lines(self, name: str, rows: list[str]) -> Path:
        path = self.workdir / f"{name}.tsv"
        path.write_text("\n".join(rows) + "\n")
        return path

    def qr_requests(self, count: int) -> Path:
        rows = []
        for i in range(count):
            self.counter += 1
            person = f"new{self.counter}" if i % 2 == 0 else f"ret{i % 200}"
            state, secret = self.signing.make_state("web", "/")
            rows.append(f"GET\t/auth/wechat/callback/web?code=ok.{person}.{self.counter}&state={state}\t"
                        f"wxstate={secret}\t\t")
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

    # --- processes ----------------------------------------------------------------------------
    def reset_databases(self, names: tuple[str, ...] = ("wxlogin_bench", "wxlogin_peer")) -> None:
        conn = pymysql.connect(host=self.mysql["host"], port=self.mysql["port"], user=self.mysql["user"],
                               password=os.environ.get("WXLOGIN_MYSQL_PASSWORD", self.mysql["password"]))
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

    def server_config(self, port: int, wechat: str, processes: int = 1) -> Path:
        data = merge(self.base, {
            "server": {"port": port, "public_url": f"http://127.0.0.1:{port}", "secret_keys": [KEY],
                       "processes": processes},
            "mysql": {"database": self.database, "pool_max": 20},
            "wechat": {"sandbox": False, "open_base": wechat, "api_base": wechat, "http_client": "curl",
                       "max_clients": 200},
            "ratelimit": {"enabled": False},
        })
        path = self.workdir / f"settings-{port}.toml"
        path.write_text(to_toml(data))
        return path

    def warm_returning(self, url: str, qr: bool) -> None:
        """Register the 'returning' half of the people before measuring."""
        path = (self.qr_requests if qr else self.mp_requests)(400)
        subprocess.run(["wrk", "-t1", "-c10", "-d3s", "-s", str(ROOT / "bench" / "replay.lua"), url, "--", str(path)],
                       capture_output=True, check=True)

    def measure(self, name: str, url: str, lines: Path | None) -> None:
        print(f"  {name} ...", flush=True)
        self.results[name] = wrk(url, lines, self.seconds)

    def at_half_peak(self, name: str, app: str, peak: float) -> None:
        """Case 4 at half its measured peak rate: paced connections, the pace calibrated by a short probe."""
        target, connections = peak / 2, 20
        pace = connections / target * 1000  # ms per cycle per connection, before subtracting latency
        print(f"  {name} (target {target:.0f} req/s) ...", flush=True)
        probe = wrk(app, self.qr_requests(int(target * 6)), 3, connections, pace)
        pace = max(0.0, connections / target * 1000 - probe["avg"])
        result = wrk(app, self.qr_requests(int(target * self.seconds * 1.5)), self.seconds, connections, pace)
        result["target"] = target
        self.results[name] = result

    def overload(self, app: str, token: str) -> None:
        """Case 7: bursts of OVERLOAD_CONNECTIONS clients that never pause, mini-program logins then /api/me.

        Past one process's capacity the requests queue for MySQL; the answers are counted by error code,
        and on this healthy database none may be ``database_unavailable``.
        """
        for name, lines in (("7 overload: mini-program login", self.mp_requests(int(self.seconds * 2500))),
                            ("7 overload: GET /api/me", self.lines("me", [f"GET\t/api/me\t\tBearer {token}\t"]))):
            print(f"  {name}, {OVERLOAD_CONNECTIONS} connections ...", flush=True)
            self.results[name] = wrk(app, lines, self.seconds, OVERLOAD_CONNECTIONS, codes=True)

    def run_overload_only(self) -> None:
        """`--only overload`: the stand-in and one server process, then case 7 alone, on its own database."""
        self.database = "wxlogin_bench_overload"
        self.reset_databases((self.database,))
        log = self.workdir / "bench.log"
        stand_port, app_port = free_port(), free_port()
        wechat = f"http://127.0.0.1:{stand_port}"
        with process([PY, "bench/standin.py", str(stand_port)], log=log):
            wait_http(f"{wechat}/")
            app = f"http://127.0.0.1:{app_port}"
            with process([PY, "server.py", "--config", str(self.server_config(app_port, wechat))], log=log):
                wait_http(f"{app}/healthz")
                self.overload(app, self.api_token(app))

    def soak(self, app: str, pid: int, seconds: int, peak: float) -> None:
        """Case 4 at full load for ``seconds``, sampling the server's RSS every second."""
        print(f"  soak: QR login for {seconds} s ...", flush=True)
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not done.wait(1.0):
                samples.append((time.monotonic() - start, rss_mb(pid)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            self.results[f"4 QR login, soak {seconds} s"] = wrk(app, self.qr_requests(int(peak * seconds * 1.6)),
                                                              seconds)
        finally:
            done.set()
            sampler.join()
        minute = min(60.0, seconds / 2)
        self.rss["soak first minute"] = max(mb for t, mb in samples if t <= minute)
        self.rss["soak last minute"] = max(mb for t, mb in samples if t >= samples[-1][0] - minute)

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> None:
        self.reset_databases()
        log = self.workdir / "bench.log"
        stand_port, hello_port, app_port, peer_port = free_port(), free_port(), free_port(), free_port()
        wechat = f"http://127.0.0.1:{stand_port}"
        per_run = int(self.seconds * 2500)  # more lines than the fastest case can use: no code is sent twice
        with process([PY, "bench/hello.py", str(hello_port)]), \
                process([PY, "bench/standin.py", str(stand_port)], log=log):
            wait_http(f"http://127.0.0.1:{hello_port}/")
            wait_http(f"{wechat}/")
            self.measure("1 hello world", f"http://127.0.0.1:{hello_port}/", None)
            config = self.server_config(app_port, wechat)
            app = f"http://127.0.0.1:{app_port}"
            with process([PY, "server.py", "--config", str(config)], log=log) as server:
                wait_http(f"{app}/healthz")
                self.rss["start"] = rss_mb(server.pid)
                self.measure("2 GET /login", f"{app}/login", None)
                token = self.api_token(app)
                me = self.lines("me", [f"GET\t/api/me\t\tBearer {token}\t"])
                self.measure("3 GET /api/me", app, me)
                self.warm_returning(app, qr=True)
                self.measure("4 QR callback login", app, self.qr_requests(per_run))
                self.rss["after case 4"] = rss_mb(server.pid)
                self.warm_returning(app, qr=False)
                self.measure("5 mini-program login", app, self.mp_requests(per_run))
                self.at_half_peak("4 QR login at half its peak", app, self.results["4 QR callback login"]["rps"])
                self.overload(app, token)
                if self.soak_seconds:
                    self.soak(app, server.pid, self.soak_seconds, self.results["4 QR callback login"]["rps"])
                self.rss["end"] = rss_mb(server.pid)
                self.rss["peak"] = max(peak_rss_mb(server.pid))
            peer_env = {"PEER_WECHAT": wechat, "PEER_MYSQL_PORT": str(self.mysql["port"])}
            gunicorn = [PY, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{peer_port}", "--log-level", "warning",
                        "bench.peer.app:app"]
            with process(gunicorn, env=peer_env, log=log):
                wait_http(f"http://127.0.0.1:{peer_port}/callback?code=x")
                self.measure("6 peer (Flask, 4 workers)", f"http://127.0.0.1:{peer_port}", self.peer_requests(per_run))
        # WeChat 50 ms away
        with process([PY, "bench/standin.py", str(stand_port), "0.05"], log=log):
            wait_http(f"{wechat}/")
            with process([PY, "server.py", "--config", str(config)], log=log):
                wait_http(f"{app}/healthz")
                self.measure("4 QR login, WeChat +50 ms", app, self.qr_requests(per_run))
            with process(gunicorn, env=peer_env, log=log):
                wait_http(f"http://127.0.0.1:{peer_port}/callback?code=x")
                self.measure("6 peer, WeChat +50 ms", f"http://127.0.0.1:{peer_port}", self.peer_requests(per_run))
        with process([PY, "bench/standin.py", str(stand_port)], log=log):
            wait_http(f"{wechat}/")
            two = self.server_config(app_port, wechat, processes=2)
            with process([PY, "server.py", "--config", str(two)], log=log) as server:
                wait_http(f"{app}/healthz")
                time.sleep(1)
                self.measure("4 QR login, 2 processes", app, self.qr_requests(per_run))
                self.rss["2 processes, peak per worker"] = max(peak_rss_mb(server.pid))

    def api_token(self, app: str) -> str:
        request = urllib.request.Request(f"{app}/api/miniprogram/login", method="POST",
                                         data=json.dumps({"code": "ok.benchreader.1"}).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(request))["token"]

    def cases_table(self) -> list[str]:
        lines = [f"wxlogin benchmark, {datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores, "
                 f"wrk -t1 -c{CONCURRENCY} -d{self.seconds}s (case 7: -c{OVERLOAD_CONNECTIONS})", "",
                 "| case | req/s | p50 ms | p99 ms | requests | errors |", "|---|---:|---:|---:|---:|---:|"]
        for name, m in self.results.items():
            lines.append(f"| {name} | {m['rps']:.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {m['requests']} | "
                         f"{m['errors']} |")
        counted = {name: m["codes"] for name, m in self.results.items() if "codes" in m}
        if counted:
            lines += ["", "| overload case | answers by code | database_unavailable | 5xx |", "|---|---|---:|---:|"]
            for name, codes in counted.items():
                shown = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))
                down = sum(n for code, n in codes.items() if code.endswith(" database_unavailable"))
                five = sum(n for code, n in codes.items() if code[:1] == "5")
                lines.append(f"| {name} | {shown} | {down} | {five} |")
        return lines

    def report(self) -> str:
        r = self.results
        lines = self.cases_table()

        def ratio(a: str, b: str) -> float:
            return r[a]["rps"] / r[b]["rps"]

        rows: list[tuple[str, str, str, bool | None]] = [
            (name, f"{value:.2f}", "" if target is None else f"≥ {target}", None if target is None else value >= target)
            for name, value, target in [
                ("4/6 QR login vs peer", ratio("4 QR callback login", "6 peer (Flask, 4 workers)"), 2.5),
                ("5/6 mini-program vs peer", ratio("5 mini-program login", "6 peer (Flask, 4 workers)"), 2.5),
                ("4/6 with WeChat +50 ms", ratio("4 QR login, WeChat +50 ms", "6 peer, WeChat +50 ms"), 10),
                ("2/1 /login vs hello world", ratio("2 GET /login", "1 hello world"), 0.6),
                ("3/1 /api/me vs hello world", ratio("3 GET /api/me", "1 hello world"), 0.35),
                ("2 processes / 1 process (case 4)", ratio("4 QR login, 2 processes", "4 QR callback login"), None),
            ]
        ]
        half = r["4 QR login at half its peak"]
        rows.append((f"case 4 p99 at half its peak ({half['rps']:.0f} req/s, aimed at {half['target']:.0f})",
                     f"{half['p99']:.1f} ms", "≤ 30 ms", half["p99"] <= 30))
        if "soak first minute" in self.rss:
            first, last = self.rss["soak first minute"], self.rss["soak last minute"]
            change = (last - first) / first * 100
            rows.append((f"RSS, last minute of the soak against the first ({first:.1f} → {last:.1f} MiB)",
                         f"{change:+.1f} %", "within 10 %", abs(change) <= 10))
        lines += ["", "| ratio | measured | target | met |", "|---|---:|---:|---|"]
        for name, measured, target, met in rows:
            lines.append(f"| {name} | {measured} | {target} | {'' if met is None else 'yes' if met else '**no**'} |")
        lines += ["", f"RSS (MiB) of the one-process server: at start {self.rss['start']:.0f}, after case 4 "
                      f"{self.rss['after case 4']:.0f}, at the end {self.rss['end']:.0f}, peak {self.rss['peak']:.0f}; "
                      f"with 2 processes, peak per worker {self.rss['2 processes, peak per worker']:.0f}."]
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
        bench.run()
        table = bench.report()
    print("\n" + table)
    (ROOT / "bench" / "last-results.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
