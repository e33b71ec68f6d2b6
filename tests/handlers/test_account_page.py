"""The account page for people (issue 15): labels, local time, device and place, failed attempts, confirmations
before unlinking and signing out everywhere, both accounts on the merge page, link actions that work where
the person is, and the avatar menu. Real HTTP, the sandbox and MariaDB."""

from __future__ import annotations

import re

from test_account_changes import link_by_official_account, link_by_qr, post_form

from conftest import base_config, merge
from helpers import Flows, location_path, page_xsrf
from unit.test_useragent import DESKTOP_CHROME, IOS_WECHAT, IPHONE_SAFARI, WINDOWS_WECHAT
from wxlogin.config import ConfigError, settings_from_mapping


async def signed_in(client, server):
    return (await client.get(server.url + "/account")).status_code == 200


def link_forms(page):
    """The link buttons the page offers (the channels of its /account/link/<channel> forms)."""
    return re.findall(r'action="/account/link/(web|mp)"', page.text)


async def test_methods_are_labelled_for_people_and_times_are_local(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    # A login at a known UTC time: 03:04 UTC is 11:04 in Asia/Shanghai, the default [server] time_zone.
    await sql("UPDATE users SET created_at = '2024-01-02 03:04:05'")
    await sql("UPDATE user_login_methods SET created_at = '2024-01-02 03:04:05', last_login_at = NULL")
    await sql("UPDATE login_events SET created_at = '2024-01-02 03:04:05'")

    page = await client.get(server.url + "/account")

    assert page.status_code == 200
    method = page.text.split('data-channel="web"')[1].split("</li>")[0]
    assert "微信扫码" in method and "微信 · 张三" in method
    assert '<time datetime="2024-01-02T11:04:05+08:00">2024-01-02 11:04</time>' in method
    history = page.text.split('class="events"')[1].split("</table>")[0]
    assert '<time datetime="2024-01-02T11:04:05+08:00">2024-01-02 11:04</time>' in history
    assert "03:04" not in page.text and "(UTC)" not in page.text
    # Nothing for developers: no appid, no account number, no API names of the methods.
    assert server.settings.wechat.web.appid not in page.text
    assert "账号 ID" not in page.text and "网站扫码登录" not in page.text and "公众号登录" not in page.text
    english = await client.get(server.url + "/account?lang=en")
    assert "WeChat QR code" in english.text and "Time (UTC)" not in english.text


async def test_the_time_zone_is_a_setting(start_server, new_client, sql):
    site = await start_server({"server": {"time_zone": "UTC"}})
    client = new_client()
    await Flows(site).login(client, "zhangsan")
    await sql("UPDATE login_events SET created_at = '2024-01-02 03:04:05'")

    page = await client.get(site.url + "/account")

    assert '<time datetime="2024-01-02T03:04:05+00:00">2024-01-02 03:04</time>' in page.text


def test_a_bad_time_zone_is_refused_naming_the_key():
    data = merge(base_config(), {"server": {"port": 1, "time_zone": "Asia/Nowhere"}})
    try:
        settings_from_mapping(data, {})
    except ConfigError as error:
        assert "[server] time_zone" in str(error) and "Asia/Nowhere" in str(error)
    else:
        raise AssertionError("an unknown time zone was accepted")
    assert settings_from_mapping(merge(base_config(), {"server": {"port": 1}}), {}).server.time_zone == "Asia/Shanghai"


async def test_each_sign_in_shows_its_device_and_coarse_place(server, new_client, flows, sql):
    laptop = new_client(headers={"User-Agent": DESKTOP_CHROME})
    await flows.login(laptop, "zhangsan")  # from 127.0.0.1: this machine
    [(user_id,)] = await sql("SELECT id FROM users")
    # Sign-ins from elsewhere (a public IPv4 and IPv6 address, a home network) as the audit trail holds them.
    for ip, ua, when in (("1.2.3.4", IOS_WECHAT, "2024-01-01 01:00:00"),
                         ("2408:8207:1234:5678::1", WINDOWS_WECHAT, "2024-01-01 02:00:00"),
                         ("192.168.1.7", IPHONE_SAFARI, "2024-01-01 03:00:00"),
                         ("", "", "2024-01-01 04:00:00")):
        await sql("INSERT INTO login_events (user_id, login_method, outcome, ip, user_agent, created_at) "
                  "VALUES (%s, 'mp', 'success', %s, %s, %s)", user_id, ip, ua, when)

    page = await laptop.get(server.url + "/account")

    rows = re.findall(r"<tr class=\"(?:ok|failed)\".*?</tr>", page.text, re.S)
    cells = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for row in rows]
    devices_places = [(c[2], c[3]) for c in cells]
    assert devices_places == [("Windows Chrome", "本机/局域网"), ("未知设备", "未知"), ("iPhone Safari", "本机/局域网"),
                              ("Windows 微信", "2408:8207:1234::/48"), ("iPhone 微信", "1.2.3.0/24")]
    assert "1.2.3.4" not in page.text and "5678" not in page.text  # never the whole address
    english = await laptop.get(server.url + "/account?lang=en")
    assert "iPhone WeChat" in english.text and "This computer / local network" in english.text


async def test_a_failed_link_is_listed_as_failed(server, client, flows, sql):
    await flows.login(client, "zhangsan")
    [(user_id,)] = await sql("SELECT id FROM users")
    start = await post_form(client, server, "/account/link/web")
    callback = await flows.scan(client, start.headers["location"].split("#")[0], "lisi", action="deny")
    cancelled = await client.get(callback)
    assert "你已取消登录" in cancelled.text

    page = await client.get(server.url + "/account")

    # The failure of a signed-in person's own link flow is theirs; it is recorded and shown as failed.
    assert await sql("SELECT user_id, outcome FROM login_events ORDER BY id") == [
        (user_id, "success"), (user_id, "login_cancelled")]
    failed = re.findall(r'<tr class="failed".*?</tr>', page.text, re.S)
    assert len(failed) == 1 and "失败" in failed[0] and "你已取消登录" in failed[0] and "微信扫码" in failed[0]
    assert len(re.findall(r'<tr class="ok"', page.text)) == 1


async def test_a_failed_login_stays_anonymous(server, new_client, flows, sql):
    """A failed *login* has not shown who the person is: nobody's page lists it."""
    stranger = new_client()
    cancelled = await stranger.get(await flows.scan(stranger, await flows.start_qr(stranger), "zhangsan",
                                                    action="deny"))
    assert "你已取消登录" in cancelled.text
    client = new_client()
    await flows.login(client, "zhangsan")

    page = await client.get(server.url + "/account")

    assert await sql("SELECT user_id IS NULL, outcome FROM login_events ORDER BY id") == [
        (1, "login_cancelled"), (0, "success")]
    assert 'class="failed"' not in page.text


async def test_unlinking_asks_first_and_a_post_without_confirmation_changes_nothing(server, new_client, flows,
                                                                                   sql):
    browser, other = new_client(), new_client()
    await flows.login(browser, "zhangsan")
    await flows.login(other, "zhangsan")
    await link_by_official_account(browser, server, "zhangsan")
    [(web_id,), (mp_id,)] = await sql("SELECT id FROM user_login_methods ORDER BY id")

    asked = await post_form(browser, server, "/account/unlink", method_id=str(mp_id))

    assert asked.status_code == 200 and 'data-confirm-step="unlink"' in asked.text
    assert "解除绑定“微信内登录”？" in asked.text
    assert f'name="method_id" value="{mp_id}"><input type="hidden" name="confirm" value="1">' in asked.text
    assert await sql("SELECT id FROM user_login_methods ORDER BY id") == [(web_id,), (mp_id,)]
    assert await signed_in(other, server)  # nothing ended either

    done = await post_form(browser, server, "/account/unlink", method_id=str(mp_id), confirm="1")

    assert location_path(done, server.url) == "/account?done=unlinked"
    assert await sql("SELECT id FROM user_login_methods") == [(web_id,)]
    assert "已解除绑定" in (await browser.get(server.url + "/account?done=unlinked")).text
    # The last method cannot be unlinked: said at once, not after a confirmation.
    last = await post_form(browser, server, "/account/unlink", method_id=str(web_id))
    assert last.status_code == 400 and "账号至少需要保留一种登录方式" in last.text


async def test_the_account_page_confirms_in_place_with_a_dialog_too(server, client, flows):
    await flows.login(client, "zhangsan")
    await link_by_official_account(client, server, "zhangsan")

    page = await client.get(server.url + "/account")

    # Each destructive form names its <dialog>; the dialog's own form carries confirm=1 (account.js opens it).
    for target in re.findall(r'data-confirm="([^"]+)"', page.text):
        dialog = page.text.split(f'<dialog id="{target}"')[1].split("</dialog>")[0]
        assert 'name="confirm" value="1"' in dialog and 'formmethod="dialog"' in dialog
    assert len(re.findall(r'data-confirm="', page.text)) == 3  # two methods to unlink, sign out everywhere
    assert "/static/js/account.js" in page.text


async def test_signing_out_everywhere_asks_first_then_says_so(server, new_client, flows):
    laptop, phone = new_client(), new_client()
    await flows.login(laptop, "zhangsan")
    await flows.login(phone, "zhangsan")
    xsrf = await page_xsrf(laptop, server.url + "/account")

    asked = await laptop.post(server.url + "/logout", data={"_xsrf": xsrf, "everywhere": "1"})

    assert asked.status_code == 200 and 'data-confirm-step="everywhere"' in asked.text
    assert "退出所有设备？" in asked.text and 'name="confirm" value="1"' in asked.text
    assert await signed_in(phone, server) and await signed_in(laptop, server)

    done = await laptop.post(server.url + "/logout", data={"_xsrf": xsrf, "everywhere": "1", "confirm": "1"})

    assert done.status_code == 200 and 'data-done="signed_out_everywhere"' in done.text
    assert "已退出所有设备" in done.text and "account-menu" not in done.text
    assert not await signed_in(phone, server) and not await signed_in(laptop, server)


async def test_the_merge_page_shows_both_accounts_side_by_side(server, new_client, flows, sql):
    phone, laptop = new_client(), new_client()
    await flows.mp_login(phone, "lisi")  # the account that would disappear
    await flows.login(laptop, "lisi")  # the account that stays (no unionid: a second account)
    await sql("UPDATE users SET created_at = '2024-01-02 03:04:05'")

    conflict = (await link_by_official_account(laptop, server, "lisi"))[-1]

    assert conflict.status_code == 409
    pair = conflict.text.split('class="merge-pair"')[1].split("</ul>\n  </div>\n\n  </div>")[0]
    stays, goes = pair.split('data-fate="stays"')[1], pair.split('data-fate="goes"')[1]
    assert pair.index('data-fate="stays"') < pair.index('data-fate="goes"')  # the one that stays first
    assert "保留的账号（当前登录）" in stays.split('data-fate="goes"')[0] and "微信扫码" in stays.split("</ul>")[0]
    assert "将被删除的账号" in goes and "微信内登录" in goes.split("</ul>")[0]
    assert conflict.text.count('<time datetime="2024-01-02T11:04:05+08:00">') == 2  # both registered, local time


async def test_link_actions_fit_where_the_person_is(server, client, flows):
    await flows.login(client, "zhangsan")  # website QR: the official account is still linkable

    desktop = await client.get(server.url + "/account", headers={"User-Agent": DESKTOP_CHROME})
    in_wechat = await client.get(server.url + "/account", headers={"User-Agent": IOS_WECHAT})
    phone = await client.get(server.url + "/account", headers={"User-Agent": IPHONE_SAFARI})

    assert link_forms(desktop) == [] and "请在微信中打开本页绑定" in desktop.text  # WeChat would refuse it here
    assert link_forms(in_wechat) == ["mp"] and "请在微信中打开本页绑定" not in in_wechat.text
    assert link_forms(phone) == [] and "请在微信中打开本页绑定" in phone.text


async def test_qr_linking_is_not_offered_on_a_phone(server, client, flows):
    await flows.mp_login(client, "zhangsan")  # official account: the website QR is still linkable

    desktop = await client.get(server.url + "/account", headers={"User-Agent": DESKTOP_CHROME})
    desktop_wechat = await client.get(server.url + "/account", headers={"User-Agent": WINDOWS_WECHAT})
    in_wechat = await client.get(server.url + "/account", headers={"User-Agent": IOS_WECHAT})
    phone = await client.get(server.url + "/account", headers={"User-Agent": IPHONE_SAFARI})

    assert link_forms(desktop) == ["web"] and link_forms(desktop_wechat) == ["web"]
    for page in (in_wechat, phone):  # a phone cannot scan a QR code on its own screen
        assert link_forms(page) == [] and "请在电脑上打开本页，用微信扫码绑定" in page.text


async def test_a_qr_link_from_the_desktop_still_works(server, client, flows):
    await flows.mp_login(client, "zhangsan")
    assert (await link_by_qr(client, server, flows, "zhangsan")).status_code == 302


async def test_the_header_has_an_avatar_menu(server, new_client, flows):
    anonymous, client = new_client(), new_client()
    assert "account-menu" not in (await anonymous.get(server.url + "/")).text
    await flows.login(client, "zhangsan")

    home = await client.get(server.url + "/")

    menu = home.text.split('<details class="account-menu">')[1].split("</details>")[0]
    assert 'class="avatar"' in menu and "张三" in menu
    assert '<a href="/account">我的账号</a>' in menu
    assert 'action="/logout"' in menu and "退出登录" in menu
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', menu).group(1)
    signed_out = await client.post(server.url + "/logout", data={"_xsrf": xsrf})  # the menu's own form works
    assert location_path(signed_out, server.url) == "/" and not await signed_in(client, server)
    english = await new_client().get(server.url + "/?lang=en")
    assert "account-menu" not in english.text
