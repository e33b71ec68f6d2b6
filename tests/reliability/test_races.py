"""Races against the real server process and a private MariaDB: one person is one user, whoever wins.

First logins of one person arrive at once through the desktop QR callback and the mini-program API;
many people arrive at once; the transaction's retry on deadlock (1213) is exercised with real locks and is
bounded, and a lock wait timeout (1205) answers 503 overloaded after one wait.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import pytest

from harness import DATABASE, scale
from harness.figures import FIGURES, count_response
from harness.mariadb import app_database
from helpers import Flows
from wxlogin.sandbox import people
from wxlogin.signing import Signing

SANDBOX_KEY = "dev-insecure-reliability-sandbox-key-000001"


async def _prepare_qr(flows: Flows, person: str) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(timeout=30)
    return client, await flows.qr_callback_url(client, person)


async def _qr_user(client: httpx.AsyncClient, url: str) -> int:
    response = await client.get(url)
    count_response(response.status_code, documented=())
    assert response.status_code == 302, response.text
    claims = Signing([SANDBOX_KEY]).load_session(response.cookies["wxsid"], 3600)
    assert claims is not None
    return int(claims[0]["uid"])


async def _mp_user(client: httpx.AsyncClient, base: str, code: str) -> int:
    response = await client.post(f"{base}/api/miniprogram/login", json={"code": code})
    count_response(response.status_code, documented=())
    assert response.status_code == 200, response.text
    return int(response.json()["user"]["id"])


async def _race(sandbox_proc, people_keys: list[str], per_person: int) -> dict[str, set[int]]:
    """Prepare ``per_person`` logins for each person (half QR, half mini-program), then fire them all."""
    flows = Flows(sandbox_proc)
    base = sandbox_proc.url
    shots: list[tuple[str, object]] = []
    clients: list[httpx.AsyncClient] = []
    async with httpx.AsyncClient(timeout=30) as helper:
        for key in people_keys:
            for i in range(per_person):
                if i % 2 == 0:
                    client, url = await _prepare_qr(flows, key)
                    clients.append(client)
                    shots.append((key, _qr_user(client, url)))
                else:
                    handed = await helper.post(f"{base}/_sandbox/dev/wx.login", json={"person": key})
                    shots.append((key, _mp_user(helper, base, handed.json()["code"])))
        results = await asyncio.gather(*(coro for _, coro in shots))  # type: ignore[misc]
    for client in clients:
        await client.aclose()
    seen: dict[str, set[int]] = defaultdict(set)
    for (key, _), user_id in zip(shots, results, strict=False):
        seen[key].add(user_id)
    return seen


async def test_fifty_first_logins_of_one_person_at_once_give_one_user(sandbox_proc, rel_sql):
    key = "racer" + str(id(rel_sql))[-6:]
    seen = await _race(sandbox_proc, [key], 50)
    assert len(seen[key]) == 1, f"one person got several user ids: {seen[key]}"
    unionid = people.unionid_for(people.person(key))
    rows = await rel_sql("SELECT id FROM users WHERE unionid = %s", unionid)
    assert [r[0] for r in rows] == list(seen[key])
    methods = await rel_sql("SELECT login_method, COUNT(*) FROM user_login_methods WHERE user_id = %s "
                            "GROUP BY login_method ORDER BY login_method", rows[0][0])
    assert methods == [("miniprogram", 1), ("web", 1)]


async def test_forty_people_at_once_give_forty_users(sandbox_proc, rel_sql):
    tag = str(id(rel_sql))[-5:]
    keys = [f"crowd{tag}x{i}" for i in range(40)]
    seen: dict[str, set[int]] = {}
    # Fast: all 40 people at once, two logins each. Long: 50 simultaneous logins per person, 8 people
    # (400 requests) at a time, which is what one process with a 20-connection pool can answer in time.
    group = scale(40, 8)
    for start in range(0, 40, group):
        seen.update(await _race(sandbox_proc, keys[start:start + group], scale(2, 50)))
    assert all(len(ids) == 1 for ids in seen.values()), "someone was answered with two user ids"
    assert len({next(iter(ids)) for ids in seen.values()}) == 40, "two people share a user id"
    unionids = [people.unionid_for(people.person(k)) for k in keys]
    marks = ",".join(["%s"] * len(unionids))
    rows = await rel_sql(f"SELECT COUNT(*), COUNT(DISTINCT unionid) FROM users WHERE unionid IN ({marks})", *unionids)
    assert rows[0] == (40, 40)


@pytest.fixture
async def lock_table(private_db):
    await private_db.query("CREATE TABLE IF NOT EXISTS race_locks (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB",
                           db=DATABASE)
    await private_db.query("REPLACE INTO race_locks VALUES (1, 0), (2, 0)", db=DATABASE)
    yield
    await private_db.query("DROP TABLE race_locks", db=DATABASE)


async def test_deadlock_is_retried_and_both_transactions_commit(private_db, lock_table):
    db = app_database(private_db)
    attempts = {"a": 0, "b": 0}
    both_hold_one = asyncio.Barrier(2)

    def work(name: str, first: int, second: int):
        async def run(cur) -> None:
            attempts[name] += 1
            await cur.execute("UPDATE race_locks SET n = n + 1 WHERE id = %s", (first,))
            if attempts[name] == 1:
                await both_hold_one.wait()  # each holds one row and wants the other's: a real deadlock
            await cur.execute("UPDATE race_locks SET n = n + 1 WHERE id = %s", (second,))
        return run

    try:
        await asyncio.gather(db.transaction(work("a", 1, 2)), db.transaction(work("b", 2, 1)))
    finally:
        await db.close()
    assert sorted(attempts.values()) == [1, 2], "exactly one side is chosen as the deadlock victim and retried"
    rows = await private_db.query("SELECT n FROM race_locks ORDER BY id", db=DATABASE)
    assert rows == [(2,), (2,)], "both transactions committed exactly once"


async def test_lock_wait_timeout_answers_overloaded_after_one_wait_and_trips_nothing(private_db, lock_table):
    """Once retried (four waits for the same holder, past every budget), a 1205 was then re-raised raw: a 500."""
    import aiomysql

    from wxlogin.errors import Overloaded

    holder = await aiomysql.connect(host="127.0.0.1", port=private_db.port, user="root", password="", db=DATABASE)
    await holder.begin()
    async with holder.cursor() as cur:
        await cur.execute("SELECT * FROM race_locks WHERE id = 1 FOR UPDATE")
    db = app_database(private_db, query_timeout=2.0)  # each connection's lock wait: 1 s
    attempts = 0

    async def blocked(cur) -> None:
        nonlocal attempts
        attempts += 1
        await cur.execute("UPDATE race_locks SET n = n + 1 WHERE id = 1")

    try:
        with pytest.raises(Overloaded):
            await db.transaction(blocked)
        assert await db.ping(), "contention on one row is not MySQL down: the breaker stays closed"
    finally:
        await holder.rollback()
        holder.close()
        await db.close()
    assert attempts == 1
    FIGURES.faults_injected += 2
