"""The deletion job against MariaDB (issue 16): every row and secret of a person goes, audit rows stay as an
anonymised count, one process at a time (the MySQL named lock), idempotent, and the same WeChat registers afresh."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

import pytest

from helpers import avatar_upload, gather, png_bytes
from wxlogin.errors import NotFound
from wxlogin.services import deletion as deletion_module
from wxlogin.services.deletion import DeletionService
from wxlogin.store import Database
from wxlogin.store.deletions import DELETE_RATE_LIMITS, DeletionStore
from wxlogin.store.migrations import TABLES
from wxlogin.store.ratelimits import ACCOUNT_BUCKETS

API_MP = "/api/miniprogram/login"


async def mp_login(client, server, person):
    """wx.login in the sandbox, then the site's mini-program login: the answer's JSON."""
    handed = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": person})
    answer = await client.post(server.url + API_MP, json={"code": handed.json()["code"]})
    assert answer.status_code == 200, answer.text
    return answer.json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def everything_of(client, server, flows, person):
    """A person with something in every table the site fills: web and mini-program logins (tokens, session
    key), a phone number, an avatar upload. Returns (user id, bearer token)."""
    await flows.login(client, person)
    token = (await mp_login(client, server, person))["token"]
    code = (await client.post(server.url + "/_sandbox/dev/phone-code", json={"person": person})).json()["code"]
    bound = await client.post(server.url + "/api/miniprogram/phone", json={"code": code}, headers=bearer(token))
    assert bound.status_code == 200, bound.text
    body, ctype = avatar_upload(png_bytes())
    uploaded = await client.post(server.url + "/api/miniprogram/avatar", content=body,
                                 headers={**bearer(token), "Content-Type": ctype})
    assert uploaded.status_code == 200, uploaded.text
    return uploaded.json()["user"]["id"], token


def instance(server):
    """A DeletionService on a pool of its own: what another process (or machine) runs."""
    db = Database(server.settings.mysql)
    return DeletionService(server.settings, DeletionStore(db)), db


async def secrets_of(server, sql, uid, person):
    """Every secret the site holds (or held) for the person, in clear and as stored, and their ids."""
    cipher = server.services.api.login.cipher
    found = []
    for row in await sql("SELECT access_token_enc, refresh_token_enc, session_key_enc, openid, unionid "
                         "FROM user_login_methods WHERE user_id = %s", uid):
        for sealed in row[:3]:
            if sealed is not None:
                found += [bytes(sealed).hex(), cipher.decrypt(bytes(sealed))]
        found += [row[3]] + ([row[4]] if row[4] else [])
    found.append(server.sandbox.state.session_keys[(server.settings.wechat.miniprogram.appid, person)])
    return [s for s in found if s]


async def test_deletion_removes_every_row_and_secret_and_keeps_the_audit_anonymised(server, new_client, flows, sql):
    zhang, li = new_client(headers={"User-Agent": "ZhangAgent/1.0"}), new_client()
    uid, _ = await everything_of(zhang, server, flows, "zhangsan")
    await flows.login(li, "lisi")  # someone else, whose rows must all stay
    [(other,)] = await sql("SELECT id FROM users WHERE id <> %s", uid)
    # Rows no public flow leaves behind at rest: a merge waiting for its confirmation, an unlinked identity,
    # a confirmed scene, a mini-program scene it owns, a rate-limit bucket keyed by its id.
    await sql("INSERT INTO pending_merges VALUES (%s, %s, %s, UTC_TIMESTAMP(3))", "n" * 32, other, uid)
    await sql("INSERT INTO unlinked_identities VALUES ('wxgone', 'oGONEopenid', %s, UTC_TIMESTAMP(3))", uid)
    await sql("INSERT INTO login_scenes (scene, kind, binding, status, user_id, created_at, expires_at) VALUES "
              "(%s, 'follow', %s, 'confirmed', %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL 1 HOUR)",
              "S" * 32, b"\0" * 32, uid)
    await sql("INSERT INTO wxa_scenes (scene, owner_id, expires_at) VALUES (%s, %s, UTC_TIMESTAMP(3))", "W" * 32, uid)
    for bucket in ("phone_user", "session_check", "profile", "start"):  # "start" is per IP: another subject's
        await sql("INSERT INTO rate_limits VALUES (%s, %s, 0, 1)", bucket, str(uid).encode())
    # WeChat's answer to a failed flow of theirs (its rid leads WeChat to the request, so to the person), and
    # operators' actions on the account with free text about it; and one the person did as an operator.
    await sql("INSERT INTO login_events (user_id, login_method, outcome, ip, user_agent, wechat_errcode, wechat_rid, "
              "created_at) VALUES (%s, 'web', 'wechat_error', '10.1.1.1', 'ZhangAgent/1.0', 40163, "
              "'rid-of-zhang-0001', UTC_TIMESTAMP(3))", uid)
    [(openid,)] = await sql("SELECT openid FROM user_login_methods WHERE user_id = %s AND login_method = 'web'", uid)
    await sql("INSERT INTO operator_actions (operator_id, action, target_user_id, detail, created_at) VALUES "
              "(%s, 'disable', %s, 'spam by 张三', UTC_TIMESTAMP(3)), (%s, 'unlink', %s, %s, UTC_TIMESTAMP(3)), "
              "(%s, 'enable', %s, 'kept', UTC_TIMESTAMP(3))",
              other, uid, other, uid, f"web wxapp {openid} method 1", uid, other)
    secrets = await secrets_of(server, sql, uid, "zhangsan") + ["rid-of-zhang-0001"]
    assert len(secrets) >= 8  # access and refresh token (web), session key (mini-program), openids, unionid
    events = await sql("SELECT COUNT(*) FROM login_events WHERE user_id = %s", uid)
    assert events[0][0] >= 4
    assert await sql("SELECT COUNT(*) FROM phone_codes WHERE user_id = %s", uid) == [(1,)]
    assert (await sql("SELECT COUNT(*) FROM avatars"))[0][0] == 1

    deletion = server.services.deletion
    await deletion.schedule(uid)
    await deletion.hasten(uid)
    assert await deletion.run_once() == 1

    assert await sql("SELECT id FROM users") == [(other,)]
    for table, column in (("user_login_methods", "user_id"), ("user_phones", "user_id"), ("phone_codes", "user_id"),
                          ("avatar_checks", "user_id"), ("pending_merges", "from_user_id"),
                          ("unlinked_identities", "user_id"), ("login_scenes", "user_id"), ("wxa_scenes", "owner_id"),
                          ("oauth_callbacks", "user_id"), ("login_events", "user_id")):
        assert await sql(f"SELECT COUNT(*) FROM {table} WHERE {column} = %s", uid) == [(0,)], table
    assert await sql("SELECT COUNT(*) FROM avatars") == [(0,)]
    assert await sql("SELECT bucket FROM rate_limits WHERE subject = %s", str(uid).encode()) == [("start",)]
    assert await sql("SELECT COUNT(*) FROM pending_merges") == [(0,)]
    # The audit trail keeps the person's rows as a count: no user, no address, no browser.
    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_id IS NULL AND ip = '' AND user_agent = '' "
                     "AND wechat_errcode IS NULL AND wechat_rid IS NULL") == events
    # Operators stay accountable (who did what, when, to which account number); the free text about the person goes.
    assert await sql("SELECT operator_id, action, target_user_id, detail FROM operator_actions ORDER BY id") == [
        (other, "disable", uid, ""), (other, "unlink", uid, ""), (uid, "enable", other, "kept")]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_agent LIKE 'ZhangAgent%%'") == [(0,)]
    # Nothing anywhere in the database still holds a secret, an id or the name of the person.
    for table in TABLES:
        dump = repr(await sql(f"SELECT * FROM {table}"))
        for secret in (*secrets, "张三"):
            assert secret not in dump, (table, "a secret of the deleted person is still stored")
    assert await sql("SELECT COUNT(*) FROM user_login_methods WHERE user_id = %s", other) == [(1,)]
    assert await deletion.run_once() == 0  # idempotent: nothing left to do
    assert await deletion.count_pending() == 0


async def test_the_rate_limit_rows_go_by_the_primary_key(server, sql):
    # A subject-only DELETE cannot use the (bucket, subject) key: in the deletion's transaction it would scan and
    # lock the whole shared table.
    await sql("INSERT INTO rate_limits (bucket, subject, tat_ms, hits) SELECT 'start', CONCAT('10.0.0.', seq), 0, 1 "
              "FROM seq_1_to_300")
    plan = await sql("EXPLAIN " + DELETE_RATE_LIMITS, ACCOUNT_BUCKETS, b"42")
    assert [row[5] for row in plan] == ["PRIMARY"], plan  # EXPLAIN's "key" column


async def test_a_deleted_persons_wechat_registers_as_a_new_account(server, client, flows, sql):
    first = await mp_login(client, server, "zhangsan")
    uid = first["user"]["id"]
    await server.services.deletion.schedule(uid)
    await server.services.deletion.hasten(uid)
    assert await server.services.deletion.run_once() == 1

    again = await mp_login(client, server, "zhangsan")

    assert again["created"] is True and again["user"]["id"] != uid
    assert "deletion_scheduled_at" not in again
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_a_cancelled_deletion_is_kept_and_hasten_needs_a_pending_one(server, client, sql):
    uid = (await mp_login(client, server, "zhangsan"))["user"]["id"]
    deletion = server.services.deletion
    first = await deletion.schedule(uid)
    assert await deletion.schedule(uid) == first  # closing again keeps the first date
    assert await deletion.scheduled_at(uid) == first
    assert await deletion.cancel(uid) is True
    assert await deletion.cancel(uid) is False
    with pytest.raises(NotFound):
        await deletion.hasten(uid)  # hastening never closes an account by itself
    assert await deletion.run_once() == 0
    assert await sql("SELECT id, deletion_scheduled_at FROM users") == [(uid, None)]
    with pytest.raises(NotFound):
        await deletion.schedule(uid + 1000)


async def test_with_no_grace_period_the_next_run_deletes(start_server, new_client, sql):
    server = await start_server({"accounts": {"deletion_grace_days": 0}})
    client = new_client()
    uid = (await mp_login(client, server, "panda"))["user"]["id"]
    await server.services.deletion.schedule(uid)
    assert await server.services.deletion.count_pending() == 1
    assert await server.services.deletion.run_once() == 1
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def due_people(server, client, sql, count):
    ids = []
    for n in range(count):
        ids.append((await mp_login(client, server, f"racer{n}"))["user"]["id"])
    await sql("UPDATE users SET deletion_scheduled_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND")
    return ids


class NoLockStore(DeletionStore):
    """The store without the named lock: what a second process would do if the job had none."""

    @asynccontextmanager
    async def job_lock(self):
        yield True


async def test_two_instances_never_run_the_job_at_once(server, client, sql):
    a, db_a = instance(server)
    b, db_b = instance(server)
    try:
        await due_people(server, client, sql, 4)
        # While one process holds the job's lock (here: A, between its steps), another skips its run.
        async with a.store.job_lock() as held:
            assert held
            assert await b.run_once() == 0
            assert await sql("SELECT COUNT(*) FROM users") == [(4,)]
        # Started together on separate pools: one runs, the other skips or finds nothing; each person once.
        results = await gather(a.run_once(), b.run_once())
        assert sorted(results) == [0, 4]
        assert await sql("SELECT COUNT(*) FROM users") == [(0,)]
        await due_people(server, client, sql, 3)
        async with b.store.job_lock() as held:
            assert held
            assert await a.run_once() == 0  # A again, while B holds it
        assert await a.run_once() == 3  # released: the next run proceeds
    finally:
        await db_a.close()
        await db_b.close()


async def test_without_the_lock_a_second_instance_would_run_concurrently(server, client, sql):
    """Proves the lock is what stops the other instance: without it, it deletes while the first runs."""
    a, db_a = instance(server)
    db_c = Database(server.settings.mysql)
    unlocked = DeletionService(server.settings, NoLockStore(db_c))
    try:
        await due_people(server, client, sql, 2)
        async with a.store.job_lock() as held:
            assert held
            assert await unlocked.run_once() == 2  # ran although another process holds the job
    finally:
        await db_a.close()
        await db_c.close()


async def test_the_job_lock_is_released_after_a_run(server):
    a, db_a = instance(server)
    try:
        async with a.store.job_lock() as held:
            assert held
        async with a.store.job_lock() as again:
            assert again  # released after the block
    finally:
        await db_a.close()


async def test_run_forever_runs_the_job_soon_after_start_up(server, client, sql, monkeypatch):
    """server.py starts run_forever in every process; its first round comes soon, not a purge_interval later."""
    monkeypatch.setattr(deletion_module, "FIRST_RUN_DELAY", 0.0)
    uid = (await mp_login(client, server, "zhangsan"))["user"]["id"]
    await server.services.deletion.schedule(uid)
    await server.services.deletion.hasten(uid)
    task = asyncio.create_task(server.services.deletion.run_forever())
    try:
        for _ in range(400):  # polled: the round runs at once, on the event loop this test shares
            if await sql("SELECT COUNT(*) FROM users") == [(0,)]:
                break
            await asyncio.sleep(0.025)
        assert await sql("SELECT COUNT(*) FROM users") == [(0,)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
