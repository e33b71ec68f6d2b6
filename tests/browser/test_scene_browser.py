"""A real browser (Chromium) on the scan-login waiting page: it waits, and signs in without a reload.

The phone side is played by the test (``SceneService.scanned/confirm/refuse``); the QR image is a stub.
Until the follow and mini-program modules are merged, the second-browser "phone" flows live in their tests.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

ALL_METHODS = {"wechat": {"desktop_methods": ["qr", "follow", "miniprogram"], "mp": {"follow_login": True},
                          "miniprogram": {"code_login_page": "pages/login/index"}}}
STUB_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240"><rect width="240" height="240"/></svg>'


@pytest.fixture
async def app(start_server):
    from wxlogin.models import SceneKind

    handle = await start_server(ALL_METHODS)

    async def image(scene: str) -> str:
        return STUB_SVG

    handle.services.scenes.register_qr(SceneKind.FOLLOW, image)
    handle.services.scenes.register_qr(SceneKind.MINIPROGRAM, image)
    return handle


async def _someone(app, new_client, flows, sql) -> int:
    await flows.login(new_client(), "panda")
    return int((await sql("SELECT id FROM users"))[0][0])


@pytest.mark.parametrize("transport", ["sse", "long-poll"])
async def test_the_waiting_page_signs_in_without_a_reload_when_the_phone_confirms(transport, app, browser,
                                                                                  new_client, flows, sql):
    person = await _someone(app, new_client, flows, sql)
    context = await browser.new_context(locale="zh-CN")
    if transport == "long-poll":  # a browser (or a proxy) without EventSource: the fallback takes over
        await context.add_init_script("delete window.EventSource;")
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(app.url + "/account")
    await page.locator(".login-tabs a", has_text="小程序扫码登录").click()
    await page.wait_for_selector("#scene img")
    assert await page.locator('[data-msg="waiting"]').is_visible()
    scene = (await page.locator("#scene").get_attribute("data-events") or "").split("/")[3]
    await page.evaluate("window.__samePage = true")  # gone if anything reloads the page

    assert await app.services.scenes.scanned(scene)
    await page.locator('[data-msg="scanned"]').wait_for(state="visible", timeout=10000)
    assert await page.locator('[data-msg="scanned"]').inner_text() == "已扫码，请在手机上确认"
    assert await page.evaluate("window.__samePage === true")

    assert await app.services.scenes.confirm(scene, person)
    await page.wait_for_url(app.url + "/account", timeout=15000)
    assert await page.locator("h1.nickname").inner_text() == "🐼熊猫🎉 Panda"
    assert await sql("SELECT status FROM login_scenes WHERE scene = %s", scene) == [("done",)]
    assert not [e for e in errors if "Content Security Policy" in e and "script" in e]  # scene.js is a file


async def test_an_expired_code_offers_a_fresh_one_and_a_refusal_says_cancelled(app, browser, start_server,
                                                                               sql):
    page = await (await browser.new_context(locale="zh-CN")).new_page()
    await page.goto(app.url + "/login?method=follow&next=/account")
    await page.wait_for_selector("#scene img")
    first = (await page.locator("#scene").get_attribute("data-events") or "").split("/")[3]
    await sql("UPDATE login_scenes SET expires_at = UTC_TIMESTAMP(3) WHERE scene = %s", first)
    await page.locator('[data-msg="expired"]').wait_for(state="visible", timeout=10000)
    assert await page.locator('[data-msg="expired"]').inner_text() == "二维码已失效"
    refresh = page.locator(".scene-refresh a")
    assert await refresh.inner_text() == "刷新二维码"
    await refresh.click()
    await page.wait_for_selector("#scene img")
    second = (await page.locator("#scene").get_attribute("data-events") or "").split("/")[3]
    assert second != first
    assert await page.locator('[data-msg="waiting"]').is_visible()

    assert await app.services.scenes.refuse(second)
    await page.locator('[data-msg="refused"]').wait_for(state="visible", timeout=10000)
    assert await page.locator('[data-msg="refused"]').inner_text() == "已取消"
    assert await page.locator(".scene-refresh a").is_visible()
