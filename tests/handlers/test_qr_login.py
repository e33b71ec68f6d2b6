"""Desktop QR login end to end: the real app, real MariaDB, the sandbox over HTTP."""

from __future__ import annotations

import httpx

from helpers import location_path


async def test_first_login_creates_account_and_lands_on_next(server, client, flows, sql):
    response = await flows.login(client, "panda", next_path="/account")

    assert response.status_code == 302
    assert location_path(response, server.url) == "/account"
    users = await sql("SELECT id, nickname, unionid FROM users")
    assert len(users) == 1
    assert users[0][1] == "🐼熊猫🎉 Panda"  # utf8mb4 end to end: emoji intact
    methods = await sql("SELECT user_id, login_method, appid, unionid FROM user_login_methods")
    assert methods == [(users[0][0], "web", server.settings.wechat.web.appid, users[0][2])]
    events = await sql("SELECT user_id, login_method, outcome FROM login_events")
    assert events == [(users[0][0], "web", "success")]

    account = await client.get(server.url + "/account")
    assert account.status_code == 200
    assert "🐼熊猫🎉 Panda" in account.text
    assert "微信扫码" in account.text and "网站扫码登录" not in account.text  # the label people know (issue 15)


async def test_second_login_of_same_person_reuses_account(server, new_client, flows, sql):
    await flows.login(new_client(), "zhangsan")
    await flows.login(new_client(), "zhangsan")

    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert await sql("SELECT COUNT(*) FROM user_login_methods") == [(1,)]
    assert await sql("SELECT outcome, COUNT(*) FROM login_events GROUP BY outcome") == [("success", 2)]


async def test_person_without_unionid_is_stored_with_null(server, client, flows, sql):
    response = await flows.login(client, "lisi")

    assert response.status_code == 302
    assert await sql("SELECT unionid FROM users") == [(None,)]
    assert await sql("SELECT unionid FROM user_login_methods") == [(None,)]
    assert await sql("SELECT COUNT(*) FROM users WHERE unionid = ''") == [(0,)]


async def test_two_people_without_unionid_stay_two_accounts(server, new_client, flows, sql):
    await flows.login(new_client(), "lisi")
    await flows.login(new_client(), "nounion-second")

    assert await sql("SELECT COUNT(*) FROM users") == [(2,)]


async def test_anonymous_account_page_redirects_to_login(server, client):
    response = await client.get(server.url + "/account")

    assert response.status_code == 302
    assert location_path(response, server.url) == "/login?next=%2Faccount"


async def test_home_knows_who_is_signed_in(server, client, flows):
    anonymous = await client.get(server.url + "/")
    assert "微信登录" in anonymous.text and "你好" not in anonymous.text

    await flows.login(client, "zhangsan")
    home = await client.get(server.url + "/")
    assert "你好，张三" in home.text


async def test_login_page_embeds_the_qr_iframe_and_binds_the_browser(server, client):
    response = await client.get(server.url + "/login", params={"next": "/account"})

    assert response.status_code == 200
    assert "/_sandbox/connect/qrconnect?appid=" in response.text
    assert "login_type=jssdk&amp;self_redirect=false" in response.text
    assert "scope=snsapi_login" in response.text
    assert "wxstate" in response.headers["set-cookie"]
    assert response.headers["cache-control"] == "no-store"


async def test_signed_in_visitor_skips_the_login_page(server, client, flows):
    await flows.login(client, "zhangsan")

    response = await client.get(server.url + "/login", params={"next": "/account"})

    assert response.status_code == 302
    assert location_path(response, server.url) == "/account"


async def test_full_page_flow_redirects_to_qrconnect_in_documented_form(server, client):
    response = await client.get(server.url + "/auth/wechat/web", params={"next": "/account"})

    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(server.settings.wechat.open_base + "/connect/qrconnect?appid=")
    assert location.endswith("#wechat_redirect")
    assert "response_type=code&scope=snsapi_login&state=" in location
    redirect_uri = httpx.URL(location.split("#")[0]).params["redirect_uri"]
    assert redirect_uri == f"{server.url}/auth/wechat/callback/web?next=/account"
