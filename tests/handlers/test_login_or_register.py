"""Login-or-register against real MySQL: concurrent first logins, unionid linking, outages."""

from __future__ import annotations

import asyncio
import time

from helpers import Flows
from wxlogin.signing import Signing


async def test_concurrent_first_logins_of_one_unionid_make_one_user(server, new_client, flows, sql):
    clients = [new_client() for _ in range(30)]
    urls = await asyncio.gather(*(flows.qr_callback_url(c, "racer") for c in clients))

    responses = await asyncio.gather(*(c.get(u) for c, u in zip(clients, urls, strict=False)))

    assert [r.status_code for r in responses] == [302] * 30
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(1,)]
    assert await sql("SELECT COUNT(*) FROM login_events WHERE outcome = 'success'") == [(30,)]
    user_ids = set()
    for c in clients:
        page = await c.get(server.url + "/account")
        user_ids.add(page.text.split('data-user="')[1].split('"')[0])
    assert len(user_ids) == 1  # every answer names the same account


async def test_concurrent_first_logins_without_unionid_make_one_user(server, new_client, flows, sql):
    clients = [new_client() for _ in range(20)]
    urls = await asyncio.gather(*(flows.qr_callback_url(c, "nounion-racer") for c in clients))

    responses = await asyncio.gather(*(c.get(u) for c, u in zip(clients, urls, strict=False)))

    assert [r.status_code for r in responses] == [302] * 20
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    orphans = await sql("SELECT COUNT(*) FROM users u LEFT JOIN user_login_methods m ON m.user_id = u.id "
                        "WHERE m.id IS NULL")
    assert orphans == [(0,)]


async def test_many_people_at_once_make_as_many_users(server, new_client, flows, sql):
    people = [f"crowd{i}" for i in range(25)]
    clients = [new_client() for _ in people]
    urls = await asyncio.gather(*(flows.qr_callback_url(c, p) for c, p in zip(clients, people, strict=False)))

    await asyncio.gather(*(c.get(u) for c, u in zip(clients, urls, strict=False)))

    assert await sql("SELECT COUNT(*) FROM users") == [(25,)]


async def test_profile_updates_on_each_login_and_last_login_moves(server, new_client, flows, sql):
    await flows.login(new_client(), "zhangsan")
    await sql("UPDATE users SET nickname = 'old name', last_login_at = '2020-01-01'")

    await flows.login(new_client(), "zhangsan")

    rows = await sql("SELECT nickname, last_login_at > '2021-01-01' FROM users")
    assert rows == [("张三", 1)]


async def test_login_method_is_never_moved_to_another_user(server, new_client, flows, sql):
    await flows.login(new_client(), "zhangsan")
    [(method_user,)] = await sql("SELECT user_id FROM user_login_methods")
    # The website app was bound to the open platform only later (its method has no unionid yet),
    # and meanwhile another account came to own this person's unionid.
    [(unionid,)] = await sql("SELECT unionid FROM users")
    await sql("UPDATE users SET unionid = NULL")
    await sql("UPDATE user_login_methods SET unionid = NULL")
    await sql("INSERT INTO users (unionid, nickname, created_at) VALUES (%s, 'other', UTC_TIMESTAMP())", unionid)

    response = await flows.login(new_client(), "zhangsan")

    assert response.status_code == 302
    assert await sql("SELECT user_id FROM user_login_methods") == [(method_user,)]
    assert await sql("SELECT outcome FROM login_events ORDER BY id DESC LIMIT 1") == [("conflict",)]


async def test_database_outage_gives_a_503_page(start_server, new_client):
    down = await start_server({"mysql": {"port": 1, "connect_timeout": 1.0}})
    client = new_client()
    url = await Flows(down).qr_callback_url(client, "zhangsan")

    callback = await client.get(url)
    signing = Signing([k.value for k in down.settings.server.secret_keys])
    client.cookies.set("wxsid", signing.dump_session({"uid": 1, "sid": "s" * 22, "sv": 1, "iat": int(time.time())}))
    account = await client.get(down.url + "/account")
    health = await client.get(down.url + "/healthz")

    assert callback.status_code == 503
    assert 'data-error-code="database_unavailable"' in callback.text
    assert "服务暂时不可用" in callback.text
    assert account.status_code == 503
    assert "Traceback" not in account.text
    assert health.status_code == 503 and health.json()["database"] == "unavailable"


async def test_healthz_reports_the_database(server, client):
    response = await client.get(server.url + "/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
