"""The site's own brand on real pages (issue 15): name, logo, colour, the legal line on every login surface, the
footer, WeChat's mark on the WeChat button only, and error pages whose titles and buttons say what to do next."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import Flows

# The User-Agent strings of tests/unit/test_useragent.py: every surface /login adapts to.
from unit.test_useragent import (
    ANDROID_WECHAT,
    DESKTOP_CHROME,
    IOS_WECHAT,
    IPHONE_SAFARI,
    MINIPROGRAM,
    WECOM,
    WINDOWS_WECHAT,
)
from wxlogin.signing import Signing

SURFACES = {
    "desktop": DESKTOP_CHROME, "wechat-ios": IOS_WECHAT, "wechat-android": ANDROID_WECHAT,
    "desktop-wechat": WINDOWS_WECHAT, "phone-browser": IPHONE_SAFARI, "wecom": WECOM,
    "miniprogram-webview": MINIPROGRAM,
}
LEGAL = {"zh": "登录即表示同意《用户协议》《隐私政策》",
         "en": "By signing in you agree to the User Agreement and the Privacy Policy."}
BRAND = {"name": "示例科技", "logo": "https://cdn.example.com/brand/logo.png", "primary": "#0b5d3b",
         "description": "示例科技的账号中心", "terms_url": "https://example.com/terms", "privacy_url": "/privacy",
         "icp": "京ICP备12345678号-1", "support": "help@example.com"}


def text_of(page: str) -> str:
    """The page's visible text in one line: tags dropped, entities decoded, whitespace squeezed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", body))).strip()


def title_of(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found, "the page has no <title>"
    return html.unescape(found.group(1)).strip()


def legal_line(page: str) -> str:
    found = re.search(r'<p class="legal-line">(.*?)</p>', page, re.S)
    assert found, "no legal line on this page"
    return found.group(1)


def wechat_marks_outside_the_wechat_button(page: str) -> list[str]:
    """Every <img> of WeChat's mark that is not inside an <a class="... wechat-button ...">."""
    strays = []
    for mark in re.finditer(r"<img[^>]*img/wechat\.svg[^>]*>", page):
        opening = page.rfind("<a ", 0, mark.start())
        closing = page.rfind("</a>", 0, mark.start())
        anchor = page[opening:page.find(">", opening) + 1] if opening > closing else ""
        if "wechat-button" not in anchor:
            strays.append(mark.group(0))
    return strays


async def signed_in(flows: Flows, client, person: str = "zhangsan") -> None:
    assert (await flows.login(client, person)).status_code == 302


# --- the brand ---------------------------------------------------------------------------------------------

async def test_default_brand_is_neutral_and_titles_carry_the_site_name(server, client):
    login = await client.get(server.url + "/login")
    english = await client.get(server.url + "/login", params={"lang": "en"})

    assert title_of(login.text) == "登录 · wxlogin"
    assert title_of(english.text).endswith(" · wxlogin")
    assert "微信登录" not in title_of(login.text), "the site is not called WeChat Login"
    described = re.search(r'<meta name="description" content="([^"]+)">', login.text)
    assert described and "wxlogin" in described.group(1)
    assert re.search(r'<meta name="description" content="wxlogin: sign in safely with WeChat', english.text)
    # Our neutral logo in the header and as the favicon; no colour stylesheet for the default colour.
    assert re.search(r'<link rel="icon" href="/static/img/logo\.svg\?v=', login.text)
    assert re.search(r'class="brand" href="/"><img src="/static/img/logo\.svg\?v=[^"]+" alt="" width="28"', login.text)
    assert "/brand.css" not in login.text
    # The footer: no ICP number and no customer service unless configured.
    assert "beian.miit.gov.cn" not in login.text and "客服" not in text_of(login.text)
    assert "Customer service" not in english.text
    assert "© wxlogin" in text_of(login.text)


async def test_configured_brand_renders_everywhere(start_server, new_client):
    site = await start_server({"brand": BRAND})
    client = new_client()

    login = await client.get(site.url + "/login")
    home = await client.get(site.url + "/")
    missing = await client.get(site.url + "/no/such/page")
    english = await client.get(site.url + "/", params={"lang": "en"})

    assert title_of(login.text) == "登录 · 示例科技"
    assert title_of(home.text) == "首页 · 示例科技"
    assert title_of(missing.text) == "找不到页面，请返回首页 · 示例科技"
    assert title_of(english.text) == "Home · 示例科技"
    for page in (login, home, missing, english):
        assert '<meta name="description" content="示例科技的账号中心">' in page.text
        assert f'<link rel="icon" href="{BRAND["logo"]}">' in page.text
        assert f'<img src="{BRAND["logo"]}" alt="" width="28" height="28"><span>示例科技</span>' in page.text
        footer = page.text[page.text.index('<footer'):]
        icp = '<a class="icp" href="https://beian.miit.gov.cn/" rel="noopener" target="_blank">京ICP备12345678号-1</a>'
        assert icp in footer
        assert '<a href="mailto:help@example.com">help@example.com</a>' in footer
        assert "© 示例科技" in text_of(footer)
    # The colour arrives as a stylesheet of our own (the CSP allows no inline style), cached for good.
    css_url = re.search(r'<link rel="stylesheet" href="(/brand\.css\?v=[0-9a-f]+)">', login.text).group(1)
    css = await client.get(site.url + css_url)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "--brand: #0b5d3b" in css.text and "immutable" in css.headers["cache-control"]
    # The legal links go where the settings say, and /legal/<document> forwards there too.
    line = legal_line(login.text)
    assert 'href="https://example.com/terms"' in line and 'href="/privacy"' in line
    terms = await client.get(site.url + "/legal/terms")
    assert (terms.status_code, terms.headers["location"]) == (302, "https://example.com/terms")


@pytest.mark.parametrize("support, shown", [
    ("400-123-4567", '<a href="tel:4001234567">400-123-4567</a>'),
    ("https://help.example.com/", '<a href="https://help.example.com/">https://help.example.com/</a>'),
    ("微信号 example_help", "客服：微信号 example_help"),
])
async def test_customer_service_contact_forms(start_server, new_client, support, shown):
    site = await start_server({"brand": {"support": support}})
    page = await new_client().get(site.url + "/")
    footer = page.text[page.text.index("<footer"):]
    assert shown in (footer if shown.startswith("<a") else text_of(footer))


async def test_legal_placeholders_say_they_are_placeholders(server, client):
    login = await client.get(server.url + "/login")
    line = legal_line(login.text)
    assert 'href="/legal/terms"' in line and 'href="/legal/privacy"' in line
    for document, name in (("terms", "用户协议"), ("privacy", "隐私政策")):
        page = await client.get(server.url + f"/legal/{document}", params={"lang": "zh"})
        assert page.status_code == 200
        assert f"{name}（占位页面）" in text_of(page.text)
        assert f"{document}_url" in page.text and "[brand]" in page.text
        english = await client.get(server.url + f"/legal/{document}", params={"lang": "en"})
        assert "This is a placeholder page" in english.text


# --- the legal line on every surface -------------------------------------------------------------------------

@pytest.mark.parametrize("locale", ["zh", "en"])
@pytest.mark.parametrize("surface", SURFACES)
async def test_every_login_surface_shows_the_legal_line(server, client, surface, locale):
    # manual=1: inside WeChat arrival redirects into the silent flow; the page is the one with the button.
    page = await client.get(server.url + "/login", params={"next": "/account", "lang": locale, "manual": "1"},
                            headers={"User-Agent": SURFACES[surface]})

    assert page.status_code == 200
    assert text_of(legal_line(page.text)) == LEGAL[locale]
    assert len(re.findall(r'href="/legal/(?:terms|privacy)"', legal_line(page.text))) == 2


@pytest.mark.parametrize("method", ["qr", "follow", "miniprogram"])
async def test_every_desktop_method_shows_the_legal_line(server, client, method):
    page = await client.get(server.url + "/login", params={"method": method})
    assert text_of(legal_line(page.text)) == LEGAL["zh"]


# --- WeChat's mark on the WeChat button only -------------------------------------------------------------------

async def test_wechat_mark_only_on_the_wechat_button(server, new_client, flows):
    anonymous, member = new_client(), new_client()
    await signed_in(flows, member)
    pages = {
        "home": await anonymous.get(server.url + "/"),
        "error": await anonymous.get(server.url + "/no/such/page"),
        "legal": await anonymous.get(server.url + "/legal/terms"),
        "account": await member.get(server.url + "/account"),
        "home signed in": await member.get(server.url + "/"),
    }
    for surface, ua in SURFACES.items():
        # manual=1: inside WeChat arrival redirects into the silent flow; the page is the one with the button.
        pages[f"login on {surface}"] = await new_client().get(server.url + "/login?manual=1",
                                                              headers={"User-Agent": ua})

    for name, page in pages.items():
        assert page.status_code == (404 if name == "error" else 200), name
        assert wechat_marks_outside_the_wechat_button(page.text) == [], name
        assert 'href="/static/img/wechat.svg' not in page.text, f"{name}: WeChat's mark as our favicon"
        assert 'class="brand" href="/"><img src="/static/img/logo.svg' in page.text, name
    # Where the button is, the mark is on it.
    assert re.search(r'<a class="[^"]*wechat-button[^"]*" href="/login"><img class="wechat-mark" '
                     r'src="/static/img/wechat\.svg', pages["home"].text)
    assert re.search(r'<a class="[^"]*wechat-button[^"]*" id="one-tap" href="[^"]+"><img class="wechat-mark" '
                     r'src="/static/img/wechat\.svg', pages["login on wechat-ios"].text)


def test_the_mark_finder_sees_a_stray_mark():
    stray = '<header><img src="/static/img/wechat.svg?v=1" alt=""></header><a class="button wechat-button" href="/">' \
            '<img src="/static/img/wechat.svg?v=1" alt="">微信登录</a>'
    assert wechat_marks_outside_the_wechat_button(stray) == ['<img src="/static/img/wechat.svg?v=1" alt="">']


# --- error pages -----------------------------------------------------------------------------------------------

def h1_of(page: str) -> str:
    return text_of(re.search(r"<h1>(.*?)</h1>", page, re.S).group(1))


def icon_of(page: str) -> str:
    return re.search(r'data-icon="([a-z-]+)"', page).group(1)


async def test_error_titles_say_what_to_do_next_per_outcome(server, new_client, flows):
    client = new_client()
    # WeChat refused the code: a plain timeout, not "微信登录凭证已失效".
    url = await flows.qr_callback_url(client, "zhangsan")
    state = parse_qs(urlsplit(url).query)["state"][0]
    bad_code = await client.get(f"{server.url}/auth/wechat/callback/web",
                                params={"code": "sbNOTAREALCODE", "state": state, "next": "/"})
    # The same in WeChat's browser: nobody scans there.
    phone = new_client(headers={"User-Agent": IOS_WECHAT})
    url = await flows.qr_callback_url(phone, "lisi")
    state = parse_qs(urlsplit(url).query)["state"][0]
    bad_code_in_wechat = await phone.get(f"{server.url}/auth/wechat/callback/web",
                                         params={"code": "sbNOTAREALCODE", "state": state, "next": "/"})
    # A tampered link, a refused consent, a missing page, a request without its parameters.
    tampered = await new_client().get(f"{server.url}/auth/wechat/callback/web",
                                      params={"code": "sbX", "state": "A" * 60, "next": "/"})
    refuser = new_client()
    cancelled = await refuser.get(await flows.scan(refuser, await flows.start_qr(refuser), "zhangsan", action="deny"))
    missing = await new_client().get(server.url + "/no/such/page")
    no_state = await new_client().get(server.url + "/auth/wechat/callback/web")
    english = await new_client().get(server.url + "/auth/wechat/callback/web", params={"lang": "en"})

    expected = [
        (bad_code, 400, "code_invalid", "登录超时，请重新扫码", "expired"),
        (bad_code_in_wechat, 400, "code_invalid", "登录超时，请重新登录", "expired"),
        (tampered, 400, "state_invalid", "登录链接无效，请重新登录", "broken-link"),
        (cancelled, 200, "login_cancelled", "你已取消登录", "cancelled"),
        (missing, 404, "http_404", "找不到页面，请返回首页", "not-found"),
        (no_state, 400, "bad_request", "页面地址有误，请返回重试", "broken-link"),
        (english, 400, "bad_request", "This address is wrong. Please go back and try again", "broken-link"),
    ]
    for page, status, code, title, icon in expected:
        assert (page.status_code, f'data-error-code="{code}"' in page.text) == (status, True), (code, page.text[:300])
        assert h1_of(page.text) == title and title_of(page.text) == f"{title} · wxlogin"
        assert icon_of(page.text) == icon
        icon_url = re.search(r'<img class="outcome-icon" src="(/static/img/outcome/[a-z-]+\.svg\?v=[^"]+)"', page.text)
        assert (await client.get(server.url + icon_url.group(1))).status_code == 200
    for jargon in ("凭证", "参数", "请求无效"):
        assert all(jargon not in text_of(page.text) for page, *_ in expected), jargon
    assert 'href="/login?next=%2F">重新登录</a>' in tampered.text


async def test_503_page_never_offers_sign_in_again_to_someone_signed_in(start_server, new_client):
    down = await start_server({"mysql": {"port": 1, "connect_timeout": 1.0}})
    client = new_client()
    signing = Signing([k.value for k in down.settings.server.secret_keys])
    client.cookies.set("wxsid", signing.dump_session({"uid": 1, "sid": "s" * 22, "sv": 1, "iat": int(time.time())}))

    for path, params in (("/account", {}), ("/", {}), ("/account", {"lang": "en"})):
        page = await client.get(down.url + path, params=params)
        assert page.status_code == 503 and 'data-error-code="database_unavailable"' in page.text
        assert "重新登录" not in page.text and "Sign in again" not in page.text and "/login" not in page.text
        assert icon_of(page.text) == "offline"
    chinese = await client.get(down.url + "/account", params={"lang": "zh"})
    assert '<a class="button primary" href="">重试</a>' in chinese.text  # this same address again, later
    assert h1_of(chinese.text) == "服务暂时不可用，请稍后再试"


async def test_signed_in_people_are_sent_back_to_their_account_not_to_sign_in(server, client, flows):
    await signed_in(flows, client)

    response = await client.get(f"{server.url}/auth/wechat/callback/web",
                                params={"code": "sbX", "state": "A" * 60, "next": "/"})

    assert 'data-error-code="state_invalid"' in response.text
    assert ">重新登录</a>" not in response.text and 'href="/login' not in response.text
    assert '<a class="button primary" href="/account">返回我的账号</a>' in response.text


async def test_customer_service_appears_where_the_page_says_to_contact_it(start_server, new_client, sql):
    site = await start_server({"brand": {"support": "help@example.com"}})
    client = new_client()
    await signed_in(Flows(site), client)
    await sql("UPDATE users SET disabled = 1")
    flows = Flows(site)

    page = await flows.login(new_client(), "zhangsan")

    assert 'data-error-code="account_disabled"' in page.text, page.text[:400]
    assert h1_of(page.text) == "账号已停用，请联系客服"
    assert '<p class="contact">客服：<a href="mailto:help@example.com">help@example.com</a></p>' in page.text
