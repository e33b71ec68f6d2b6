"""Pages for people: headers, friendly errors, language, and every route marked public or login-required."""

from __future__ import annotations

import re

from helpers import page_xsrf
from wxlogin.handlers.catalog_en import EN


async def test_pages_carry_security_headers(server, client):
    for path in ("/", "/login", "/nowhere"):
        response = await client.get(server.url + path)
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "frame-src 'self'" in csp  # the sandbox's QR page is same-origin here
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


async def test_unknown_page_is_a_friendly_404(server, client):
    response = await client.get(server.url + "/no/such/page")

    assert response.status_code == 404
    assert "找不到页面" in response.text
    assert "Traceback" not in response.text


async def test_wrong_method_is_a_friendly_405(server, client):
    response = await client.post(server.url + "/account", data={})

    assert response.status_code in (403, 405)
    assert "<html" in response.text


async def test_english_when_asked_and_remembered(server, client):
    english = await client.get(server.url + "/login", params={"lang": "en"})
    assert "Scan with WeChat to sign in" in english.text
    assert '<html lang="en">' in english.text

    again = await client.get(server.url + "/")
    assert "Sign in with WeChat" in again.text


async def test_chinese_by_default(server, client):
    response = await client.get(server.url + "/login")

    assert "微信扫码登录" in response.text
    assert '<html lang="zh-CN">' in response.text


async def test_sandbox_is_announced_on_site_pages_and_sandbox_pages(server, client):
    assert "SANDBOX" in (await client.get(server.url + "/login")).text
    index = await client.get(server.url + "/_sandbox/")
    assert "SANDBOX" in index.text and index.headers["x-wechat-sandbox"] == "1"


def test_every_translatable_string_has_english():
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    sources = [p.read_text("utf-8") for p in (root / "templates").glob("*.html")]
    sources.append((root / "site/wxlogin/handlers/errors.py").read_text("utf-8"))
    wanted = set()
    for text in sources:
        wanted |= set(re.findall(r'_\("([^"]+)"', text))
        wanted |= set(re.findall(r"_\('([^']+)'", text))
    from wxlogin.handlers.errors import ERRORS, STATUSES

    for row in (*ERRORS, *STATUSES):
        wanted |= {row.title, row.message}
    wanted |= {"网站扫码登录", "公众号登录", "移动应用登录", "小程序登录", "出错了", "服务器遇到了问题，请稍后重试。"}
    # Strings the pages translate at run time (issue 15): login-method labels, device app names, history outcomes.
    from wxlogin.handlers.oauth import CHANNEL_NAMES
    from wxlogin.handlers.pages import OUTCOME_TITLES, PHONE_OUTCOMES
    from wxlogin.useragent import APP_NAMES

    wanted |= {*CHANNEL_NAMES.values(), *APP_NAMES, *OUTCOME_TITLES.values(), *PHONE_OUTCOMES.values()}
    missing = sorted(w for w in wanted if w not in EN and re.search(r"[\u4e00-\u9fff]", w))
    assert missing == []


def _marked_methods(server):
    """(route, HTTP method, access marker) for every handler method of ours."""
    for rule in server.app.wildcard_router.rules:
        handler = rule.target
        if not getattr(handler, "__module__", "").startswith("wxlogin.handlers"):
            continue
        for method in ("get", "post", "put", "delete", "patch", "head"):
            impl = getattr(handler, method, None)
            if impl is not None and "RequestHandler." not in impl.__qualname__:
                yield rule, method, getattr(impl, "access", None)


def test_every_handler_method_is_marked_public_login_or_bearer_required(server):
    marked = list(_marked_methods(server))
    for rule, method, access in marked:
        assert access in ("public", "login_required", "bearer_required", "operator_required"), (rule.target, method)
    # The operator console, and nothing else, is for operators.
    console = {rule.matcher.regex.pattern for rule, _, access in marked if access == "operator_required"}
    assert console and all(p.startswith("/admin") for p in console)
    assert all(access == "operator_required" for rule, _, access in marked
               if rule.matcher.regex.pattern.startswith("/admin"))
    assert len(marked) >= 6
    # Every API route that reads a person's data is behind a bearer token.
    bearer = {rule.matcher.regex.pattern for rule, _, access in marked if access == "bearer_required"}
    assert {r"/api/me$", r"/api/logout$", r"/api/miniprogram/profile$"} <= bearer


async def test_every_bearer_route_refuses_a_request_without_a_valid_token(server, client):
    checked = 0
    for rule, method, access in _marked_methods(server):
        if access != "bearer_required":
            continue
        path = rule.matcher.regex.pattern.rstrip("$")
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = await client.request(method.upper(), server.url + path, headers=headers,
                                     content=b"{}" if method == "post" else None)
            assert r.status_code == 401, (path, method, headers)
            assert r.json()["error"] == "invalid_token"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        checked += 1
    assert checked >= 3


async def test_every_admin_route_answers_404_to_anyone_who_is_not_an_operator(server, new_client, flows):
    """Not 403, not a redirect: the console must not be discoverable (issue 16). No operator is configured here."""
    anonymous, person = new_client(), new_client()
    await flows.login(person, "zhangsan")  # signed in, but not an operator
    xsrf = await page_xsrf(person, server.url + "/account")
    checked = 0
    for rule, method, access in _marked_methods(server):
        if access != "operator_required":
            continue
        path = re.sub(r"\([^)]*\)", "1", rule.matcher.regex.pattern.rstrip("$"))
        for who, data in ((anonymous, {}), (person, {}), (person, {"_xsrf": xsrf})):
            r = await who.request(method.upper(), server.url + path, data=data if method == "post" else None)
            assert r.status_code == 404, (path, method, r.status_code)
            assert "找不到页面" in r.text and "location" not in r.headers
        checked += 1
    assert checked >= 8
    # The same answer as a path that does not exist, for a POST without a token too.
    unknown = await person.post(server.url + "/admin/no-such-page", data={})
    assert unknown.status_code == 404


async def test_the_language_link_is_built_from_our_routes_not_the_raw_path(server, client):
    # GET //evil.com used to render <a href="//evil.com?lang=en">: a link to another site.
    for path in ("//evil.com", "//evil.com/account", "/.//evil.com"):
        page = await client.get(server.url + path)
        assert page.status_code == 404
        links = re.findall(r'href="([^"]*lang=[^"]*)"', page.text)
        assert links and all(link.startswith("/?") for link in links), links
        assert "evil.com" not in page.text
    account = await client.get(server.url + "/login?next=/account")
    assert 'href="/login?next=%2Faccount&amp;lang=en"' in account.text


async def test_healthz_and_static_files_carry_the_plain_headers(server, client):
    page = await client.get(server.url + "/login")
    css = re.search(r'href="(/static/css/site\.css\?v=[^"]+)"', page.text).group(1)
    for path in ("/healthz", css, "/static/css/site.css"):
        response = await client.get(server.url + path)
        assert response.status_code == 200, path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        assert "Server" not in response.headers, path
