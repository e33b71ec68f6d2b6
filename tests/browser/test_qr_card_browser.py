"""Chromium on the desktop /login: the website QR card tells its state (issue 15).

Scanned and expired are played by the sandbox's emulated QR (the real WeChat frame tells its parent
nothing); the page renews its state before it runs out without a reload; with MySQL down the page says
so and shows no live QR. Waits are bounded (they prove a state arrives), never timed assertions.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
WAIT = 20_000  # ms: the longest any state below may take to arrive


async def _card_state(page, state: str) -> None:
    await page.wait_for_selector(f'#qrcard[data-state="{state}"]', timeout=WAIT)


async def _pick(page, person: str) -> None:
    """The sandbox's "simulate a scan": play ``person`` scanning and confirming."""
    frame = page.frame_locator("iframe")
    await frame.locator("summary", has_text="模拟扫码").click()
    await frame.locator("button.sb-person", has_text=person).click()


async def test_scanned_on_the_phone_then_signed_in(server, browser, sql):
    desktop = await (await browser.new_context(locale="zh-CN", viewport=DESKTOP)).new_page()
    await desktop.goto(server.url + "/login?next=/account")
    await _card_state(desktop, "waiting")
    # One heading: the page's. The embedded QR asks for WeChat's compact style (stylelite), which has none.
    assert await desktop.locator("h1").count() == 1
    frame = desktop.frame_locator("iframe")
    assert await frame.locator("h1").count() == 0
    phone_url = await frame.locator("#qr").get_attribute("data-phone")

    phone = await (await browser.new_context(locale="zh-CN")).new_page()
    await phone.goto(phone_url)  # the phone scanned the code

    await _card_state(desktop, "scanned")
    assert await desktop.locator('#qrcard [data-msg="scanned"]').inner_text() == "扫描成功，请在手机上确认"
    assert await frame.locator('[data-msg="scanned"]').is_visible()

    await phone.get_by_role("button", name="确认登录").click()
    await desktop.wait_for_url(server.url + "/account", timeout=WAIT)
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_expired_code_is_dimmed_and_a_click_brings_a_fresh_one(start_server, browser):
    short = await start_server({"wechat": {"qr_max_age": 3}})
    page = await (await browser.new_context(locale="zh-CN", viewport=DESKTOP)).new_page()
    await page.goto(short.url + "/login?next=/account")
    await _card_state(page, "waiting")
    first = await page.locator("iframe").get_attribute("src")

    await _card_state(page, "expired")

    overlay = page.get_by_role("button", name="二维码已失效，点击刷新", exact=True)  # the icon is aria-hidden
    assert await overlay.is_visible()
    # Dimmed, not a code that still looks valid (after the short fade: a bounded wait, not a timing).
    # Polled from here: wait_for_function would poll with eval() inside the page, which our CSP forbids.
    opacity = "parseFloat(getComputedStyle(document.querySelector('#qrcard iframe')).opacity)"
    for _ in range(int(WAIT / 50)):
        if await page.evaluate(opacity) < 0.5:
            break
        await asyncio.sleep(0.05)
    assert await page.evaluate(opacity) < 0.5
    await page.frame_locator("iframe").locator('[data-msg="expired"]').wait_for(timeout=WAIT)  # the sandbox agrees

    await overlay.click()
    await page.wait_for_selector('#qrcard[data-renewals="1"]', timeout=WAIT)
    await _card_state(page, "waiting")
    assert await page.locator("iframe").get_attribute("src") != first
    assert not await overlay.is_visible()


async def test_the_page_renews_its_state_and_still_signs_in_after_the_states_life(start_server, browser, sql):
    # A state lives 5 s here: the page renews it (about every 3.75 s) without a reload, so a scan long after
    # the first state died still signs in. Without renewal the callback says the sign-in link expired.
    short = await start_server({"server": {"state_max_age": 5}})
    page = await (await browser.new_context(locale="zh-CN", viewport=DESKTOP)).new_page()
    await page.goto(short.url + "/login?next=/account")
    await page.evaluate("window.__sameDocument = true")

    await page.wait_for_selector('#qrcard[data-renewals="2"]', timeout=WAIT)  # past the first state's life
    await _card_state(page, "waiting")
    assert await page.evaluate("window.__sameDocument === true")  # renewed in place, never reloaded
    await _pick(page, "张三")

    await page.wait_for_url(short.url + "/account", timeout=WAIT)
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_login_with_the_database_down_shows_the_notice_and_no_qr(start_server, browser):
    with socket.socket() as probe:  # a loopback port nobody listens on: MySQL unreachable
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = await start_server({"mysql": {"port": port, "connect_timeout": 1.0}})
    page = await (await browser.new_context(locale="zh-CN", viewport=DESKTOP)).new_page()

    response = await page.goto(down.url + "/login?next=/account")

    assert response is not None and response.status == 503
    assert await page.get_by_role("alert").inner_text() == "登录服务暂时不可用，请稍后再试。"
    assert await page.locator("iframe").count() == 0
    assert await page.get_by_role("link", name="重试").get_attribute("href") == "/login?next=%2Faccount"
