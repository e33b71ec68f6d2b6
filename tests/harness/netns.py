"""Hosts on one machine: Linux network namespaces on a private bridge, each a machine of its own.

``Lab`` makes a bridge in the test's own namespace (which plays the outside world: the clients and
WeChat) holding the first address of a random ``10.x.y.0/24``, and one namespace per host, joined to the
bridge by a veth pair. A process runs on a host through ``ip netns exec``. ``cut(host)`` takes the
bridge end of the host's cable down: its packets go nowhere, nothing is closed, connections stay open
on both sides (as when a machine or its switch port dies); ``rejoin(host)`` plugs it back in.

Names carry the pid and a random tag, the subnet is random and checked against the machine's routes, so
parallel runs never collide. ``close()`` kills every process left in the namespaces (whoever started it)
and removes the namespaces and the bridge; call it in a finalizer. A run killed before its finalizer leaves
its namespaces behind; the next run removes those whose test process is gone (``sweep_stale``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=30)


def missing_reason() -> str | None:
    """Why this machine cannot make network namespaces for us (None when it can): probe, then clean up."""
    name = f"wxprobe{os.getpid()}{secrets.token_hex(2)}"
    try:
        made = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"network namespaces not available: `ip` cannot run ({exc}); install iproute2 and run as root"
    if made.returncode != 0:
        return ("network namespaces not permitted here (`ip netns add` said: "
                f"{made.stderr.strip() or made.returncode}); the multi-host test needs root or CAP_SYS_ADMIN "
                "and CAP_NET_ADMIN")
    try:
        veth = _ip("link", "add", f"wxp{os.getpid() % 100000}", "type", "veth", "peer", "name", "eth0",
                   "netns", name, check=False)
        if veth.returncode != 0:
            return f"veth pairs not permitted here (`ip link add ... type veth` said: {veth.stderr.strip()})"
        _ip("link", "del", f"wxp{os.getpid() % 100000}", check=False)
    finally:
        _ip("netns", "del", name, check=False)
    return None


def _subnets_in_use() -> list[ipaddress.IPv4Network]:
    out = _ip("-4", "-o", "addr", "show").stdout.split() + _ip("-4", "route", "show", "table", "all").stdout.split()
    nets = []
    for word in out:
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network) and n.prefixlen > 0]


@dataclass
class Host:
    name: str          # our name for it ("db", "app-a", ...)
    netns: str         # the namespace
    address: str       # its address on the bridge
    cable: str         # the bridge end of its veth pair (in the test's namespace)

    def run(self, argv: list[str]) -> list[str]:
        """``argv`` run on this host."""
        return [IP, "netns", "exec", self.netns, *argv]


@dataclass
class Lab:
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}{secrets.token_hex(2)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    network: ipaddress.IPv4Network | None = None
    bridge: str = ""

    @property
    def gateway(self) -> str:
        """The test's own address on the bridge: where the clients and WeChat live."""
        assert self.network is not None
        return str(self.network.network_address + 1)

    def up(self) -> Lab:
        sweep_stale()
        used = _subnets_in_use()
        for _ in range(200):
            candidate = ipaddress.ip_network(f"10.{random.randint(16, 254)}.{random.randint(0, 254)}.0/24")
            if not any(candidate.overlaps(n) for n in used):
                self.network = candidate
                break
        assert self.network is not None, "no free 10.x.y.0/24 on this machine"
        self.bridge = f"wxb{self.tag}"[:15]
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add(self, name: str) -> Host:
        assert self.network is not None
        index = len(self.hosts) + 2
        host = Host(name, f"wxmh-{os.getpid()}-{self.tag}-{name}", str(self.network.network_address + index),
                    f"wxv{self.tag}{index}"[:15])
        _ip("netns", "add", host.netns)
        self.hosts[name] = host
        _ip("link", "add", host.cable, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.cable, "master", self.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        return host

    def cut(self, host: Host) -> None:
        """Pull the host's cable: no packet in or out, nothing closed, no process told."""
        _ip("link", "set", host.cable, "down")

    def rejoin(self, host: Host) -> None:
        _ip("link", "set", host.cable, "up")

    def close(self) -> None:
        """Kill what runs in our namespaces, remove them and the bridge. Safe to call twice."""
        for host in self.hosts.values():
            _remove_namespace(host.netns)
            _ip("link", "del", host.cable, check=False)
        if self.bridge:
            _ip("link", "del", self.bridge, check=False)
        self.hosts.clear()


def _remove_namespace(netns: str) -> None:
    """Kill every process in ``netns`` (only ours run there), then remove it (its veth ends go with it)."""
    for _ in range(3):
        pids = _ip("netns", "pids", netns, check=False).stdout.split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)
    _ip("netns", "del", netns, check=False)


def sweep_stale() -> None:
    """Remove what a run killed before its finalizer left behind: our namespaces whose test process is gone."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        found = re.match(r"wxmh-(\d+)-(\w+)-\w+", line)
        if not found or os.path.exists(f"/proc/{found.group(1)}"):
            continue
        _remove_namespace(found.group(0))
        _ip("link", "del", f"wxb{found.group(2)}"[:15], check=False)
