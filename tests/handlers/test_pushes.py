"""Event pushes over real HTTP: the sandbox plays WeChat (its own signing and sealing) against the running app.

The app's development settings put both apps in safe mode; tests that need plain mode start a server
with an empty ``push_aes_key``. A recorder registered on the app's dispatcher counts what reached it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from helpers import BAD_PUSHES, bad_push
from wxlogin.models import PushEvent
from wxlogin.sandbox import people
from wxlogin.sandbox import push as wechat
from wxlogin.services.pushes import PushApp

MP_APPID = "wxa0b1c2d3e4f50002"
MINI_APPID = "wxa0b1c2d3e4f50004"
PLAIN_MINI = {"wechat": {"miniprogram": {"push_aes_key": ""}}}
REAL_KEYS = {"WXLOGIN_SERVER_SECRET_KEYS": "0123456789abcdef0123456789abcdef-real-key"}


class Recorder:
    """A push handler that remembers each call; ``block`` makes the first call wait, ``fail`` raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, PushEvent]] = []
        self.reply: str | None = None
        self.block: asyncio.Event | None = None
        self.fail_first = False
        self.finished = asyncio.Event()

    async def __call__(self, app: PushApp, event: PushEvent) -> str | None:
        self.calls.append((app.label, event))
        if len(self.calls) == 1 and self.block is not None:
            await self.block.wait()
        if len(self.calls) == 1 and self.fail_first:
            raise RuntimeError("handler bug")
        self.finished.set()
        return self.reply


EVENTS = ("subscribe", "SCAN", "CLICK", "wxa_media_check")


@pytest.fixture
async def recorder(server) -> AsyncIterator[Recorder]:
    found = Recorder()
    for event in EVENTS:
        server.services.pushes.register(event, found)
    yield found
    for event in EVENTS:
        server.services.pushes.unregister(event, found)


def app_keys(server, kind: str) -> tuple[str, str, str]:
    app = getattr(server.settings.wechat, kind)
    return app.push_token.value, app.push_aes_key.value, app.appid


def openid(appid: str, person: str = "zhangsan") -> str:
    found = people.person(person)
    assert found is not None
    return people.openid_for(appid, found)


def signed(server, kind: str = "mp", mode: str = "safe", fmt: str = "xml", event: str = "subscribe",
           **fields: Any) -> wechat.SignedPush:
    token, key, appid = app_keys(server, kind)
    message = {**wechat.event_fields(appid, openid(appid), event, "qrscene_t1", "TICKET1"), **fields}
    return wechat.signed_push(token, key, appid, message, mode, fmt)


async def post(client: httpx.AsyncClient, server, push: wechat.SignedPush, kind: str = "mp",
               **headers: str) -> httpx.Response:
    return await client.post(f"{server.url}/wechat/push/{kind}", params=push.query, content=push.body,
                             headers={"Content-Type": push.content_type, **headers})


async def pushes_stored(sql) -> int:
    return (await sql("SELECT COUNT(*) FROM wechat_pushes"))[0][0]


# ---- the URL check ----------------------------------------------------------------------------------

async def test_the_url_check_echoes_through_the_sandbox(server, client):
    for kind in ("mp", "miniprogram"):
        answer = await client.post(f"{server.url}/_sandbox/dev/push/check", json={"kind": kind})
        assert answer.status_code == 200
        assert answer.json() == {"url": f"{server.url}/wechat/push/{kind}", "status": 200, "echoed": True}


@pytest.mark.parametrize("change", ["wrong signature", "no signature", "old timestamp", "future timestamp",
                                    "two signatures", "no echostr", "echostr with a space"])
async def test_a_bad_url_check_is_refused_with_an_empty_answer(change, server, client, caplog):
    token, _, _ = app_keys(server, "mp")
    timestamp = str(int(time.time()) - (3600 if change == "old timestamp" else 0)
                    + (3600 if change == "future timestamp" else 0))
    query: list[tuple[str, str]] = [("signature", wechat.sign(token, timestamp, "42")), ("timestamp", timestamp),
                                    ("nonce", "42"), ("echostr", "a b" if change == "echostr with a space" else "e1")]
    if change == "wrong signature":
        query[0] = ("signature", wechat.sign("another0token", timestamp, "42"))
    elif change == "no signature":
        query.pop(0)
    elif change == "two signatures":
        query.append(query[0])
    elif change == "no echostr":
        query.pop()

    response = await client.get(f"{server.url}/wechat/push/mp", params=query)

    assert response.status_code == (400 if change in ("two signatures", "no echostr", "echostr with a space")
                                    else 403)
    assert response.content == b""
    assert "refused with" in caplog.text and "Traceback" not in caplog.text


# ---- events dispatched once, in every mode ------------------------------------------------------------

@pytest.mark.parametrize("kind, mode, fmt", [("mp", "safe", "xml"), ("mp", "compatible", "xml"),
                                             ("miniprogram", "safe", "json"), ("miniprogram", "compatible", "json")])
async def test_encrypted_events_are_dispatched_once(kind, mode, fmt, server, client, recorder, sql):
    answer = await client.post(f"{server.url}/_sandbox/dev/push",
                               json={"kind": kind, "event": "subscribe", "person": "zhangsan", "mode": mode,
                                     "format": fmt, "event_key": "qrscene_Ab12", "ticket": "gQT1"})

    assert answer.status_code == 200
    assert answer.json()["status"] == 200 and answer.json()["reply"] == "success" and answer.json()["tries"] == 1
    appid = MP_APPID if kind == "mp" else MINI_APPID
    [(label, event)] = recorder.calls
    assert label == kind and event.from_user == openid(appid)
    assert (event.msg_type, event.event, event.event_key, event.ticket) == (
        "event", "subscribe", "qrscene_Ab12", "gQT1")
    assert event.to_user == wechat.original_id(appid) and abs(event.create_time - time.time()) < 60
    assert await pushes_stored(sql) == 1


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_plain_mode_events_are_dispatched_once(fmt, start_server, client):
    plain = await start_server(PLAIN_MINI)
    found = Recorder()
    plain.services.pushes.register("SCAN", found)

    answer = await client.post(f"{plain.url}/_sandbox/dev/push",
                               json={"kind": "miniprogram", "event": "SCAN", "person": "lisi", "format": fmt,
                                     "event_key": "scene1"})

    assert answer.json()["mode"] == "plain" and answer.json()["reply"] == "success"
    [(_, event)] = found.calls
    assert event.event == "SCAN" and event.event_key == "scene1" and event.from_user == openid(MINI_APPID, "lisi")


async def test_a_plain_push_to_an_app_in_safe_mode_is_refused(server, client, recorder, sql):
    response = await post(client, server, signed(server, mode="plain"))

    assert response.status_code == 403 and response.content == b""
    assert recorder.calls == [] and await pushes_stored(sql) == 0


async def test_extra_fields_reach_the_handler_and_the_query_openid_is_ignored(server, client, recorder):
    push = signed(server, kind="miniprogram", fmt="json", event="wxa_media_check", trace_id="t-9",
                  result={"suggest": "risky", "label": 20002})
    push.query["openid"] = "oSOMEONEelse"

    response = await post(client, server, push, kind="miniprogram")

    assert response.status_code == 200 and response.text == "success"
    [(_, event)] = recorder.calls
    assert event.from_user == openid(MINI_APPID)
    assert event.fields["trace_id"] == "t-9" and event.fields["result_suggest"] == "risky"


# ---- WeChat's retries -----------------------------------------------------------------------------------

async def test_a_repeated_push_is_dispatched_once(server, client, recorder, sql):
    created = int(time.time())
    first = signed(server, CreateTime=created)
    again = signed(server, CreateTime=created)  # a retry: same message, new nonce and signature
    assert first.query["nonce"] != again.query["nonce"] or first.body != again.body

    answers = [await post(client, server, push) for push in (first, again, again)]

    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 3
    assert len(recorder.calls) == 1 and await pushes_stored(sql) == 1
    other_second = await post(client, server, signed(server, CreateTime=created + 1))
    assert other_second.status_code == 200 and len(recorder.calls) == 2


async def test_a_repeated_msgid_is_dispatched_once(server, client, recorder):
    await post(client, server, signed(server, event="CLICK", MsgId="6543210987654321", CreateTime=1))
    await post(client, server, signed(server, event="CLICK", MsgId="6543210987654321", CreateTime=2))
    assert len(recorder.calls) == 1


async def test_wechat_retries_a_slow_answer_and_the_retry_is_not_dispatched_again(server, recorder, sql):
    recorder.block = asyncio.Event()
    push = signed(server, event="SCAN")

    delivery = asyncio.create_task(wechat.deliver(f"{server.url}/wechat/push/mp", push, tries=3, timeout=0.5))
    done = await asyncio.wait_for(delivery, 10)  # the first try times out; the second finds the claim
    recorder.block.set()
    await asyncio.wait_for(recorder.finished.wait(), 10)

    assert done.tries == 2 and done.status == 200 and done.body == b"success"
    assert len(recorder.calls) == 1 and await pushes_stored(sql) == 1


async def test_a_failed_handler_gives_the_push_back_for_the_retry(server, client, recorder, sql, caplog):
    recorder.fail_first = True
    push = signed(server, event="CLICK")

    failed = await post(client, server, push)
    assert failed.status_code == 503 and failed.content == b""
    assert await pushes_stored(sql) == 0, "the claim was given up"
    retried = await post(client, server, push)

    assert retried.status_code == 200 and retried.text == "success"
    assert len(recorder.calls) == 2 and await pushes_stored(sql) == 1
    assert "handler bug" in caplog.text  # a bug in a handler is logged with its traceback, like any bug


# ---- forged, replayed and malformed pushes ------------------------------------------------------------------

@pytest.mark.parametrize("case", list(BAD_PUSHES))
async def test_forged_pushes_change_nothing(case, server, client, recorder, sql, caplog):
    query, body, status = bad_push(case, *app_keys(server, "mp"))

    response = await client.post(f"{server.url}/wechat/push/mp", params=query, content=body,
                                 headers={"Content-Type": "text/xml"})

    assert response.status_code == status
    assert response.content == b""
    assert recorder.calls == [] and await pushes_stored(sql) == 0
    assert f"refused with {status}" in caplog.text and "Traceback" not in caplog.text


async def test_an_oversize_chunked_body_is_refused(server, client, recorder):
    push = signed(server)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"<!-- padding -->" * 64

    response = await client.post(f"{server.url}/wechat/push/mp", params=push.query, content=chunks())

    assert response.status_code == 413 and recorder.calls == []


async def test_a_plain_mode_app_refuses_forged_and_hostile_plain_bodies(start_server, client):
    plain = await start_server(PLAIN_MINI)
    found = Recorder()
    plain.services.pushes.register("subscribe", found)
    token, _, appid = app_keys(plain, "miniprogram")
    hostile = {
        b'<!DOCTYPE x [<!ENTITY a "b">]><xml><FromUserName>&a;</FromUserName></xml>': 400,
        b"<xml><FromUserName>o1</FromUserName><FromUserName>o2</FromUserName></xml>": 400,
        b'{"ToUserName":"gh_x","FromUserName":"o1","FromUserName":"o2"}': 400,
        b"not a push": 400,
    }
    for body, status in hostile.items():
        push = wechat.signed_push(token, "", appid, {"x": "y"})
        response = await client.post(f"{plain.url}/wechat/push/miniprogram", params=push.query, content=body)
        assert response.status_code == status, body
    forged_push = wechat.signed_push("NotTheToken", "", appid, wechat.event_fields(appid, "o1", "subscribe"))
    response = await client.post(f"{plain.url}/wechat/push/miniprogram", params=forged_push.query,
                                 content=forged_push.body)
    assert response.status_code == 403 and found.calls == []


# ---- what is acknowledged without a dispatch ---------------------------------------------------------------------

@pytest.mark.parametrize("event, msg_type", [("MASSSENDJOBFINISH", "event"), ("unsubscribe", "event"),
                                             ("", "text")])
async def test_unknown_events_and_messages_are_acknowledged(event, msg_type, server, client, recorder, sql, caplog):
    caplog.set_level(logging.INFO, logger="wxlogin.services.pushes")
    push = signed(server, event=event, MsgType=msg_type, **({"Content": "你好", "MsgId": "1"} if event == "" else {}))

    response = await post(client, server, push)

    assert response.status_code == 200 and response.text == "success"
    assert recorder.calls == []
    assert await pushes_stored(sql) == (1 if event == "unsubscribe" else 0)  # unsubscribe has the logging handler
    assert ("acknowledged (no handler)" if event != "unsubscribe" else "unsubscribe") in caplog.text


async def test_a_handler_reply_reaches_the_follower_encrypted_in_safe_mode(server, client, recorder):
    recorder.reply = "欢迎关注 ]]> & <b>"

    answer = await client.post(f"{server.url}/_sandbox/dev/push", json={"kind": "mp", "event": "CLICK"})

    reply = answer.json()["reply"]
    assert "<MsgType><![CDATA[text]]></MsgType>" in reply
    assert "<Content><![CDATA[欢迎关注 ]]]]><![CDATA[> & <b>]]>" in reply
    assert f"<ToUserName><![CDATA[{openid(MP_APPID)}]]></ToUserName>" in reply
    push = signed(server, event="CLICK", CreateTime=5)
    raw = await post(client, server, push)
    assert raw.headers["content-type"].startswith("text/xml") and "欢迎" not in raw.text

    def part(pattern: str) -> str:
        found = re.search(pattern, raw.text)
        assert found is not None, raw.text
        return found.group(1)

    encrypted = part(r"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>")
    token, key, _ = app_keys(server, "mp")
    signature = wechat.sign(token, part(r"<TimeStamp>([0-9]+)</TimeStamp>"),
                            part(r"<Nonce><!\[CDATA\[([0-9]+)\]\]></Nonce>"), encrypted)
    assert signature == part(r"<MsgSignature><!\[CDATA\[([0-9a-f]{40})\]\]></MsgSignature>")
    message, for_appid = wechat.unseal(key, encrypted)
    assert for_appid == MP_APPID and "欢迎关注".encode() in message


async def test_an_app_without_push_token_has_no_endpoint(start_server, client):
    quiet = await start_server({"wechat": {"miniprogram": {"push_token": ""}}})
    token, key, appid = app_keys(quiet, "mp")
    push = wechat.signed_push(token, key, appid, wechat.event_fields(appid, "o1", "subscribe"), "safe")

    assert (await client.get(f"{quiet.url}/wechat/push/miniprogram")).status_code == 404
    assert (await client.post(f"{quiet.url}/wechat/push/miniprogram", params=push.query,
                              content=push.body)).status_code == 404
    assert (await client.post(f"{quiet.url}/wechat/push/mp/second", params=push.query,
                              content=push.body)).status_code == 404
    assert (await client.post(f"{quiet.url}/_sandbox/dev/push/check", json={"kind": "miniprogram"})).status_code == 409
    assert (await client.post(f"{quiet.url}/wechat/push/mp", params=push.query, content=push.body)).text == "success"


async def test_development_push_keys_serve_nothing_outside_the_sandbox(start_server, client, caplog):
    production = await start_server({"wechat": {"sandbox": False}}, env=REAL_KEYS)

    assert (await client.get(f"{production.url}/wechat/push/mp")).status_code == 404
    assert "development key and the sandbox is off" in caplog.text
    real = await start_server({"wechat": {"sandbox": False, "mp": {"push_token": "RealToken1", "push_aes_key": ""}}},
                              env=REAL_KEYS)
    assert (await client.get(f"{real.url}/_sandbox/dev/push/check")).status_code == 404  # no sandbox here
    ok, _ = await wechat.check_url(f"{real.url}/wechat/push/mp", "RealToken1")
    assert ok == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_are_405(method, server, client):
    response = await client.request(method, f"{server.url}/wechat/push/mp")
    assert response.status_code == 405


async def test_pushes_read_no_cookies_and_need_no_xsrf(server, client, recorder):
    client.cookies.set("wxsid", "garbage")
    client.cookies.set("_xsrf", "garbage")
    response = await post(client, server, signed(server), Origin="https://evil.example")
    assert response.status_code == 200 and len(recorder.calls) == 1
    assert "set-cookie" not in response.headers


async def test_taken_pushes_are_purged_after_a_day(server, sql):
    for age in ("25 HOUR", "25 HOUR", "23 HOUR"):
        await sql("INSERT INTO wechat_pushes (dedupe_key, appid, event, created_at) "
                  f"VALUES (UNHEX(SHA2(RAND(), 256)), 'wx1', 'subscribe', UTC_TIMESTAMP(3) - INTERVAL {age})")

    assert await server.services.maintenance.purge_expired() == 2
    assert await pushes_stored(sql) == 1


async def test_a_hanging_handler_is_cut_off_in_time_and_the_push_given_back(server, client, recorder, sql, caplog):
    recorder.block = asyncio.Event()  # never set: the handler hangs
    server.services.pushes.answer_within = 0.5
    try:
        response = await asyncio.wait_for(post(client, server, signed(server, event="CLICK")), 5)
    finally:
        server.services.pushes.answer_within = 4.0

    assert response.status_code == 503 and response.content == b""
    assert await pushes_stored(sql) == 0, "the claim was given up for WeChat's retry"
    assert "handlers overran" in caplog.text


async def test_without_mysql_a_push_is_a_quick_503_and_unknown_events_are_still_acknowledged(start_server, client):
    cut_off = await start_server({"mysql": {"port": 1, "connect_timeout": 0.5}})
    token, key, appid = app_keys(cut_off, "mp")

    def push(event: str) -> wechat.SignedPush:
        return wechat.signed_push(token, key, appid, wechat.event_fields(appid, "o1", event), "safe")

    subscribe, unknown = push("subscribe"), push("MASSSENDJOBFINISH")
    taken = await asyncio.wait_for(client.post(f"{cut_off.url}/wechat/push/mp", params=subscribe.query,
                                               content=subscribe.body), 5)
    acknowledged = await client.post(f"{cut_off.url}/wechat/push/mp", params=unknown.query, content=unknown.body)

    assert taken.status_code == 503 and taken.content == b""
    assert acknowledged.status_code == 200 and acknowledged.text == "success"
