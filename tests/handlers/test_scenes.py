"""Desktop scan-login scenes (issue 14, the core): the login page's methods, the waiting page's transport
(SSE, long-poll), completion once and only in the browser that asked, expiry, refusal, another process.

The phone sides (follow QR pushes, the mini-program's API) are other modules: here the test plays them by
calling ``SceneService.scanned/confirm/refuse`` on the server's services, and stubs the QR images.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

import httpx
import pytest

from helpers import BAD_SCENE_IDS, page_xsrf
from wxlogin.models import SceneKind, SceneStatus

ALL_METHODS = {"wechat": {"desktop_methods": ["qr", "follow", "miniprogram"], "mp": {"follow_login": True},
                          "miniprogram": {"code_login_page": "pages/login/index"}}}
STUB_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
STUB_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
async def app(start_server):
    """A server whose login page offers all three desktop methods; QR images stubbed (tests only)."""
    handle = await start_server(ALL_METHODS)
    stub_images(handle)
    return handle


def stub_images(handle: Any) -> None:
    async def follow(scene: str) -> str:
        return STUB_SVG

    async def miniprogram(scene: str) -> bytes:
        return STUB_PNG

    handle.services.scenes.register_qr(SceneKind.FOLLOW, follow)
    handle.services.scenes.register_qr(SceneKind.MINIPROGRAM, miniprogram)


class Page:
    """A desktop browser's waiting page: the scene it shows, its URLs, its XSRF token."""

    def __init__(self, base: str, client: httpx.AsyncClient, html: str) -> None:
        self.base = base
        self.client = client
        self.html = html
        box = re.search(r'<div class="scene" id="scene"[^>]*>', html)
        assert box, html
        attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', box.group(0)))
        self.events, self.wait, self.complete_url = attrs["events"], attrs["wait"], attrs["complete"]
        self.xsrf = attrs["xsrf"]
        self.scene = self.events.split("/")[3]
        self.qr = f"/login/scene/{self.scene}/qr"

    async def complete(self, client: httpx.AsyncClient | None = None) -> httpx.Response:
        return await (client or self.client).post(self.base + self.complete_url, headers={"X-XSRFToken": self.xsrf})


async def open_page(server: Any, client: httpx.AsyncClient, method: str = "follow", next_path: str = "/account",
                    **params: str) -> Page:
    response = await client.get(server.url + "/login", params={"method": method, "next": next_path, **params})
    assert response.status_code == 200, response.text
    return Page(server.url, client, response.text)


async def user_id(server: Any, new_client: Any, flows: Any, sql: Any, person: str = "panda") -> int:
    """Someone the phone side would sign in (created through the sandbox's website QR login)."""
    await flows.login(new_client(), person)
    rows = await sql("SELECT user_id FROM user_login_methods ORDER BY id DESC LIMIT 1")
    return int(rows[0][0])


class Stream:
    """An open SSE response, read event by event (a bounded wait: a hang fails the test)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.retry: str | None = None
        self.comments = 0

    async def next_event(self, timeout: float = 10) -> dict[str, str] | None:
        """The next event (fields by name), or None when the server ended the stream."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    if "event" in fields:
                        return fields
                    fields = {}
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "retry":
                    self.retry = value
                else:
                    fields[name] = value
        return None

    async def states(self, count: int) -> list[str]:
        found = []
        for _ in range(count):
            event = await self.next_event()
            assert event is not None, f"stream ended after {found}"
            found.append(json.loads(event["data"])["state"])
        return found


class OpenStream:
    """``async with OpenStream(client, url) as stream``: GET an SSE URL and keep it open."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, Any] | None = None) -> None:
        self.context = client.stream("GET", url, headers=headers or {})

    async def __aenter__(self) -> Stream:
        response = await self.context.__aenter__()
        return Stream(response)

    async def __aexit__(self, *exc: object) -> None:
        await self.context.__aexit__(*exc)


# --- the login page ---------------------------------------------------------------------------------------


async def test_the_desktop_page_offers_the_configured_methods_as_tabs_in_both_languages(app, client):
    page = await client.get(app.url + "/login", params={"next": "/account"})
    tabs = re.findall(r'<a href="([^"]+)" data-method="([a-z]+)"', page.text)
    assert [m for _, m in tabs] == ["qr", "follow", "miniprogram"]
    assert all("next=%2Faccount" in url and f"method={m}" in url for url, m in tabs)
    assert "微信扫码登录" in page.text and "关注公众号登录" in page.text and "小程序扫码登录" in page.text
    assert "<iframe" in page.text and 'id="scene"' not in page.text  # the first method is the default

    english = await client.get(app.url + "/login", params={"method": "miniprogram", "lang": "en"})
    assert "Follow our official account" in english.text and "Scan the mini-program code" in english.text
    assert "Waiting for a scan" in english.text and "Refresh the code" in english.text
    assert "等待扫码" not in english.text

    unknown = await client.get(app.url + "/login", params={"method": "sms"})
    assert "<iframe" in unknown.text  # an unknown method is the default one


async def test_a_site_with_only_the_website_qr_shows_no_tabs_and_phones_are_unchanged(start_server, app, client):
    server = await start_server({"wechat": {"desktop_methods": ["qr"]}})  # the declared default
    only_qr = await client.get(server.url + "/login", params={"method": "follow"})
    assert "login-tabs" not in only_qr.text and 'id="scene"' not in only_qr.text and "<iframe" in only_qr.text
    iphone = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"}
    phone = await client.get(app.url + "/login", params={"method": "follow"}, headers=iphone)
    assert "login-tabs" not in phone.text and 'id="scene"' not in phone.text
    wechat = {"User-Agent": iphone["User-Agent"] + " MicroMessenger/8.0.47"}
    assert "login-tabs" not in (await client.get(app.url + "/login", headers=wechat)).text


async def test_a_scene_page_binds_the_scene_to_this_browser_and_shows_only_opaque_handles(app, client, sql):
    page = await open_page(app, client, "follow")
    response = await client.get(app.url + "/login", params={"method": "follow"})  # a second tab
    second = Page(app.url, client, response.text)

    cookie = next(c for c in client.cookies.jar if c.name == "wxscene")
    assert cookie.has_nonstandard_attr("HttpOnly")
    pairs = dict(pair.split("_") for pair in cookie.value.split("."))
    assert set(pairs) == {page.scene, second.scene}  # both tabs work
    rows = await sql("SELECT kind, status, binding, user_id, next_path, "
                     "TIMESTAMPDIFF(SECOND, created_at, expires_at) FROM login_scenes WHERE scene = %s", page.scene)
    assert rows == [("follow", "waiting", hashlib.sha256(pairs[page.scene].encode()).digest(), None, "/account",
                     app.settings.wechat.scene_max_age)]
    assert pairs[page.scene] not in page.html  # the secret lives in the HttpOnly cookie only
    assert "等待扫码" in page.html and "二维码已失效" in page.html and "刷新二维码" in page.html
    assert re.search(r'<script src="/static/js/scene\.js\?v=[^"]+" defer></script>', page.html)


# --- once, and only in the browser that asked -----------------------------------------------------------------


async def test_a_confirmed_scene_signs_its_browser_in_once_and_no_other(app, new_client, flows, sql):
    desktop, intruder = new_client(), new_client()
    page = await open_page(app, desktop, "follow", next_path="/account")
    intruder_page = await open_page(app, intruder, "miniprogram")  # a browser with a scene of its own
    person = await user_id(app, new_client, flows, sql)

    async with OpenStream(desktop, app.url + page.events) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        assert await stream.states(1) == ["waiting"]
        assert stream.retry == "2000"
        assert await app.services.scenes.confirm(page.scene, person)
        assert await stream.states(1) == ["confirmed"]
        assert await stream.next_event() is None  # the stream ends on a state with nothing after it

    # Another browser, with the scene id (from a shoulder or a log) and its own XSRF token: nothing.
    for path in (page.events, page.wait, page.qr):
        answer = await intruder.get(app.url + path)
        assert answer.status_code == 404 and answer.json()["error"] == "scene_not_found", path
    stolen = await intruder.post(app.url + page.complete_url, headers={"X-XSRFToken": intruder_page.xsrf})
    assert stolen.status_code == 404 and stolen.json()["error"] == "scene_not_found"
    assert "wxsid" not in stolen.cookies

    kept_cookie = desktop.cookies.get("wxscene")
    done = await page.complete()
    assert done.status_code == 200 and done.json() == {"next": "/account"}
    assert "wxsid" in done.cookies and str(person) not in done.text
    account = await desktop.get(app.url + "/account")
    assert account.status_code == 200 and "🐼熊猫🎉 Panda" in account.text
    assert await sql("SELECT status FROM login_scenes WHERE scene = %s", page.scene) == [("done",)]

    assert (await page.complete()).status_code == 403  # the sign-in rotated the XSRF token
    xsrf = await page_xsrf(desktop, app.url + "/account")
    again = await desktop.post(app.url + page.complete_url, headers={"X-XSRFToken": xsrf})
    assert again.status_code == 404  # the answer took the scene out of the cookie
    desktop.cookies.set("wxscene", kept_cookie, domain="127.0.0.1")  # even with a copy of the old cookie: once
    replay = await desktop.post(app.url + page.complete_url, headers={"X-XSRFToken": xsrf})
    assert replay.status_code == 409 and replay.json()["error"] == "scene_used"
    assert not await app.services.scenes.confirm(page.scene, person)  # a done scene takes nothing more


async def test_complete_needs_the_xsrf_token_and_the_confirmation(app, client, new_client, flows, sql):
    page = await open_page(app, client, "miniprogram")
    no_token = await client.post(app.url + page.complete_url)
    assert no_token.status_code == 403
    early = await page.complete()
    assert early.status_code == 409 and early.json()["error"] == "scene_pending"
    assert await app.services.scenes.scanned(page.scene)
    assert (await page.complete()).json()["error"] == "scene_pending"
    assert await app.services.scenes.confirm(page.scene, await user_id(app, new_client, flows, sql))
    cross_site = await client.post(app.url + page.complete_url,
                                   headers={"X-XSRFToken": page.xsrf, "Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert (await page.complete()).status_code == 200


async def test_signing_in_through_a_scene_ends_the_previous_session(app, new_client, flows, sql):
    desktop = new_client()
    await flows.login(desktop, "zhangsan")  # someone else was signed in on this computer
    old_session = desktop.cookies.get("wxsid")
    desktop.cookies.delete("wxsid")
    page = await open_page(app, desktop, "follow")
    desktop.cookies.set("wxsid", old_session, domain="127.0.0.1")
    assert await app.services.scenes.confirm(page.scene, await user_id(app, new_client, flows, sql, "panda"))
    assert (await page.complete()).status_code == 200
    assert desktop.cookies.get("wxsid") != old_session
    stale = new_client()
    stale.cookies.set("wxsid", old_session, domain="127.0.0.1")
    assert "zhangsan" not in (await stale.get(app.url + "/account")).text.lower()


# --- expiry and refusal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scanned_first", [False, True], ids=["waiting", "scanned"])
async def test_an_expired_scene_says_so_and_offers_a_fresh_code(scanned_first, app, client, new_client, flows, sql):
    page = await open_page(app, client, "follow", next_path="/account")
    async with OpenStream(client, app.url + page.events) as stream:
        assert await stream.states(1) == ["waiting"]
        if scanned_first:
            assert await app.services.scenes.scanned(page.scene)
            assert await stream.states(1) == ["scanned"]
        await sql("UPDATE login_scenes SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND WHERE scene = %s",
                  page.scene)
        assert await stream.states(1) == ["expired"]  # read by the watcher, not poked by anyone
        assert await stream.next_event() is None

    assert not await app.services.scenes.confirm(page.scene, await user_id(app, new_client, flows, sql))
    assert not await app.services.scenes.scanned(page.scene)
    late = await page.complete()
    assert late.status_code == 410 and late.json()["error"] == "scene_expired"
    assert (await client.get(app.url + page.qr)).json()["error"] == "scene_not_found"  # unbound by the answer
    # The page carries the expired state's text and its button, which opens a fresh code of the same kind.
    refresh = re.search(r'<p class="scene-refresh" hidden><a class="button primary" href="([^"]+)">刷新二维码</a>',
                        page.html)
    assert refresh and refresh.group(1) == "/login?next=%2Faccount&amp;method=follow"
    assert '<p class="scene-msg" data-msg="expired" hidden>二维码已失效</p>' in page.html


async def test_a_confirmed_scene_can_be_completed_a_moment_after_its_life(app, client, new_client, flows, sql):
    page = await open_page(app, client, "follow")
    assert await app.services.scenes.confirm(page.scene, await user_id(app, new_client, flows, sql))
    await sql("UPDATE login_scenes SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 30 SECOND WHERE scene = %s",
              page.scene)
    assert (await page.complete()).status_code == 200  # within the grace: the phone confirmed in time
    other = await open_page(app, new_client(), "follow")
    assert await app.services.scenes.confirm(other.scene, await user_id(app, new_client, flows, sql, "lisi"))
    await sql("UPDATE login_scenes SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 2 MINUTE WHERE scene = %s",
              other.scene)
    assert (await other.complete()).json()["error"] == "scene_expired"


async def test_a_refused_scene_ends_the_wait_and_signs_nobody_in(app, client, new_client, flows, sql):
    page = await open_page(app, client, "miniprogram")
    async with OpenStream(client, app.url + page.events) as stream:
        assert await stream.states(1) == ["waiting"]
        assert await app.services.scenes.scanned(page.scene)
        assert await app.services.scenes.refuse(page.scene)
        states = await stream.states(1)
        if states == ["scanned"]:  # both changes may reach the page, or only the last
            states = await stream.states(1)
        assert states == ["refused"]
    assert not await app.services.scenes.confirm(page.scene, await user_id(app, new_client, flows, sql))
    assert not await app.services.scenes.refuse(page.scene)
    refused = await page.complete()
    assert refused.status_code == 403 and refused.json()["error"] == "scene_refused"
    assert "wxsid" not in refused.cookies
    assert '<p class="scene-msg" data-msg="refused" hidden>已取消</p>' in page.html


# --- several processes, reconnects, the long-poll -------------------------------------------------------------


async def test_a_confirmation_on_one_process_reaches_the_page_waiting_on_another(start_server, new_client, flows,
                                                                                  sql, server):
    first, second = await start_server(ALL_METHODS), await start_server(ALL_METHODS)
    desktop = new_client()
    page = await open_page(first, desktop, "follow", next_path="/account")
    person = await user_id(server, new_client, flows, sql)
    # The page's stream is held by the second process (nginx sent it there); the push lands on the first.
    async with OpenStream(desktop, second.url + page.events) as stream:
        assert await stream.states(1) == ["waiting"]
        assert await first.services.scenes.confirm(page.scene, person)
        assert await stream.states(1) == ["confirmed"]
    assert second.services.scenes.watcher.polls >= 1  # it learnt it from MySQL
    done = await desktop.post(second.url + page.complete_url, headers={"X-XSRFToken": page.xsrf})
    assert done.status_code == 200 and done.json() == {"next": "/account"}


async def test_a_reconnect_with_last_event_id_gets_only_what_is_new(app, client, new_client, flows, sql):
    page = await open_page(app, client, "miniprogram")
    assert await app.services.scenes.scanned(page.scene)
    async with OpenStream(client, app.url + page.events, {"Last-Event-ID": "waiting"}) as stream:
        first = await stream.next_event()
        assert first is not None and first["id"] == "scanned" and first["event"] == "state"
    async with OpenStream(client, app.url + page.events, {"Last-Event-ID": "scanned"}) as stream:
        person = await user_id(app, new_client, flows, sql)
        await asyncio.sleep(0.2)  # the stream is open and has nothing to say yet
        assert await app.services.scenes.confirm(page.scene, person)
        event = await stream.next_event()
        assert event is not None and event["id"] == "confirmed"  # "scanned" is not repeated
    for junk in ("bogus", "DONE", "scanned x", "9" * 300, b"\xc3\xa9", b"\xff"):
        async with OpenStream(client, app.url + page.events, {"Last-Event-ID": junk}) as stream:
            assert stream.response.status_code == 200
            assert await stream.states(1) == ["confirmed"]  # as if none was sent


async def test_a_reconnect_that_already_has_the_final_state_is_told_to_stop(app, client):
    # EventSource reconnects after every closed stream; only a 204 stops it. A page whose script did not close
    # the stream would otherwise ask again every 2 s for good.
    page = await open_page(app, client, "miniprogram")
    assert await app.services.scenes.refuse(page.scene)
    again = await client.get(app.url + page.events, headers={"Last-Event-ID": "refused"})
    assert again.status_code == 204 and again.content == b""
    fresh = await client.get(app.url + page.events, headers={"Last-Event-ID": "waiting"})
    assert fresh.status_code == 200 and 'id: refused' in fresh.text


async def test_the_long_poll_answers_at_once_on_a_change_or_when_its_state_is_old(app, client):
    page = await open_page(app, client, "follow")
    now = await client.get(app.url + page.wait)
    assert now.status_code == 200 and now.json() == {"state": "waiting"}
    assert now.headers["cache-control"] == "no-store"
    waiting = asyncio.ensure_future(client.get(app.url + page.wait, params={"after": "waiting"}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    assert await app.services.scenes.scanned(page.scene)
    async with asyncio.timeout(10):
        answer = await waiting
    assert answer.json() == {"state": "scanned"}
    stale = await client.get(app.url + page.wait, params={"after": "waiting"})
    assert stale.json() == {"state": "scanned"}
    for bad in ({"after": "nope"}, {"after": "x" * 100}, [("after", "waiting"), ("after", "scanned")]):
        refused = await client.get(app.url + page.wait, params=bad)
        assert refused.status_code == 400 and refused.json()["error"] == "bad_request"


async def test_one_process_reads_every_waiting_page_in_one_statement(app, new_client):
    """The cost of waiting: a round of the watcher is one statement, however many pages wait."""
    pages = [await open_page(app, new_client(), "follow") for _ in range(12)]
    watcher = app.services.scenes.watcher
    streams = [OpenStream(page.client, app.url + page.events) for page in pages]
    opened = [await s.__aenter__() for s in streams]
    try:
        for stream in opened:
            assert await stream.states(1) == ["waiting"]
        assert watcher.waiting == 12
        rounds = watcher.polls
        await asyncio.sleep(1.2)  # a few rounds at 0.5 s
        assert watcher.polls > rounds
        assert watcher.statements == watcher.polls  # one statement per round, for all twelve
    finally:
        for s in streams:
            await s.__aexit__(None, None, None)


# --- the images --------------------------------------------------------------------------------------------------


async def test_the_qr_is_the_kinds_image_for_its_browser_only_and_not_cached(app, client, new_client):
    follow = await open_page(app, client, "follow")
    image = await client.get(app.url + follow.qr)
    assert image.status_code == 200 and image.text == STUB_SVG
    assert image.headers["content-type"] == "image/svg+xml"
    assert image.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in image.headers["content-security-policy"]
    code = await open_page(app, client, "miniprogram")
    png = await client.get(app.url + code.qr)
    assert png.headers["content-type"] == "image/png" and png.content == STUB_PNG
    assert (await new_client().get(app.url + code.qr)).status_code == 404
    assert await app.services.scenes.refuse(code.scene)
    gone = await client.get(app.url + code.qr)
    assert gone.status_code == 410 and gone.json()["error"] == "scene_expired"


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", BAD_SCENE_IDS, ids=range(len(BAD_SCENE_IDS)))
async def test_bad_scene_ids_are_404_on_every_scene_route(scene, app, client):
    page = await open_page(app, client, "follow")
    for suffix in ("events", "wait", "qr"):
        answer = await client.get(f"{app.url}/login/scene/{scene}/{suffix}")
        assert answer.status_code == 404, (suffix, answer.text[:200])
        assert "Traceback" not in answer.text
    posted = await client.post(f"{app.url}/login/scene/{scene}/complete", headers={"X-XSRFToken": page.xsrf})
    assert posted.status_code == 404 and "wxsid" not in posted.cookies
    for bad in (scene, "bad", "", "\x00"):  # the phone side's calls refuse them too
        assert not await app.services.scenes.scanned(bad)
        assert not await app.services.scenes.confirm(bad, 1)
        assert not await app.services.scenes.refuse(bad)


async def test_a_scene_cookie_that_is_not_ours_is_ignored(app, client):
    page = await open_page(app, client, "follow")
    for value in ("", "x", f"{page.scene}_", f"{page.scene}_{'0' * 32}", f"{page.scene}_{'Z' * 32}",
                  f"{page.scene}_{'a' * 5000}", ".".join([f"{page.scene}_{'1' * 32}"] * 50)):
        client.cookies.set("wxscene", value, domain="127.0.0.1")
        answer = await client.get(app.url + page.wait)
        assert answer.status_code == 404, value[:80]


@pytest.mark.parametrize("status", list(SceneStatus))
async def test_every_state_has_its_text_on_the_page(status, app, client):
    page = await open_page(app, client, "follow")
    if status is SceneStatus.DONE:
        return  # the page goes on to next (another tab of this browser completed it)
    assert f'data-msg="{status.value}"' in page.html


async def test_open_waits_are_bounded_per_client_and_end_when_the_process_stops(start_server, new_client):
    limited = await start_server({**ALL_METHODS, "ratelimit": {"enabled": True, "scene_waits_per_ip": 2,
                                                               "start_per_minute": 100}})
    pages = [await open_page(limited, new_client(), "follow") for _ in range(3)]
    streams = [OpenStream(page.client, limited.url + page.events) for page in pages[:2]]
    opened = [await s.__aenter__() for s in streams]
    try:
        for stream in opened:
            assert await stream.states(1) == ["waiting"]
        third = await pages[2].client.get(limited.url + pages[2].wait)
        assert third.status_code == 429 and third.json()["error"] == "rate_limited"
        assert third.headers["Retry-After"] == "5"
        limited.services.scenes.shutdown()  # SIGTERM: streams end now, their browsers reconnect elsewhere
        for stream in opened:
            assert await stream.next_event() is None
    finally:
        for s in streams:
            await s.__aexit__(None, None, None)
