"""Run Debian's nginx with the shipped site (deploy/nginx/wxlogin.conf), made runnable on loopback.

The shipped file is used as it is, less what needs a certificate or port 80: the TLS lines, the
port-80 redirect and the catch-all server. The upstream points at the test's server processes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import httpx

from harness.serverproc import ROOT

SHIPPED = ROOT / "deploy" / "nginx" / "wxlogin.conf"

_WRAPPER = """worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
{site}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


def _server_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level ``server {...}`` block."""
    blocks = []
    for match in re.finditer(r"^server\s*\{", text, re.M):
        depth, i = 0, match.start()
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        blocks.append((match.start(), i + 1))
    return blocks


def shipped_upstream(hosts: Sequence[str]) -> str:
    """The shipped ``upstream`` block as it is (parameters, keepalive), its servers being ``hosts`` (addr:port)."""
    text = SHIPPED.read_text()
    block = re.search(r"^upstream wxlogin \{.*?^\}", text, re.M | re.S)
    assert block, "the shipped site has an upstream block"
    first = re.search(r"^\s*server \S+ ?(.*);", block.group(0), re.M)
    assert first, "the shipped upstream names a server"
    servers = "\n".join(f"    server {h} {first.group(1)};" for h in hosts)
    body = re.sub(r"^\s*#?\s*server .*\n", "", block.group(0), flags=re.M)
    return body.replace("upstream wxlogin {\n", f"upstream wxlogin {{\n{servers}\n", 1)


def shipped_site(port: int, upstreams: Sequence[int | str], extra: str = "", listen: str = "127.0.0.1") -> str:
    """The shipped site listening on ``listen``:``port`` in front of the app servers ``upstreams``.

    An int is an app port on loopback, with ``max_fails=0`` and a smaller keepalive (one machine: a
    process that is down is not a host that is gone). A string ``addr:port`` is an app machine, and the
    shipped upstream block is used as it is (tests/reliability/test_multihost.py).
    ``extra``: test-only directives added to the server block (e.g. realip, to play clients on other machines).
    """
    text = SHIPPED.read_text()
    kept = [text[s:e] for s, e in _server_blocks(text) if "listen 443 ssl http2" in text[s:e]]
    assert len(kept) == 1, "the shipped site has one https server block"
    site = re.sub(r"^\s*listen 443 ssl http2;.*$", f"    listen {listen}:{port};\n    {extra}", kept[0], flags=re.M)
    site = re.sub(r"^\s*(ssl_|add_header Strict).*$\n", "", site, flags=re.M)
    if all(isinstance(p, str) for p in upstreams):
        return f"{shipped_upstream([str(p) for p in upstreams])}\n{site}\n"
    upstream = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    return f"upstream wxlogin {{\n{upstream}\n    keepalive 16;\n}}\n{site}\n"


def start(root: Path, port: int, upstreams: Sequence[int | str], extra: str = "", listen: str = "127.0.0.1",
          prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start nginx with the shipped site; the caller terminates it (then ``until_up`` before using it).

    ``prefix``: what runs it elsewhere, e.g. ``ip netns exec <ns>``.
    """
    binary = nginx_binary()
    assert binary, "nginx is not installed (make test installs nginx-light; or: apt-get install nginx-light)"
    site = shipped_site(port, upstreams, extra, listen)
    (root / "nginx.conf").write_text(_WRAPPER.format(root=root, site=site))
    check = subprocess.run([*prefix, binary, "-t", "-c", str(root / "nginx.conf"), "-p", str(root)],
                           capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    return subprocess.Popen([*prefix, binary, "-c", str(root / "nginx.conf"), "-p", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def until_up(url: str) -> None:
    """Wait until nginx answers on ``url``."""
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(100):
            try:
                await client.get(url + "/healthz")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError("nginx did not come up")
