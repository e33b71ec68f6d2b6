"""Both desktop scan logins end to end in a real browser (Chromium): a desktop context (1280x800) opens /login,
picks the method's tab and shows the code; a second context playing the phone reaches the sandbox's phone page
from the code itself and completes it; the desktop then signs in on its own, without a reload.

- Scan to follow: the SVG the desktop shows is decoded (its modules compared with the QR of each url the
  sandbox's ``qrcode/create`` issued), the phone opens that url (the sandbox's follow page) and follows; the
  sandbox pushes ``subscribe`` to the site the way WeChat does.
- Mini-program code: the PNG the desktop shows names the page it opens (its ``wxacode`` chunk); the phone opens
  it (the sandbox's mini-program), scans, then confirms, or refuses (the desktop says 已取消).
Nothing of the phone side is played by the test: no service is called, no row is written.
"""

from __future__ import annotations

import io
import re

import pytest
import segno
from PIL import Image

pytestmark = pytest.mark.browser

SCAN_METHODS = {"wechat": {"desktop_methods": ["qr", "follow", "miniprogram"], "mp": {"follow_login": True}}}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PANDA = "🐼熊猫🎉 Panda"


@pytest.fixture
async def site(start_server):
    """The app with all three desktop methods (follow needs the official account's push_token, which the
    development settings have; the mini-program page is code_login_page's)."""
    handle = await start_server(SCAN_METHODS)
    assert handle.settings.wechat.mp.push_token.value and handle.settings.wechat.miniprogram.code_login_page
    return handle


async def _panda_has_an_account(flows, new_client, sql) -> int:
    """Panda signed up once through the website QR (a real nickname, the unionid every channel shares)."""
    assert (await flows.login(new_client(), "panda")).status_code == 302
    return int((await sql("SELECT id FROM users"))[0][0])


def svg_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules of a segno SVG (one path of horizontal runs: ``M x y``, ``m dx dy``, ``h n``)."""
    path = re.search(r'<path[^>]*\sd="([^"]+)"', svg)
    assert path is not None, svg[:200]
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for op, args in re.findall(r"([MmHh])([-0-9. ]+)", path.group(1)):
        numbers = [float(n) for n in args.split()]
        if op == "M":
            x, y = numbers
        elif op == "m":
            x, y = x + numbers[0], y + numbers[1]
        else:
            run = numbers[0] if op == "h" else numbers[0] - x
            dark.update((int(x) + i, int(y)) for i in range(int(run)))
            x += run
    return dark


def qr_modules(text: str) -> set[tuple[int, int]]:
    matrix = segno.make(text, error="m").matrix
    return {(x, y) for y, row in enumerate(matrix) for x, value in enumerate(row) if value}


def decode_follow_qr(svg: str, issued: list[str]) -> str:
    """Which of the urls the sandbox issued the desktop's QR shows (its modules, wherever the border is)."""
    shown = svg_modules(svg)
    left, top = min(x for x, _ in shown), min(y for _, y in shown)
    shown = {(x - left, y - top) for x, y in shown}
    matches = [url for url in issued if qr_modules(url) == shown]
    assert len(matches) == 1, f"the desktop's QR is none of the sandbox's codes {issued}"
    return matches[0]


async def desktop_on(browser, site, method: str, init_script: str = ""):
    """A desktop browser on /login that picks ``method``'s tab; the page and the code image it was shown."""
    ctx = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
    if init_script:
        await ctx.add_init_script(init_script)
    page = await ctx.new_page()
    await page.goto(site.url + "/login?next=/account")
    assert await page.locator("iframe").count() == 1  # the website QR is the first tab
    async with page.expect_response(re.compile(r"/login/scene/[A-Za-z0-9]{32}/qr$")) as shown:
        await page.locator(f'.login-tabs a[data-method="{method}"]').click()
    image = await shown.value
    assert image.status == 200
    await page.locator("#scene img").wait_for(state="visible")
    assert await page.locator('[data-msg="waiting"]').inner_text() == "等待扫码"
    box = await page.locator("#scene img").bounding_box()
    assert box is not None and box["width"] > 100 and box["y"] + box["height"] <= DESKTOP["height"]  # in view
    await page.evaluate("window.__samePage = true")  # gone if anything reloads the page
    return page, image


def navigations(page) -> list[str]:
    """The URLs the page's main frame goes to from now on."""
    seen: list[str] = []
    page.on("framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None)
    return seen


async def a_phone(browser):
    return await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN",
                                      user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                                                 "AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47")


async def test_scan_to_follow_on_a_phone_signs_the_desktop_in_without_a_reload(site, browser, flows,
                                                                               new_client, sql):
    panda = await _panda_has_an_account(flows, new_client, sql)
    desktop, image = await desktop_on(browser, site, "follow")
    assert image.headers["content-type"].startswith("image/svg+xml")
    issued = [f"{site.sandbox.base_url}/q/{code}" for code in site.sandbox.state.follow.codes]
    url = decode_follow_qr((await image.body()).decode(), issued)
    scene = (await desktop.locator("#scene").get_attribute("data-events") or "").split("/")[3]
    assert site.sandbox.state.follow.codes[url.rsplit("/", 1)[1]].scene_str == "login_" + scene
    went = navigations(desktop)

    phone = await a_phone(browser)
    scanner = await phone.new_page()
    await scanner.goto(url)  # what WeChat opens for the scanned code
    assert await scanner.locator("h1").inner_text() == "关注公众号"
    await scanner.locator("label.sb-choice", has_text=PANDA).click()
    await scanner.get_by_role("button", name="关注（新关注者：subscribe）").click()
    assert await scanner.locator("h1").inner_text() == "已关注公众号"
    assert "电脑端正在登录" in await scanner.locator(".sb-reply").inner_text()  # the account's reply in WeChat

    await desktop.wait_for_url(site.url + "/account", timeout=15000)
    assert went == [site.url + "/account"]  # straight there: the login page was never reloaded
    assert await desktop.locator("h1.nickname").inner_text() == PANDA
    assert await sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene) == [("done", panda)]
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]  # the follower is the same person (unionid)
    await phone.close()
    await desktop.context.close()


def wxacode_url(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as code:
        assert code.format == "PNG"
        return str(code.info["wxacode"])  # type: ignore[attr-defined]


async def open_the_mini_program(browser, image, site):
    """The phone scans the desktop's mini-program code: WeChat opens the page the code names, as Panda."""
    assert image.headers["content-type"] == "image/png"
    url = wxacode_url(await image.body())
    assert url.startswith(site.sandbox.base_url + "/miniprogram/open?")
    assert "page=pages%2Flogin%2Findex" in url
    phone = await a_phone(browser)
    page = await phone.new_page()
    await page.goto(url)
    assert await page.locator("h1").inner_text() == "小程序扫码登录"
    await page.locator("label.sb-choice", has_text=PANDA).click()
    await page.get_by_role("button", name="打开小程序（扫码）").click()
    assert "→ 200" in await page.locator("[data-status]").inner_text()
    return phone, page


@pytest.mark.parametrize("transport", ["sse", "long-poll"])
async def test_the_mini_program_code_scanned_and_confirmed_signs_the_desktop_in(transport, site, browser,
                                                                               flows, new_client, sql):
    panda = await _panda_has_an_account(flows, new_client, sql)
    # Without EventSource (an old browser, or a proxy that breaks streams) the long-poll fallback takes over.
    desktop, image = await desktop_on(browser, site, "miniprogram",
                                      "delete window.EventSource;" if transport == "long-poll" else "")
    scene = (await desktop.locator("#scene").get_attribute("data-events") or "").split("/")[3]
    assert f"scene={scene}" in wxacode_url(await image.body())
    went = navigations(desktop)
    asked: list[str] = []
    desktop.on("request", lambda request: asked.append(request.url.rsplit("/", 1)[1].split("?")[0]))

    phone, mini = await open_the_mini_program(browser, image, site)
    await desktop.locator('[data-msg="scanned"]').wait_for(state="visible", timeout=10000)
    assert await desktop.locator('[data-msg="scanned"]').inner_text() == "已扫码，请在手机上确认"
    assert await desktop.evaluate("window.__samePage === true") and went == []
    assert await sql("SELECT status FROM login_scenes WHERE scene = %s", scene) == [("scanned",)]

    await mini.get_by_role("button", name="确认登录").click()
    assert await mini.locator("h2").inner_text() == "已确认登录，请回到电脑上查看。"

    await desktop.wait_for_url(site.url + "/account", timeout=15000)
    assert went == [site.url + "/account"]
    assert await desktop.locator("h1.nickname").inner_text() == PANDA
    assert await sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene) == [("done", panda)]
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert "complete" in asked and ("wait" in asked) == (transport == "long-poll")  # the transport it was told
    await phone.close()
    await desktop.context.close()


async def test_a_refusal_in_the_mini_program_says_cancelled_on_the_desktop(site, browser, flows,
                                                                           new_client, sql):
    await _panda_has_an_account(flows, new_client, sql)
    desktop, image = await desktop_on(browser, site, "miniprogram")
    scene = (await desktop.locator("#scene").get_attribute("data-events") or "").split("/")[3]
    went = navigations(desktop)

    phone, mini = await open_the_mini_program(browser, image, site)
    await desktop.locator('[data-msg="scanned"]').wait_for(state="visible", timeout=10000)
    await mini.get_by_role("button", name="取消").click()
    assert await mini.locator("h2").inner_text() == "已取消登录。"

    await desktop.locator('[data-msg="refused"]').wait_for(state="visible", timeout=10000)
    assert await desktop.locator('[data-msg="refused"]').inner_text() == "已取消"
    assert await desktop.locator(".scene-refresh a").inner_text() == "刷新二维码"
    assert await desktop.evaluate("window.__samePage === true") and went == []
    assert "wxsid" not in {c["name"] for c in await desktop.context.cookies()}  # nobody signed in
    assert await sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene) == [("refused", None)]
    await phone.close()
    await desktop.context.close()
