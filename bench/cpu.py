"""What a benchmark case cost, read from /proc: CPU-seconds of a process tree, of the whole machine, of ourselves.

Throughput on a machine that other people use moves with their load; the CPU time one request costs the
server moves much less. So every case samples the server's process tree (the parent and every worker) before
and after its measured window and divides by the requests answered. Linux only (/proc).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str, kernel_only: bool = False) -> tuple[float, float]:
    """(own, reaped children's) CPU-seconds from one /proc/<pid>/stat line; with ``kernel_only`` system time only.

    The command name (field 2) is in parentheses and may itself hold spaces or ')', so the fields are counted
    from the last ')'. utime and stime are fields 14 and 15, cutime and cstime 16 and 17, in clock ticks.
    """
    fields = text[text.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])  # fields[0] is field 3 (the state)
    if kernel_only:
        return stime / TICK, cstime / TICK
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's list, so none is missed)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
    except OSError:
        return []
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children(current)
    return out


def tree_cpu(pid: int, kernel_only: bool = False) -> float:
    """CPU-seconds used so far by ``pid``, its live descendants, and the children it has already reaped.

    A worker that exits between two samples moves from "live" to its parent's reaped total, so a difference of
    two samples still counts it.
    """
    total = 0.0
    for index, member in enumerate(tree(pid)):
        try:
            own, reaped = parse_stat(Path(f"/proc/{member}/stat").read_text(), kernel_only)
        except (OSError, ValueError):
            continue  # exited between the listing and the read
        total += own + (reaped if index == 0 else 0.0)
    return total


def machine_busy() -> float:
    """CPU-seconds the whole machine has spent busy (all cores; everything in /proc/stat but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK  # guest time is already inside user time


def self_and_children() -> float:
    """CPU-seconds of this process and its reaped children (wrk, run by subprocess)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class Sample:
    """One reading: CPU-seconds per named process tree, the machine's busy seconds, ours, and a clock."""

    trees: dict[str, float]
    machine: float
    ours: float
    clock: float


def sample(pids: dict[str, int], clock: float) -> Sample:
    """Every tree's CPU, and as "<name> kernel" its system time alone (the socket writes, the loopback TCP)."""
    trees = {name: tree_cpu(pid) for name, pid in pids.items()}
    kernel = {f"{name} kernel": tree_cpu(pid, kernel_only=True) for name, pid in pids.items()}
    return Sample({**trees, **kernel}, machine_busy(), self_and_children(), clock)


@dataclass(frozen=True)
class Cost:
    """The difference of two samples: CPU-seconds per tree, wall seconds, and what everyone else used."""

    trees: dict[str, float]
    seconds: float
    others: float  # CPU-seconds of the machine not spent by the trees measured or by this script and wrk


def cost(before: Sample, after: Sample) -> Cost:
    trees = {name: after.trees[name] - before.trees[name] for name in before.trees if name in after.trees}
    ours = sum(v for name, v in trees.items() if not name.endswith(" kernel")) + after.ours - before.ours
    return Cost(trees, after.clock - before.clock, max(0.0, after.machine - before.machine - ours))
