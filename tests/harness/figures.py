"""Counters behind the reliability table: what the suite sent, broke and found.

Tests add to ``FIGURES``; the reliability conftest prints the table at the end of the run and writes it
to ``.reliability-figures.md`` so the README can quote the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Figures:
    requests_sent: int = 0
    faults_injected: int = 0
    bad_inputs_tried: int = 0
    server_errors_5xx: int = 0        # outside the documented 502/503 answers
    documented_503s: int = 0
    users_duplicated: int = 0
    logins_lost: int = 0
    sessions_on_failure: int = 0
    slowest_answer_during_mysql_faults_s: float = 0.0
    overload_requests: int = 0              # bursts past one process's capacity on a healthy MySQL
    overload_p99_s: float = 0.0
    overload_database_unavailable: int = 0  # must stay 0: busy is not down
    overload_5xx: int = 0                   # must stay 0 with the default queue limit
    scene_waiters: int = 0                  # waiting pages (SSE and long-poll) held at once by one process
    scene_waiting_queries_a_second: float = 0.0  # MySQL statements a second while they all wait
    scene_waiters_5xx: int = 0              # must stay 0
    multihost_logins: int = 0               # logins through nginx while an app host is cut off and rejoins
    multihost_logins_during_cut: int = 0    # started while the host was cut (after nginx noticed), before rejoin
    multihost_successes_during_cut: int = 0  # of those, the ones that succeeded (through the other host)
    multihost_failures_at_cut: int = 0      # client-visible failures (retriable 502/503/504 only, around the cut)
    multihost_failovers: int = 0            # answers nginx got from the second host after the first failed
    multihost_held_by_the_cut_host: int = 0  # sent to it on a kept-alive connection, answered once it was back
    multihost_locked_out_s: float = 0.0     # a person whose login died with its host: until B logs them in
    multihost_bystanders_failed_while_locked: int = 0  # other people's logins that failed meanwhile

    def table(self) -> str:
        rows = [("figure", "value")] + [(_label(f.name), str(round(getattr(self, f.name), 2))) for f in fields(self)]
        width = max(len(r[0]) for r in rows)
        lines = [f"| {rows[0][0]:<{width}} | {rows[0][1]:>7} |", f"|{'-' * (width + 2)}|{'-' * 9}|"]
        lines += [f"| {name:<{width}} | {value:>7} |" for name, value in rows[1:]]
        return "\n".join(lines)

    def any_seen(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def _label(name: str) -> str:
    return name[:-2].replace("_", " ") + " (s)" if name.endswith("_s") else name.replace("_", " ")


FIGURES = Figures()


def count_response(status: int, documented: tuple[int, ...] = (502, 503, 504)) -> None:
    """Count one answer from the server; 5xx outside ``documented`` is a defect."""
    FIGURES.requests_sent += 1
    if status >= 500:
        if status in documented:
            FIGURES.documented_503s += 1
        else:
            FIGURES.server_errors_5xx += 1
