"""`python bench/ab.py REV`: this tree's server against git revision REV's, in alternating turns, per request.

On a shared machine two runs an hour apart differ by more than most changes do, so both versions run at once,
each on its own port and database on one private MariaDB, and wrk drives them in turns (A B A B …, each turn
a few seconds, the same request mix). The table gives server CPU, round trips and statements per request for
QR logins, mini-program logins and /api/me, summed over the turns. REV is exported with `git archive` into a
temporary directory (no worktree, no checkout).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, ROOT, Bench, free_port, process, wait_http


def export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare this tree with (e.g. HEAD~3, main)")
    parser.add_argument("--turn", type=int, default=4, help="seconds per turn")
    parser.add_argument("--rounds", type=int, default=3, help="turns per version and case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wxab-") as tmp:
        old = export(args.rev, Path(tmp) / "old")
        bench = Bench(args.turn * args.rounds, Path(tmp))
        with bench.database_server():
            bench.stats_conn = bench.connect()
            names = {"this tree": "wxlogin_bench", args.rev: "wxlogin_bench_base"}
            bench.reset_databases(("wxlogin_bench", "wxlogin_bench_base", "wxlogin_peer"))
            stand_port = free_port()
            wechat = f"http://127.0.0.1:{stand_port}"
            with process([PY, "bench/standin.py", str(stand_port)]) as standin:
                bench.pids["standin"] = standin.pid
                wait_http(f"{wechat}/")
                servers = []
                for label, database in names.items():
                    bench.database = database
                    port = free_port()
                    config = bench.server_config(port, wechat)
                    code = ROOT if label == "this tree" else old
                    servers.append((label, f"http://127.0.0.1:{port}", config, code))
                with process([PY, str(servers[0][3] / "server.py"), "--config", str(servers[0][2])]) as a, \
                        process([PY, str(servers[1][3] / "server.py"), "--config", str(servers[1][2])]) as b:
                    pids = {servers[0][0]: a.pid, servers[1][0]: b.pid}
                    for _, url, _, _ in servers:
                        wait_http(f"{url}/healthz")
                        bench.warm_returning(url, qr=True)
                        bench.warm_returning(url, qr=False)
                    tokens = {label: bench.api_token(url, f"ok.abreader{i}.1")  # codes are single-use
                              for i, (label, url, _, _) in enumerate(servers)}
                    per_turn = args.turn * 2500

                    def requests(case: str, label: str) -> Path:
                        if case == "qr":
                            return bench.qr_requests(per_turn)
                        if case == "mp":
                            return bench.mp_requests(per_turn)
                        return bench.lines("me", [f"GET\t/api/me\t\tBearer {tokens[label]}\t"])

                    cases: dict[str, dict[str, Any]] = {}
                    for case in ("qr", "mp", "me"):
                        first, second = ((f"{case}: {label}", url, pids[label]) for label, url, _, _ in servers)
                        bench.results = {}
                        bench.turns(first, second, lambda name, case=case: requests(case, name.split(": ", 1)[1]),
                                    args.rounds, args.turn)
                        cases.update(bench.results)
        print(f"\nthis tree against {args.rev}, {args.rounds} turns of {args.turn} s each, alternating\n")
        print("| case | req/s | p50 ms | server CPU ms/req | MySQL round trips/req | MySQL statements/req "
              "| MySQL CPU ms/req | others' cores |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, m in cases.items():
            print(f"| {name} | {m['rps']:.0f} | {m['p50']:.1f} | {m['cpu']['server'] / m['requests'] * 1000:.3f} "
                  f"| {m.get('round_trips', 0) / m['requests']:.2f} | {m.get('statements', 0) / m['requests']:.2f} "
                  f"| {m['cpu'].get('mysql', 0.0) / m['requests'] * 1000:.3f} | {m['others'] / m['seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
