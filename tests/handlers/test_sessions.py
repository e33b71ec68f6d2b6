"""Session cookies: flags, tampering, expiry, fixation, key rotation, logout and XSRF on logout."""

from __future__ import annotations

import time

import pytest

from helpers import Flows, forged, location_path, page_xsrf, signed_claims
from wxlogin.signing import Signing

OTHER_KEY = "second-dev-insecure-key-for-rotation-00000002"


def session_cookie_header(response) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith("wxsid="))


async def signed_in(client, server) -> bool:
    return (await client.get(server.url + "/account")).status_code == 200


async def test_session_cookie_flags(server, client, flows):
    response = await flows.login(client, "zhangsan")

    header = session_cookie_header(response).lower()
    assert "httponly" in header
    assert "samesite=lax" in header
    assert "path=/" in header
    assert "secure" not in header  # public_url is http here
    assert "domain=" not in header
    assert len(header) < 4096


async def test_cookies_are_secure_and_host_prefixed_on_https(start_server, new_client):
    # Served on loopback, published at an https origin: cookie attributes follow public_url.
    # (A sandbox behind a public origin must be asked for explicitly.)
    https = await start_server({"server": {"public_url": "https://login.example.com"},
                                "wechat": {"sandbox_allow_public": True}})
    client = new_client()
    response = await client.get(https.url + "/login")

    header = next(h for h in response.headers.get_list("set-cookie") if "wxstate=" in h)
    assert header.startswith("__Host-wxstate=")
    assert "secure" in header.lower() and "path=/" in header.lower()


async def test_session_payload_holds_only_the_allowed_claims(server, client, flows):
    await flows.login(client, "zhangsan")

    claims = signed_claims(client.cookies["wxsid"])
    assert set(claims) == {"uid", "sid", "sv", "iat", "wat"}  # wat: when WeChat signed it in (just now)


def _flip_in_signature(value: str) -> str:
    # Not the last character: its low base64 bits are spare, so changing only them changes nothing.
    i = len(value) - 6
    return value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1:]


@pytest.mark.parametrize("tamper", [
    _flip_in_signature,
    lambda v: v[: len(v) // 2],
    lambda v: "deleted",
    lambda v: "",
    lambda v: v + "." + v,
    lambda v: "x" * 5000,
])
async def test_tampered_session_cookie_means_anonymous(server, client, flows, tamper):
    await flows.login(client, "zhangsan")
    client.cookies.set("wxsid", tamper(client.cookies["wxsid"]))

    response = await client.get(server.url + "/account")

    assert response.status_code == 302
    assert location_path(response, server.url).startswith("/login")


async def test_session_with_changed_user_id_is_refused(server, new_client, flows):
    a, b = new_client(), new_client()
    await flows.login(a, "zhangsan")
    await flows.login(b, "panda")
    value = a.cookies["wxsid"]
    claims = signed_claims(value)
    claims["uid"] += 1
    a.cookies.set("wxsid", forged(value, claims))

    assert not await signed_in(a, server)


async def test_cookie_signed_under_another_salt_is_refused(server, client, flows):
    await flows.login(client, "zhangsan")
    signing = Signing([k.value for k in server.settings.server.secret_keys])
    claims = signed_claims(client.cookies["wxsid"])
    client.cookies.set("wxsid", signing.dump_api_token(claims))

    assert not await signed_in(client, server)


async def test_session_older_than_absolute_lifetime_is_refused(start_server, new_client):
    handle = await start_server({"server": {"session_max_age": 60}})
    client = new_client()
    await Flows(handle).login(client, "zhangsan")
    signing = Signing([k.value for k in handle.settings.server.secret_keys])
    claims = signed_claims(client.cookies["wxsid"])
    claims["iat"] = int(time.time()) - 61
    client.cookies.set("wxsid", signing.dump_session(claims))

    assert (await client.get(handle.url + "/account")).status_code == 302


async def test_new_login_replaces_the_previous_session(server, client, flows):
    await flows.login(client, "zhangsan")
    old = client.cookies["wxsid"]

    await flows.login(client, "panda")
    new = client.cookies["wxsid"]

    assert new != old
    client.cookies.set("wxsid", old)
    assert not await signed_in(client, server)  # fixation: the old session is dead


async def test_logout_ends_the_session_and_replay_fails(server, client, flows):
    await flows.login(client, "zhangsan")
    cookie = client.cookies["wxsid"]
    xsrf = await page_xsrf(client, server.url + "/account")

    response = await client.post(server.url + "/logout", data={"_xsrf": xsrf})

    assert response.status_code == 302
    assert 'wxsid=""' in response.headers["set-cookie"] or "wxsid=;" in response.headers["set-cookie"]
    client.cookies.set("wxsid", cookie)
    assert not await signed_in(client, server)


async def test_logout_without_xsrf_token_is_refused(server, client, flows):
    await flows.login(client, "zhangsan")

    response = await client.post(server.url + "/logout", data={})
    forged = await client.post(server.url + "/logout", data={"_xsrf": "a" * 64})

    assert response.status_code == 403
    assert forged.status_code == 403
    assert await signed_in(client, server)


async def test_cross_site_get_logout_changes_nothing(server, client, flows):
    await flows.login(client, "zhangsan")

    response = await client.get(server.url + "/logout")

    assert response.status_code == 405
    assert await signed_in(client, server)


async def test_logout_everywhere_ends_other_devices(server, new_client, flows):
    phone, laptop = new_client(), new_client()
    await flows.login(phone, "zhangsan")
    await flows.login(laptop, "zhangsan")
    xsrf = await page_xsrf(laptop, server.url + "/account")

    await laptop.post(server.url + "/logout", data={"_xsrf": xsrf, "everywhere": "1", "confirm": "1"})

    assert not await signed_in(phone, server)


async def test_logout_of_one_device_keeps_the_other(server, new_client, flows):
    phone, laptop = new_client(), new_client()
    await flows.login(phone, "zhangsan")
    await flows.login(laptop, "zhangsan")
    xsrf = await page_xsrf(laptop, server.url + "/account")

    await laptop.post(server.url + "/logout", data={"_xsrf": xsrf})

    assert await signed_in(phone, server)
    assert not await signed_in(laptop, server)


async def test_key_rotation_keeps_old_sessions_until_the_key_is_removed(start_server, new_client):
    base = {"wechat": {"sandbox": True}}
    old = await start_server(base, env={"WXLOGIN_SERVER_SECRET_KEYS": "k1-dev-insecure-000000000000000000001"})
    client = new_client()
    await Flows(old).login(client, "zhangsan")
    cookie = client.cookies["wxsid"]

    rotated = await start_server(base, env={
        "WXLOGIN_SERVER_SECRET_KEYS": "k1-dev-insecure-000000000000000000001,k2-dev-insecure-000000000000000000002"})
    retired = await start_server(base, env={"WXLOGIN_SERVER_SECRET_KEYS": "k2-dev-insecure-000000000000000000002"})

    for handle, expected in ((rotated, 200), (retired, 302)):
        probe = new_client()
        probe.cookies.set("wxsid", cookie)
        assert (await probe.get(handle.url + "/account")).status_code == expected
    # New sessions are signed by the newest key: the k2-only server accepts them.
    fresh = new_client()
    await Flows(rotated).login(fresh, "zhangsan")
    probe = new_client()
    probe.cookies.set("wxsid", fresh.cookies["wxsid"])
    assert (await probe.get(retired.url + "/account")).status_code == 200


async def test_disabled_user_is_signed_out(server, client, flows, sql):
    await flows.login(client, "zhangsan")

    await sql("UPDATE users SET disabled = 1")

    assert not await signed_in(client, server)


async def test_signing_in_rotates_the_xsrf_token(server, client, flows):
    # Checklist item 28: a token read or planted before the login must not serve the new session.
    url = await flows.qr_callback_url(client, "zhangsan", "/account")  # the QR page set an XSRF cookie
    before = _xsrf_secret(client.cookies["_xsrf"])
    callback = await client.get(url)
    assert callback.status_code == 302
    cleared = [h for h in callback.headers.get_list("set-cookie") if h.startswith("_xsrf=")]
    assert cleared and "expires=" in cleared[0].lower()
    client.cookies.delete("_xsrf")  # httpx keeps an expired cookie; a browser drops it
    after = await page_xsrf(client, server.url + "/account")
    assert _xsrf_secret(client.cookies["_xsrf"]) != before
    assert (await client.post(server.url + "/logout", data={"_xsrf": after})).status_code == 302


def _xsrf_secret(cookie: str) -> bytes:
    """The token inside Tornado's v2 XSRF cookie ("2|mask|masked|time"), without its random mask."""
    _, mask, masked, _ = cookie.strip('"').split("|")
    return bytes(a ^ b for a, b in zip(bytes.fromhex(mask), bytes.fromhex(masked), strict=False))
