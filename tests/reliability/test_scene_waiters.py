"""1,000 desktop waiting pages on one server process: held at once, cheap to hold, all told the end, 0 5xx.

The scenes are written straight into MySQL (as the login page would: a row and the binding secret's
SHA-256), then 800 browsers follow theirs by server-sent events and 200 by the long-poll, over raw
connections (httpx's pool does not hold a thousand streams). While they all wait, MariaDB's statement
counter gives the cost of waiting; then one UPDATE (as a push landing on another process would) decides
every scene, and every page must hear its final state.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import time
from typing import Any

import pytest

from harness import DATABASE
from harness.figures import FIGURES, count_response
from harness.rawhttp import raw_request
from helpers import BAD_SCENE_IDS

SSE_WAITERS = 800
POLL_WAITERS = 200
MEASURE_SECONDS = 3.0
_ALPHABET = string.ascii_letters + string.digits


def new_scene() -> tuple[str, str]:
    return "".join(secrets.choice(_ALPHABET) for _ in range(32)), secrets.token_hex(16)


async def insert_scenes(db: Any, scenes: list[tuple[str, str]], life: int = 120) -> None:
    rows = ", ".join(["(%s, 'follow', %s, 'waiting', '/', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL %s SECOND)"]
                     * len(scenes))
    args: list[Any] = []
    for scene, secret in scenes:
        args += [scene, hashlib.sha256(secret.encode()).digest(), life]
    await db.query("INSERT INTO login_scenes (scene, kind, binding, status, next_path, created_at, expires_at) "
                   f"VALUES {rows}", tuple(args), db=DATABASE)


async def questions(db: Any) -> int:
    rows = await db.query("SHOW GLOBAL STATUS LIKE 'Questions'")
    return int(rows[0][1])


def request(path: str, scene: str, secret: str, extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: wxscene={scene}_{secret}\r\n{extra}\r\n").encode()


@pytest.fixture(scope="module")
async def scene_server(make_server):
    server = await make_server().start()
    yield server
    await server.stop()


async def statements_a_second(private_db) -> float:
    before, started = await questions(private_db), time.monotonic()
    await asyncio.sleep(MEASURE_SECONDS)
    return (await questions(private_db) - before - 1) / (time.monotonic() - started)


async def test_a_thousand_pages_wait_cheaply_and_all_hear_the_end(scene_server, private_db):
    port = int(scene_server.url.rsplit(":", 1)[1])
    scenes = [new_scene() for _ in range(SSE_WAITERS + POLL_WAITERS)]
    await insert_scenes(private_db, scenes)
    # The suite's other server processes share this MariaDB: what they cost is measured first and taken off.
    background = await statements_a_second(private_db)
    statuses: list[int] = []
    finals: list[str] = []
    listening = 0
    all_listening = asyncio.Event()

    async def sse(scene: str, secret: str) -> None:
        nonlocal listening
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request(f"/login/scene/{scene}/events", scene, secret, "Accept: text/event-stream\r\n"))
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split(b" ", 2)[1]))
            seen = b""
            while b'"state": "waiting"' not in seen:
                seen += await reader.read(4096)
            listening += 1
            if listening == SSE_WAITERS:
                all_listening.set()
            while not seen.endswith(b"0\r\n\r\n"):  # the stream's end, after its final event
                chunk = await reader.read(4096)
                if not chunk:
                    break
                seen += chunk
            finals.append("refused" if b'"refused"' in seen else "expired" if b'"expired"' in seen else "none")
        finally:
            writer.close()

    async def long_poll(scene: str, secret: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request(f"/login/scene/{scene}/wait?after=waiting", scene, secret))
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split(b" ", 2)[1]))
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = await reader.readexactly(length)
            finals.append("refused" if b'"refused"' in body else "expired" if b'"expired"' in body else "none")
        finally:
            writer.close()

    tasks: list[asyncio.Task[None]] = []
    async with asyncio.timeout(25):
        for start in range(0, len(scenes), 100):  # pages arrive over a moment, not in one instant
            for index in range(start, start + 100):
                scene, secret = scenes[index]
                waiter = sse if index < SSE_WAITERS else long_poll
                tasks.append(asyncio.create_task(waiter(scene, secret)))
            await asyncio.sleep(0.05)
        await all_listening.wait()
        await asyncio.sleep(0.5)  # the long-polls are in as well

        per_second = max(0.0, await statements_a_second(private_db) - background)

        # Half refused, half expired: decided in MySQL only, as by a push on another process.
        half = [scene for scene, _ in scenes[::2]]
        await private_db.query("UPDATE login_scenes SET status = 'refused' WHERE scene IN %s", (tuple(half),),
                               db=DATABASE)
        await private_db.query("UPDATE login_scenes SET expires_at = UTC_TIMESTAMP(3) WHERE status = 'waiting'",
                               db=DATABASE)
        await asyncio.gather(*tasks)

    for status in statuses:
        count_response(status, documented=())
    FIGURES.scene_waiters = max(FIGURES.scene_waiters, len(scenes))
    FIGURES.scene_waiting_queries_a_second = round(per_second, 2)
    FIGURES.scene_waiters_5xx += sum(1 for status in statuses if status >= 500)
    assert statuses == [200] * len(scenes)
    assert sorted(finals) == sorted(["refused"] * (len(scenes) // 2) + ["expired"] * (len(scenes) // 2))
    # The cost of waiting: one statement a round for all of them (2 a second at 0.5 s), not one per page (which
    # measured 1,243 a second). The bound leaves room for a loaded machine, where late connections' one lookup
    # each still land in the window (26 a second seen with four other test sessions running); the figures
    # table reports what was measured.
    assert per_second < 100, per_second
    assert "Uncaught exception" not in scene_server.log()


@pytest.mark.parametrize("scene", BAD_SCENE_IDS, ids=range(len(BAD_SCENE_IDS)))
async def test_bad_scene_ids_on_every_scene_route(scene, scene_server):
    for suffix in ("events", "wait", "qr"):
        status, reply = await raw_request(scene_server.url, request(f"/login/scene/{scene}/{suffix}", "x", "y"))
        FIGURES.bad_inputs_tried += 1
        assert status in (400, 404), (suffix, reply[:200])
    status, reply = await raw_request(scene_server.url, (
        f"POST /login/scene/{scene}/complete HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").encode())
    assert status in (400, 403, 404), reply[:200]
    assert b"Set-Cookie: wxsid" not in reply and b"Traceback" not in reply


@pytest.mark.parametrize("last_event_id", ["", "waiting", "scanned", "DONE", "x" * 5000, "\x00", "scanned\r\nx: y",
                                           "\xff\xfe", "9999999999999999999999", "done", "expired",
                                           "refused, done", "-1", "%72efused"])
async def test_sse_reconnects_with_any_last_event_id(last_event_id, scene_server, private_db):
    scene, secret = new_scene()
    await insert_scenes(private_db, [(scene, secret)])
    await private_db.query("UPDATE login_scenes SET status = 'refused' WHERE scene = %s", (scene,), db=DATABASE)
    header = f"Last-Event-ID: {last_event_id}\r\n".encode("latin-1")
    data = request(f"/login/scene/{scene}/events", scene, secret).replace(b"\r\n\r\n", b"\r\n" + header + b"\r\n")
    status, reply = await raw_request(scene_server.url, data)
    FIGURES.bad_inputs_tried += 1
    assert status in (200, 400), reply[:300]  # 400: framing Tornado itself refuses (a bare CR or NUL)
    if status == 200:
        assert b'"state": "refused"' in reply  # a final state is always said, then the stream ends
    assert b"Traceback" not in reply
