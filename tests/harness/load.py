"""Load for the reliability tests: mixed traffic during faults (``Traffic``) and overload bursts (``burst``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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


@dataclass
class Answer:
    """One answer of a burst: what an overloaded server told the client, and how long it took."""

    status: int          # 0 when the client itself gave up (that would be a hang)
    error: str
    seconds: float
    retry_after: str | None = None
    token: str = ""


def percentile(answers: list[Answer], share: float) -> float:
    """The answer time below which ``share`` of the answers fall, in seconds."""
    times = sorted(a.seconds for a in answers)
    return times[min(len(times) - 1, int(share * len(times)))] if times else 0.0


def http_request(method: str, path: str, headers: dict[str, str] | None = None, body: object = None) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request (a JSON body when ``body`` is given)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    payload = b"" if body is None else json.dumps(body).encode()
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def burst(base: str, connections: int, seconds: float, request: Callable[[int], bytes]) -> list[Answer]:
    """``connections`` keep-alive clients, each sending ``request(n)`` back to back for ``seconds``.

    No back-off: a burst is clients that do not wait. Raw asyncio streams rather than httpx, whose pool
    falls over at this concurrency long before the server does (about 100 answers/s at 128 connections,
    where wrk gets 1000). A request unanswered after 15 s counts as a hang (status 0).
    """
    parts = urlsplit(base)
    answers: list[Answer] = []
    counter = itertools.count()
    deadline = time.monotonic() + seconds

    async def client_loop() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    writer.write(request(next(counter)))
                    status, headers, body = await asyncio.wait_for(_read_answer(reader), 15)
                except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
                    answers.append(Answer(0, type(exc).__name__, time.monotonic() - started))
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                    continue
                data = json.loads(body) if body else {}
                answers.append(Answer(status, data.get("error", ""), time.monotonic() - started,
                                      headers.get("retry-after"), data.get("token", "")))
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        finally:
            writer.close()

    await asyncio.gather(*(client_loop() for _ in range(connections)))
    return answers


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body
