"""The desktop QR card (issue 15): its renewal endpoint, /login while nobody can sign in, and what the
sandbox teaches (the QR's scanned and expired states, stylelite, English, WeChat's refusal outside WeChat)."""

from __future__ import annotations

import re
import socket
from html import unescape
from urllib.parse import parse_qsl, urlsplit

from helpers import location_path, page_xsrf
from unit.test_useragent import ANDROID_WECHAT, DESKTOP_CHROME


def _free_port() -> int:
    """A loopback port nobody listens on (bound, then released): an unreachable MySQL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binding(client, server) -> list[str]:
    raw = client.cookies.get("wxstate") or ""
    return [s for s in raw.split(".") if s]


async def _login_page(client, server, next_path: str = "/account") -> tuple[str, str]:
    """Open /login as a desktop browser; return (the iframe's URL, the page's XSRF token)."""
    page = await client.get(server.url + "/login", params={"next": next_path},
                            headers={"User-Agent": DESKTOP_CHROME})
    assert page.status_code == 200, page.text
    iframe = unescape(re.search(r'<iframe src="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    xsrf = re.search(r'data-xsrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return iframe, xsrf


async def test_renewal_binds_a_fresh_state_that_signs_in(server, client, flows, sql):
    first_url, xsrf = await _login_page(client, server)
    assert len(_binding(client, server)) == 1

    renewed = await client.post(server.url + "/login/qr", data={"next": "/account"},
                                headers={"X-XSRFToken": xsrf, "Origin": server.url, "User-Agent": DESKTOP_CHROME})

    assert renewed.status_code == 200, renewed.text
    assert renewed.headers["cache-control"] == "no-store"
    answer = renewed.json()
    assert answer["qr_max_age"] == server.settings.wechat.qr_max_age
    assert answer["state_max_age"] == server.settings.server.state_max_age
    url = answer["url"]
    assert url.startswith(server.settings.wechat.open_base + "/connect/qrconnect?") and url != first_url
    query = dict(parse_qsl(urlsplit(url.split("#", 1)[0]).query))
    assert query["login_type"] == "jssdk" and query["stylelite"] == "1"
    assert "wxstate=" in renewed.headers["set-cookie"]
    assert len(_binding(client, server)) == 2  # the new state is bound; the first one still works too

    callback = await client.get(await flows.scan(client, url.split("#", 1)[0], "zhangsan"))

    assert callback.status_code == 302 and location_path(callback, server.url) == "/account"
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]


async def test_renewal_needs_the_xsrf_token_and_our_origin(server, client):
    _, xsrf = await _login_page(client, server)
    before = client.cookies.get("wxstate")

    no_token = await client.post(server.url + "/login/qr", data={"next": "/"})
    foreign = await client.post(server.url + "/login/qr", data={"next": "/"},
                                headers={"X-XSRFToken": xsrf, "Origin": "https://evil.example"})
    cross_site = await client.post(server.url + "/login/qr", data={"next": "/"},
                                   headers={"X-XSRFToken": xsrf, "Sec-Fetch-Site": "cross-site"})

    for refused in (no_token, foreign, cross_site):
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/json")
        assert set(refused.json()) == {"error", "message"}
        assert "wxstate=" not in refused.headers.get("set-cookie", "")
    assert client.cookies.get("wxstate") == before


async def test_renewal_for_a_browser_signed_in_meanwhile_says_where_to_go(server, client, flows):
    _, stale = await _login_page(client, server)
    await flows.login(client, "panda")  # another tab signs in: a new session, a new XSRF token

    with_stale_token = await client.post(server.url + "/login/qr", data={"next": "/account"},
                                         headers={"X-XSRFToken": stale})
    fresh = await page_xsrf(client, server.url + "/account")
    renewed = await client.post(server.url + "/login/qr", data={"next": "/account"}, headers={"X-XSRFToken": fresh})

    assert with_stale_token.status_code == 403  # qrcard.js reloads the page then: /login sends it on to next
    assert renewed.status_code == 200 and renewed.json() == {"next": "/account"}


async def test_renewal_keeps_next_on_this_site(server, client):
    _, xsrf = await _login_page(client, server)

    renewed = await client.post(server.url + "/login/qr", data={"next": "//evil.example/x"},
                                headers={"X-XSRFToken": xsrf})

    redirect_uri = dict(parse_qsl(urlsplit(renewed.json()["url"].split("#", 1)[0]).query))["redirect_uri"]
    assert dict(parse_qsl(urlsplit(redirect_uri).query))["next"] == "/"


async def test_login_with_the_database_down_says_so_and_shows_no_qr(start_server, new_client):
    down = await start_server({"mysql": {"port": _free_port(), "connect_timeout": 1.0}})
    client = new_client()

    page = await client.get(down.url + "/login", params={"next": "/account"}, headers={"User-Agent": DESKTOP_CHROME})
    token = "2|00000000|" + "0" * 32 + "|1"  # a well-formed XSRF token: the down page renders none
    client.cookies.set("_xsrf", token)
    renewed = await client.post(down.url + "/login/qr", data={"next": "/"}, headers={"X-XSRFToken": token})

    assert page.status_code == 503 and page.headers["retry-after"]
    assert "登录服务暂时不可用" in page.text
    assert "<iframe" not in page.text and "/connect/qrconnect" not in page.text
    assert "wxstate=" not in page.headers.get("set-cookie", "")
    assert renewed.status_code == 503 and renewed.json()["error"] == "database_unavailable"


async def test_the_embedded_qr_asks_for_one_heading_and_the_sandbox_honours_it(server, client):
    iframe, _ = await _login_page(client, server)
    assert "stylelite=1" in iframe

    lite = await client.get(iframe.split("#", 1)[0])
    classic = await client.get(iframe.split("#", 1)[0].replace("&stylelite=1", ""))

    assert "<h1" not in lite.text and 'class="embedded lite"' in lite.text
    assert "<h1>微信登录</h1>" in classic.text


async def test_sandbox_qr_speaks_english_with_lang_en(server, client):
    page = await client.get(server.url + "/login", params={"lang": "en"}, headers={"User-Agent": DESKTOP_CHROME})
    iframe = unescape(re.search(r'<iframe src="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    assert "lang=en" in iframe

    qr = await client.get(iframe.split("#", 1)[0])
    phone = re.search(r'data-phone="([^"]+)"', qr.text).group(1)  # type: ignore[union-attr]
    phone_page = await client.get(unescape(phone))
    index = await client.get(server.url + "/_sandbox/", params={"lang": "en"})

    for answer in (qr, phone_page, index):
        assert answer.status_code == 200
        assert '<html lang="en">' in answer.text
        assert "模拟微信" not in answer.text and "SANDBOX" in answer.text
    assert "Simulate a scan (sandbox)" in qr.text and "模拟扫码" not in qr.text
    assert "Confirm the web login" in phone_page.text
    assert "No phone? Play a test person" in index.text


async def test_sandbox_qr_reports_scanned_then_expired(start_server, new_client):
    short = await start_server({"wechat": {"qr_max_age": 2}})
    desktop, phone = new_client(), new_client()
    iframe, _ = await _login_page(desktop, short)
    qr = await desktop.get(iframe.split("#", 1)[0])
    uuid = re.search(r'data-uuid="([^"]+)"', qr.text).group(1)  # type: ignore[union-attr]
    phone_url = unescape(re.search(r'data-phone="([^"]+)"', qr.text).group(1))  # type: ignore[union-attr]
    poll = short.settings.wechat.open_base + "/connect/l/qrconnect"
    assert re.search(r'data-expires-in="[12]"', qr.text)

    await phone.get(phone_url)  # the phone scanned it
    scanned = await desktop.get(poll, params={"uuid": uuid, "last": "waiting"})
    # Nothing changes until the code's life ends: the long-poll answers then, within a bounded wait.
    expired = await desktop.get(poll, params={"uuid": uuid, "last": "scanned"}, timeout=10)

    assert scanned.json() == {"status": "scanned"}
    assert expired.json() == {"status": "expired"}
    assert (await phone.get(phone_url)).status_code == 404


async def test_sandbox_refuses_the_official_account_outside_wechat(server, new_client):
    wechat_url = (await new_client().get(server.url + "/auth/wechat/mp", params={"next": "/"})).headers["location"]
    authorize = wechat_url.split("#", 1)[0]

    browser = new_client()
    browser.cookies.set("sbwx", "zhangsan")
    refused = await browser.get(authorize, headers={"User-Agent": DESKTOP_CHROME})
    in_wechat = new_client()
    in_wechat.cookies.set("sbwx", "zhangsan")
    allowed = await in_wechat.get(authorize, headers={"User-Agent": ANDROID_WECHAT})
    playing = new_client()
    playing.cookies.set("sbwx", "zhangsan")
    await playing.get(server.url + "/login", params={"sandbox_ua": "wechat"}, headers={"User-Agent": DESKTOP_CHROME})
    escaped = await playing.get(authorize, headers={"User-Agent": DESKTOP_CHROME})

    assert refused.status_code == 200 and "请在微信客户端打开链接" in refused.text
    assert "code=" not in refused.text and "location" not in refused.headers
    assert "/login?sandbox_ua=wechat" in refused.text  # the sandbox says how to play the WeChat browser
    assert allowed.status_code == 302 and "code=" in allowed.headers["location"]
    assert escaped.status_code == 302 and "code=" in escaped.headers["location"]


async def test_sandbox_banner_links_to_the_test_people(server, client):
    zh = await client.get(server.url + "/login", headers={"User-Agent": DESKTOP_CHROME})
    en = await client.get(server.url + "/login", params={"lang": "en"}, headers={"User-Agent": DESKTOP_CHROME})

    assert '<a href="/_sandbox/">没有手机？点此扮演测试用户</a>' in zh.text
    assert '<a href="/_sandbox/?lang=en">No phone? Play a test person here</a>' in en.text
