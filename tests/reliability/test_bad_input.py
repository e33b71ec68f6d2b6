"""The bad-input lists of ../shared/security.md part 4, sent to the real server process.

Each entry must give a 4xx (or an entry marked accepted), no stack trace, SQL or secret in the body,
no session or token, no account row, and no WeChat call when the state or the auth check fails first.
The last test proves the server still logs people in afterwards.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from harness.figures import FIGURES
from harness.rawhttp import raw_request
from harness.serverproc import PUSH_AES_KEY, SECRET_MARKER
from harness.web import assert_clean_body, counted_client, session_set, start_web_login, web_callback
from helpers import (
    BAD_FORWARDS,
    BAD_JSON_BODIES,
    BAD_NICKNAMES,
    BAD_PUSHES,
    BAD_RETURN_TARGETS,
    BAD_SCENES,
    BAD_UPLOADS,
    PUSH_OPENID,
    QR_LOGIN_STEPS,
    bad_forward,
    bad_push,
    bad_upload,
    forged,
    forward_signature,
    insert_scene,
    signed_claims,
)
from wxlogin.sandbox import push as wechat_push

JSON = "application/json"
LEAKS = (SECRET_MARKER, "SKMARK", "U0tNQVJL", PUSH_AES_KEY)
SESSION_KEY = base64.b64decode("U0tNQVJLU0tNQVJLU0tNQQ==")  # what the stand-in's jscode2session hands out
MP_APPID = "wxa0b1c2d3e4f50004"


def ok_code(person: str = "bad") -> str:
    return f"ok.{person}{secrets.token_hex(3)}.{secrets.token_hex(4)}"


def rejected(response: httpx.Response, allowed: tuple[int, ...] = (400, 401, 403, 404, 405, 409, 413, 414,
                                                                     415, 429, 431)) -> None:
    FIGURES.bad_inputs_tried += 1
    assert response.status_code in allowed, (response.status_code, response.text[:200])
    assert not session_set(response)
    assert_clean_body(response, LEAKS)
    if response.headers.get("content-type", "").startswith("application/json"):
        assert "token" not in response.json()


@pytest.fixture
async def no_account_rows(rel_sql):
    query = "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM user_login_methods)"
    before = await rel_sql(query)
    yield
    assert await rel_sql(query) == before, "a bad input wrote account rows"


# ---- 4.A callback query ------------------------------------------------------------------------------

CALLBACK_QUERIES = {
    "no parameters": "",
    "only code": "code={code}",
    "empty code": "code=&state={state}",
    "empty state": "code={code}&state=",
    "two codes": "code={code}&code=b&state={state}",
    "two states": "code={code}&state={state}&state={state}",
    "code[] array": "code[]={code}&state={state}",
    "code 257": "code=" + "a" * 257 + "&state={state}",
    "code 8 KB": "code=" + "a" * 8192 + "&state={state}",
    "NUL in code": "code=abc%00&state={state}",
    "CRLF in code": "code=abc%0d%0aSet-Cookie:x=y&state={state}",
    "invalid UTF-8": "code=%ff%fe&state={state}",
    "CJK code": "code=%E4%BB%A3%E7%A0%81&state={state}",
    "spaces": "code=a+b%20c&state={state}",
    "other browser's state": "code={code}&state={other_state}",
    "altered state": "code={code}&state={altered}",
    "truncated state": "code={code}&state={truncated}",
    "flipped last char": "code={code}&state={flipped}",
    "appended junk": "code={code}&state={state}https://i.maxthon.cn",
    "129+ bytes": "code={code}&state={state}{state}",
    "non-alphanumeric": "code={code}&state={state}.-_",
    "None": "code={code}&state=None",
    "null": "code={code}&state=null",
    "undefined": "code={code}&state=undefined",
    "zero": "code={code}&state=0",
    "padding": "code={code}&state={state}%3D%3D",
    "double-encoded": "code={code}&state=%2525{state}",
}


@pytest.mark.parametrize("name", list(CALLBACK_QUERIES))
async def test_callback_query(name, wx_server, fake_wechat, no_account_rows):
    async with counted_client() as client, counted_client() as other:
        state = await start_web_login(client, wx_server.url)
        other_state = await start_web_login(other, wx_server.url)
        code = ok_code()
        flipped = state[:-1] + ("0" if state[-1] != "0" else "1")
        query = CALLBACK_QUERIES[name].format(code=code, state=state, other_state=other_state, altered="f" + state[1:],
                                              truncated=state[:-1], flipped=flipped)
        calls = len(fake_wechat.calls)
        response = await client.get(f"{wx_server.url}/auth/wechat/callback/web?{query}")
        if name == "code[] array":  # an unknown parameter is ignored: what is left is a denial (accepted)
            assert "取消" in response.text
            rejected(response, (200,))
        else:
            rejected(response)
        assert len(fake_wechat.calls) == calls, "WeChat was called for a request that should fail first"


async def test_callback_query_of_a_megabyte_is_refused(wx_server):
    status, reply = await raw_request(wx_server.url, b"GET /auth/wechat/callback/web?code=" + b"a" * (1 << 20) +
                                      b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    FIGURES.bad_inputs_tried += 1
    assert status in (400, 414, 431, None) and b"Traceback" not in reply


@pytest.mark.parametrize("code", ['"abc"', "'", "<script>", "abc&appid=wxEVIL&secret=x", "abc#x", "abc+def"])
async def test_odd_printable_codes_reach_wechat_literally_once(code, wx_server, fake_wechat, no_account_rows):
    async with counted_client() as client:
        state = await start_web_login(client, wx_server.url)
        response = await web_callback(client, wx_server.url, code, state)
    rejected(response)
    assert fake_wechat.calls_for(code) == 1
    call = [c for c in fake_wechat.calls if code in c.params.get("code", [])][-1]
    assert call.params["code"] == [code] and call.params["appid"] == ["wxa0b1c2d3e4f50001"]
    assert call.params["secret"] == [f"{SECRET_MARKER}-web-secret"]


async def test_denial_and_error_returns_are_the_cancel_page(wx_server, fake_wechat):
    async with counted_client() as client:
        for extra in ("", "&error=access_denied"):
            state = await start_web_login(client, wx_server.url)
            calls = len(fake_wechat.calls)
            response = await client.get(f"{wx_server.url}/auth/wechat/callback/web?state={state}{extra}")
            FIGURES.bad_inputs_tried += 1
            assert response.status_code == 200 and "取消" in response.text
            assert not session_set(response) and len(fake_wechat.calls) == calls


async def test_random_and_replayed_codes(wx_server, fake_wechat):
    async with counted_client() as client:
        state = await start_web_login(client, wx_server.url)
        random_code = secrets.token_hex(16)
        response = await web_callback(client, wx_server.url, random_code, state)
        rejected(response)
        assert fake_wechat.calls_for(random_code) == 1
        code = ok_code()
        state = await start_web_login(client, wx_server.url)
        assert (await web_callback(client, wx_server.url, code, state)).status_code == 302
    async with counted_client() as thief:
        state = await start_web_login(thief, wx_server.url)
        rejected(await web_callback(thief, wx_server.url, code, state))  # 40163 from WeChat
    assert fake_wechat.calls_for(code) == 2


async def test_extra_parameters_are_ignored(wx_server, fake_wechat):
    async with counted_client() as client:
        state = await start_web_login(client, wx_server.url, "/account")
        code = ok_code()
        extras = {"redirect_uri": "https://evil.example/", "return_url": "https://evil.example", "appid": "wxEVIL",
                  "openid": "victim", "unionid": "victim"}
        tampered = await client.get(f"{wx_server.url}/auth/wechat/callback/web",
                                    params={"code": code, "state": state, "next": "//evil.com"})
        rejected(tampered)  # the return target is part of the signed state: changing it breaks the state
        state = await start_web_login(client, wx_server.url, "/account")
        response = await client.get(f"{wx_server.url}/auth/wechat/callback/web",
                                    params={"next": "/account", "code": code, "state": state, **extras})
    assert response.status_code == 302 and response.headers["location"] == "/account"
    assert session_set(response)
    call = next(c for c in fake_wechat.calls if code in c.params.get("code", []))
    assert call.params["appid"] == ["wxa0b1c2d3e4f50001"]


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_the_callback(method, wx_server, fake_wechat, no_account_rows):
    async with counted_client() as client:
        state = await start_web_login(client, wx_server.url)
        calls = len(fake_wechat.calls)
        response = await client.request(method, f"{wx_server.url}/auth/wechat/callback/web",
                                        params={"code": ok_code(), "state": state},
                                        headers={"X-HTTP-Method-Override": "GET"})
    rejected(response)
    assert len(fake_wechat.calls) == calls


# ---- 4.B return targets -----------------------------------------------------------------------------

@pytest.mark.parametrize("target", BAD_RETURN_TARGETS, ids=range(len(BAD_RETURN_TARGETS)))
async def test_return_target_ends_on_our_origin(target, wx_server):
    async with counted_client() as client:
        start = await client.get(f"{wx_server.url}/auth/wechat/web", params={"next": target})
        FIGURES.bad_inputs_tried += 1
        assert start.status_code == 302
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        done = await web_callback(client, wx_server.url, ok_code(), state)
    assert done.status_code == 302
    location = done.headers["location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert location in ("/", "/account") or location == target, location
    assert "\r" not in location and "\n" not in location


# ---- 4.C JSON login bodies ------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["/api/miniprogram/login", "/api/app/login"])
@pytest.mark.parametrize("name", list(BAD_JSON_BODIES))
async def test_json_login_bodies(name, endpoint, wx_server, fake_wechat, no_account_rows):
    body, content_type, _ = BAD_JSON_BODIES[name]
    calls = len(fake_wechat.calls)
    async with counted_client() as client:
        response = await client.post(wx_server.url + endpoint, content=body, headers={"Content-Type": content_type})
    rejected(response)
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["error"], str)
    assert len(fake_wechat.calls) == calls


FRAMING = {
    "CL larger than body": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n{}",
    "CL +10": (b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: +10\r\n\r\n"),
    "CL 0x10": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
    "CL 1_0": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\n",
    "TE + CL": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
               b"0\r\n\r\n",
    "TE chunked, chunked": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                           b"0\r\n\r\n",
    "two TE headers": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE xchunked": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "gzip bomb": None,  # built below
    "10 MB body": b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 10485760\r\n\r\n" + b"a" * 65536,
    "NUL in a header": b"GET /api/me HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "70 KB header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    "100 headers of 1 KB": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1024)
                                                                      for i in range(100)) + b"\r\n",
    "cookie bomb pairs": b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a=b;" * 10000 + b"\r\n\r\n",
    "cookie of quotes": b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b'"' * 10000 + b"\r\n\r\n",
}


def _gzip_bomb() -> bytes:
    import gzip

    blob = gzip.compress(b'{"code":"' + b"a" * (20 << 20) + b'"}')
    return (b"POST /api/app/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(blob)) + blob


@pytest.mark.parametrize("name", list(FRAMING))
async def test_framing_and_header_abuse(name, wx_server):
    data = FRAMING[name] or _gzip_bomb()
    status, reply = await raw_request(wx_server.url, data, half_close=name == "CL larger than body")
    FIGURES.bad_inputs_tried += 1
    assert b"Traceback" not in reply and SECRET_MARKER.encode() not in reply
    if name == "cookie of quotes":
        assert status in (200, 400), status  # parsed quickly (Tornado >= 6.4.2) and harmless
    elif name in ("CL larger than body",):
        assert status in (400, None)  # the body never arrives: closed, never a hang
    elif name in ("70 KB header", "100 headers of 1 KB", "cookie bomb pairs"):
        # Past max_header_size (16 KiB) Tornado drops the connection without an answer (nginx in front
        # answers 400/494 first); what matters is that it is refused at once and nothing else suffers.
        assert status in (400, 431, None), status
    else:
        assert status is not None and 400 <= status < 500, (status, reply[:200])


# ---- 4.D encrypted data -----------------------------------------------------------------------------

def _seal(payload: bytes, iv: bytes = b"\x02" * 16) -> dict[str, str]:
    blob = AES.new(SESSION_KEY, AES.MODE_CBC, iv=iv).encrypt(pad(payload, 16))
    return {"encryptedData": base64.b64encode(blob).decode(), "iv": base64.b64encode(iv).decode()}


def _valid_profile(**watermark) -> bytes:
    import time

    mark = {"appid": MP_APPID, "timestamp": int(time.time()), **watermark}
    return json.dumps({"openId": "o", "nickName": "n", "watermark": mark}).encode()


ENCRYPTED = {
    "missing both": {},
    "missing iv": {"encryptedData": "AAAA"},
    "empty strings": {"encryptedData": "", "iv": ""},
    "null": {"encryptedData": None, "iv": None},
    "numbers": {"encryptedData": 1, "iv": 2},
    "not base64": {"encryptedData": "!!!!", "iv": "!!!!"},
    "spaces": {**_seal(b"{}"), "iv": "AQID BAUG BwgJ CgsM DQ4P EA=="},
    "url-safe alphabet": {"encryptedData": "-_-_" * 8, "iv": "AAAAAAAAAAAAAAAAAAAA-_=="},
    "1 MB": {"encryptedData": "A" * (1 << 20), "iv": "AAAAAAAAAAAAAAAAAAAAAA=="},
    **{f"iv {n} bytes": {**_seal(b"{}"), "iv": base64.b64encode(b"\x01" * n).decode()} for n in (0, 8, 15, 17, 32)},
    **{f"ciphertext {n} bytes": {"encryptedData": base64.b64encode(b"\x01" * n).decode(),
                                 "iv": base64.b64encode(b"\x01" * 16).decode()} for n in (0, 15, 16, 17, 8208)},
    "garbage plaintext": _seal(b"\xff\xfe\xfd"),
    "not JSON": _seal("不是 JSON".encode()),
    "JSON array": _seal(b"[1,2]"),
    "no watermark": _seal(b'{"openId":"o"}'),
    "other app's watermark": _seal(_valid_profile(appid="wxOTHER0000000000")),
    "a day old": _seal(_valid_profile(timestamp=1)),
    "an hour ahead": _seal(_valid_profile(timestamp=2**31)),
}


@pytest.fixture
async def mp_token(wx_server) -> str:
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/api/miniprogram/login", json={"code": ok_code("enc")})
    assert response.status_code == 200
    return response.json()["token"]


@pytest.mark.parametrize("name", list(ENCRYPTED))
async def test_encrypted_data(name, wx_server, mp_token):
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/api/miniprogram/profile", json=ENCRYPTED[name],
                                     headers={"Authorization": f"Bearer {mp_token}"})
    rejected(response, (400, 413))
    assert response.json()["error"] in ("encrypted_data_invalid", "bad_request", "body_too_large")


async def test_encrypted_data_without_a_miniprogram_login_is_401(wx_server):
    async with counted_client() as client:
        app = await client.post(f"{wx_server.url}/api/app/login", json={"code": ok_code("apponly")})
        response = await client.post(f"{wx_server.url}/api/miniprogram/profile", json=_seal(_valid_profile()),
                                     headers={"Authorization": f"Bearer {app.json()['token']}"})
    rejected(response, (400, 401, 403))


# ---- security.md part 6: phone numbers (issue 13) -----------------------------------------------------------

PHONE_CALLS = ("/wxa/business/getuserphonenumber", "/cgi-bin/stable_token")


@pytest.fixture
async def no_phone_rows(rel_sql):
    yield
    assert await rel_sql("SELECT COUNT(*) FROM user_phones") == [(0,)], "a bad input bound a phone number"


@pytest.mark.parametrize("name", list(BAD_JSON_BODIES))
async def test_phone_bodies(name, wx_server, fake_wechat, mp_token, no_phone_rows, no_account_rows):
    body, content_type, _ = BAD_JSON_BODIES[name]
    calls = sum(1 for c in fake_wechat.calls if c.path in PHONE_CALLS)
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/api/miniprogram/phone", content=body,
                                     headers={"Content-Type": content_type, "Authorization": f"Bearer {mp_token}"})
    rejected(response)
    assert response.json()["error"] in ("bad_request", "unsupported_media_type", "body_too_large")
    assert sum(1 for c in fake_wechat.calls if c.path in PHONE_CALLS) == calls, "a bad body reached WeChat"


async def test_phone_codes_reused_lost_or_failed_reach_wechat_once(wx_server, fake_wechat, mp_token, rel_sql):
    """A used code is answered from MySQL, and a call whose answer was lost (the connection closed without a
    byte) or that failed is never made again: each success costs money, and a lost answer may have been one."""
    auth = {"Authorization": f"Bearer {mp_token}"}
    good, lost, busy = ok_code("phone"), f"noreply.phone.{secrets.token_hex(4)}", f"e-1.phone.{secrets.token_hex(4)}"
    async with counted_client() as client:
        answers = {code: [await client.post(f"{wx_server.url}/api/miniprogram/phone", json={"code": code},
                                            headers=auth) for _ in range(2)] for code in (good, lost, busy)}
    FIGURES.bad_inputs_tried += 4
    first, again = answers[good]
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert [a.status_code for a in answers[lost]] == [502, 400]
    assert [a.status_code for a in answers[busy]] == [503, 400]
    assert answers[lost][1].json()["error"] == answers[busy][1].json()["error"] == "phone_code_invalid"
    assert [fake_wechat.phone_calls_for(code) for code in (good, lost, busy)] == [1, 1, 1]
    assert await rel_sql("SELECT COUNT(*) FROM user_phones") == [(1,)]
    await rel_sql("DELETE FROM user_phones")


# ---- 4.E cookies, 4.F headers -------------------------------------------------------------------------

SESSION_COOKIES = ["", "deleted", base64.b64encode(secrets.token_bytes(40)).decode(), "a.b.c", '"quoted"',
                   "\u4f1a\u8bdd", "x;y", "x,y", "A" * 4000]


@pytest.mark.parametrize("value", SESSION_COOKIES, ids=range(len(SESSION_COOKIES)))
async def test_bad_session_cookies_mean_signed_out(value, wx_server):
    async with counted_client() as client:
        response = await client.get(f"{wx_server.url}/account",
                                    headers={"Cookie": f"wxsid={value}".encode()})
    FIGURES.bad_inputs_tried += 1
    assert response.status_code in (302, 400) and b"Traceback" not in response.content


def _with_other_uid(value: str) -> str:
    claims = signed_claims(value)  # compressed or not
    claims["uid"] += 1
    return forged(value, claims)


async def test_tampered_and_duplicated_session_cookies(wx_server):
    async with counted_client() as client:
        state = await start_web_login(client, wx_server.url)
        login = await web_callback(client, wx_server.url, ok_code("cookie"), state)
        good = login.cookies["wxsid"]
    flip = len(good) - 6  # inside the signature, clear of base64's spare bits in the last character
    variants = [good[:-1], good[:flip] + ("A" if good[flip] != "A" else "B") + good[flip + 1:],
                _with_other_uid(good),
                f"{good}; wxsid=x"]
    async with counted_client() as client:
        for value in variants:
            response = await client.get(f"{wx_server.url}/account", headers={"Cookie": f"wxsid={value}"})
            FIGURES.bad_inputs_tried += 1
            assert response.status_code in (302, 400), value
        ok = await client.get(f"{wx_server.url}/account", headers={"Cookie": f"wxsid={good}"})
    assert ok.status_code == 200, "the untampered cookie still works"


XSRF_CASES = {"no cookie, no token": ({}, None), "token missing": ({"_xsrf": "2|aa|bb|cc"}, None),
              "16 chars": ({}, "a" * 16), "64 stars": ({}, "*" * 64), "64 a": ({}, "a" * 64)}


@pytest.mark.parametrize("name", list(XSRF_CASES))
@pytest.mark.parametrize("where", ["form", "X-XSRFToken", "X-CSRFToken"])
async def test_xsrf_matrix_on_logout(name, where, wx_server):
    cookies, token = XSRF_CASES[name]
    headers, data = {}, {}
    if token is not None:
        if where == "form":
            data["_xsrf"] = token
        else:
            headers[where] = token
    async with counted_client(cookies=cookies) as client:
        response = await client.post(f"{wx_server.url}/logout", data=data, headers=headers)
    rejected(response, (403,))


AUTHORIZATIONS = ["", "Bearer", "Bearer    x", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 8192, "Bearer a\tb",
                  "Bearer abc.def.ghi"]


@pytest.mark.parametrize("value", AUTHORIZATIONS, ids=range(len(AUTHORIZATIONS)))
async def test_bad_authorization_headers(value, wx_server):
    async with counted_client() as client:
        response = await client.get(f"{wx_server.url}/api/me", headers={"Authorization": value} if value else {})
    rejected(response, (400, 401, 431))
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_two_authorization_headers_and_query_tokens(wx_server, mp_token):
    async with counted_client() as client:
        two = await client.get(f"{wx_server.url}/api/me",
                               headers=[("Authorization", f"Bearer {mp_token}"), ("Authorization", "Bearer x")])
        query = await client.get(f"{wx_server.url}/api/me", params={"access_token": mp_token})
        html = await client.get(f"{wx_server.url}/api/me", headers={"Accept": "text/html"})
    rejected(two, (400, 401))
    rejected(query, (401,))
    rejected(html, (401,))
    assert html.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:8443@evil", "[::1]", "h" * 1000])
async def test_host_header_never_reaches_redirect_uri(host, wx_server):
    async with counted_client() as client:
        response = await client.get(f"{wx_server.url}/auth/wechat/web", headers={"Host": host})
    FIGURES.bad_inputs_tried += 1
    assert response.status_code in (302, 400, 404)
    if response.status_code == 302:
        redirect_uri = parse_qs(urlsplit(response.headers["location"]).query)["redirect_uri"][0]
        assert redirect_uri.startswith(wx_server.url + "/")


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
async def test_cross_site_posts_are_refused(origin, wx_server):
    async with counted_client() as client:
        page = await client.get(f"{wx_server.url}/login")
        xsrf = client.cookies.get("_xsrf")
        response = await client.post(f"{wx_server.url}/logout", data={"_xsrf": xsrf},
                                     headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200
    rejected(response, (403,))


# ---- security.md part 6: event pushes ---------------------------------------------------------------------

PUSH_APPID = "wxa0b1c2d3e4f50002"
PUSH_TOKEN = f"{SECRET_MARKER}mp"


@pytest.fixture
async def no_push_rows(rel_sql):
    yield
    assert await rel_sql("SELECT COUNT(*) FROM wechat_pushes") == [(0,)], "a bad push was taken"


@pytest.mark.parametrize("name", list(BAD_PUSHES))
async def test_push_bodies(name, wx_server, no_push_rows, no_account_rows):
    query, body, status = bad_push(name, PUSH_TOKEN, PUSH_AES_KEY, PUSH_APPID)
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/wechat/push/mp", params=query, content=body,
                                     headers={"Content-Type": "text/xml"})
    rejected(response, (status,))
    assert response.content == b""


PUSH_QUERIES = {
    "no parameters": {},
    "signature upper case": {"signature": "F" * 40},
    "timestamp not a number": {"timestamp": "now"},
    "timestamp an hour old": {"timestamp": str(int(time.time()) - 3600)},
    "nonce with a space": {"nonce": "1 2"},
    "echostr 8 KB": {"echostr": "1" * 8192},
    "echostr with CRLF": {"echostr": "1\r\nSet-Cookie: x=y"},
}


@pytest.mark.parametrize("name", list(PUSH_QUERIES))
async def test_push_url_checks(name, wx_server):
    timestamp, nonce = str(int(time.time())), "12345"
    query = {"timestamp": timestamp, "nonce": nonce, "echostr": "e1", **PUSH_QUERIES[name]}
    if name != "no parameters" and "signature" not in PUSH_QUERIES[name]:
        query["signature"] = wechat_push.sign(PUSH_TOKEN, query["timestamp"], query["nonce"])
    async with counted_client() as client:
        response = await client.get(f"{wx_server.url}/wechat/push/mp", params=query)
    rejected(response, (400, 403))
    assert response.content == b""


async def test_a_duplicate_push_is_taken_once_and_unknown_events_are_acknowledged(wx_server, rel_sql):
    await rel_sql("DELETE FROM wechat_pushes")
    created = int(time.time())
    message = wechat_push.event_fields(PUSH_APPID, PUSH_OPENID, "subscribe", create_time=created)
    unknown = wechat_push.event_fields(PUSH_APPID, PUSH_OPENID, "NOT_A_WECHAT_EVENT", create_time=created)
    async with counted_client() as client:
        answers = []
        for fields, fmt in ((message, "xml"), (message, "xml"), (message, "json"), (unknown, "xml")):
            push = wechat_push.signed_push(PUSH_TOKEN, PUSH_AES_KEY, PUSH_APPID, fields, "safe", fmt)
            answers.append(await client.post(f"{wx_server.url}/wechat/push/mp", params=push.query,
                                             content=push.body))
        FIGURES.bad_inputs_tried += 3
    # A JSON body where XML is the console's format is read alike (both are WeChat's), so it is a retry too.
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 4
    assert await rel_sql("SELECT COUNT(*) FROM wechat_pushes") == [(1,)]
    await rel_sql("DELETE FROM wechat_pushes")



# ---- issue 14: scan events forwarded by another system (POST /wechat/forward/mp) --------------------------

FORWARD_SECRET = f"{SECRET_MARKER}-forward-secret-0123456789abcdef"


@pytest.fixture(scope="module")
async def forward_server(make_server):
    """A process whose official account's server URL belongs to another system, which forwards to us."""
    server = await make_server({"wechat": {"mp": {"follow_login": True, "forward_secret": FORWARD_SECRET}}}).start()
    yield server
    await server.stop()


@pytest.mark.parametrize("name", list(BAD_FORWARDS))
async def test_forwarded_events(name, forward_server, fake_wechat, rel_sql, no_push_rows, no_account_rows):
    scene = await insert_scene(rel_sql, kind="follow")  # each event names it: a forgery must not move it
    headers, body, status = bad_forward(name, FORWARD_SECRET, PUSH_APPID, "login_" + scene)
    calls = len(fake_wechat.calls)
    async with counted_client() as client:
        response = await client.post(f"{forward_server.url}/wechat/forward/mp", content=body, headers=headers)
    rejected(response, (status,))
    assert response.content == b""
    assert len(fake_wechat.calls) == calls, "a bad forward reached WeChat (user/info)"
    assert await rel_sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene) == [("waiting", None)]
    assert "Traceback" not in forward_server.log()


async def test_a_well_signed_forward_is_taken_once(forward_server, rel_sql):
    """The control for the list above: the same request, signed right, reaches the push handler."""
    await rel_sql("DELETE FROM wechat_pushes")
    headers, body, _ = bad_forward("wrong secret", FORWARD_SECRET, PUSH_APPID, "not_a_login_code")
    headers = [h for h in headers if h[0] != "X-WxLogin-Signature"]
    stamp = dict(headers)["X-WxLogin-Timestamp"]
    headers.append(("X-WxLogin-Signature", forward_signature(FORWARD_SECRET, stamp, body)))
    async with counted_client() as client:
        answers = [await client.post(f"{forward_server.url}/wechat/forward/mp", content=body, headers=headers)
                   for _ in range(2)]
    FIGURES.bad_inputs_tried += 1
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 2
    assert await rel_sql("SELECT COUNT(*) FROM wechat_pushes") == [(1,)]  # a repeat is handled once
    await rel_sql("DELETE FROM wechat_pushes")

# ---- profile fill-in (issue 13): nicknames and avatar uploads, refused before WeChat or MySQL -----------------

@pytest.fixture
async def no_avatar_rows(rel_sql):
    yield
    assert await rel_sql("SELECT (SELECT COUNT(*) FROM avatars), (SELECT COUNT(*) FROM avatar_checks)") == [(0, 0)]


@pytest.mark.parametrize("name", list(BAD_NICKNAMES))
async def test_nickname_bodies(name, wx_server, mp_token, fake_wechat, rel_sql):
    body, status, code = BAD_NICKNAMES[name]
    before = await rel_sql("SELECT id, nickname FROM users ORDER BY id")
    calls = len(fake_wechat.calls)
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/api/miniprogram/nickname", content=body,
                                     headers={"Authorization": f"Bearer {mp_token}", "Content-Type": JSON})
    rejected(response, (status,))
    assert response.json()["error"] == code
    assert len(fake_wechat.calls) == calls, "WeChat was asked to check a nickname that should fail first"
    assert await rel_sql("SELECT id, nickname FROM users ORDER BY id") == before


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
async def test_avatar_uploads(name, wx_server, mp_token, fake_wechat, no_avatar_rows):
    body, content_type = bad_upload(name)
    status, code = BAD_UPLOADS[name]
    calls = len(fake_wechat.calls)
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/api/miniprogram/avatar", content=body,
                                     headers={"Authorization": f"Bearer {mp_token}", "Content-Type": content_type})
    rejected(response, (status,))
    assert response.json()["error"] == code
    assert len(fake_wechat.calls) == calls, "WeChat was asked to check an upload that should fail first"


async def test_an_upload_over_the_servers_body_limit_is_refused_without_a_500(wx_server, mp_token):
    """20 MB (security.md part 6): past [server] max_body_size Tornado answers 400 or hangs up; never a 500."""
    head = (b"POST /api/miniprogram/avatar HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + mp_token.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 20971520\r\n\r\n")
    status, reply = await raw_request(wx_server.url, head + b"a" * 65536)
    FIGURES.bad_inputs_tried += 1
    assert status in (400, 413, None) and b"Traceback" not in reply


# ---- desktop login by mini-program code (issue 14): scene ids on the mini-program's steps ------------------

@pytest.fixture
async def live_scene(rel_sql):
    """A waiting mini-program scene; it must stay waiting, unowned, whatever the bad inputs do."""
    scene = await insert_scene(rel_sql, scene="abc" + secrets.token_hex(14)[:29])
    yield scene
    assert await rel_sql("SELECT status, user_id FROM login_scenes WHERE scene = %s", scene) == [("waiting", None)]
    assert await rel_sql("SELECT COUNT(*) FROM wxa_scenes WHERE scene = %s", scene) == [(0,)]


@pytest.mark.parametrize("step", QR_LOGIN_STEPS)
@pytest.mark.parametrize("name", list(BAD_SCENES))
async def test_scene_bodies(name, step, wx_server, fake_wechat, mp_token, live_scene):
    body, content_type, status, code = BAD_SCENES[name]
    calls = len(fake_wechat.calls)
    async with counted_client() as client:
        response = await client.post(f"{wx_server.url}/api/miniprogram/qr-login/{step}", content=body,
                                     headers={"Content-Type": content_type, "Authorization": f"Bearer {mp_token}"})
    rejected(response, (status,))
    assert response.json()["error"] == code
    assert len(fake_wechat.calls) == calls, "a scene step called WeChat"


@pytest.mark.parametrize("step", QR_LOGIN_STEPS)
async def test_unknown_expired_and_follow_scenes(step, wx_server, mp_token, live_scene, rel_sql):
    follow = await insert_scene(rel_sql, kind="follow")
    expired = await insert_scene(rel_sql, life=-1)
    cases = {secrets.token_hex(16): (404, "scene_not_found"), follow: (404, "scene_not_found"),
             expired: (410, "scene_expired")}
    async with counted_client() as client:
        for scene, (status, code) in cases.items():
            response = await client.post(f"{wx_server.url}/api/miniprogram/qr-login/{step}", json={"scene": scene},
                                         headers={"Authorization": f"Bearer {mp_token}"})
            rejected(response, (status,))
            assert response.json()["error"] == code
    assert await rel_sql("SELECT status FROM login_scenes WHERE scene IN (%s, %s)", follow, expired) == [
        ("waiting",), ("waiting",)]


# ---- afterwards ----------------------------------------------------------------------------------------

async def test_the_server_still_logs_people_in_afterwards(wx_server):
    async with counted_client() as client:
        state = await start_web_login(client, wx_server.url)
        web = await web_callback(client, wx_server.url, ok_code("after"), state)
        api = await client.post(f"{wx_server.url}/api/miniprogram/login", json={"code": ok_code("after")})
    assert web.status_code == 302 and session_set(web)
    assert api.status_code == 200 and api.json()["token"]
    assert "Traceback" not in wx_server.log()


@pytest.mark.parametrize("path", ["//evil.com/%2e%2e", "/static//evil.com", "/static/%2F%2Fevil.com", "/login/",
                                  "/account/", "//evil.com", "/%5Cevil.com", "/api//evil.com"])
async def test_no_open_redirector_anywhere(path, wx_server):
    """WeChat accepts any path on our domain as redirect_uri, so no path may redirect off-site."""
    status, reply = await raw_request(wx_server.url, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    FIGURES.bad_inputs_tried += 1
    assert status is not None and status < 500
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith((b"location:", b"refresh:")):
            target = line.split(b":", 1)[1].strip().decode()
            assert target.startswith("/") and not target.startswith(("//", "/\\")), target
