"""The real server (``python server.py --config ...``) in a subprocess, with settings written for the test."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx

from harness.mariadb import free_port

ROOT = Path(__file__).resolve().parents[2]
# Real-looking keys: outside the sandbox the development keys are refused at start-up.
KEY_1 = "reliability-key-one-0000000000000000000000000001"
KEY_2 = "reliability-key-two-0000000000000000000000000002"
SECRET_MARKER = "APPSECRETMARK"
PUSH_AES_KEY = "RELpushAESkey0000000000000000000000000000PK"  # 43 letters and digits, like WeChat's


def merge(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for our settings: tables of strings, numbers, booleans and lists of strings."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = "\n".join(lines) + "\n"
    for name, table in tables:
        out += f"\n[{name}]\n" + to_toml(table, f"{name}.")
    return out


def settings_for(mysql_port: int, database: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    with open(ROOT / "settings.toml", "rb") as handle:
        data = tomllib.load(handle)
    port = free_port()
    data = merge(data, {
        "server": {"port": port, "public_url": f"http://127.0.0.1:{port}", "secret_keys": [KEY_1]},
        "mysql": {"port": mysql_port, "database": database, "pool_max": 20, "connect_timeout": 2.0,
                  "acquire_timeout": 2.0, "query_timeout": 2.0},
        "ratelimit": {"enabled": False},
    })
    for kind in ("web", "mp", "app", "miniprogram"):
        data["wechat"][kind]["secret"] = f"{SECRET_MARKER}-{kind}-secret"
    for kind in ("mp", "miniprogram"):  # outside the sandbox the development push keys serve nothing
        data["wechat"][kind].update(push_token=f"{SECRET_MARKER}{kind}", push_aes_key=PUSH_AES_KEY)
    return merge(data, overrides or {})


class ServerProcess:
    """Start, signal and read the log of one server process."""

    def __init__(self, workdir: Path, settings: dict[str, Any], env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), prefix: tuple[str, ...] = ()) -> None:
        """``prefix``: what runs it elsewhere, e.g. ``ip netns exec <ns>`` (another host of tests/harness/netns.py)."""
        self.workdir = workdir
        self.settings = settings
        self.env = env or {}
        self.args = args
        self.prefix = prefix
        # Where it listens (public_url may be a proxy).
        self.url = f"http://{settings['server'].get('host', '127.0.0.1')}:{settings['server']['port']}"
        self.config_path = workdir / f"settings-{settings['server']['port']}.toml"
        self.log_path = workdir / f"server-{settings['server']['port']}.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(to_toml(self.settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WXLOGIN_")}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([*self.prefix, sys.executable, str(ROOT / "server.py"), "--config",
                                             str(self.config_path), *self.args], stdout=log, stderr=subprocess.STDOUT,
                                            env=env, cwd=ROOT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
                try:
                    await client.get(f"{self.url}/healthz")
                    return self
                except httpx.HTTPError:
                    if loop.time() > deadline:
                        raise RuntimeError(f"server did not start:\n{self.log()[-3000:]}") from None
                    await asyncio.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 20) -> int:
        assert self.process is not None
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)

    async def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(20)
        except TimeoutError:
            self.process.kill()
            return self.process.wait()
