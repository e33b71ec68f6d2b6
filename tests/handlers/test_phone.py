"""Phone numbers from the mini-program (issue 13) and session-key health, over real HTTP with the real MariaDB
and the sandbox playing WeChat's getuserphonenumber / checksession. Every API answer is checked against the
served OpenAPI document (``Api`` from test_api.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time

import pytest
from test_api import Api, seal, session_key

from helpers import BAD_JSON_BODIES, Flows, page_xsrf
from wxlogin.wechat.crypto import session_key_signature

PHONE = "/api/miniprogram/phone"
ZHANGSAN = "13800138000"  # sandbox/people.py PHONES (李四 shares it)


@pytest.fixture
def api(server, client):
    return Api(server, client)


async def login(api: Api, person: str) -> str:
    response = await api.login(person)
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def phone_code(api: Api, person: str) -> str:
    """What the getPhoneNumber button hands the mini-program (the sandbox plays it)."""
    answer = await api.client.post(api.server.url + "/_sandbox/dev/phone-code", json={"person": person})
    assert answer.status_code == 200
    assert answer.json()["errMsg"] == "getPhoneNumber:ok"
    return answer.json()["code"]


async def bind(api: Api, token: str, code: str):
    return await api.request("POST", PHONE, {"code": code}, token=token)


def calls(server, code: str) -> int:
    """getuserphonenumber requests the sandbox received with this code."""
    return sum(1 for c in server.sandbox.state.phone_calls if c == code)


def billed(server) -> int:
    return server.sandbox.state.phone_billed[server.settings.wechat.miniprogram.appid]


async def audit(sql, user_id: int) -> list[str]:
    rows = await sql("SELECT outcome FROM login_events WHERE user_id = %s AND login_method = 'phone' ORDER BY id",
                     user_id)
    return [r[0] for r in rows]


# --- binding ---------------------------------------------------------------------------------------------


async def test_bind_answers_the_masked_number_and_me_reports_it(api, server, sql):
    token = await login(api, "zhangsan")
    spent = billed(server)

    response = await bind(api, token, await phone_code(api, "zhangsan"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["phone"] == {"masked": "138****8000", "country_code": "86"}
    assert body["user"]["id"] > 0
    assert ZHANGSAN not in response.text
    assert await sql("SELECT user_id, phone, country_code FROM user_phones") == [
        (body["user"]["id"], "+86" + ZHANGSAN, "86")]  # stored normalised, with its country code
    me = await api.request("GET", "/api/me", token=token)
    assert me.json()["phone"] == {"masked": "138****8000", "country_code": "86"}
    assert ZHANGSAN not in me.text
    assert await audit(sql, body["user"]["id"]) == ["phone_bound"]
    assert billed(server) == spent + 1


async def test_a_foreign_number_keeps_its_country_code(api, sql):
    token = await login(api, "panda")

    response = await bind(api, token, await phone_code(api, "panda"))

    assert response.json()["phone"] == {"masked": "+852 61****67", "country_code": "852"}
    assert await sql("SELECT phone, country_code FROM user_phones") == [("+85261234567", "852")]


async def test_me_without_a_phone_says_null(api):
    token = await login(api, "nophone1")

    me = await api.request("GET", "/api/me", token=token)

    assert me.status_code == 200 and me.json()["phone"] is None


async def test_a_new_number_replaces_the_accounts_old_one(api, server, sql):
    token = await login(api, "zhangsan")
    assert (await bind(api, token, await phone_code(api, "zhangsan"))).status_code == 200
    await sql("UPDATE user_phones SET phone = '+8613811112222'")  # the number the account had before

    again = await bind(api, token, await phone_code(api, "zhangsan"))

    assert again.status_code == 200 and again.json()["phone"]["masked"] == "138****8000"
    assert await sql("SELECT COUNT(*), MAX(phone) FROM user_phones") == [(1, "+86" + ZHANGSAN)]


async def test_unbind_through_the_api_is_audited_and_idempotent(api, sql):
    token = await login(api, "zhangsan")
    user_id = (await bind(api, token, await phone_code(api, "zhangsan"))).json()["user"]["id"]

    first = await api.request("DELETE", "/api/me/phone", token=token)
    second = await api.request("DELETE", "/api/me/phone", token=token)

    assert first.status_code == 204 and second.status_code == 204
    assert (await api.request("GET", "/api/me", token=token)).json()["phone"] is None
    assert await sql("SELECT COUNT(*) FROM user_phones") == [(0,)]
    assert await audit(sql, user_id) == ["phone_bound", "phone_unbound"]  # nothing for the empty second one


@pytest.mark.parametrize("name", list(BAD_JSON_BODIES))
async def test_malformed_phone_bodies_are_refused_before_wechat(api, server, sql, name):
    token = await login(api, "zhangsan")
    calls_before = len(server.sandbox.state.phone_calls)
    raw, content_type, status = BAD_JSON_BODIES[name]

    response = await api.request("POST", PHONE, raw=raw, headers={"Content-Type": content_type}, token=token)

    assert response.status_code == status
    assert response.json()["error"] in ("bad_request", "unsupported_media_type", "body_too_large")
    assert len(server.sandbox.state.phone_calls) == calls_before
    assert await sql("SELECT COUNT(*) FROM phone_codes") == [(0,)]


async def test_phone_routes_need_a_bearer_token(api):
    bound = await api.request("POST", PHONE, {"code": "sbph00"})
    unbound = await api.request("DELETE", "/api/me/phone")

    assert bound.status_code == unbound.status_code == 401
    assert bound.json()["error"] == unbound.json()["error"] == "invalid_token"


async def test_the_account_page_shows_only_the_masked_number_and_unbinds(api, server, client, new_client, sql):
    browser = new_client()
    await Flows(server).login(browser, "zhangsan")  # the same person (unionid) as the mini-program login
    token = await login(api, "zhangsan")
    user_id = (await bind(api, token, await phone_code(api, "zhangsan"))).json()["user"]["id"]

    page = await browser.get(server.url + "/account")
    assert page.status_code == 200
    assert "138****8000" in page.text and ZHANGSAN not in page.text and 'data-phone="bound"' in page.text
    assert "已绑定" in page.text  # the audit row, in the recent events
    refused = await browser.post(server.url + "/account/phone/unbind")  # no XSRF token
    assert refused.status_code == 403
    xsrf = await page_xsrf(browser, server.url + "/account")
    done = await browser.post(server.url + "/account/phone/unbind", data={"_xsrf": xsrf})

    assert done.status_code == 302 and done.headers["location"] == "/account?done=phone_unbound"
    assert await sql("SELECT COUNT(*) FROM user_phones") == [(0,)]
    after = await browser.get(server.url + "/account?done=phone_unbound")
    assert "已解除手机号绑定" in after.text and 'data-phone="none"' in after.text
    assert await audit(sql, user_id) == ["phone_bound", "phone_unbound"]
    english = await browser.get(server.url + "/account?lang=en")
    assert "Phone number" in english.text


# --- conflicts and the race ------------------------------------------------------------------------------


async def test_a_number_of_another_account_is_409_and_never_moves(api, server, sql):
    first = await login(api, "sharedphone-a")
    owner = (await bind(api, first, await phone_code(api, "sharedphone-a"))).json()["user"]["id"]
    second = await login(api, "sharedphone-b")

    response = await bind(api, second, await phone_code(api, "sharedphone-b"))

    assert response.status_code == 409 and response.json()["error"] == "phone_in_use"
    assert await sql("SELECT user_id FROM user_phones") == [(owner,)]
    me = (await api.request("GET", "/api/me", token=second)).json()
    assert me["phone"] is None
    assert await audit(sql, me["user"]["id"]) == ["phone_in_use"]


async def test_zhangsan_and_lisi_share_a_number_in_the_sandbox(api):
    assert (await bind(api, await login(api, "zhangsan"), await phone_code(api, "zhangsan"))).status_code == 200

    response = await bind(api, await login(api, "lisi"), await phone_code(api, "lisi"))

    assert response.status_code == 409 and response.json()["error"] == "phone_in_use"


async def test_two_accounts_racing_for_one_number_one_wins_one_is_409(api, server, sql):
    for round_ in range(4):
        people = [f"sharedphone-race{round_}a", f"sharedphone-race{round_}b"]
        tokens = [await login(api, p) for p in people]
        codes = [await phone_code(api, p) for p in people]

        answers = await asyncio.gather(*(bind(api, t, c) for t, c in zip(tokens, codes, strict=True)))

        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 200).json()["user"]["id"]
        assert await sql("SELECT user_id FROM user_phones") == [(winner,)]
        await sql("DELETE FROM user_phones")


async def test_merging_accounts_is_how_a_number_moves(api, server, sql):
    source_token = await login(api, "sharedphone-m1")
    source = (await bind(api, source_token, await phone_code(api, "sharedphone-m1"))).json()["user"]["id"]
    target = (await api.login("nophone-m2")).json()["user"]["id"]

    await server.services.accounts.merge_as_operator(target, source)

    assert await sql("SELECT user_id, phone FROM user_phones") == [(target, "+8613700000000")]


async def test_a_merged_accounts_number_does_not_replace_the_one_that_stays(api, server, sql):
    source = (await bind(api, await login(api, "sharedphone-m3"), await phone_code(api, "sharedphone-m3"))).json()
    target = (await bind(api, await login(api, "zhangsan"), await phone_code(api, "zhangsan"))).json()

    await server.services.accounts.merge_as_operator(target["user"]["id"], source["user"]["id"])

    assert await sql("SELECT user_id, phone FROM user_phones") == [(target["user"]["id"], "+86" + ZHANGSAN)]


# --- one paid call per code ------------------------------------------------------------------------------


async def test_a_repeated_code_gets_the_first_answer_without_a_second_wechat_call(api, server, sql):
    token = await login(api, "zhangsan")
    code = await phone_code(api, "zhangsan")
    spent = billed(server)

    first = await bind(api, token, code)
    again = await bind(api, token, code)
    other = await bind(api, await login(api, "panda"), code)  # someone else replays the code

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert other.status_code == 400 and other.json()["error"] == "phone_code_invalid"
    assert calls(server, code) == 1 and billed(server) == spent + 1
    assert await sql("SELECT COUNT(*) FROM user_phones") == [(1,)]


async def test_a_repeated_conflict_is_409_again_without_a_call(api, server):
    await bind(api, await login(api, "sharedphone-c1"), await phone_code(api, "sharedphone-c1"))
    token = await login(api, "sharedphone-c2")
    code = await phone_code(api, "sharedphone-c2")

    answers = [await bind(api, token, code) for _ in range(2)]

    assert [a.json()["error"] for a in answers] == ["phone_in_use", "phone_in_use"]
    assert calls(server, code) == 1


async def test_an_expired_code_is_refused_once_and_never_sent_again(api, server, sql):
    token = await login(api, "zhangsan")
    code = await phone_code(api, "zhangsan")
    server.sandbox.state.phone_codes[code].created -= 301  # 5 minutes and a second after the tap

    first = await bind(api, token, code)
    again = await bind(api, token, code)

    assert first.status_code == again.status_code == 400
    assert first.json()["error"] == again.json()["error"] == "phone_code_invalid"
    assert calls(server, code) == 1
    assert await sql("SELECT COUNT(*) FROM user_phones") == [(0,)]


async def test_a_random_code_or_another_apps_code_is_phone_code_invalid(api, server):
    token = await login(api, "zhangsan")
    foreign = server.sandbox.state.issue_phone_code("wx0000000000000000", "zhangsan")  # another mini-program's

    for code in ("sbph" + "0" * 32, foreign):
        response = await bind(api, token, code)
        assert response.status_code == 400 and response.json()["error"] == "phone_code_invalid"
    assert not server.sandbox.state.phone_codes[foreign].used


async def test_another_persons_code_is_refused_by_wechat_through_the_openid(api, server, sql):
    token = await login(api, "panda")
    stolen = await phone_code(api, "zhangsan")  # zhangsan's button, sent with panda's token

    response = await bind(api, token, stolen)

    assert response.status_code == 400 and response.json()["error"] == "phone_code_invalid"
    assert await sql("SELECT COUNT(*) FROM user_phones") == [(0,)]
    assert not server.sandbox.state.phone_codes[stolen].used


async def test_a_busy_wechat_is_not_asked_twice_for_one_code(api, server, sql):
    token = await login(api, "nophone-busy")  # logs in fine; its phone code is a busyonce person's
    code = server.sandbox.state.issue_phone_code(server.settings.wechat.miniprogram.appid, "busyonce-phone")

    first = await bind(api, token, code)
    again = await bind(api, token, code)

    assert first.status_code == 503 and first.json()["error"] == "wechat_busy"
    assert calls(server, code) == 1, "a paid call is never retried: its lost answer may have been a success"
    assert again.status_code == 400 and again.json()["error"] == "phone_code_invalid"
    assert calls(server, code) == 1


@pytest.mark.parametrize("person, status, error", [
    ("quota-phone", 429, "wechat_rate_limited"), ("blocked-phone", 403, "wechat_blocked"),
])
async def test_wechat_errcodes_on_the_phone_call(api, server, person, status, error):
    token = await login(api, "nophone-errs")
    code = server.sandbox.state.issue_phone_code(server.settings.wechat.miniprogram.appid, person)

    response = await bind(api, token, code)

    assert response.status_code == status and response.json()["error"] == error


@pytest.mark.parametrize("person", ["revoked-phone", "tokenexpired-phone"])
async def test_a_dead_app_token_is_replaced_and_the_call_made_once_more(api, server, sql, person):
    """40001 (revoked) and 42001 (expired) on the app token: WeChat answers them before it looks at the code,
    so the one more call with a fresh token is the only second call a code ever gets."""
    token = await login(api, person)
    code = await phone_code(api, person)
    spent = billed(server)

    response = await bind(api, token, code)

    assert response.status_code == 200, response.text
    assert calls(server, code) == 2 and billed(server) == spent + 1
    assert await sql("SELECT COUNT(*) FROM user_phones") == [(1,)]


# --- limits ----------------------------------------------------------------------------------------------


async def test_phone_calls_are_limited_per_account_a_day(start_server, new_client):
    limited = await start_server({"ratelimit": {"enabled": True, "phone_per_user_per_day": 2}})
    api = Api(limited, new_client())
    token = await login(api, "zhangsan")
    codes = [await phone_code(api, "zhangsan") for _ in range(3)]

    answers = [await bind(api, token, code) for code in codes]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited"
    assert int(answers[2].headers["retry-after"]) == 12 * 3600  # one more a day / 2
    assert calls(limited, codes[2]) == 0, "a refused request never reaches WeChat"


async def test_phone_calls_are_limited_per_ip(start_server, new_client):
    limited = await start_server({"ratelimit": {"enabled": True, "phone_per_ip_per_minute": 2}})
    api = Api(limited, new_client())
    people = ["iplimit-a", "iplimit-b", "iplimit-c"]
    tokens = [await login(api, p) for p in people]

    answers = [await bind(api, t, await phone_code(api, p)) for t, p in zip(tokens, people, strict=True)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited" and 1 <= int(answers[2].headers["retry-after"]) <= 60


# --- session-key health ----------------------------------------------------------------------------------


async def profile(api: Api, token: str, data: dict):
    return await api.request("POST", "/api/miniprogram/profile",
                             {"encryptedData": data["encryptedData"], "iv": data["iv"]}, token=token)


def checks(server) -> int:
    return len(server.sandbox.state.session_checks)


async def test_a_stale_session_key_is_session_key_expired_and_checked_once(api, server, sql):
    token = await login(api, "zhangsan")
    rotated = await api.wx_login("zhangsan")  # the client called wx.login again but never told us
    before = checks(server)

    stale = await profile(api, token, rotated)
    again = await profile(api, token, rotated)

    assert stale.status_code == again.status_code == 401
    assert stale.json()["error"] == "session_key_expired"
    assert stale.headers["www-authenticate"] == 'Bearer realm="wxlogin"'
    assert stale.content == again.content
    assert checks(server) == before + 1, "the stale key was forgotten: no second check"
    assert await sql("SELECT COUNT(*) FROM user_login_methods WHERE session_key_enc IS NULL") == [(1,)]
    # Logging in again (the wx.login code the client holds) stores the fresh key: the profile works again.
    token = (await api.request("POST", "/api/miniprogram/login", {"code": rotated["code"]})).json()["token"]
    fresh = (await api.client.post(server.url + "/_sandbox/dev/wx.getUserInfo", json={"person": "zhangsan"})).json()
    assert (await profile(api, token, fresh)).status_code == 200


async def test_a_tampered_ciphertext_with_a_fresh_key_stays_encrypted_data_invalid(api, server):
    token = await login(api, "zhangsan")
    fresh = (await api.client.post(server.url + "/_sandbox/dev/wx.getUserInfo", json={"person": "zhangsan"})).json()
    raw = bytearray(base64.b64decode(fresh["encryptedData"]))
    raw[-1] ^= 0x01
    before = checks(server)

    tampered = await profile(api, token, {**fresh, "encryptedData": base64.b64encode(bytes(raw)).decode()})
    garbage = await profile(api, token, seal(session_key(server, "zhangsan"), b"\xff not json"))

    assert tampered.status_code == garbage.status_code == 400
    assert tampered.json()["error"] == "encrypted_data_invalid" and tampered.content == garbage.content
    assert checks(server) == before + 2, "WeChat said the key is current both times"
    assert (await profile(api, token, fresh)).status_code == 200


async def test_the_session_key_check_is_rate_limited_per_account(start_server, new_client):
    limited = await start_server({"ratelimit": {"enabled": True, "session_check_per_minute": 1}})
    api = Api(limited, new_client())
    token = await login(api, "zhangsan")
    garbage = seal(session_key(limited, "zhangsan"), b"\xff not json")
    before = checks(limited)

    answers = [await profile(api, token, garbage) for _ in range(3)]

    assert [a.json()["error"] for a in answers] == ["encrypted_data_invalid"] * 3, "over the limit: no 429 either"
    assert checks(limited) == before + 1


async def test_no_session_key_check_without_a_miniprogram_login(api, server):
    app = (await api.client.post(server.url + "/_sandbox/dev/app.auth", json={"person": "zhangsan"})).json()
    token = (await api.request("POST", "/api/app/login", {"code": app["code"]})).json()["token"]
    before = checks(server)

    response = await profile(api, token, {"encryptedData": "AAAA", "iv": "AAAA"})

    assert response.status_code == 400 and response.json()["error"] == "encrypted_data_invalid"
    assert checks(server) == before


# --- nothing leaks ---------------------------------------------------------------------------------------


async def test_no_phone_number_in_logs_or_answers(api, server, caplog):
    caplog.set_level(logging.DEBUG)
    token = await login(api, "sharedphone-log1")
    await bind(api, token, await phone_code(api, "sharedphone-log1"))
    await bind(api, await login(api, "sharedphone-log2"), await phone_code(api, "sharedphone-log2"))  # 409
    await api.request("GET", "/api/me", token=token)
    await api.request("DELETE", "/api/me/phone", token=token)

    for text in (caplog.text, *(r.text for r in api.seen)):
        assert "13700000000" not in text and "137 0000 0000" not in text
    assert "phone bound to user" in caplog.text  # the log says what happened, without the number


# --- the sandbox plays WeChat's endpoints ----------------------------------------------------------------


async def app_token(server, client) -> str:
    app = server.settings.wechat.miniprogram
    answer = await client.post(server.url + "/_sandbox/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": app.appid, "secret": app.secret.value})
    return answer.json()["access_token"]


async def test_sandbox_checksession_and_resetusersessionkey(api, server, client, sql):
    await login(api, "zhangsan")
    key = session_key(server, "zhangsan")
    [(oid,)] = await sql("SELECT openid FROM user_login_methods")  # what jscode2session told the site
    token = await app_token(server, client)

    async def check(path: str, **query: str) -> dict:
        params = {"access_token": token, "openid": oid, "signature": session_key_signature(key),
                  "sig_method": "hmac_sha256", **query}
        return (await client.get(server.url + "/_sandbox/wxa/" + path, params=params)).json()

    assert (await check("checksession"))["errcode"] == 0
    assert (await check("checksession", signature="0" * 64))["errcode"] == 87009
    assert (await check("checksession", sig_method="md5"))["errcode"] == 87008
    assert (await check("checksession", openid="oNOBODY"))["errcode"] == 40003
    assert (await check("checksession", access_token="x" * 30))["errcode"] == 40001
    reset = await check("resetusersessionkey")
    assert reset["errcode"] == 0 and reset["openid"] == oid and reset["session_key"] != key
    assert (await check("checksession"))["errcode"] == 87009, "the old key is stale now"


async def test_sandbox_getuserphonenumber_checks_its_token_and_body(server, client):
    mp = server.settings.wechat.mp
    mp_token = (await client.post(server.url + "/_sandbox/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": mp.appid, "secret": mp.secret.value})).json()["access_token"]
    url = server.url + "/_sandbox/wxa/business/getuserphonenumber"
    code = server.sandbox.state.issue_phone_code(server.settings.wechat.miniprogram.appid, "zhangsan")

    no_token = (await client.post(url, json={"code": code})).json()
    wrong_app = (await client.post(url, params={"access_token": mp_token}, json={"code": code})).json()
    token = await app_token(server, client)
    not_json = (await client.post(url, params={"access_token": token}, content=b"code=x")).json()
    ok = (await client.post(url, params={"access_token": token}, json={"code": code})).json()
    used = (await client.post(url, params={"access_token": token}, json={"code": code})).json()

    assert (no_token["errcode"], wrong_app["errcode"], not_json["errcode"]) == (41001, 48001, 47001)
    info = ok["phone_info"]
    assert (info["purePhoneNumber"], info["countryCode"], info["phoneNumber"]) == (ZHANGSAN, "86", ZHANGSAN)
    assert info["watermark"]["appid"] == server.settings.wechat.miniprogram.appid
    assert abs(info["watermark"]["timestamp"] - time.time()) < 60
    assert used["errcode"] == 40029


# --- housekeeping ----------------------------------------------------------------------------------------


async def test_code_claims_are_purged_after_ten_minutes(api, server, sql):
    token = await login(api, "zhangsan")
    await bind(api, token, await phone_code(api, "zhangsan"))
    await bind(api, token, await phone_code(api, "zhangsan"))
    await sql("UPDATE phone_codes SET created_at = created_at - INTERVAL 11 MINUTE LIMIT 1")

    await server.services.maintenance.purge_expired()

    assert await sql("SELECT COUNT(*) FROM phone_codes") == [(1,)]


# --- make play-miniprogram -------------------------------------------------------------------------------


async def test_play_binds_the_phone_and_prints_me(server, capsys):
    from wxlogin.sandbox.__main__ import play

    first = await asyncio.to_thread(play, server.url, "zhangsan", "miniprogram")
    shown = capsys.readouterr().out
    second = await asyncio.to_thread(play, server.url, "lisi", "miniprogram")  # 李四 shares 张三's number
    conflict = capsys.readouterr().out

    assert first == second == 0
    assert "POST /api/miniprogram/phone -> 200" in shown and '"masked": "138****8000"' in shown
    assert shown.count('"masked": "138****8000"') == 2  # the bind's answer, then /api/me
    assert "POST /api/miniprogram/phone -> 409" in conflict and '"phone_in_use"' in conflict
    assert ZHANGSAN not in shown + conflict
