"""The benchmark's /proc CPU sampler (bench/cpu.py): it reads the right fields and counts every worker.

Behaviour only: which processes and which fields are counted, never how fast anything runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import cpu

# A parent that starts a child burning a fixed amount of CPU (0.5 s), then both sleep until killed: the CPU is spent in
# a descendant, as in a server's worker processes or gunicorn's workers.
_SPINNER = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", '''
    import time
    while time.process_time() < 0.5:
        pass
    print("spent", flush=True)
    time.sleep(60)
    '''], stdout=sys.stdout)
    time.sleep(60)
""")


def test_parse_stat_counts_from_the_last_parenthesis():
    # A command name with a space and a ')' must not shift the fields (utime 14, stime 15, cutime 16, cstime 17).
    fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", str(3 * cpu.TICK), str(cpu.TICK),
              str(2 * cpu.TICK), "0", "20", "0", "1"]
    own, reaped = cpu.parse_stat("4242 (we ird) name) " + " ".join(fields))
    assert own == pytest.approx(4.0)
    assert reaped == pytest.approx(2.0)


def test_tree_cpu_counts_a_descendant_worker():
    parent = subprocess.Popen([sys.executable, "-c", _SPINNER], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "spent"  # the child has used its 0.5 s
        members = cpu.tree(parent.pid)
        assert len(members) == 2 and members[0] == parent.pid
        own_only, _ = cpu.parse_stat(Path(f"/proc/{parent.pid}/stat").read_text())
        assert own_only < 0.4  # the parent itself did not spin ...
        # ... but its tree did (/proc counts in clock ticks and rounds down: 0.1 s of margin)
        assert cpu.tree_cpu(parent.pid) >= 0.4
    finally:
        for pid in reversed(cpu.tree(parent.pid)):
            os.kill(pid, signal.SIGTERM)
        parent.wait()


def test_cost_subtracts_samples_and_leaves_others_non_negative():
    before = cpu.Sample({"server": 1.0, "mysql": 2.0}, machine=10.0, ours=0.5, clock=100.0)
    after = cpu.Sample({"server": 3.0, "mysql": 2.5}, machine=14.0, ours=0.7, clock=110.0)
    cost = cpu.cost(before, after)
    assert cost.trees == {"server": pytest.approx(2.0), "mysql": pytest.approx(0.5)}
    assert cost.seconds == pytest.approx(10.0)
    assert cost.others == pytest.approx(4.0 - 2.5 - 0.2)
    # A tree's kernel time is part of its total, not more CPU on top of it.
    kernel = cpu.cost(cpu.Sample({"server": 1.0, "server kernel": 0.5}, 10.0, 0.0, 0.0),
                      cpu.Sample({"server": 2.0, "server kernel": 0.9}, 13.0, 0.0, 1.0))
    assert kernel.trees["server kernel"] == pytest.approx(0.4) and kernel.others == pytest.approx(2.0)
    # Tick rounding can make the trees add up to more than the machine's own count: never negative noise.
    assert cpu.cost(before, cpu.Sample({"server": 9.0, "mysql": 2.0}, 11.0, 0.5, 101.0)).others == 0.0
