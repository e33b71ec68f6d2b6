"""The callback's rules: state format, signature, expiry, browser binding, single use, the double
callback, refusal, WeChat errcodes, strict parameters and return-target validation."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from helpers import BAD_RETURN_TARGETS, location_path
from wxlogin.signing import Signing


def callback_parts(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sandbox_code_used(server, code: str) -> bool:
    """Whether the sandbox ('WeChat') was asked to exchange this code."""
    return server.sandbox.state.codes[code].used


async def test_state_is_alphanumeric_and_fits_wechat_limit(server, client):
    for _ in range(50):
        response = await client.get(server.url + "/auth/wechat/web", params={"next": "/a" * 250})
        state = callback_parts(response.headers["location"].split("#")[0])["state"]
        assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state)


async def test_valid_flow_but_state_from_another_browser_is_refused(server, new_client, flows, sql):
    victim, attacker = new_client(), new_client()
    url = await flows.qr_callback_url(victim, "zhangsan")
    code = callback_parts(url)["code"]

    first = await attacker.get(url)
    assert first.status_code == 302  # one automatic restart (WeChat's browser loses cookies)...
    assert location_path(first, server.url).startswith("/auth/wechat/web?next=%2F&retry=1")
    restarted = url + "&retry=1"
    second = await attacker.get(restarted)
    assert second.status_code == 400  # ...then an explanation, never a login
    assert 'data-error-code="state_unbound"' in second.text
    assert "wxsid" not in second.headers.get("set-cookie", "")
    assert not sandbox_code_used(server, code)  # checked before any call to WeChat
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_attacker_with_own_binding_cookie_still_refused(server, new_client, flows):
    victim, attacker = new_client(), new_client()
    url = await flows.qr_callback_url(victim, "zhangsan")
    await flows.start_qr(attacker)  # the attacker holds a binding cookie for a different flow

    response = await attacker.get(url + "&retry=1")

    assert response.status_code == 400
    assert "wxsid" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("mutate", [
    lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"),  # last character flipped
    lambda s: s[:-1],  # truncated
    lambda s: s + "https://i.maxthon.cn",  # junk appended (easywechat #2285)
    lambda s: s.upper(),  # not our alphabet
    lambda s: "0" * 72,
    lambda s: "null",
    lambda s: s + "==",
])
async def test_tampered_state_is_refused_without_calling_wechat(server, client, flows, mutate):
    url = await flows.qr_callback_url(client, "zhangsan")
    parts = callback_parts(url)

    response = await client.get(f"{server.url}/auth/wechat/callback/web",
                                params={"code": parts["code"], "state": mutate(parts["state"]), "next": "/"})

    assert response.status_code == 400
    assert not sandbox_code_used(server, parts["code"])
    assert "wxsid" not in response.headers.get("set-cookie", "")


async def test_return_path_is_covered_by_the_state_signature(server, client, flows):
    url = await flows.qr_callback_url(client, "zhangsan", next_path="/account")

    response = await client.get(url.replace("next=/account", "next=/elsewhere"))

    assert response.status_code == 400
    assert 'data-error-code="state_invalid"' in response.text


async def test_state_signed_by_another_key_is_refused(server, client, flows):
    url = await flows.qr_callback_url(client, "zhangsan")
    parts = callback_parts(url)
    nonce = parts["state"][8:40]
    forged = Signing(["some-other-key-that-we-never-configured-00000"]).make_state("web", "/")[0]
    forged = forged[:8] + nonce + forged[40:]  # keep the bound nonce, sign with the wrong key

    response = await client.get(f"{server.url}/auth/wechat/callback/web",
                                params={"code": parts["code"], "state": forged, "next": "/"})

    assert response.status_code == 400
    assert not sandbox_code_used(server, parts["code"])


async def test_expired_state_is_refused(start_server, new_client):
    from helpers import Flows

    short = await start_server({"server": {"state_max_age": 1}})
    client = new_client()
    url = await Flows(short).qr_callback_url(client, "zhangsan")
    await asyncio.sleep(2.1)

    response = await client.get(url)

    assert response.status_code == 400
    assert 'data-error-code="state_expired"' in response.text
    assert not short.sandbox.state.codes[callback_parts(url)["code"]].used


async def test_replayed_callback_in_another_browser_gets_nothing(server, new_client, flows):
    browser, thief = new_client(), new_client()
    url = await flows.qr_callback_url(browser, "zhangsan")
    stolen_binding = browser.cookies["wxstate"]
    assert (await browser.get(url)).status_code == 302
    # The thief even has a copy of the binding cookie; the state was consumed all the same.
    thief.cookies.set("wxstate", stolen_binding)

    response = await thief.get(url)

    assert response.status_code == 400
    assert 'data-error-code="state_replayed"' in response.text
    assert "wxsid" not in response.headers.get("set-cookie", "")


async def test_callback_url_does_not_reveal_the_binding_cookie(server, new_client, flows):
    browser, thief = new_client(), new_client()
    url = await flows.qr_callback_url(browser, "zhangsan")
    thief.cookies.set("wxstate", callback_parts(url)["state"][8:40])  # the nonce is public, the secret is not

    response = await thief.get(url + "&retry=1")

    assert response.status_code == 400
    assert 'data-error-code="state_unbound"' in response.text
    assert (await browser.get(url)).status_code == 302  # the real browser still completes


async def test_double_callback_in_same_browser_ends_signed_in(server, client, flows, sql):
    url = await flows.qr_callback_url(client, "zhangsan", next_path="/account")

    first, second = await asyncio.gather(client.get(url), client.get(url))

    assert first.status_code == second.status_code == 302
    assert location_path(first, server.url) == location_path(second, server.url) == "/account"
    assert "wxsid" in first.headers["set-cookie"] and "wxsid" in second.headers["set-cookie"]
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert await sql("SELECT COUNT(*) FROM login_events") == [(1,)]  # WeChat was asked once


async def test_second_hit_after_first_signed_in_just_continues(server, client, flows):
    url = await flows.qr_callback_url(client, "zhangsan", next_path="/account")
    assert (await client.get(url)).status_code == 302

    again = await client.get(url)  # binding cookie gone, session cookie present

    assert again.status_code == 302
    assert location_path(again, server.url) == "/account"
    assert (await client.get(server.url + "/account")).status_code == 200


async def test_refusal_shows_cancelled_page_and_writes_no_user(server, client, flows, sql):
    url = await flows.scan(client, await flows.start_qr(client), "zhangsan", action="deny")
    assert "code=" not in url

    response = await client.get(url)

    assert response.status_code == 200
    assert 'data-error-code="login_cancelled"' in response.text
    assert "你已取消登录" in response.text
    assert "wxsid" not in response.headers.get("set-cookie", "")
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_invalid_code_shows_retry_page(server, client, flows, sql):
    url = await flows.qr_callback_url(client, "zhangsan")
    parts = callback_parts(url)

    response = await client.get(f"{server.url}/auth/wechat/callback/web",
                                params={"code": "sbNOTAREALCODE", "state": parts["state"], "next": "/"})

    assert response.status_code == 400
    assert 'data-error-code="code_invalid"' in response.text
    assert 'href="/login?next=%2F"' in response.text  # what to do next
    assert "40029" not in response.text  # errcodes go to the log, not the page
    assert await sql("SELECT login_method, outcome FROM login_events") == [("web", "code_invalid")]


async def test_code_used_twice_across_flows_is_code_invalid(server, client, flows):
    url = await flows.qr_callback_url(client, "zhangsan")
    code = callback_parts(url)["code"]
    assert (await client.get(url)).status_code == 302
    other = await flows.qr_callback_url(client, "zhangsan")

    response = await client.get(other.replace(callback_parts(other)["code"], code))

    assert response.status_code == 400
    assert 'data-error-code="code_invalid"' in response.text  # WeChat said 40163


async def test_wrong_app_secret_is_an_operator_problem(start_server, new_client):
    from helpers import Flows

    broken = await start_server({"wechat": {"web": {"secret": "not-the-registered-secret"}}})
    broken.sandbox.apps[broken.settings.wechat.web.appid] = type(broken.sandbox.apps[
        broken.settings.wechat.web.appid])(broken.settings.wechat.web.appid, "the-real-secret", "web")
    client = new_client()

    response = await Flows(broken).login(client, "zhangsan")

    assert response.status_code == 502
    assert 'data-error-code="wechat_misconfigured"' in response.text
    assert "the-real-secret" not in response.text and "not-the-registered-secret" not in response.text


@pytest.mark.parametrize("query", [
    "code=a&code=b&state={state}",
    "code={code}&state={state}&state={state}",
    "code=" + "x" * 257 + "&state={state}",
    "code=abc%0d%0aSet-Cookie:x=y&state={state}",
    "code=%ff%fe&state={state}",
    "code={code}",
    "code={code}&state=",
])
async def test_malformed_callback_parameters_are_refused(server, client, flows, query):
    url = await flows.qr_callback_url(client, "zhangsan")
    parts = callback_parts(url)

    response = await client.get(f"{server.url}/auth/wechat/callback/web?"
                                + query.format(code=parts["code"], state=parts["state"]))

    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert not sandbox_code_used(server, parts["code"])


async def test_extra_parameters_are_ignored(server, client, flows, sql):
    url = await flows.qr_callback_url(client, "zhangsan")

    response = await client.get(url + "&" + urlencode({"appid": "wxEVIL", "openid": "victim",
                                                        "redirect_uri": "https://evil.example"}))

    assert response.status_code == 302
    assert location_path(response, server.url) == "/"
    assert await sql("SELECT appid FROM user_login_methods") == [(server.settings.wechat.web.appid,)]




@pytest.mark.parametrize("target", BAD_RETURN_TARGETS)
async def test_bad_return_targets_end_on_the_home_page(server, client, flows, target):
    response = await flows.login(client, "zhangsan", next_path=target)

    assert response.status_code == 302
    assert location_path(response, server.url) == "/"


async def test_good_return_target_is_kept(server, client, flows):
    response = await flows.login(client, "zhangsan", next_path="/account?tab=security")

    assert location_path(response, server.url) == "/account?tab=security"


async def test_two_tabs_can_log_in_with_interleaved_flows(server, client, flows):
    first = await flows.start_qr(client, "/account")
    second = await flows.start_qr(client, "/")
    url_second = await flows.scan(client, second, "zhangsan")
    url_first = await flows.scan(client, first, "zhangsan")

    assert (await client.get(url_first)).status_code == 302
    assert (await client.get(url_second)).status_code == 302


async def test_callback_never_caches_and_sends_no_referrer(server, client, flows):
    response = await flows.login(client, "zhangsan")

    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_code_older_than_five_minutes_is_refused_by_wechat(server, client, flows):
    url = await flows.qr_callback_url(client, "zhangsan")
    server.sandbox.state.codes[callback_parts(url)["code"]].created -= 301  # WeChat's clock moved on

    response = await client.get(url)

    assert response.status_code == 400
    assert 'data-error-code="code_invalid"' in response.text  # 42003
