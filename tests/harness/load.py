"""Mixed traffic for fault tests: mini-program logins of new people and bearer reads, all recorded."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field

import httpx

from harness.figures import count_response


@dataclass
class Outcome:
    kind: str            # "login" or "read"
    status: int          # 0 when the client itself gave up (that would be a hang)
    started: float
    seconds: float
    person: str = ""
    user_id: int | None = None
    error: str = ""


@dataclass
class Traffic:
    base: str
    token: str
    concurrency: int = 10
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _counter: itertools.count = field(default_factory=itertools.count)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=15) as client:
            await asyncio.gather(*(self._worker(client) for _ in range(self.concurrency)))

    def stop(self) -> None:
        self._stop.set()

    def successes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "login" and o.status == 200]

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.started < end]

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            n = next(self._counter)
            started = time.monotonic()
            if n % 3 == 0:
                person = f"load{self.tag}n{n}"
                request = client.post(f"{self.base}/api/miniprogram/login",
                                      json={"code": f"ok.{person}.{secrets.token_hex(4)}"})
                kind = "login"
            else:
                person = ""
                request = client.get(f"{self.base}/api/me", headers={"Authorization": f"Bearer {self.token}"})
                kind = "read"
            try:
                response = await request
                status, body = response.status_code, response.json()
            except (httpx.HTTPError, ValueError) as exc:
                status, body = 0, {"error": type(exc).__name__}
            elapsed = time.monotonic() - started
            if status:
                count_response(status, documented=(503,))
            user_id = body.get("user", {}).get("id") if status == 200 else None
            self.outcomes.append(Outcome(kind, status, started, elapsed, person, user_id, body.get("error", "")))
            if status != 200:
                await asyncio.sleep(0.05)  # a client backing off, not a tight error loop
