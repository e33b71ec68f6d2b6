"""axe-core (from npm, scripts/ensure-axe.sh) in Chromium over every page state: both languages, a desktop, a
phone browser and the WeChat browser on a phone. Fails on any ``serious`` or ``critical`` violation.

Each case opens one page state the way a person reaches it (signed in with the sandbox where needed, the
User-Agent of the surface) and runs axe over the page and its frames (the embedded QR included). One-shot pages
(the merge page is the answer to a link callback) are produced over HTTP and served to the browser at their own
URL. With ``WXLOGIN_SCREENSHOTS=<dir>`` every case also writes a full-page PNG there (``make screenshots``); with
``WXLOGIN_A11Y_REPORT=<file>`` it appends every violation, of any impact, as a JSON line (the figures).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import ARGS, CHROMIUM
from helpers import page_xsrf
from unit.test_useragent import DESKTOP_CHROME, IOS_WECHAT, IPHONE_SAFARI, MINIPROGRAM, WECOM, WINDOWS_WECHAT

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
FAILING = ("serious", "critical")

# Where a person sees the site: (viewport, User-Agent, touch).
PROFILES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}, "user_agent": DESKTOP_CHROME},
    "phone": {"viewport": {"width": 390, "height": 844}, "user_agent": IPHONE_SAFARI, "is_mobile": True,
              "has_touch": True},
    "wechat": {"viewport": {"width": 390, "height": 844}, "user_agent": IOS_WECHAT, "is_mobile": True,
               "has_touch": True},
}
LANGS = ("zh", "en")


@dataclass
class Visit:
    """What a state needs: the site, the browser context's page, and an HTTP client playing the same person."""
    server: Any
    page: Any
    flows: Any
    new_client: Callable[..., Any]
    sql: Callable[..., Awaitable[list[tuple[Any, ...]]]]
    lang: str
    user_agent: str
    start_server: Callable[..., Awaitable[Any]] | None = None

    def url(self, path: str) -> str:
        return self.server.url + path

    def client(self) -> Any:
        """A browser over HTTP with the context's language and User-Agent (for sign-ins and one-shot pages)."""
        client = self.new_client(headers={"User-Agent": self.user_agent})
        client.cookies.set("lang", self.lang)
        return client

    async def take_cookies(self, client: Any) -> None:
        """The browser becomes the person ``client`` signed in as."""
        await self.page.context.add_cookies([{"name": c.name, "value": c.value, "url": self.server.url}
                                             for c in client.cookies.jar])

    async def sign_in(self, person: str = "zhangsan") -> Any:
        client = self.client()
        assert (await self.flows.login(client, person, "/account")).status_code == 302
        await self.take_cookies(client)
        return client

    async def serve(self, path: str, html: str) -> None:
        """Open a one-shot page: ``html`` served at ``path`` of the site (its CSS and images from the site)."""
        async def fulfil(route: Any) -> None:
            await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
        await self.page.route(self.url(path), fulfil)
        await self.page.goto(self.url(path))


async def _goto(visit: Visit, path: str) -> None:
    await visit.page.goto(visit.url(path))


async def home(v: Visit) -> None:
    await _goto(v, "/")


async def home_signed_in(v: Visit) -> None:
    await v.sign_in("panda")
    await _goto(v, "/")


async def login(v: Visit) -> None:
    """/login on the surface of the case's User-Agent (SURFACES); inside WeChat the page with the button
    (``manual=1``: arrival itself redirects into the silent flow)."""
    await _goto(v, "/login?next=/account&manual=1")


def login_tab(method: str) -> Callable[[Visit], Awaitable[None]]:
    """A desktop browser's /login tab (follow, mini-program code), at this profile's size."""
    async def state(v: Visit) -> None:
        await _goto(v, f"/login?next=/account&method={method}")
        await v.page.locator("#scene img").wait_for(state="visible")
    return state


async def account_with_conflict(v: Visit) -> None:
    first = v.client()
    await v.flows.login(first, "zhangsan")
    sql = v.sql
    [(unionid,)] = await sql("SELECT unionid FROM users")
    await sql("UPDATE users SET unionid = NULL")
    await sql("UPDATE user_login_methods SET unionid = NULL")
    await sql("INSERT INTO users (unionid, nickname, created_at) VALUES (%s, 'other', UTC_TIMESTAMP())", unionid)
    await v.sign_in("zhangsan")  # the original account, which now reports the conflict
    await _goto(v, "/account?done=unlinked")
    await v.page.locator("[data-conflicts]").wait_for()


async def account_linked(v: Visit) -> None:
    await v.sign_in("panda")
    await _goto(v, "/account?done=linked")


async def merge_page(v: Visit) -> None:
    """The conflict (merge) page: the official account's person links a QR identity another account owns."""
    laptop, phone = v.client(), v.client()
    phone.headers["User-Agent"] = IOS_WECHAT  # the official account's sign-in happens inside WeChat
    await v.flows.login(laptop, "lisi")
    await v.flows.mp_login(phone, "lisi")
    xsrf = await page_xsrf(phone, v.url("/account"))
    start = await phone.post(v.url("/account/link/web"), data={"_xsrf": xsrf})
    conflict = await phone.get(await v.flows.scan(phone, start.headers["location"].split("#")[0], "lisi"))
    assert conflict.status_code == 409, conflict.text
    await v.take_cookies(phone)
    await v.serve("/account/merge-preview", conflict.text)


async def account_close(v: Visit) -> None:
    """Issue 16: the close page after a fresh sign-in (the button closes)."""
    await v.sign_in("zhangsan")
    await _goto(v, "/account/close")


async def account_close_reauth(v: Visit) -> None:
    """Issue 16: the close page of an older sign-in (confirm with WeChat first)."""
    client = await v.sign_in("zhangsan")
    sessions = v.server.services.sessions
    claims, _ = sessions.parse(client.cookies.get("wxsid"))
    stale = sessions.cookie_value(type(claims)(claims.user_id, claims.sid, claims.session_version,
                                               claims.issued_at - sessions.reauth_window - 60))
    await v.page.context.add_cookies([{"name": "wxsid", "value": stale, "url": v.server.url}])
    await _goto(v, "/account/close")


async def account_closed(v: Visit) -> None:
    """Issue 16: the answer to closing (signed out; the date), a one-shot page."""
    client = v.client()
    await v.flows.login(client, "zhangsan")
    xsrf = await page_xsrf(client, v.url("/account/close"))
    closed = await client.post(v.url("/account/close"), data={"_xsrf": xsrf, "confirm": "1"})
    assert closed.status_code == 200, closed.text
    await v.serve("/account/closed-preview", closed.text)


async def account_close_pending(v: Visit) -> None:
    """Issue 16: signed in again during the grace period: cancel, or go on and sign out."""
    await v.sign_in("zhangsan")
    [(uid,)] = await v.sql("SELECT id FROM users")
    await v.server.services.deletion.schedule(uid)
    await v.sign_in("zhangsan")
    await _goto(v, "/account/close")


async def account_restored(v: Visit) -> None:
    await v.sign_in("zhangsan")
    await _goto(v, "/account?done=restored")


def error_page(path: str) -> Callable[[Visit], Awaitable[None]]:
    async def state(v: Visit) -> None:
        response = await v.page.goto(v.url(path))
        assert response is not None and response.status >= 400
        await v.page.locator("[data-error-code]").wait_for()
    return state


async def error_signed_in(v: Visit) -> None:
    await v.sign_in("panda")
    await error_page("/auth/wechat/callback/web?code=x&state=forged")(v)


async def not_found(v: Visit) -> None:
    response = await v.page.goto(v.url("/no/such/page"))
    assert response is not None and response.status == 404


async def sandbox_index(v: Visit) -> None:
    await _goto(v, "/_sandbox/")


async def sandbox_qr_page(v: Visit) -> None:
    """The full-page QR (WeChat's qrconnect), as the login page's fallback link opens it."""
    await _goto(v, "/auth/wechat/web?next=/account")
    await v.page.locator("#qr").wait_for()


async def sandbox_qr_picker(v: Visit) -> None:
    """The embedded QR with the sandbox's person picker open, inside the desktop login page."""
    await _goto(v, "/login?next=/account")
    frame = v.page.frame_locator("iframe")
    await frame.locator("summary").first.click()
    await frame.locator("button.sb-person").first.wait_for(state="visible")


async def sandbox_phone(v: Visit) -> None:
    """The sandbox's phone page a scan opens (pick a person, confirm)."""
    await _goto(v, "/auth/wechat/web?next=/account")
    phone_url = await v.page.locator("#qr").get_attribute("data-phone")
    assert phone_url
    await v.page.goto(phone_url)


async def sandbox_persona(v: Visit) -> None:
    await _goto(v, "/_sandbox/wechat-user")


async def sandbox_consent(v: Visit) -> None:
    """The official account's consent page (snsapi_userinfo) for someone new, in the WeChat browser."""
    await v.page.context.add_cookies([{"name": "sbwx", "value": "zhangsan", "url": v.server.url}])
    await _goto(v, "/auth/wechat/mp?next=/account&consent=1")  # what our consent button starts
    await v.page.locator("button[value=allow]").wait_for()


async def sandbox_unavailable(v: Visit) -> None:
    await _goto(v, "/_sandbox/connect/oauth2/authorize")


async def sandbox_follow(v: Visit) -> None:
    """The page a scanned follow QR opens in WeChat."""
    await login_tab("follow")(v)
    code = list(v.server.sandbox.state.follow.codes)[-1]
    await _goto(v, f"/_sandbox/q/{code}")


async def sandbox_miniprogram(v: Visit) -> None:
    """The sandbox's mini-program page a scanned mini-program code opens."""
    import io

    from PIL import Image

    async with v.page.expect_response(re.compile(r"/login/scene/[A-Za-z0-9]{32}/qr$")) as shown:
        await _goto(v, "/login?next=/account&method=miniprogram")
    with Image.open(io.BytesIO(await (await shown.value).body())) as png:
        url = str(png.info["wxacode"])  # type: ignore[attr-defined]
    await v.page.goto(url)


async def _console(v: Visit) -> int:
    """Sign an operator in, then move the visit to a server that names them in [admin] user_ids; their id."""
    client = v.client()
    assert (await v.flows.login(client, "op-a11y")).status_code == 302
    [(operator_id,)] = await v.sql("SELECT user_id FROM user_login_methods ORDER BY id DESC LIMIT 1")
    assert v.start_server is not None
    v.server = await v.start_server({"admin": {"user_ids": [operator_id]}})
    await v.take_cookies(client)
    return operator_id


async def _console_people(v: Visit) -> int:
    """A person with everything the console shows (phone, review flag, a refused sign-in, an operator action)."""
    person = v.client()
    assert (await v.flows.login(person, "zhangsan")).status_code == 302
    [(user_id,)] = await v.sql("SELECT user_id FROM user_login_methods ORDER BY id DESC LIMIT 1")
    await v.flows.login(v.client(), "blocked")
    await v.sql("INSERT INTO user_phones (user_id, phone, country_code, bound_at) VALUES "
                "(%s, '+8613800138000', '86', UTC_TIMESTAMP(3))", user_id)
    await v.sql("UPDATE users SET nickname_review = 1, disabled = 1, "
                "deletion_scheduled_at = UTC_TIMESTAMP(3) + INTERVAL 15 DAY WHERE id = %s", user_id)
    await v.flows.login(v.client(), "zhangsan")  # refused: disabled, kept under the account
    return user_id


def console_page(path: str) -> Callable[[Visit], Awaitable[None]]:
    """A page of the operator console (issue 16), with data on it; ``{user}`` is the person's id."""
    async def state(v: Visit) -> None:
        user_id = await _console_people(v)
        operator_id = await _console(v)
        await v.sql("INSERT INTO operator_actions (operator_id, action, target_user_id, detail, created_at) "
                    "VALUES (%s, 'disable', %s, 'spam', UTC_TIMESTAMP(3))", operator_id, user_id)
        await _goto(v, path.format(user=user_id))
    return state


STATES: dict[str, Callable[[Visit], Awaitable[None]]] = {
    "home": home,
    "home-signed-in": home_signed_in,
    "login": login,
    "login-desktop-browser": login,
    "login-wechat": login,
    "login-phone-browser": login,
    "login-desktop-wechat": login,
    "login-wecom": login,
    "login-miniprogram-webview": login,
    "login-tab-follow": login_tab("follow"),
    "login-tab-miniprogram": login_tab("miniprogram"),
    "account-conflict-flash": account_with_conflict,
    "account-linked": account_linked,
    "merge": merge_page,
    "account-close": account_close,
    "account-close-reauth": account_close_reauth,
    "account-closed": account_closed,
    "account-close-pending": account_close_pending,
    "account-restored": account_restored,
    "error-forged-state": error_page("/auth/wechat/callback/web?code=x&state=forged"),
    "error-cancelled": error_page("/auth/wechat/callback/web?state=forged"),
    "error-bad-request": error_page("/auth/wechat/callback/web?code=a&code=b&state=s"),
    "error-signed-in": error_signed_in,
    "404": not_found,
    "sandbox-index": sandbox_index,
    "sandbox-qr-page": sandbox_qr_page,
    "sandbox-qr-picker": sandbox_qr_picker,
    "sandbox-phone": sandbox_phone,
    "sandbox-persona": sandbox_persona,
    "sandbox-consent": sandbox_consent,
    "sandbox-unavailable": sandbox_unavailable,
    "sandbox-follow": sandbox_follow,
    "sandbox-miniprogram": sandbox_miniprogram,
    "admin-dashboard": console_page("/admin"),
    "admin-search": console_page("/admin/users?q=%E5%BC%A0%E4%B8%89"),
    "admin-user": console_page("/admin/users/{user}"),
    "admin-user-done": console_page("/admin/users/{user}?done=disable"),
    "admin-failures": console_page("/admin/failures"),
    "admin-log": console_page("/admin/log"),
}
# The console is for operators at a computer (and a phone's browser now and then), not inside WeChat.
CONSOLE_STATES = {state for state in STATES if state.startswith("admin-")}
# States with a surface of their own: this User-Agent at the desktop and the phone sizes, whatever the profile's.
SURFACES = {"login-desktop-browser": DESKTOP_CHROME, "login-wechat": IOS_WECHAT, "login-phone-browser": IPHONE_SAFARI,
            "login-desktop-wechat": WINDOWS_WECHAT, "login-wecom": WECOM, "login-miniprogram-webview": MINIPROGRAM,
            "login-tab-follow": DESKTOP_CHROME, "login-tab-miniprogram": DESKTOP_CHROME,
            "sandbox-qr-picker": DESKTOP_CHROME, "sandbox-follow": DESKTOP_CHROME,
            "sandbox-miniprogram": DESKTOP_CHROME, "sandbox-consent": IOS_WECHAT}
# The sandbox's own pages do not depend on the User-Agent either.
SAME_IN_WECHAT = set(SURFACES) | CONSOLE_STATES | {"sandbox-index", "sandbox-qr-page", "sandbox-phone",
                                                   "sandbox-persona", "sandbox-unavailable"}
CASES = [(state, profile, lang) for state in STATES for profile in PROFILES for lang in LANGS
         if not (state in SAME_IN_WECHAT and profile == "wechat")]


@pytest.fixture(scope="module")
async def axe_browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/ensure-chromium.sh installs it as root)")
    if not AXE.exists():
        pytest.skip("axe-core is not installed (scripts/ensure-axe.sh installs it with npm)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        await instance.close()


# Every rule axe has (WCAG 2.0-2.2 A/AA and its best practices); frames are checked with the page.
AXE_RUN = """async () => {
  const result = await axe.run(document, {iframes: true, frameWaitTime: 5000});
  const plain = v => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.map(t => Array.isArray(t) ? t.join(' >>> ') : t).join(' >>> '),
                              summary: n.failureSummary || n.any.map(c => c.message).join('; ')}))});
  // Only text on a gradient or an image counts as unmeasured: other "incomplete" reasons (a decorative
  // aria-hidden arrow, text of non-text characters) are not a contrast problem.
  const behind = n => n.any.some(c => c.data && ['bgGradient', 'bgImage'].includes(c.data.messageKey));
  const unmeasured = result.incomplete.filter(v => v.id === 'color-contrast')
    .map(v => ({...v, nodes: v.nodes.filter(behind)})).filter(v => v.nodes.length > 0);
  return {violations: result.violations.map(plain), incomplete: unmeasured.map(plain)};
}"""


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations, plus text whose contrast axe could not measure (on a gradient or an image: the
    sandbox's old striped banner was 1.5:1 and axe only called it "incomplete"), as a serious one."""
    script = AXE.read_text()
    for frame in page.frames:  # axe must be in every frame to look inside it
        await frame.evaluate(script)
    result = await page.evaluate(AXE_RUN)
    unmeasured = [{**v, "id": "color-contrast-unmeasured", "impact": "serious",
                   "help": "Text contrast axe cannot measure (gradient or image behind it): put it on a solid colour"}
                  for v in result["incomplete"]]
    return list(result["violations"]) + unmeasured


def readable(case: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"{case}: {len(violations)} serious/critical axe violation(s)"]
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])} element(s)) {v['url']}")
        for node in v["nodes"][:6]:
            detail = " ".join((node["summary"] or "").split())
            lines.append(f"      {node['target']}: {detail[:300]}")
    return "\n".join(lines)


@pytest.mark.parametrize("state, profile, lang", CASES, ids=["-".join(c) for c in CASES])
async def test_page_state_has_no_serious_accessibility_violation(state, profile, lang, server, axe_browser,
                                                                 flows, new_client, sql, start_server):
    options = {**PROFILES[profile], "user_agent": SURFACES.get(state, PROFILES[profile]["user_agent"])}
    context = await axe_browser.new_context(locale="en-US" if lang == "en" else "zh-CN", **options)
    context.set_default_timeout(10000)
    await context.add_cookies([{"name": "lang", "value": lang, "url": server.url}])
    page = await context.new_page()
    try:
        visit = Visit(server, page, flows, new_client, sql, lang, options["user_agent"], start_server)
        await STATES[state](visit)
        await page.wait_for_load_state("load")
        violations = await axe_violations(page)
        case = f"{state} ({profile}, {lang}) {page.url}"
        shots = os.environ.get("WXLOGIN_SCREENSHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(Path(shots) / f"{state}--{profile}--{lang}.png"), full_page=True)
        report = os.environ.get("WXLOGIN_A11Y_REPORT")
        if report:
            with open(report, "a", encoding="utf-8") as out:
                out.write(json.dumps({"state": state, "profile": profile, "lang": lang,
                                      "violations": violations}, ensure_ascii=False) + "\n")
        bad = [v for v in violations if v["impact"] in FAILING]
        assert not bad, readable(case, bad)
    finally:
        await context.close()


# What axe does not check: a form's button and a link styled as one are the same box in the page's font; fields
# are 16px (iOS Safari zooms into smaller ones); the language link says which language its text is in.
CONTROLS = """() => {
  const box = document.createElement('div');
  box.innerHTML = '<form><button class="button" type="submit">登录 Sign in</button></form>'
    + '<a class="button" href="#">登录 Sign in</a>'
    + '<form><button class="button small" type="submit">解除绑定</button></form>'
    + '<a class="button small" href="#">解除绑定</a>'
    + '<form><button class="button primary big" type="submit">微信一键登录</button></form>'
    + '<a class="button primary big" href="#">微信一键登录</a>';
  document.querySelector('main').appendChild(box);
  const look = el => { const s = getComputedStyle(el);
    return {height: el.getBoundingClientRect().height, font: s.fontFamily, size: s.fontSize, weight: s.fontWeight}; };
  return [...box.querySelectorAll('.button')].map(el => ({tag: el.tagName, cls: el.className, ...look(el)}));
}"""


@pytest.mark.parametrize("profile", ["desktop", "phone"])
async def test_buttons_and_link_buttons_are_alike_and_fields_do_not_zoom(profile, server, axe_browser):
    context = await axe_browser.new_context(**PROFILES[profile])
    page = await context.new_page()
    try:
        await page.goto(server.url + "/")
        body_font = await page.evaluate("getComputedStyle(document.body).fontFamily")
        controls = await page.evaluate(CONTROLS)
        for button, link in zip(controls[::2], controls[1::2], strict=True):
            assert (button["tag"], link["tag"]) == ("BUTTON", "A")
            assert button["font"] == body_font, f"<button class={button['cls']!r}> falls back to {button['font']}"
            assert {k: v for k, v in button.items() if k != "tag"} == {k: v for k, v in link.items() if k != "tag"}, (
                f"<button> and <a> with class {button['cls']!r} differ: {button} vs {link}")

        phone = await axe_browser.new_context(**PROFILES["phone"])
        elsewhere = await phone.new_page()
        await elsewhere.goto(server.url + "/login?next=/account")  # a phone browser: the copy-link field
        sizes = await elsewhere.eval_on_selector_all(
            "input:not([type=hidden]), select, textarea", "els => els.map(e => getComputedStyle(e).fontSize)")
        assert sizes and all(float(size.rstrip("px")) >= 16 for size in sizes), sizes
        await phone.close()

        for lang in LANGS:
            await page.goto(server.url + f"/?lang={lang}")
            link = page.locator("footer a[hreflang]")
            assert await link.get_attribute("lang") == await link.get_attribute("hreflang"), await link.inner_text()
    finally:
        await context.close()
