"""A full connection queue over real HTTP: `503 overloaded` with Retry-After, for the API and for pages.

The test holds the server's only pooled connection itself (the app runs in this process), fills the
queue of one, and asks again: the answer is "busy, retry in a second", never "database unavailable",
and once the connection is back everything, including the request that queued, is served.
"""

from __future__ import annotations

import asyncio

import jsonschema

from helpers import Flows


async def _until_queued(db, waiting: int) -> None:
    for _ in range(500):  # a bounded wait for the queued request to reach the queue
        if db.pool_stats["waiting"] == waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no request queued: {db.pool_stats}")


async def test_a_full_queue_answers_overloaded_with_retry_after_and_nothing_looks_down(start_server, new_client):
    server = await start_server({"mysql": {"pool_min": 0, "pool_max": 1, "queue_limit": 1}})
    api, browser = new_client(), new_client()
    handed = (await api.post(f"{server.url}/_sandbox/dev/wx.login", json={"person": "zhangsan"})).json()
    login = await api.post(f"{server.url}/api/miniprogram/login", json={"code": handed["code"]})
    token = login.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await Flows(server).login(browser, "lisi", "/account")).status_code == 302
    schema = (await api.get(f"{server.url}/api/openapi.json")).json()
    db = server.services.maintenance.db  # the pool itself, to hold its one connection

    async with db.connection():
        queued = asyncio.create_task(api.get(f"{server.url}/api/me", headers=bearer))
        await _until_queued(db, 1)

        refused = await api.get(f"{server.url}/api/me", headers=bearer)
        page = await browser.get(f"{server.url}/account")
        health = await api.get(f"{server.url}/healthz")

    assert (await asyncio.wait_for(queued, 20)).status_code == 200, "the queued request must be served"
    assert (refused.status_code, refused.json()["error"]) == (503, "overloaded"), refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    doc_503 = schema["paths"]["/api/me"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]
    jsonschema.validate(refused.json(), dict(doc_503, components=schema["components"]),
                        cls=jsonschema.Draft202012Validator)
    assert page.status_code == 503 and "服务繁忙" in page.text and "服务暂时不可用" not in page.text
    assert int(page.headers["Retry-After"]) >= 1
    assert (health.status_code, health.json()["database"]) == (200, "ok"), "busy is not down"
    # No breaker opened: served at once, inside what would have been its second.
    assert (await api.get(f"{server.url}/api/me", headers=bearer)).status_code == 200
    assert (await browser.get(f"{server.url}/account")).status_code == 200
