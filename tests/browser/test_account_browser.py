"""The account page in Chromium (issue 15): the <dialog> confirmations before unlinking and signing out
everywhere (cancel changes nothing, confirm does it and says so), and link actions that fit the surface."""

from __future__ import annotations

import pytest

from unit.test_useragent import IOS_WECHAT

pytestmark = pytest.mark.browser

PHONE = {"is_mobile": True, "has_touch": True, "viewport": {"width": 390, "height": 844}}


async def _page_signed_in_as(browser, server, client, **context_options):
    """A browser page holding the session ``client`` signed in with (the flows themselves have tests of their own)."""
    context = await browser.new_context(locale="zh-CN", **context_options)
    await context.add_cookies([{"name": c.name, "value": c.value, "url": server.url} for c in client.cookies.jar])
    page = await context.new_page()
    await page.goto(server.url + "/account")
    assert page.url == server.url + "/account", "the copied session did not sign the browser in"
    return page


async def _one_account_with_two_methods(new_client, flows, sql):
    await flows.mp_login(new_client(), "zhangsan")  # same unionid: the official account and the QR are one account
    laptop = new_client()
    await flows.login(laptop, "zhangsan")
    assert await sql("SELECT login_method FROM user_login_methods ORDER BY login_method") == [("mp",), ("web",)]
    return laptop


async def test_unlinking_asks_in_a_dialog_cancel_keeps_confirm_unlinks(server, browser, new_client, flows, sql):
    page = await _page_signed_in_as(browser, server, await _one_account_with_two_methods(new_client, flows, sql))
    mp = page.locator("li[data-channel=mp]")
    dialog = mp.locator("dialog.confirm-dialog")
    assert not await dialog.is_visible()

    await mp.get_by_role("button", name="解除绑定", exact=True).click()
    assert await dialog.is_visible()
    assert "解除绑定“微信内登录”？" in await dialog.locator("h2").inner_text()
    await dialog.get_by_role("button", name="取消").click()

    assert not await dialog.is_visible()
    assert page.url == server.url + "/account"
    assert await page.locator("ul.methods > li").count() == 2
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(2,)]

    await mp.get_by_role("button", name="解除绑定", exact=True).click()
    await dialog.get_by_role("button", name="确认解除绑定").click()

    await page.wait_for_url(server.url + "/account?done=unlinked", timeout=15000)
    assert "已解除绑定" in await page.locator("p.flash[role=status]").inner_text()
    assert await page.locator("ul.methods > li").count() == 1
    assert await sql("SELECT login_method FROM user_login_methods") == [("web",)]
    await page.context.close()


async def test_signing_out_everywhere_asks_in_a_dialog_then_says_so(server, browser, new_client, flows):
    laptop, phone = new_client(), new_client()
    await flows.login(laptop, "zhangsan")
    await flows.login(phone, "zhangsan")
    page = await _page_signed_in_as(browser, server, laptop)
    dialog = page.locator("dialog#confirm-everywhere")

    await page.get_by_role("button", name="退出所有设备", exact=True).click()
    assert await dialog.is_visible()
    await dialog.get_by_role("button", name="取消").click()

    assert not await dialog.is_visible()
    assert (await phone.get(server.url + "/account")).status_code == 200  # nothing ended
    await page.reload()
    assert page.url == server.url + "/account"

    await page.get_by_role("button", name="退出所有设备", exact=True).click()
    await dialog.get_by_role("button", name="确认退出所有设备").click()

    flash = page.locator("p.flash[data-done=signed_out_everywhere]")
    await flash.wait_for(timeout=15000)
    assert await flash.inner_text() == "已退出所有设备。"
    assert (await phone.get(server.url + "/account")).status_code == 302  # the other device is signed out too
    await page.goto(server.url + "/account")
    assert "/login?next=%2Faccount" in page.url
    await page.context.close()


async def test_link_actions_fit_the_surface(server, browser, new_client, flows):
    # Someone who signed in with the official account can still link the QR, and the reverse.
    via_mp, via_qr = new_client(), new_client()
    await flows.mp_login(via_mp, "lisi")
    await flows.login(via_qr, "zhangsan")
    qr_button = {"role": "button", "name": "绑定微信扫码登录"}
    mp_button = {"role": "button", "name": "绑定微信内登录"}

    desktop = await _page_signed_in_as(browser, server, via_mp)
    assert await desktop.get_by_role(**qr_button).is_visible()
    desktop_qr = await _page_signed_in_as(browser, server, via_qr)
    assert await desktop_qr.get_by_role(**mp_button).count() == 0  # WeChat refuses it outside WeChat
    assert await desktop_qr.get_by_text("请在微信中打开本页绑定").is_visible()

    phone = await _page_signed_in_as(browser, server, via_qr, user_agent=IOS_WECHAT, **PHONE)
    assert await phone.get_by_role(**mp_button).is_visible()
    phone_mp = await _page_signed_in_as(browser, server, via_mp, user_agent=IOS_WECHAT, **PHONE)
    assert await phone_mp.get_by_role(**qr_button).count() == 0  # a phone cannot scan its own screen
    assert await phone_mp.get_by_text("请在电脑上打开本页，用微信扫码绑定").is_visible()
    for page in (desktop, desktop_qr, phone, phone_mp):
        await page.context.close()
