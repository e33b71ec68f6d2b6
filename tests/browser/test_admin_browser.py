"""The operator console in Chromium (issue 16): an operator finds a user, reads a failed login's errcode and rid,
disables the account (the person's own browser is signed out at once) and enables it again."""

from __future__ import annotations

import pytest

from helpers import Flows

pytestmark = pytest.mark.browser


async def _context_as(browser, base_url, client):
    """A browser context holding the session ``client`` signed in with (the flows have tests of their own)."""
    context = await browser.new_context(locale="zh-CN")
    context.set_default_timeout(15000)
    await context.add_cookies([{"name": c.name, "value": c.value, "url": base_url} for c in client.cookies.jar])
    return context


async def test_an_operator_finds_a_user_reads_a_failure_and_disables_then_enables(server, browser, start_server,
                                                                                   new_client, sql):
    flows = Flows(server)
    operator = new_client()
    await flows.login(operator, "op-browser")
    [(operator_id,)] = await sql("SELECT user_id FROM user_login_methods ORDER BY id DESC LIMIT 1")
    console = await start_server({"admin": {"user_ids": [operator_id]}})
    person = new_client()
    assert (await flows.login(person, "zhangsan")).status_code == 302
    [(user_id,)] = await sql("SELECT user_id FROM user_login_methods ORDER BY id DESC LIMIT 1")
    await flows.login(new_client(), "blocked")  # WeChat refuses this code: 40226 with a rid
    [(rid,)] = await sql("SELECT wechat_rid FROM login_events WHERE wechat_errcode = 40226")

    # The person's own browser, signed in.
    theirs = await _context_as(browser, server.url, person)
    their_page = await theirs.new_page()
    await their_page.goto(server.url + "/account")
    assert their_page.url == server.url + "/account"

    ours = await _context_as(browser, console.url, operator)
    page = await ours.new_page()
    await page.goto(console.url + "/admin")
    assert "运营后台" in await page.locator("nav.admin-nav").inner_text()

    # Find the user by nickname.
    await page.get_by_label("搜索用户").fill("张三")
    await page.get_by_role("button", name="搜索", exact=True).click()
    await page.wait_for_url(console.url + "/admin/users?q=*")
    await page.locator(f'tr[data-user="{user_id}"] a').click()
    await page.wait_for_url(console.url + f"/admin/users/{user_id}")
    assert await page.locator("#status").inner_text() == "正常"

    # The failed login: WeChat's errcode and rid, as the console shows them.
    await page.get_by_role("link", name="登录失败", exact=True).click()
    await page.wait_for_url(console.url + "/admin/failures")
    failed = page.locator("tr.failed").first
    assert await failed.locator("td.errcode").inner_text() == "40226"
    assert await failed.locator("td.rid").inner_text() == rid

    # Disable, with a reason; the person's browser is signed out at once.
    await page.goto(console.url + f"/admin/users/{user_id}")
    await page.get_by_label("停用原因").fill("批量注册")
    await page.get_by_role("button", name="停用账号").click()
    await page.wait_for_url(console.url + f"/admin/users/{user_id}?done=disable")
    assert await page.locator("#status").inner_text() == "已停用"
    assert "批量注册" in await page.locator("table.admin-log").inner_text()
    await their_page.goto(server.url + "/account")
    assert their_page.url.startswith(server.url + "/login?")  # no longer signed in

    # Enable again: the account works, the old session stays ended (a new sign-in is needed).
    await page.get_by_role("button", name="恢复账号").click()
    await page.wait_for_url(console.url + f"/admin/users/{user_id}?done=enable")
    assert await page.locator("#status").inner_text() == "正常"
    assert await sql("SELECT disabled FROM users WHERE id = %s", user_id) == [(0,)]
    assert [a for (a,) in await sql("SELECT action FROM operator_actions ORDER BY id")] == ["disable", "enable"]
    await ours.close()
    await theirs.close()
