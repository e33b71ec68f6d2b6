"""Chromium looks at the brand (issue 15): the legal line and footer are on screen, WeChat's mark sits inside the
WeChat button, error pages show their icon; screenshots go to /tmp/wxlogin-brand-*.png for a person to look at."""

from __future__ import annotations

import pytest

from unit.test_useragent import IOS_WECHAT

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


async def _inside(outer, inner) -> bool:
    a, b = await outer.bounding_box(), await inner.bounding_box()
    assert a is not None and b is not None
    return (a["x"] <= b["x"] and b["x"] + b["width"] <= a["x"] + a["width"]
            and a["y"] <= b["y"] and b["y"] + b["height"] <= a["y"] + a["height"])


async def test_brand_legal_line_and_error_pages_look_right(start_server, browser):
    site = await start_server({"brand": {"name": "示例科技", "icp": "京ICP备12345678号-1",
                                         "support": "help@example.com"}})
    desktop = await (await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})).new_page()
    await desktop.goto(site.url + "/login")
    assert await desktop.title() == "登录 · 示例科技"
    legal = desktop.locator("p.legal-line")
    await legal.scroll_into_view_if_needed()
    assert await legal.is_visible() and await legal.inner_text() == "登录即表示同意《用户协议》《隐私政策》"
    assert await desktop.locator("footer a.icp").inner_text() == "京ICP备12345678号-1"
    await desktop.screenshot(path="/tmp/wxlogin-brand-login-desktop.png", full_page=True)

    await desktop.goto(site.url + "/")
    button = desktop.locator("a.wechat-button")
    assert await _inside(button, button.locator("img.wechat-mark"))
    await desktop.screenshot(path="/tmp/wxlogin-brand-home-desktop.png", full_page=True)

    await desktop.goto(site.url + "/no/such/page?lang=en")
    icon = desktop.locator("img.outcome-icon")
    assert await icon.evaluate("img => img.complete && img.naturalWidth > 0"), "the outcome icon did not load"
    assert await desktop.locator("h1").inner_text() == "Page not found. Please go back to the home page"
    await desktop.screenshot(path="/tmp/wxlogin-brand-404-en.png", full_page=True)

    phone = await (await browser.new_context(locale="zh-CN", user_agent=IOS_WECHAT, **PHONE)).new_page()
    await phone.goto(site.url + "/login?manual=1")  # the button page (arrival starts the silent flow)
    one_tap = phone.locator("#one-tap")
    assert await _inside(one_tap, one_tap.locator("img.wechat-mark"))
    assert await phone.locator("img[src*='wechat.svg']").count() == 1  # on the button, nowhere else
    legal = phone.locator("p.legal-line")
    assert await legal.is_visible()
    box = await legal.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, "the legal line fits a phone"
    await phone.screenshot(path="/tmp/wxlogin-brand-login-wechat-phone.png", full_page=True)
