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


def shipped_site(port: int, upstreams: Sequence[int], extra: str = "") -> str:
    """The shipped site listening on 127.0.0.1:``port`` in front of the app ports ``upstreams``.

    ``extra``: test-only directives added to the server block (e.g. realip, to play clients on other machines).
    """
    text = SHIPPED.read_text()
    kept = [text[s:e] for s, e in _server_blocks(text) if "listen 443 ssl http2" in text[s:e]]
    assert len(kept) == 1, "the shipped site has one https server block"
    site = re.sub(r"^\s*listen 443 ssl http2;.*$", f"    listen 127.0.0.1:{port};\n    {extra}", kept[0], flags=re.M)
    site = re.sub(r"^\s*(ssl_|add_header Strict).*$\n", "", site, flags=re.M)
    upstream = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    return f"upstream wxlogin {{\n{upstream}\n    keepalive 16;\n}}\n{site}\n"


def start(root: Path, port: int, upstreams: Sequence[int], extra: str = "") -> subprocess.Popen[bytes]:
    """Start nginx with the shipped site; the caller terminates it (then ``until_up`` before using it)."""
    binary = nginx_binary()
    assert binary, "nginx is not installed (make test installs nginx-light; or: apt-get install nginx-light)"
    (root / "nginx.conf").write_text(_WRAPPER.format(root=root, site=shipped_site(port, upstreams, extra)))
    check = subprocess.run([binary, "-t", "-c", str(root / "nginx.conf"), "-p", str(root)], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    return subprocess.Popen([binary, "-c", str(root / "nginx.conf"), "-p", str(root)],
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
