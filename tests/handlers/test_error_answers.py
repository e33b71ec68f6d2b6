"""Both dialects answer from the one error table, over real HTTP: statuses, codes and headers (issue 11)."""

from __future__ import annotations

import re


def page_code(response):
    match = re.search(r'data-error-code="([^"]+)"', response.text)
    return match.group(1) if match else None


async def test_wechat_quota_page_sends_retry_after_like_the_api(server, client, flows):
    response = await flows.login(client, "quota1")  # the sandbox answers 45011 for this person

    assert (response.status_code, page_code(response)) == (429, "wechat_rate_limited")
    assert response.headers["retry-after"] == "60"  # from the error, as the API sends it
    assert "www-authenticate" not in response.headers


async def test_bad_code_page_is_400_and_api_is_401_with_a_login_challenge(server, client, flows):
    url = await flows.qr_callback_url(client, "zhangsan")
    state = re.search(r"state=([^&]+)", url).group(1)
    page = await client.get(f"{server.url}/auth/wechat/callback/web", params={"code": "sbNOTAREAL", "state": state})
    api = await client.post(f"{server.url}/api/miniprogram/login", json={"code": "sbNOTAREAL"})

    assert (page.status_code, page_code(page)) == (400, "code_invalid")
    assert "www-authenticate" not in page.headers
    assert (api.status_code, api.json()["error"]) == (401, "code_invalid")
    # A refused code is not a bearer token: the challenge names no token error (RFC 6750 section 3.1).
    assert api.headers["www-authenticate"] == 'Bearer realm="wxlogin"'


async def test_refused_token_challenge_names_invalid_token(server, client):
    response = await client.get(f"{server.url}/api/me", headers={"Authorization": "Bearer nope"})

    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer realm="wxlogin", error="invalid_token"'


async def test_served_openapi_enum_is_the_table(server, client):
    from wxlogin.handlers.errors import api_codes

    doc = (await client.get(f"{server.url}/api/openapi.json")).json()

    assert doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"] == api_codes()
    login = doc["paths"]["/api/miniprogram/login"]["post"]["responses"]
    assert "`wechat_timeout`" in login["504"]["description"] and "`code_invalid`" in login["401"]["description"]


async def test_english_error_pages_come_from_the_same_rows(server, client):
    domain = await client.get(f"{server.url}/auth/wechat/callback/web?lang=en")  # BadRequest: no state
    bare = await client.get(f"{server.url}/logout?lang=en")  # POST only: Tornado's own 405

    # Issue 15: plain titles that say what to do next ("Invalid request" and "Method not allowed" were jargon).
    assert (domain.status_code, page_code(domain)) == (400, "bad_request") and "This address is wrong" in domain.text
    assert (bare.status_code, page_code(bare)) == (405, "http_405") and "cannot be opened this way" in bare.text
