"""Closing an account in Chromium (issue 16): a person closes their account from /account, signs in again during
the grace period, is offered to cancel, and cancels. Every step is a click; the checks poll from Python."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


async def _sign_in_with_the_embedded_qr(page, server, person_name):
    """The desktop login page's QR, answered by the sandbox's person picker (a simulated scan)."""
    frame = page.frame_locator("iframe")
    await frame.locator("summary", has_text="模拟扫码").click()
    await frame.locator("button.sb-person", has_text=person_name).click()


async def test_close_sign_in_during_the_grace_period_and_cancel(server, browser, sql):
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(server.url + "/account")
    await _sign_in_with_the_embedded_qr(page, server, "张三")
    await page.wait_for_url(server.url + "/account", timeout=15000)

    # /account -> the close page: what goes and when; a fresh sign-in, so the button closes at once.
    await page.locator("[data-close-link]").click()
    await page.wait_for_url(server.url + "/account/close", timeout=15000)
    assert await page.locator("[data-close-state]").get_attribute("data-close-state") == "confirm"
    assert "绑定的手机号" in await page.locator("ul.close-list").inner_text()
    await page.get_by_role("button", name="确认注销").click()

    done = page.locator("p.flash[data-done=closed]")
    await done.wait_for(timeout=15000)
    assert "已申请注销" in await done.inner_text()
    [(uid, when)] = await sql("SELECT id, deletion_scheduled_at FROM users")
    assert when is not None
    # Signed out: the account page asks for a sign-in again.
    await page.goto(server.url + "/account")
    assert "/login?next=%2Faccount" in page.url

    # Signing in during the grace period lands on the offer to cancel.
    await _sign_in_with_the_embedded_qr(page, server, "张三")
    await page.wait_for_url(server.url + "/account/close", timeout=15000)
    heading = page.locator("h1[data-deletion-at]")
    assert "你的账号将于" in await heading.inner_text()
    assert await page.get_by_role("button", name="继续注销并退出").is_visible()
    await page.get_by_role("button", name="取消注销").click()

    await page.wait_for_url(server.url + "/account?done=restored", timeout=15000)
    assert "已取消注销" in await page.locator("p.flash[role=status]").inner_text()
    assert await sql("SELECT id, deletion_scheduled_at FROM users") == [(uid, None)]
    await context.close()
