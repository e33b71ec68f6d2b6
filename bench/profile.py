"""`make bench-profile CASE=qr`: where one server process spends its time under one benchmark case.

Starts the stand-in and the server exactly as `make bench` does, drives one case with wrk, and samples the
server with py-spy meanwhile. Prints the inclusive share of samples per layer (our packages, the driver,
Tornado's parts) and the functions with the most self time. Cases: login, me, qr, mp, phone, and peer (the
seed-style Flask peer's QR login, its gunicorn master and 4 workers sampled together).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, Bench, free_port, process, wait_http, wrk

# First match wins: a frame's file path -> the layer it is counted in.
LAYERS = [
    ("wxlogin/handlers/", "wxlogin handlers"),
    ("wxlogin/services/", "wxlogin services"),
    ("wxlogin/store/", "wxlogin store"),
    ("wxlogin/wechat/", "wxlogin wechat client"),
    ("wxlogin/", "wxlogin other"),
    ("aiomysql/", "aiomysql"),
    ("pymysql/", "PyMySQL (under aiomysql)"),
    ("tornado/curl_httpclient", "Tornado curl client"),
    ("tornado/simple_httpclient", "Tornado simple client"),
    ("tornado/http1connection", "Tornado HTTP/1"),
    ("tornado/httpserver", "Tornado HTTP/1"),
    ("tornado/iostream", "Tornado iostream"),
    ("tornado/web.py", "tornado.web"),
    ("jinja2/", "Jinja2"),
    ("itsdangerous/", "itsdangerous"),
    ("Crypto/", "pycryptodome"),
    ("asyncio/", "asyncio"),
    ("flask/", "Flask (peer)"),
    ("werkzeug/", "Werkzeug (peer)"),
    ("gunicorn/", "gunicorn (peer)"),
    ("urllib/", "urllib (peer)"),
    ("http/client", "http.client (peer)"),
]
PY_SPY = str(Path(sys.executable).with_name("py-spy"))  # installed by the bench extra, next to this Python
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*):(?P<line>\d+)\)$")


def layer_of(path: str) -> str | None:
    for needle, name in LAYERS:
        if needle in path:
            return name
    return None


def summarise(raw: Path, top: int = 15) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        seen, functions = set(), set()
        for frame in frames:
            match = FRAME.match(frame)
            if match and (name := layer_of(match["file"])):
                seen.add(name)
                if name.startswith("wxlogin"):
                    functions.add(f"{match['func']} ({match['file'].split('wxlogin/')[-1]})")
        for name in seen:
            inclusive[name] += count
        for name in functions:
            ours[name] += count
        leaf = FRAME.match(frames[-1])
        if leaf:
            self_time[f"{leaf['func']} ({Path(leaf['file']).name}:{leaf['line']})"] += count
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "inclusive share by layer:"]
    out += [f"  {share * 100 / total:5.1f} %  {name}" for name, share in inclusive.most_common()]
    out += ["", f"top {top} wxlogin functions, inclusive:"]
    out += [f"  {share * 100 / total:5.1f} %  {name}" for name, share in ours.most_common(top)]
    out += ["", f"top {top} self time:"]
    out += [f"  {share * 100 / total:5.1f} %  {name}" for name, share in self_time.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["login", "me", "qr", "mp", "phone", "peer"])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0, help="stand-in delay per WeChat call, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wxprof-") as tmp:
        bench = Bench(args.seconds, Path(tmp))
        with bench.database_server():  # the benchmark's private MariaDB, as in make bench
            bench.reset_databases()
            stand_port, app_port = free_port(), free_port()
            wechat, app = f"http://127.0.0.1:{stand_port}", f"http://127.0.0.1:{app_port}"
            log = Path(tmp) / "profile.log"
            with process([PY, "bench/standin.py", str(stand_port), str(args.latency)], log=log):
                wait_http(f"{wechat}/")
                config = bench.server_config(app_port, wechat)
                if args.case == "peer":
                    target = [PY, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{app_port}", "--log-level",
                              "warning", "bench.peer.app:app"]
                    env = {"PEER_WECHAT": wechat, "PEER_MYSQL_PORT": str(bench.mysql["port"])}
                else:
                    target, env = [PY, "server.py", "--config", str(config)], {}
                with process(target, env=env, log=log) as server:
                    wait_http(f"{app}/callback?code=x" if args.case == "peer" else f"{app}/healthz")
                    url, lines = app, None
                    if args.case == "login":
                        url = f"{app}/login"
                    elif args.case == "me":
                        lines = bench.lines("me", [f"GET\t/api/me\t\tBearer {bench.api_token(app)}\t"])
                    elif args.case == "peer":
                        lines = bench.peer_requests(args.seconds * 2500)
                    elif args.case == "phone":
                        tokens = [bench.api_token(app, f"ok.phoneuser{i}.1") for i in range(200)]
                        lines = bench.phone_requests(tokens, args.seconds * 2500)
                    else:
                        bench.warm_returning(app, qr=args.case == "qr")
                        make = bench.qr_requests if args.case == "qr" else bench.mp_requests
                        lines = make(args.seconds * 2500)
                    raw = Path(tmp) / "profile.raw"
                    spy = subprocess.Popen([PY_SPY, "record", "--pid", str(server.pid), "--rate", "250",
                                            *(["--subprocesses"] if args.case == "peer" else []),
                                            "--duration", str(args.seconds), "--format", "raw", "--output", str(raw),
                                            "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    result: dict[str, dict[str, float]] = {}
                    load = threading.Thread(target=lambda: result.update(m=wrk(url, lines, args.seconds)))
                    load.start()
                    load.join()
                    spy.wait(60)
        m = result["m"]
        print(f"{args.case}: {m['rps']:.0f} req/s under the profiler, p50 {m['p50']:.1f} ms, p99 {m['p99']:.1f} ms,"
              f" errors {m['errors']}")
        print(summarise(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
