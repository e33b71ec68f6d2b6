"""Inside WeChat: the adaptive login page, the official account's one-tap flow, snapshot people,
lost cookies and one account per person across the QR code and the official account."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

from unit.test_useragent import ANDROID_WECHAT, IPHONE_SAFARI, MINIPROGRAM, WECOM, WINDOWS_WECHAT


async def test_wechat_browser_starts_the_silent_flow_on_arrival(server, client):
    # Issue 15: inside WeChat the known person is signed in without a tap, so arrival starts snsapi_base.
    response = await client.get(server.url + "/login", params={"next": "/account"},
                                headers={"User-Agent": ANDROID_WECHAT})

    assert response.status_code == 302
    assert response.headers["location"] == "/auth/wechat/mp?next=%2Faccount"


async def test_wechat_browser_back_from_a_cancel_or_error_gets_the_button(server, client):
    for marker in ({"manual": "1"}, {"retry": "1"}):
        response = await client.get(server.url + "/login", params={"next": "/account", **marker},
                                    headers={"User-Agent": ANDROID_WECHAT})

        assert response.status_code == 200, marker
        assert "微信一键登录" in response.text
        assert 'href="/auth/wechat/mp?next=%2Faccount"' in response.text
        assert "<iframe" not in response.text


async def test_desktop_wechat_gets_one_tap_with_a_qr_fallback(server, client):
    arrival = await client.get(server.url + "/login", headers={"User-Agent": WINDOWS_WECHAT})
    assert arrival.status_code == 302 and arrival.headers["location"].startswith("/auth/wechat/mp?")

    response = await client.get(server.url + "/login?manual=1", headers={"User-Agent": WINDOWS_WECHAT})

    assert "微信一键登录" in response.text and "改用扫码登录" in response.text


async def test_phone_browser_outside_wechat_is_guided_into_wechat(server, client):
    response = await client.get(server.url + "/login", params={"next": "/account"},
                                headers={"User-Agent": IPHONE_SAFARI})

    assert "请在微信中打开本页" in response.text
    assert f'value="{server.url}/login?next=%2Faccount"' in response.text  # the link to copy
    assert "data:image/svg+xml" in response.text  # the page's own URL as a QR for another device
    assert "<iframe" not in response.text and "qrconnect" not in response.text  # no scan-yourself QR


async def test_phone_browser_gets_an_open_wechat_step_after_copying(server, client):
    response = await client.get(server.url + "/login", params={"next": "/account"},
                                headers={"User-Agent": IPHONE_SAFARI})
    english = await client.get(server.url + "/login", params={"next": "/account", "lang": "en"},
                               headers={"User-Agent": IPHONE_SAFARI})

    copy_at = response.text.index('data-copy="page-link"')
    open_at = response.text.index('<a class="button" id="open-wechat" href="weixin://">打开微信</a>')
    assert copy_at < open_at  # the second step comes after the copy button
    assert "文件传输助手" in response.text[open_at:] and "粘贴链接" in response.text[open_at:]
    assert ">Open WeChat</a>" in english.text and "File Transfer chat, paste the link" in english.text


async def test_wecom_and_miniprogram_webview_are_guided_too(server, client):
    wecom = await client.get(server.url + "/login", headers={"User-Agent": WECOM})
    webview = await client.get(server.url + "/login", headers={"User-Agent": MINIPROGRAM})

    assert "企业微信暂不支持微信登录" in wecom.text
    assert "请在小程序中登录" in webview.text


async def test_mp_start_redirects_to_authorize_in_documented_order(server, client):
    response = await client.get(server.url + "/auth/wechat/mp", params={"next": "/account"})

    location = response.headers["location"]
    assert location.startswith(server.settings.wechat.open_base + "/connect/oauth2/authorize?")
    assert location.endswith("#wechat_redirect")
    keys = [k for k, _ in parse_qsl(urlsplit(location.split("#")[0]).query)]
    assert keys == ["appid", "redirect_uri", "response_type", "scope", "state"]
    assert dict(parse_qsl(urlsplit(location.split("#")[0]).query))["scope"] == "snsapi_base"


async def test_first_visit_asks_consent_then_second_visit_is_silent(server, new_client, flows, sql):
    first = await flows.mp_login(new_client(), "zhangsan", "/account")

    assert first[-1].status_code == 200 and "张三" in first[-1].text
    assert first.visited("scope=snsapi_base") and first.visited("scope=snsapi_userinfo")
    # Between the two grants: our page with the consent button, not a redirect (issue 15).
    consent_pages = [r for r in first if 'data-consent="1"' in r.text]
    assert len(consent_pages) == 1 and "/auth/wechat/callback/mp?" in str(consent_pages[0].url)
    assert await sql("SELECT nickname FROM users") == [("张三",)]
    assert await sql("SELECT login_method, scope FROM user_login_methods") == [("mp", "snsapi_userinfo")]

    second = await flows.mp_login(new_client(), "zhangsan", "/account")

    assert second[-1].status_code == 200 and str(second[-1].url).endswith("/account")
    assert not second.visited("scope=snsapi_userinfo")  # no consent page the second time
    assert not any('data-consent="1"' in r.text for r in second)
    assert not any("网页授权" in r.text for r in second)
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_qr_and_official_account_of_one_unionid_are_one_account(server, new_client, flows, sql):
    await flows.mp_login(new_client(), "zhangsan")
    await flows.login(new_client(), "zhangsan")

    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    methods = await sql("SELECT login_method FROM user_login_methods ORDER BY login_method")
    assert methods == [("mp",), ("web",)]


async def test_without_unionid_the_two_channels_stay_separate(server, new_client, flows, sql):
    await flows.mp_login(new_client(), "lisi")
    await flows.login(new_client(), "lisi")

    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]
    assert await sql("SELECT COUNT(*) FROM users WHERE unionid IS NOT NULL") == [(0,)]


async def test_refusing_consent_logs_nobody_in(server, client, flows, sql):
    trace = await flows.mp_login(client, "panda", consent="deny")

    assert trace[-1].status_code == 200
    assert 'data-error-code="login_cancelled"' in trace[-1].text
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_snapshot_user_creates_nothing(server, client, flows, sql):
    trace = await flows.mp_login(client, "snapshot")

    assert 'data-error-code="snapshot_user"' in trace[-1].text
    assert "使用完整服务" in trace[-1].text
    for table in ("users", "user_login_methods", "login_events"):
        assert await sql(f"SELECT COUNT(*) FROM {table}") == [(0,)]


async def test_lost_binding_cookie_restarts_once_then_explains(server, client, flows, sql):
    client.cookies.set("sbwx", "zhangsan")
    start = await client.get(server.url + "/auth/wechat/mp", params={"next": "/account"})
    to_callback = await client.get(start.headers["location"].split("#")[0])
    callback_url = to_callback.headers["location"]
    client.cookies.delete("wxstate")  # the WeChat browser dropped it

    restart = await client.get(callback_url)
    assert restart.status_code == 302
    assert restart.headers["location"] == "/auth/wechat/mp?next=%2Faccount&retry=1"

    authorize_again = await client.get(server.url + restart.headers["location"])
    callback_again = (await client.get(authorize_again.headers["location"].split("#")[0])).headers["location"]
    client.cookies.delete("wxstate")  # ...and dropped it again
    final = await client.get(callback_again)

    assert final.status_code == 400
    assert 'data-error-code="state_unbound"' in final.text
    assert "重新登录" in final.text
    assert "wxsid" not in final.headers.get("set-cookie", "")
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_sandbox_switch_lets_a_laptop_play_the_wechat_browser(server, client):
    response = await client.get(server.url + "/login", params={"sandbox_ua": "wechat"})

    assert response.status_code == 302 and response.headers["location"].startswith("/auth/wechat/mp?")
    assert "微信一键登录" in (await client.get(server.url + "/login?manual=1")).text  # remembered by cookie


async def test_sandbox_switch_is_ignored_outside_the_sandbox(start_server, new_client):
    production = await start_server(
        {"wechat": {"sandbox": False}},
        env={"WXLOGIN_SERVER_SECRET_KEYS": "0123456789abcdef0123456789abcdef-real-key"})
    client = new_client()
    client.cookies.set("sandbox_ua", "wechat")

    response = await client.get(production.url + "/login", params={"sandbox_ua": "wechat"})

    assert "微信一键登录" not in response.text
    assert "https://open.weixin.qq.com/connect/qrconnect?" in response.text


async def test_sandbox_userinfo_refuses_a_base_token_like_wechat(server, client):
    client.cookies.set("sbwx", "zhangsan")
    base = server.settings.wechat.open_base
    mp = server.settings.wechat.mp
    authorize = await client.get(base + "/connect/oauth2/authorize", params={
        "appid": mp.appid, "redirect_uri": server.url + "/x", "response_type": "code", "scope": "snsapi_base",
        "state": "abc"})
    code = dict(parse_qsl(urlsplit(authorize.headers["location"]).query))["code"]
    token = (await client.get(base + "/sns/oauth2/access_token", params={
        "appid": mp.appid, "secret": mp.secret.value, "code": code, "grant_type": "authorization_code"})).json()
    assert "unionid" not in token  # current doc: no unionid for snsapi_base

    info = await client.get(base + "/sns/userinfo", params={"access_token": token["access_token"],
                                                              "openid": token["openid"]})

    assert info.status_code == 200
    assert info.headers["content-type"] == "application/json; encoding=utf-8"
    assert info.json()["errcode"] == 48001


async def test_sandbox_authorize_rejects_a_website_appid_and_foreign_redirect(server, client):
    base = server.settings.wechat.open_base
    wrong_app = await client.get(base + "/connect/oauth2/authorize", params={
        "appid": server.settings.wechat.web.appid, "redirect_uri": server.url + "/x", "response_type": "code",
        "scope": "snsapi_base", "state": "a"})
    foreign = await client.get(base + "/connect/oauth2/authorize", params={
        "appid": server.settings.wechat.mp.appid, "redirect_uri": "https://evil.example/x", "response_type": "code",
        "scope": "snsapi_base", "state": "a"})

    assert "10016" in wrong_app.text
    assert "10003" in foreign.text


async def test_a_repeated_callback_that_needed_consent_asks_again_at_once(server, new_client, sql):
    # WeChat's browser may hit the callback twice; the silent grant of someone new ends in "ask for
    # consent". That claim is finished, so the repeat neither waits for a login that will not come
    # (it used to poll MySQL for 12 s) nor fails: it asks for consent again.
    client = new_client()
    client.cookies.set("sbwx", "newcomer-consent")
    start = await client.get(server.url + "/auth/wechat/mp", params={"next": "/account"})
    authorize = await client.get(start.headers["location"].split("#", 1)[0])
    callback = authorize.headers["location"]
    assert "/auth/wechat/callback/mp?" in callback

    first = await client.get(callback)
    assert first.status_code == 200 and CONSENT_BUTTON in first.text  # issue 15: a button, not a redirect
    assert await sql("SELECT status FROM oauth_callbacks") == [("consent",)]

    second = await asyncio.wait_for(client.get(callback), timeout=3)  # bounded: no 12 s poll

    assert second.status_code == 200 and CONSENT_BUTTON in second.text
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]
    # The button starts the snsapi_userinfo flow.
    authorize = await client.get(server.url + "/auth/wechat/mp?next=%2Faccount&consent=1")
    assert "scope=snsapi_userinfo" in authorize.headers["location"]


CONSENT_BUTTON = 'id="one-tap" data-consent="1" href="/auth/wechat/mp?next=%2Faccount&amp;consent=1"'


async def test_someone_new_in_wechat_taps_consent_once_without_a_loop(server, new_client, flows, sql):
    client = new_client()
    client.cookies.set("sbwx", "zhangsan")
    ua = {"User-Agent": ANDROID_WECHAT}
    arrival = await client.get(server.url + "/login", params={"next": "/account"}, headers=ua)
    authorize = await client.get(server.url + arrival.headers["location"], headers=ua)
    assert "scope=snsapi_base" in authorize.headers["location"]
    to_callback = await client.get(authorize.headers["location"].split("#")[0], headers=ua)

    page = await client.get(to_callback.headers["location"], headers=ua)

    assert page.status_code == 200 and CONSENT_BUTTON in page.text
    assert "微信授权登录" in page.text and "wxsid" not in page.headers.get("set-cookie", "")
    assert 'class="legal-line"' in page.text  # where personal data is about to be collected
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]
    trace = await flows.mp_login(client, "zhangsan", "/account")  # taps it and allows
    assert str(trace[-1].url).endswith("/account") and "张三" in trace[-1].text


async def test_cancelled_consent_leads_to_the_button_not_another_redirect(server, client, flows):
    trace = await flows.mp_login(client, "panda", "/account", consent="deny")

    assert 'data-error-code="login_cancelled"' in trace[-1].text
    assert 'href="/login?next=%2Faccount&amp;manual=1"' in trace[-1].text
    back = await client.get(server.url + "/login?next=%2Faccount&manual=1", headers={"User-Agent": ANDROID_WECHAT})
    assert back.status_code == 200 and "微信一键登录" in back.text


async def test_mp_error_page_retry_link_shows_the_button(server, client, sql):
    client.cookies.set("sbwx", "zhangsan")
    start = await client.get(server.url + "/auth/wechat/mp", params={"next": "/account"})
    callback = (await client.get(start.headers["location"].split("#")[0])).headers["location"]
    client.cookies.clear()
    client.cookies.set("wxstate", "0" * 32)  # someone else's binding: no automatic restart, an error page

    error = await client.get(callback)

    assert error.status_code == 400
    assert 'href="/login?next=%2Faccount&amp;manual=1"' in error.text
