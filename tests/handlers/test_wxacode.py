"""Desktop login by mini-program code (issue 14), over real HTTP with the real MariaDB and the sandbox playing
WeChat's getwxacodeunlimit and the mini-program. Every API answer is checked against the served OpenAPI document
(``Api`` from test_api.py).

Login scenes are made by the scene core (another engineer, at the same time): these tests insert the rows the
core would (``helpers.insert_scene``, issue14.md's columns) and read the outcome from ``login_scenes``.
"""

from __future__ import annotations

import io
import logging

import pytest
import segno
from PIL import Image
from test_api import Api

from helpers import BAD_SCENES, QR_LOGIN_STEPS, insert_scene
from wxlogin import errors as e

STEP = "/api/miniprogram/qr-login/{}"


@pytest.fixture
async def scenes(server, sql):
    """The scene table (migration 8), emptied."""
    await sql("DELETE FROM login_scenes")
    return server


@pytest.fixture
def api(server, client):
    return Api(server, client)


async def token_of(api: Api, person: str) -> tuple[str, int]:
    response = await api.login(person)
    assert response.status_code == 200, response.text
    return response.json()["token"], response.json()["user"]["id"]


async def step(api: Api, action: str, scene: str, token: str):
    return await api.request("POST", STEP.format(action), {"scene": scene}, token=token)


async def scene_row(sql, scene: str) -> tuple[str, int | None]:
    rows = await sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene)
    return rows[0][0], rows[0][1]


def error(response) -> str:
    return response.json()["error"]


# --- the happy path and refusal ---------------------------------------------------------------------------


async def test_scan_then_confirm_signs_the_desktop_in_as_the_callers_account(api, scenes, sql):
    scene = await insert_scene(sql)
    token, user_id = await token_of(api, "zhangsan")

    scanned = await step(api, "scan", scene, token)
    assert scanned.status_code == 200 and scanned.json() == {"status": "scanned"}
    assert await scene_row(sql, scene) == ("scanned", None)

    again = await step(api, "scan", scene, token)  # the mini-program's retry of a lost answer
    assert again.status_code == 200 and again.json() == {"status": "scanned"}

    confirmed = await step(api, "confirm", scene, token)
    assert confirmed.status_code == 200 and confirmed.json() == {"status": "confirmed"}
    assert confirmed.headers["cache-control"] == "no-store"
    assert await scene_row(sql, scene) == ("confirmed", user_id)
    assert str(user_id) not in confirmed.text  # nothing about the account travels back to anyone


async def test_a_scene_can_be_confirmed_without_a_separate_scan(api, scenes, sql):
    scene = await insert_scene(sql)
    token, user_id = await token_of(api, "panda")

    response = await step(api, "confirm", scene, token)

    assert response.status_code == 200
    assert await scene_row(sql, scene) == ("confirmed", user_id)


async def test_refusal_ends_the_scene_and_it_cannot_be_confirmed_afterwards(api, scenes, sql):
    scene = await insert_scene(sql)
    token, _ = await token_of(api, "zhangsan")
    await step(api, "scan", scene, token)

    refused = await step(api, "refuse", scene, token)
    assert refused.status_code == 200 and refused.json() == {"status": "refused"}
    assert await scene_row(sql, scene) == ("refused", None)

    assert (await step(api, "refuse", scene, token)).status_code == 200  # said twice: the same answer
    confirm = await step(api, "confirm", scene, token)
    scan = await step(api, "scan", scene, token)
    assert (confirm.status_code, error(confirm)) == (403, "scene_refused")
    assert (scan.status_code, error(scan)) == (403, "scene_refused")
    assert await scene_row(sql, scene) == ("refused", None)


# --- reuse, expiry, unknown scenes, another account -----------------------------------------------------


async def test_a_confirmed_scene_is_used_once(api, scenes, sql):
    scene = await insert_scene(sql)
    token, user_id = await token_of(api, "zhangsan")
    assert (await step(api, "confirm", scene, token)).status_code == 200

    for action in QR_LOGIN_STEPS:
        response = await step(api, action, scene, token)
        assert (response.status_code, error(response)) == (409, "scene_used"), action
    await sql("UPDATE login_scenes SET status = 'done' WHERE scene = %s", scene)  # the desktop signed in
    done = await step(api, "confirm", scene, token)
    assert (done.status_code, error(done)) == (409, "scene_used")
    assert await scene_row(sql, scene) == ("done", user_id)


async def test_expired_scenes_answer_scene_expired_for_every_step(api, scenes, sql):
    token, _ = await token_of(api, "zhangsan")
    waiting = await insert_scene(sql, life=-5)
    scanned = await insert_scene(sql, status="scanned", life=-5)  # expiry while scanned
    stored = await insert_scene(sql, status="expired", life=60)

    for scene in (waiting, scanned, stored):
        for action in QR_LOGIN_STEPS:
            response = await step(api, action, scene, token)
            assert (response.status_code, error(response)) == (410, "scene_expired"), (scene, action)
    assert [await scene_row(sql, s) for s in (waiting, scanned, stored)] == [
        ("waiting", None), ("scanned", None), ("expired", None)]
    assert await sql("SELECT COUNT(*) FROM wxa_scenes") == [(0,)], "an expired scene got an owner"


async def test_unknown_scenes_and_follow_scenes_are_not_found(api, scenes, sql):
    token, _ = await token_of(api, "zhangsan")
    follow = await insert_scene(sql, kind="follow")

    for scene in ("0" * 32, "a", follow):
        for action in QR_LOGIN_STEPS:
            response = await step(api, action, scene, token)
            assert (response.status_code, error(response)) == (404, "scene_not_found"), (scene, action)
    assert await scene_row(sql, follow) == ("waiting", None)  # the mini-program cannot confirm a follow scene


async def test_another_accounts_token_cannot_take_over_a_scanned_scene(api, scenes, sql):
    """Someone who photographs the desktop's code after its person scanned it gets nothing: the first account's
    mini-program owns the scene, so the desktop cannot be signed into the photographer's account."""
    scene = await insert_scene(sql)
    owner, owner_id = await token_of(api, "zhangsan")
    other, _ = await token_of(api, "panda")
    assert (await step(api, "scan", scene, owner)).status_code == 200

    for action in QR_LOGIN_STEPS:
        response = await step(api, action, scene, other)
        assert (response.status_code, error(response)) == (409, "scene_used"), action
    assert await scene_row(sql, scene) == ("scanned", None)

    assert (await step(api, "confirm", scene, owner)).status_code == 200
    assert await scene_row(sql, scene) == ("confirmed", owner_id)


async def test_two_phones_racing_for_one_scene_one_wins(api, scenes, sql, new_client):
    import asyncio

    scene = await insert_scene(sql)
    people = [f"racer{i}" for i in range(6)]
    tokens = [await token_of(api, p) for p in people]

    answers = await asyncio.gather(*(Api(api.server, new_client()).request(
        "POST", STEP.format("confirm"), {"scene": scene}, token=t) for t, _ in tokens))

    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 5, [a.text for a in answers]
    winner = tokens[[a.status_code for a in answers].index(200)][1]
    assert await scene_row(sql, scene) == ("confirmed", winner)


# --- the token, the body, and the switch --------------------------------------------------------------------


@pytest.mark.parametrize("action", QR_LOGIN_STEPS)
async def test_every_step_needs_a_bearer_token(action, api, scenes, sql):
    scene = await insert_scene(sql)

    response = await api.request("POST", STEP.format(action), {"scene": scene})

    assert (response.status_code, error(response)) == (401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await scene_row(sql, scene) == ("waiting", None)


@pytest.mark.parametrize("name", list(BAD_SCENES))
async def test_bad_scene_bodies_are_refused_before_mysql(name, api, scenes, sql):
    body, content_type, status, code = BAD_SCENES[name]
    token, _ = await token_of(api, "zhangsan")
    scene = await insert_scene(sql, scene="abc" + "0" * 29)  # what a sloppy parser might find in a bad body

    for action in QR_LOGIN_STEPS:
        response = await api.request("POST", STEP.format(action), raw=body, token=token,
                                     headers={"Content-Type": content_type})
        assert (response.status_code, error(response)) == (status, code), (action, response.text)
    assert await scene_row(sql, scene) == ("waiting", None)
    assert await sql("SELECT COUNT(*) FROM wxa_scenes") == [(0,)]


async def test_with_code_login_page_empty_the_login_is_off(start_server, sql, new_client):
    server = await start_server({"wechat": {"desktop_methods": ["qr", "follow"],
                                            "miniprogram": {"code_login_page": ""}}})
    api = Api(server, new_client())
    scene = await insert_scene(sql)
    token, _ = await token_of(api, "zhangsan")

    response = await step(api, "confirm", scene, token)

    assert (response.status_code, error(response)) == (404, "not_found")
    assert await scene_row(sql, scene) == ("waiting", None)
    with pytest.raises(e.NotFound):
        await server.services.wxacode.code_image(scene)


# --- the code's image -------------------------------------------------------------------------------------


def qr_modules(image: Image.Image, size: int, border: int = 4) -> list[list[bool]]:
    """The dark/light modules of a QR code drawn at a whole scale with ``border`` quiet modules."""
    scale = image.width // (size + 2 * border)
    grey = image.convert("L")
    return [[grey.getpixel(((border + x) * scale + scale // 2, (border + y) * scale + scale // 2)) < 128
             for x in range(size)] for y in range(size)]


async def test_the_code_is_a_png_that_opens_the_page_with_the_scene_and_is_drawn_once(scenes, sql):
    service = scenes.services.wxacode
    scene = await insert_scene(sql)
    calls = len(scenes.sandbox.state.wxacode_calls)

    image, content_type = await service.code_image(scene)
    again = await service.code_image(scene)

    assert content_type == "image/png" and again == (image, content_type)
    assert len(scenes.sandbox.state.wxacode_calls) == calls + 1, "the second request asked WeChat again"
    with Image.open(io.BytesIO(image)) as png:
        assert png.format == "PNG" and 280 <= png.width <= 1280
        opens = png.text["wxacode"]
        appid = scenes.settings.wechat.miniprogram.appid
        assert opens == (f"{scenes.url}/_sandbox/miniprogram/open?appid={appid}"
                         f"&page=pages%2Flogin%2Findex&scene={scene}")
        expected = segno.make(opens, error="m")
        size = expected.symbol_size(scale=1, border=0)[0]
        assert qr_modules(png, size) == [[bool(v) for v in row] for row in expected.matrix]
    assert await sql("SELECT content_type, LENGTH(image) FROM wxa_scenes WHERE scene = %s", scene) == [
        ("image/png", len(image))]


async def test_a_second_server_serves_the_code_from_mysql(scenes, sql, start_server):
    scene = await insert_scene(sql)
    image, _ = await scenes.services.wxacode.code_image(scene)
    other = await start_server()
    calls = len(other.sandbox.state.wxacode_calls)

    assert await other.services.wxacode.code_image(scene) == (image, "image/png")
    assert len(other.sandbox.state.wxacode_calls) == calls


async def test_concurrent_requests_for_one_code_share_one_call(scenes, sql):
    import asyncio

    scene = await insert_scene(sql)
    calls = len(scenes.sandbox.state.wxacode_calls)

    images = await asyncio.gather(*(scenes.services.wxacode.code_image(scene) for _ in range(5)))

    assert len({i for i, _ in images}) == 1
    assert len(scenes.sandbox.state.wxacode_calls) == calls + 1


async def test_no_code_for_unknown_expired_or_follow_scenes(scenes, sql):
    service = scenes.services.wxacode
    calls = len(scenes.sandbox.state.wxacode_calls)
    with pytest.raises(e.SceneNotFound):
        await service.code_image("0" * 32)
    with pytest.raises(e.SceneNotFound):
        await service.code_image(await insert_scene(sql, kind="follow"))
    with pytest.raises(e.SceneExpired):
        await service.code_image(await insert_scene(sql, life=-1))
    assert len(scenes.sandbox.state.wxacode_calls) == calls


@pytest.mark.parametrize("errcode, error_class, code", [
    (45009, e.WeChatRateLimited, "wechat_rate_limited"),
    (41030, e.WeChatMisconfigured, "wechat_misconfigured"),
])
async def test_wechat_errcodes_for_the_code_are_errors_and_nothing_is_kept(errcode, error_class, code, scenes, sql,
                                                                           client, caplog):
    scene = await insert_scene(sql)
    queued = await client.post(scenes.url + "/_sandbox/dev/wxacode/fail", json={"errcode": errcode})
    assert queued.status_code == 200

    with caplog.at_level(logging.WARNING), pytest.raises(error_class) as raised:
        await scenes.services.wxacode.code_image(scene)

    assert raised.value.code == code and raised.value.errcode == errcode
    assert await sql("SELECT COUNT(*) FROM wxa_scenes") == [(0,)]
    image, _ = await scenes.services.wxacode.code_image(scene)  # the fault was played once: the next one draws
    assert image.startswith(b"\x89PNG")
    assert "access_token" not in caplog.text


async def test_a_refused_app_token_is_replaced_and_the_code_drawn(scenes, sql, client):
    scene = await insert_scene(sql)
    await scenes.services.wxacode.code_image(await insert_scene(sql))  # a token is held now
    appid = scenes.settings.wechat.miniprogram.appid
    assert scenes.sandbox.state.revoke_app_tokens(appid) >= 1

    image, content_type = await scenes.services.wxacode.code_image(scene)

    assert content_type == "image/png" and image.startswith(b"\x89PNG")


# --- the sandbox's mini-program page --------------------------------------------------------------------------


async def open_page(client, server, scene: str):
    """What scanning the code does: the URL in the image opens the sandbox's mini-program page."""
    image, _ = await server.services.wxacode.code_image(scene)
    with Image.open(io.BytesIO(image)) as png:
        opens = png.text["wxacode"]
    page = await client.get(opens)
    assert page.status_code == 200 and "小程序扫码登录" in page.text and scene in page.text
    xsrf = page.text.split('data-xsrf="', 1)[1].split('"', 1)[0]
    return opens, xsrf


async def play(client, url: str, xsrf: str, person: str, action: str):
    answer = await client.post(url, data={"_xsrf": xsrf, "person": person, "action": action, "respond": "json"})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_the_sandboxs_mini_program_scans_and_confirms_through_the_api(scenes, sql, client):
    scene = await insert_scene(sql)
    url, xsrf = await open_page(client, scenes, scene)

    scanned = await play(client, url, xsrf, "zhangsan", "scan")
    assert scanned == {"status": 200, "answer": {"status": "scanned"}}
    assert await scene_row(sql, scene) == ("scanned", None)
    confirmed = await play(client, url, xsrf, "zhangsan", "confirm")
    assert confirmed == {"status": 200, "answer": {"status": "confirmed"}}

    status, user_id = await scene_row(sql, scene)
    appid = scenes.settings.wechat.miniprogram.appid
    owner = await sql("SELECT user_id FROM user_login_methods WHERE appid = %s", appid)
    assert status == "confirmed" and [(user_id,)] == owner  # the sandbox person's mini-program account
    again = await play(client, url, xsrf, "zhangsan", "confirm")
    assert again["status"] == 409 and again["answer"]["error"] == "scene_used"


async def test_the_sandboxs_mini_program_refuses_and_shows_the_answer(scenes, sql, client):
    scene = await insert_scene(sql)
    url, xsrf = await open_page(client, scenes, scene)
    await play(client, url, xsrf, "panda", "scan")

    page = await client.post(url, data={"_xsrf": xsrf, "person": "panda", "action": "refuse"})

    assert page.status_code == 200 and "已取消登录" in page.text and 'data-status="200"' in page.text
    assert await scene_row(sql, scene) == ("refused", None)
    late = await play(client, url, xsrf, "panda", "confirm")
    assert late["status"] == 403 and late["answer"]["error"] == "scene_refused"
