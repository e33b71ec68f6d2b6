"""The operator console (issue 16) against MariaDB and the sandbox: who gets in, search by each key, a user's
page, failed logins with WeChat's errcode and rid, the dashboard's counts (and its index), and the actions:
recent sign-in and XSRF required, each written to the operator audit log.

The session server names no operator (conftest); each test here signs its operator in on it, then starts a
console server that names that account in ``[admin] user_ids`` (ids run on across tests, so none is fixed).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pymysql
import pytest

from helpers import Flows, page_xsrf
from server import seed_sandbox_operator
from wxlogin.config import AdminSettings
from wxlogin.models import SessionClaims
from wxlogin.sandbox.people import OPERATOR, unionid_for
from wxlogin.store.admin import DASHBOARD_BY_CHANNEL, DASHBOARD_BY_ERRCODE, FAILURES


async def _last_user(sql):
    return (await sql("SELECT user_id FROM user_login_methods ORDER BY id DESC LIMIT 1"))[0][0]


@pytest.fixture
async def console(server, start_server, new_client, sql):
    """(console server, the operator's client, the operator's id): the operator signed in just now."""
    operator = new_client()
    await Flows(server).login(operator, "op-console")
    operator_id = await _last_user(sql)
    handle = await start_server({"admin": {"user_ids": [operator_id]}})
    return handle, operator, operator_id


async def _person(server, new_client, sql, key):
    client = new_client()
    response = await Flows(server).login(client, key)
    assert response.status_code == 302, response.text
    return client, await _last_user(sql)


async def _post(client, url, page, data=None):
    xsrf = await page_xsrf(client, page)
    return await client.post(url, data={"_xsrf": xsrf, **(data or {})})


async def test_a_sandbox_start_makes_the_sandbox_operator_an_operator_and_no_other_start_names_anyone(
        test_db, start_server, new_client, sql):
    # The shipped settings name nobody (conftest's test settings too): the sandbox server adds its operator person.
    assert test_db.admin.user_ids == () and test_db.wechat.sandbox
    effective = await seed_sandbox_operator(test_db)
    [(operator_id,)] = await sql("SELECT id FROM users WHERE unionid = %s", unionid_for(OPERATOR))
    assert effective.admin.user_ids == (operator_id,)
    assert (await seed_sandbox_operator(test_db)).admin.user_ids == (operator_id,)  # once, on every start
    named = replace(test_db, admin=AdminSettings(user_ids=(operator_id + 100,)))
    assert (await seed_sandbox_operator(named)).admin.user_ids == (operator_id + 100, operator_id)

    handle = await start_server({"admin": {"user_ids": list(effective.admin.user_ids)}})
    operator = new_client()
    assert (await Flows(handle).login(operator, OPERATOR.key)).status_code == 302  # lands on the seeded account
    assert await sql("SELECT COUNT(*) FROM users") == [(1,)]
    assert (await operator.get(handle.url + "/admin")).status_code == 200

    # Outside the sandbox: nothing seeded, nobody added.
    await sql("DELETE FROM users")
    outside = replace(test_db, wechat=replace(test_db.wechat, sandbox=False))
    assert (await seed_sandbox_operator(outside)).admin.user_ids == ()
    assert await sql("SELECT COUNT(*) FROM users") == [(0,)]


async def test_the_operator_sees_every_page_of_the_console(console, server, new_client, sql):
    handle, operator, _operator_id = console
    _, user_id = await _person(server, new_client, sql, "zhangsan")
    for path in ("/admin", "/admin?hours=3", "/admin/users?q=zhangsan", f"/admin/users/{user_id}", "/admin/failures",
                 "/admin/failures?ip=127.0.0.1&channel=web", "/admin/log", "/admin?lang=en"):
        page = await operator.get(handle.url + path)
        assert page.status_code == 200, (path, page.text[:300])
        assert page.headers["cache-control"] == "no-store"
        assert "运营后台" in page.text or "Operator console" in page.text
    # Someone who is not an operator gets the ordinary 404 there, on the same server.
    person, _ = await _person(server, new_client, sql, "lisi")
    assert (await person.get(handle.url + "/admin")).status_code == 404


async def test_search_for_digits_that_are_not_ascii_finds_nothing_instead_of_failing(console):
    handle, operator, _ = console
    for query in ("²", "①", "1²", "0" * 19):  # str.isdigit() is true for each; int() refuses the first three
        page = await operator.get(handle.url + "/admin/users", params={"q": query})
        assert page.status_code == 200, (query, page.status_code)
        assert "<tr data-user=" not in page.text
    assert await handle.services.admin.search("²") == []


async def test_search_by_id_nickname_openid_unionid_and_phone(console, server, new_client, sql):
    handle, operator, _ = console
    _, user_id = await _person(server, new_client, sql, "panda")
    openid, unionid = (await sql("SELECT openid, unionid FROM user_login_methods WHERE user_id = %s", user_id))[0]
    await sql("INSERT INTO user_phones (user_id, phone, country_code, bound_at) VALUES (%s, '+8613912345678', '86', "
              "UTC_TIMESTAMP(3))", user_id)
    for query, key in ((str(user_id), "id"), ("熊猫", "nickname"), (openid, "openid"), (unionid, "unionid"),
                       ("13912345678", "phone"), ("+8613912345678", "phone"), ("139 1234 5678", "phone")):
        page = await operator.get(handle.url + "/admin/users", params={"q": query})
        assert page.status_code == 200
        row = re.search(rf'<tr data-user="{user_id}">(.*?)</tr>', page.text, re.S)
        assert row, (query, page.text[-1500:])
        assert key in row.group(1), (query, row.group(1))
        assert "139****5678" in row.group(1)  # masked in the list
        assert "13912345678" not in page.text.replace(query, "") if key != "phone" else True
    nothing = await operator.get(handle.url + "/admin/users", params={"q": "no-such-person-x"})
    assert 'data-hits="0"' in nothing.text
    # The full number is never on the user's page either; tokens and session keys never are.
    page = await operator.get(handle.url + f"/admin/users/{user_id}")
    assert "139****5678" in page.text and "13912345678" not in page.text
    assert openid in page.text
    assert "access_token" not in page.text and "session_key" not in page.text


async def test_a_failed_login_keeps_wechats_errcode_and_rid_and_the_console_shows_them(console, server, new_client,
                                                                                         sql):
    handle, operator, _ = console
    refused = await Flows(server).login(new_client(), "blocked")  # the sandbox's WeChat answers 40226 with a rid
    assert refused.status_code >= 400
    [(user_id, outcome, errcode, rid)] = await sql(
        "SELECT user_id, outcome, wechat_errcode, wechat_rid FROM login_events WHERE wechat_errcode IS NOT NULL")
    assert user_id is None  # a failed login never established who it was
    assert errcode == 40226 and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}", rid), (outcome, rid)

    page = await operator.get(handle.url + "/admin/failures")
    row = re.search(r'<tr class="failed"[^>]*>(.*?)</tr>', page.text, re.S).group(1)
    assert "40226" in row and rid in row and "127.0.0.1" in row
    assert rid in (await operator.get(handle.url + "/admin/failures", params={"ip": "127.0.0.1",
                                                                               "channel": "web"})).text
    assert rid in (await operator.get(handle.url + "/admin/failures", params={"errcode": "40226"})).text
    for narrower in ({"ip": "10.9.9.9"}, {"channel": "mp"}, {"errcode": "40029"}):
        assert 'data-failures="0"' in (await operator.get(handle.url + "/admin/failures", params=narrower)).text


async def test_an_address_no_row_can_hold_finds_nothing_and_does_not_trip_the_breaker(console, server, new_client,
                                                                                       sql):
    # The ip column is ascii: MySQL refuses to compare "é" with it (1267, an operational error), which used to
    # count as "MySQL is down" and answer 503 to everyone for a second.
    handle, operator, _ = console
    await Flows(server).login(new_client(), "blocked")
    for ip in ("é", "１２７.0.0.1", "10.0.0.1\u200b"):  # (Tornado drops control characters itself)
        page = await operator.get(handle.url + "/admin/failures", params={"ip": ip})
        assert page.status_code == 200 and 'data-failures="0"' in page.text, (ip, page.status_code)
    assert (await operator.get(handle.url + "/admin")).status_code == 200  # the breaker stayed closed
    assert (await handle.services.admin.failures(24, ip="ü")) == []


async def test_api_logins_that_wechat_refuses_are_kept_with_errcode(server, client, sql):
    r = await client.post(server.url + "/api/miniprogram/login", json={"code": "no-such-code"})
    assert r.status_code >= 400
    [(channel, errcode, rid)] = await sql("SELECT login_method, wechat_errcode, wechat_rid FROM login_events")
    assert channel == "miniprogram" and errcode == 40029 and rid


async def test_dashboard_counts_logins_per_channel_and_outcome_and_errcodes(console, server, new_client, sql):
    handle, operator, _ = console  # the operator's own login: one web success
    await _person(server, new_client, sql, "zhangsan")
    await Flows(server).mp_login(new_client(), "zhangsan")
    for _ in range(2):
        await Flows(server).login(new_client(), "blocked")
    # One hour back: none of these; a row from two days ago is outside the default 24 hours.
    await sql("INSERT INTO login_events (user_id, login_method, outcome, created_at) VALUES "
              "(NULL, 'web', 'success', UTC_TIMESTAMP(3) - INTERVAL 2 DAY)")
    page = (await operator.get(handle.url + "/admin")).text
    counts = {(ch, oc): int(n) for ch, oc, n in re.findall(
        r'<tr data-channel="(\w+)" data-outcome="(\w+)">.*?<td class="num">(\d+)</td>', page, re.S)}
    assert counts[("web", "success")] == 2 and counts[("mp", "success")] == 1
    assert sum(n for (ch, oc), n in counts.items() if ch == "web" and oc != "success") == 2
    assert re.search(r'<tr data-errcode="40226">.*?<td class="num">2</td>', page, re.S)
    week = (await operator.get(handle.url + "/admin?hours=72")).text
    assert re.search(r'data-channel="web" data-outcome="success">.*?<td class="num">3</td>', week, re.S)


@pytest.mark.parametrize("query", [DASHBOARD_BY_CHANNEL, DASHBOARD_BY_ERRCODE])
async def test_dashboard_queries_read_the_time_index(server, sql, query):
    # A few hundred old rows and a few new ones: the range on created_at is what the optimiser should pick.
    await sql("INSERT INTO login_events (login_method, outcome, created_at) "
              "SELECT 'web', 'success', UTC_TIMESTAMP(3) - INTERVAL seq DAY FROM seq_1_to_400")
    args = (24, "phone") if query is DASHBOARD_BY_CHANNEL else (24,)
    plan = await sql("EXPLAIN " + query, *args)
    keys = {row[5] for row in plan}  # EXPLAIN's "key" column
    assert keys == {"ix_login_events_created"}, plan


@pytest.mark.parametrize(("ip", "index"), [("10.1.2.3", "ix_login_events_ip"), ("", "ix_login_events_created")])
async def test_failed_logins_by_address_read_the_address_index(server, sql, ip, index):
    # The filters are fixed SQL ("%s = '' OR e.ip = %s"); the optimiser folds an unused one away, so a search by
    # address still reads ix_login_events_ip and an unfiltered one the time index.
    # Many old rows, a few inside the window, every address on a few rows only.
    await sql("INSERT INTO login_events (login_method, outcome, ip, created_at) "
              "SELECT 'web', 'bad_state', CONCAT('10.0.', seq MOD 200, '.1'), UTC_TIMESTAMP(3) - INTERVAL seq HOUR "
              "FROM seq_25_to_800")
    await sql("INSERT INTO login_events (login_method, outcome, ip, created_at) "
              "SELECT 'web', 'bad_state', CONCAT('10.0.', seq, '.2'), UTC_TIMESTAMP(3) - INTERVAL seq MINUTE "
              "FROM seq_1_to_20")
    await sql("ANALYZE TABLE login_events")
    plan = await sql("EXPLAIN " + FAILURES, "phone", 24, ip, ip, "", "", None, None, 100)
    assert {row[5] for row in plan} == {index}, plan


async def test_disable_ends_the_persons_sessions_at_once_and_sign_in_says_disabled(console, server, new_client,
                                                                                   sql):
    handle, operator, operator_id = console
    person, user_id = await _person(server, new_client, sql, "zhangsan")
    assert (await person.get(server.url + "/account")).status_code == 200
    page = handle.url + f"/admin/users/{user_id}"

    done = await _post(operator, handle.url + f"/admin/users/{user_id}/disable", page, {"reason": "spam"})
    assert done.status_code == 303 and done.headers["location"] == f"/admin/users/{user_id}?done=disable"
    assert (await person.get(server.url + "/account")).status_code == 302  # signed out at once
    refused = await Flows(server).login(new_client(), "zhangsan")
    assert refused.status_code == 403 and "账号已停用" in refused.text
    # The refused attempt identified the person (the code was exchanged): it is kept under the account.
    assert await sql("SELECT outcome FROM login_events WHERE user_id = %s AND outcome <> 'success'",
                     user_id) == [("account_disabled",)]
    shown = (await operator.get(page)).text
    assert 'data-disabled="1"' in shown and "account_disabled" in shown and "spam" in shown

    again = await _post(operator, handle.url + f"/admin/users/{user_id}/enable", page)
    assert again.status_code == 303
    assert (await person.get(server.url + "/account")).status_code == 302  # old sessions stay ended
    assert (await Flows(server).login(new_client(), "zhangsan")).status_code == 302
    assert await sql("SELECT operator_id, action, target_user_id, detail FROM operator_actions ORDER BY id") == [
        (operator_id, "disable", user_id, "spam"), (operator_id, "enable", user_id, "")]
    log = (await operator.get(handle.url + "/admin/log")).text
    assert log.count('data-action="disable"') == 1 and log.count('data-action="enable"') == 1


async def test_an_action_on_an_old_sign_in_goes_through_wechat_first_and_changes_nothing(console, server,
                                                                                         new_client, sql):
    handle, _operator, operator_id = console
    _, user_id = await _person(server, new_client, sql, "zhangsan")
    [(version,)] = await sql("SELECT session_version FROM users WHERE id = %s", operator_id)
    stale = SessionClaims(user_id=operator_id, sid="A" * 22, session_version=version,
                          issued_at=int(time.time()) - handle.settings.accounts.reauth_window - 5)
    old = new_client()
    old.cookies.set("wxsid", handle.services.sessions.cookie_value(stale))
    page = handle.url + f"/admin/users/{user_id}"
    shown = await old.get(page)
    assert shown.status_code == 200 and 'data-reauth="1"' in shown.text  # reading is fine; the page says why

    answer = await _post(old, handle.url + f"/admin/users/{user_id}/disable", page)
    assert answer.status_code == 303
    target = urlsplit(answer.headers["location"])
    assert target.path == "/auth/wechat/web" and parse_qs(target.query)["next"] == [f"/admin/users/{user_id}"]
    assert await sql("SELECT disabled FROM users WHERE id = %s", user_id) == [(0,)]
    assert await sql("SELECT COUNT(*) FROM operator_actions") == [(0,)]


async def test_actions_need_the_xsrf_token(console, server, new_client, sql):
    handle, operator, _ = console
    _, user_id = await _person(server, new_client, sql, "zhangsan")
    await operator.get(handle.url + "/admin")  # the XSRF cookie is set, but the form field is missing
    for action in ("disable", "sign_out_everywhere"):
        refused = await operator.post(handle.url + f"/admin/users/{user_id}/{action}", data={})
        assert refused.status_code == 403
    assert await sql("SELECT disabled FROM users WHERE id = %s", user_id) == [(0,)]
    assert await sql("SELECT COUNT(*) FROM operator_actions") == [(0,)]


async def test_sign_out_everywhere_and_unlink(console, server, new_client, sql):
    handle, operator, operator_id = console
    person, user_id = await _person(server, new_client, sql, "zhangsan")
    await Flows(server).mp_login(new_client(), "zhangsan")  # same unionid: a second method on the account
    page = handle.url + f"/admin/users/{user_id}"
    assert (await _post(operator, page + "/sign_out_everywhere", page)).status_code == 303
    assert (await person.get(server.url + "/account")).status_code == 302

    [(mp_id,)] = await sql("SELECT id FROM user_login_methods WHERE user_id = %s AND login_method = 'mp'", user_id)
    assert (await _post(operator, page + "/unlink", page, {"method_id": str(mp_id)})).status_code == 303
    [(web_id,)] = await sql("SELECT id FROM user_login_methods WHERE user_id = %s", user_id)
    last = await _post(operator, page + "/unlink", page, {"method_id": str(web_id)})
    assert last.status_code == 400  # never the last one: disable the account instead
    assert await sql("SELECT COUNT(*) FROM user_login_methods WHERE user_id = %s", user_id) == [(1,)]
    actions = await sql("SELECT action, detail FROM operator_actions WHERE operator_id = %s ORDER BY id", operator_id)
    assert [a for a, _ in actions] == ["sign_out_everywhere", "unlink"] and actions[1][1].startswith("mp ")


# A real failure of the audit insert (no mock): the trigger refuses every row as a NOT NULL violation would.
REFUSE_AUDIT = ("CREATE TRIGGER refuse_audit BEFORE INSERT ON operator_actions FOR EACH ROW "
                "SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1048, MESSAGE_TEXT = 'audit refused'")
ACCOUNT_STATE = ("SELECT u.session_version, u.disabled, u.deletion_scheduled_at, "
                 "(SELECT COUNT(*) FROM user_login_methods m WHERE m.user_id = u.id), "
                 "(SELECT COUNT(*) FROM unlinked_identities i WHERE i.user_id = u.id) FROM users u WHERE u.id = %s")


async def test_an_action_whose_audit_row_cannot_be_written_is_not_done(console, server, new_client, sql):
    handle, _, operator_id = console
    _, user_id = await _person(server, new_client, sql, "zhangsan")
    await Flows(server).mp_login(new_client(), "zhangsan")  # same unionid: a second method on the account
    [(mp_id,)] = await sql("SELECT id FROM user_login_methods WHERE user_id = %s AND login_method = 'mp'", user_id)
    await sql("UPDATE users SET deletion_scheduled_at = UTC_TIMESTAMP(3) + INTERVAL 15 DAY WHERE id = %s", user_id)
    admin = handle.services.admin
    operator = (await admin.record(operator_id)).user
    actions = {
        "disable": lambda: admin.disable(operator, user_id, "spam"),
        "sign_out_everywhere": lambda: admin.sign_out_everywhere(operator, user_id),
        "unlink": lambda: admin.unlink(operator, user_id, mp_id),
        "cancel_deletion": lambda: admin.cancel_deletion(operator, user_id),
        "hasten_deletion": lambda: admin.hasten_deletion(operator, user_id),
    }
    before = await sql(ACCOUNT_STATE, user_id)
    await sql(REFUSE_AUDIT)
    try:
        for name, act in actions.items():
            with pytest.raises(pymysql.err.IntegrityError):
                await act()
            assert await sql(ACCOUNT_STATE, user_id) == before, f"{name} was done without its audit row"
    finally:
        await sql("DROP TRIGGER IF EXISTS refuse_audit")
    assert await sql("SELECT COUNT(*) FROM operator_actions") == [(0,)]

    for name in ("sign_out_everywhere", "unlink", "hasten_deletion", "disable"):
        await actions[name]()
    assert [a for (a,) in await sql("SELECT action FROM operator_actions ORDER BY id")] == [
        "sign_out_everywhere", "unlink", "hasten_deletion", "disable"]
    [(version, disabled, _, methods, unlinked)] = await sql(ACCOUNT_STATE, user_id)
    assert version > before[0][0] and disabled == 1 and (methods, unlinked) == (1, 1)


async def test_an_operator_cannot_disable_their_own_account(console):
    handle, operator, operator_id = console
    page = handle.url + f"/admin/users/{operator_id}"
    assert (await _post(operator, page + "/disable", page)).status_code == 400


async def test_cancel_or_hasten_a_pending_deletion(console, server, new_client, sql):
    handle, operator, operator_id = console
    _, user_id = await _person(server, new_client, sql, "zhangsan")
    page = handle.url + f"/admin/users/{user_id}"
    assert (await _post(operator, page + "/cancel_deletion", page)).status_code == 404  # nothing pending
    assert (await _post(operator, page + "/hasten_deletion", page)).status_code == 404  # never closes by itself

    await sql("UPDATE users SET deletion_scheduled_at = UTC_TIMESTAMP(3) + INTERVAL 15 DAY WHERE id = %s", user_id)
    assert 'data-deletion="pending"' in (await operator.get(page)).text
    assert (await _post(operator, page + "/cancel_deletion", page)).status_code == 303
    assert await sql("SELECT deletion_scheduled_at FROM users WHERE id = %s", user_id) == [(None,)]
    assert 'data-deletion="pending"' not in (await operator.get(page)).text

    await sql("UPDATE users SET deletion_scheduled_at = UTC_TIMESTAMP(3) + INTERVAL 15 DAY WHERE id = %s", user_id)
    assert (await _post(operator, page + "/hasten_deletion", page)).status_code == 303
    assert await sql("SELECT deletion_scheduled_at <= UTC_TIMESTAMP(3) FROM users WHERE id = %s", user_id) == [(1,)]
    assert await handle.services.deletion.run_once() == 1
    assert await sql("SELECT COUNT(*) FROM users WHERE id = %s", user_id) == [(0,)]
    actions = await sql("SELECT action, target_user_id FROM operator_actions WHERE operator_id = %s ORDER BY id",
                        operator_id)
    assert actions == [("cancel_deletion", user_id), ("hasten_deletion", user_id)]  # the log outlives the account
    log = (await operator.get(handle.url + "/admin/log")).text
    assert 'data-action="hasten_deletion"' in log


async def test_a_disabled_account_is_refused_by_the_api_too_and_the_attempt_is_kept(server, client, sql):
    first = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": "api-disabled"})
    login = await client.post(server.url + "/api/miniprogram/login", json={"code": first.json()["code"]})
    assert login.status_code == 200
    user_id = login.json()["user"]["id"]
    await sql("UPDATE users SET disabled = 1 WHERE id = %s", user_id)
    again = await client.post(server.url + "/_sandbox/dev/wx.login", json={"person": "api-disabled"})
    refused = await client.post(server.url + "/api/miniprogram/login", json={"code": again.json()["code"]})
    assert refused.status_code == 403 and refused.json()["error"] == "account_disabled"
    assert await sql("SELECT login_method, outcome FROM login_events WHERE user_id = %s AND outcome <> 'success'",
                     user_id) == [("miniprogram", "account_disabled")]
