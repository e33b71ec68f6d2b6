"""A real browser (Debian's Chromium through Playwright) clicks through the desktop QR login."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser



async def test_desktop_qr_login_with_simulated_scan(server, browser, sql):
    page = await (await browser.new_context(locale="zh-CN")).new_page()
    await page.goto(server.url + "/account")
    assert "/login?next=%2Faccount" in page.url

    frame = page.frame_locator("iframe")
    await frame.locator("summary", has_text="模拟扫码").click()
    await frame.locator("button.sb-person", has_text="🐼熊猫🎉 Panda").click()

    await page.wait_for_url(server.url + "/account", timeout=15000)
    assert await page.locator("h1.nickname").inner_text() == "🐼熊猫🎉 Panda"
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    await page.screenshot(path="/tmp/wxlogin-account.png", full_page=True)


DESKTOP = {"width": 1280, "height": 800}
Box = dict[str, float]


def _visible_part(frame_box: Box) -> Box:
    """What a person sees of the embedded QR: the iframe's box clipped to the desktop viewport."""
    left, top = max(frame_box["x"], 0.0), max(frame_box["y"], 0.0)
    right = min(frame_box["x"] + frame_box["width"], DESKTOP["width"])
    bottom = min(frame_box["y"] + frame_box["height"], DESKTOP["height"])
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def _assert_inside(box: Box | None, area: Box, what: str) -> None:
    assert box is not None, f"{what} is not rendered"
    assert (area["x"] <= box["x"] and box["x"] + box["width"] <= area["x"] + area["width"]
            and area["y"] <= box["y"] and box["y"] + box["height"] <= area["y"] + area["height"]), (
        f"{what} at {box} lies outside the visible part of the embedded QR {area}: a mouse cannot reach it")


async def _mouse_click(page, locator, area: Box, what: str) -> None:
    """Click like a mouse user: at the element's centre on screen, with nothing scrolled for us."""
    box = await locator.bounding_box()
    _assert_inside(box, area, what)
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


async def test_sandbox_people_are_reachable_with_a_mouse_in_the_embedded_qr(server, browser, sql):
    # The real WeChat QR iframe is 300x400 with scrolling="no"; the sandbox's picker must fit inside it.
    context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(server.url + "/login?next=/account")
    iframe = page.locator("iframe")
    frame_box = await iframe.bounding_box()
    assert frame_box is not None and (frame_box["width"], frame_box["height"]) == (300, 400)
    area = _visible_part(frame_box)
    frame = page.frame_locator("iframe")

    await _mouse_click(page, frame.locator("summary", has_text="模拟扫码"), area, "the sandbox button")
    people = frame.locator("button.sb-person")
    await people.first.wait_for(state="visible")
    for i in range(await people.count()):
        button = people.nth(i)
        name = (await button.inner_text()).strip()
        _assert_inside(await button.bounding_box(), area, f"the sandbox person {name!r}")
        # Nothing covers it: the point a mouse would hit is the button itself.
        assert await button.evaluate(
            "b => { const r = b.getBoundingClientRect();"
            " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === b; }"), name

    await _mouse_click(page, frame.locator("button.sb-person", has_text="🐼熊猫🎉 Panda"), area, "Panda")
    await page.wait_for_url(server.url + "/account", timeout=15000)
    assert await page.locator("h1.nickname").inner_text() == "🐼熊猫🎉 Panda"
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    await context.close()


async def test_desktop_qr_login_confirmed_on_the_phone_page(server, browser):
    desktop = await (await browser.new_context(locale="zh-CN")).new_page()
    await desktop.goto(server.url + "/login")
    phone_url = await desktop.frame_locator("iframe").locator("#qr").get_attribute("data-phone")
    await desktop.screenshot(path="/tmp/wxlogin-login.png")

    phone = await browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True, locale="zh-CN")
    phone_page = await phone.new_page()
    await phone_page.goto(phone_url)
    await phone_page.get_by_text("张三").click()
    await phone_page.get_by_role("button", name="确认登录").click()
    await phone_page.get_by_text("已确认登录").wait_for()

    await desktop.wait_for_url(server.url + "/", timeout=15000)
    assert "你好，张三" in await desktop.locator("h1").inner_text()
    await phone.close()


async def test_one_tap_login_in_the_wechat_browser(server, browser, sql):
    from unit.test_useragent import IOS_WECHAT

    context = await browser.new_context(user_agent=IOS_WECHAT, locale="zh-CN", is_mobile=True,
                                        viewport={"width": 390, "height": 844})
    page = await context.new_page()
    # Arrival starts the silent flow at once (issue 15): no button to tap for someone WeChat may know.
    await page.goto(server.url + "/login?next=/account")

    # The sandbox asks which WeChat user it is playing (real WeChat knows); someone new gets our consent
    # button, then WeChat's consent page once.
    await page.get_by_text("张三").click()
    await page.get_by_role("button", name="以此身份继续").click()
    await page.screenshot(path="/tmp/wxlogin-wechat-login.png")
    await page.get_by_role("link", name="微信授权登录").click()
    await page.get_by_role("button", name="允许").click()
    # Browsers keep the authorize URL's #wechat_redirect fragment across the redirects back to us.
    await page.wait_for_url(re.compile(r".*/account(#wechat_redirect)?$"), timeout=15000)
    assert await page.locator("h1.nickname").inner_text() == "张三"

    # Second visit: signed out, arrival signs in without a tap and without any consent page.
    await context.clear_cookies(name="wxsid")
    await page.goto(server.url + "/login?next=/account")
    await page.wait_for_url(re.compile(r".*/account(#wechat_redirect)?$"), timeout=15000)
    assert await page.locator("h1.nickname").inner_text() == "张三"
    assert await sql("SELECT login_method FROM user_login_methods") == [("mp",)]

    # Back from a cancel or an error (manual=1), the page shows the button instead of redirecting again.
    await context.clear_cookies(name="wxsid")
    await page.goto(server.url + "/login?next=/account&manual=1")
    assert page.url.endswith("/login?next=/account&manual=1")
    await page.get_by_role("link", name="微信一键登录").click()
    await page.wait_for_url(re.compile(r".*/account(#wechat_redirect)?$"), timeout=15000)
    await context.close()
