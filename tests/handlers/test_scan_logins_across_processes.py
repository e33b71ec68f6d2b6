"""The phone's step lands on another server process than the one holding the desktop's waiting page (nginx
round-robins; WeChat pushes to the public URL): two app instances share the test database, the desktop waits on
A, and the real push or API call reaches B. A learns it from MySQL (its watcher), not from B.

- Scan to follow: the desktop's QR image is made by B (the image request went there), B's sandbox (WeChat) plays
  the phone that follows and pushes ``subscribe`` to B's ``/wechat/push/mp``; A's SSE stream says confirmed.
- Mini-program code: B's sandbox plays the mini-program, which scans and confirms through B's API; A's long-poll
  says scanned, then confirmed.
Then the desktop completes on A with its binding cookie and is signed in as the person who scanned.
"""

from __future__ import annotations

import asyncio
import io
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from test_scenes import OpenStream, open_page

from wxlogin.services.follow import SIGNING_IN

SCAN_METHODS = {"wechat": {"desktop_methods": ["qr", "follow", "miniprogram"], "mp": {"follow_login": True}}}


@pytest.fixture
async def two(start_server):
    """Two processes of one site (same database and keys), each with its own sandbox standing in for WeChat."""
    return await start_server(SCAN_METHODS), await start_server(SCAN_METHODS)


async def signed_in_as(site, client, sql, scene: str) -> int:
    """The account page answers, and the scene's row names who signed in."""
    account = await client.get(site.url + "/account")
    assert account.status_code == 200
    rows = await sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene)
    assert rows[0][0] == "done" and rows[0][1] is not None
    return int(rows[0][1])


async def test_a_follow_push_to_another_process_signs_in_the_desktop_waiting_on_the_first(two, new_client, sql):
    a, b = two
    desktop, phone = new_client(), new_client()
    page = await open_page(a, desktop, "follow")
    image = await desktop.get(b.url + page.qr)  # the image request went to B: B asks its WeChat for the code
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg+xml")
    url = await b.services.follow.create_qr(page.scene)  # the url in that image (cached in B)
    assert image.text == await b.services.follow.qr_image(page.scene)
    assert not a.sandbox.state.follow.codes  # A made no code and will get no push

    async with OpenStream(desktop, a.url + page.events) as stream:
        assert await stream.states(1) == ["waiting"]
        polls = a.services.scenes.watcher.polls
        scanned = await phone.post(b.url + "/_sandbox/dev/follow/scan",
                                   json={"url": url, "person": "zhangsan", "as": "new"})
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["event"] == "subscribe" and scanned.json()["url"] == b.url + "/wechat/push/mp"
        assert scanned.json()["status"] == 200 and scanned.json()["reply_text"] == SIGNING_IN
        states = await stream.states(1)
        if states == ["scanned"]:  # the push claims, then confirms: A may see both or only the last
            states = await stream.states(1)
        assert states == ["confirmed"]
    assert a.services.scenes.watcher.polls > polls  # A learnt it from MySQL

    done = await desktop.post(a.url + page.complete_url, headers={"X-XSRFToken": page.xsrf})
    assert done.status_code == 200 and done.json() == {"next": "/account"}
    user = await signed_in_as(a, desktop, sql, page.scene)
    assert await sql("SELECT login_method FROM user_login_methods WHERE user_id = %s", user) == [("mp",)]


async def mini_program(b, phone, url: str, action: str) -> dict:
    """B's sandbox plays the mini-program the code opened: one step through B's API, as 张三."""
    opened = await phone.get(url)
    assert opened.status_code == 200
    xsrf = phone.cookies.get("_xsrf") or ""
    answer = await phone.post(url, data={"_xsrf": xsrf, "person": "zhangsan", "action": action, "respond": "json"})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_mini_program_confirming_through_another_process_signs_in_the_desktop_waiting_on_the_first(
        two, new_client, sql):
    a, b = two
    desktop, phone = new_client(), new_client()
    page = await open_page(a, desktop, "miniprogram")
    image = await desktop.get(a.url + page.qr)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    # The phone's WeChat opens the page the code names; here it is B's sandbox playing the mini-program,
    # so every API call it makes goes to B.
    query = parse_qs(urlsplit(_wxacode_url(image.content)).query)
    assert query["scene"] == [page.scene] and query["page"] == ["pages/login/index"]
    url = f"{b.sandbox.base_url}/miniprogram/open?appid={query['appid'][0]}&page=pages/login/index&scene={page.scene}"

    waited = asyncio.ensure_future(desktop.get(a.url + page.wait, params={"after": "waiting"}))
    await asyncio.sleep(0.3)
    assert not waited.done()  # nothing has happened yet: A holds the long-poll
    assert await mini_program(b, phone, url, "scan") == {"status": 200, "answer": {"status": "scanned"}}
    assert (await asyncio.wait_for(waited, 10)).json() == {"state": "scanned"}

    waited = asyncio.ensure_future(desktop.get(a.url + page.wait, params={"after": "scanned"}))
    assert (await mini_program(b, phone, url, "confirm"))["status"] == 200
    assert (await asyncio.wait_for(waited, 10)).json() == {"state": "confirmed"}

    done = await desktop.post(a.url + page.complete_url, headers={"X-XSRFToken": page.xsrf})
    assert done.status_code == 200 and done.json() == {"next": "/account"}
    user = await signed_in_as(a, desktop, sql, page.scene)
    assert await sql("SELECT login_method FROM user_login_methods WHERE user_id = %s", user) == [("miniprogram",)]
    assert a.sandbox.state.miniprogram_tokens == {}  # no mini-program ever talked to A


def _wxacode_url(png: bytes) -> str:
    """The page a sandbox mini-program code opens (its PNG's ``wxacode`` chunk)."""
    with Image.open(io.BytesIO(png)) as code:
        return str(code.info["wxacode"])
