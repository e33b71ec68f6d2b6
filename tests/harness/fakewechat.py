"""A scriptable WeChat stand-in (``/sns/*``) that speaks raw HTTP/1.1, so it can also misbehave.

The code says what to do: ``<mode>.<person>.<nonce>``. ``ok`` answers like WeChat; the other modes
inject one fault at the code-exchange step (``ui...`` modes at ``/sns/userinfo`` instead):
slow, http500/502/503, reset (connection reset mid-body), truncated, html, big (10 MB), redirect,
noreply (reads the request, closes the connection without a byte: libcurl's "Empty reply from
server", or, on a kept-alive connection, its silent "Connection died, retrying a fresh connect"),
e-1 / e40029 / e40163 / e45011 / e40226 (errcodes), m1once (-1 once, then fine), noopenid,
openidint, nounion, emptyunion. ``closekept`` / ``uiclosekept`` play a kept-alive connection closed
without an answer: the request is answered normally when it is the first on its connection, and
read then dropped (the socket closed without a byte) when the connection already answered one.
``lag`` answers like ``ok`` after ``lag_seconds`` (slow, but inside the caller's timeout).
Replies WeChat (or a proxy in between) should never send, that the client must validate:
``cjktoken`` (access_token of 512 CJK characters, 1,536 bytes; from jscode2session a session_key of
24 CJK characters), and at /sns/userinfo ``uisurrogate`` (headimgurl with a lone surrogate, sent as the
JSON escape ``"\ud800"``), ``uirtl`` (a nickname with U+202E and other bidi controls), ``uiavatarhost``
(an avatar on another host) and ``uihttpavatar`` (a WeChat avatar over http).
``pause()`` closes the port (connection refused) until ``resume()``.
Every request is logged, so tests can count calls per code. Codes are single-use (40163), like WeChat's.

The app's own token (issue 13): ``POST /cgi-bin/stable_token`` (normal mode hands out the same token;
``force_refresh`` rotates it) and ``GET /cgi-bin/get_api_domain_ip`` (40001 for a revoked or unknown
token). ``stable_mode`` makes stable_token fail (any fault mode, e.g. ``http503``, ``noreply``, ``e-1``),
``stable_latency`` slows it, ``revoke_app_tokens`` kills an app's tokens (``keep_handing``: normal mode
goes on handing out the dead one), ``stable_token_calls`` counts the calls.

Phone numbers (issue 13): ``POST /wxa/business/getuserphonenumber`` takes codes like the others
(``ok.<person>.<nonce>``: a number from the person's name, single-use, 40029 on reuse; ``noreply``, ``e-1``
and the other fault modes fail the call) and checks the app token (40001). ``phone_calls_for`` counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FAULT_MODES = ("slow", "http500", "http502", "http503", "reset", "truncated", "html", "big", "redirect",
               "noreply", "e-1", "e40029", "e40163", "e45011", "e40226", "noopenid", "openidint")
BAD_REPLY_MODES = ("cjktoken", "uisurrogate", "uirtl", "uiavatarhost", "uihttpavatar")
KNOWN_MODES = {"ok", "nounion", "emptyunion", "m1once", "closekept", "uiclosekept", "slow", "uislow", "lag",
               *BAD_REPLY_MODES, *FAULT_MODES, *(f"ui{m}" for m in FAULT_MODES)}
CJK_TOKEN = "令" * 512
CJK_SESSION_KEY = "钥" * 24
BIDI_NICKNAME = "\u202e{person}\u2066假\u2069\u200f\u061c\u202a\u200e"  # stored as "{person}假"
SURROGATE_AVATAR = "https://thirdwx.qlogo.cn/mmopen/vi_32/\ud800/132"
FOREIGN_AVATAR = "https://tracker.example/pixel.gif?u={person}"
HTTP_AVATAR = "http://thirdwx.qlogo.cn/mmopen/vi_32/{person}/132"  # stored as https
ERRMSG = {-1: "system error", 40029: "invalid code", 40163: "code been used", 45011: "api minute-quota reach limit",
          40226: "code blocked"}


def ids(appid: str, person: str, mode: str) -> tuple[str, str | None]:
    openid = "o" + hashlib.sha256(f"{appid}:{person}".encode()).hexdigest()[:27]
    unionid = None if mode == "nounion" else "" if mode == "emptyunion" else \
        "u" + hashlib.sha256(f"union:{person}".encode()).hexdigest()[:27]
    return openid, unionid


@dataclass
class Call:
    path: str
    params: dict[str, list[str]]
    reused: bool = False  # the connection had already answered a request (kept alive)
    body: Any = None  # a POST's JSON body


@dataclass
class FakeWeChat:
    slow_seconds: float = 3.0
    lag_seconds: float = 1.0
    latency: float = 0.0
    port: int = 0
    host: str = "127.0.0.1"  # another address, e.g. the test's own on a bridge that other hosts reach
    calls: list[Call] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    _server: Any = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    stable_mode: str = "ok"
    stable_latency: float = 0.0
    app_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> {"appid", "revoked"}
    stable_current: dict[str, str] = field(default_factory=dict)  # appid -> what normal mode hands out
    stale: set[str] = field(default_factory=set)  # appids whose normal mode hands out a revoked token

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def pause(self) -> None:
        """Close the listening socket and every kept-alive connection: connections are now refused."""
        self._server.close()
        for writer in list(self._open):
            writer.close()
        await self._server.wait_closed()

    async def resume(self) -> None:
        await self.start()

    async def close(self) -> None:
        self._server.close()

    def calls_for(self, code: str) -> int:
        return sum(1 for c in self.calls if code in c.params.get("code", []) + c.params.get("js_code", []))

    def userinfo_calls_for(self, code: str) -> int:
        """/sns/userinfo calls made with the access token the stand-in issued for ``code``'s person."""
        mode, _, rest = code.partition(".")
        person = rest.split(".")[0]
        return sum(1 for c in self.calls if c.path == "/sns/userinfo"
                   and c.params.get("access_token", [""])[0].startswith(f"AT.{mode}.{person}."))

    def stable_token_calls(self, appid: str | None = None, force: bool | None = None) -> int:
        """stable_token requests that reached the stand-in (failed ones included)."""
        return sum(1 for c in self.calls if c.path == "/cgi-bin/stable_token"
                   and (appid is None or (c.body or {}).get("appid") == appid)
                   and (force is None or (c.body or {}).get("force_refresh") is force))

    def revoke_app_tokens(self, appid: str, keep_handing: bool = False) -> None:
        for record in self.app_tokens.values():
            if record["appid"] == appid:
                record["revoked"] = True
        if keep_handing:
            self.stale.add(appid)

    def reset_app_tokens(self) -> None:
        self.stable_mode, self.stable_latency = "ok", 0.0
        self.calls[:] = [c for c in self.calls if not c.path.startswith("/cgi-bin/")]
        self.app_tokens.clear()
        self.stable_current.clear()
        self.stale.clear()

    def _new_app_token(self, appid: str) -> str:
        token = f"FAKEAPPTOKEN.{appid}.{len(self.app_tokens)}.{hashlib.sha256(str(id(self)).encode()).hexdigest()[:8]}"
        self.app_tokens[token] = {"appid": appid, "revoked": False}
        self.stable_current[appid] = token
        return token

    async def _app_token_answer(self, path: str, params: dict[str, str], body: Any,
                                writer: asyncio.StreamWriter) -> bool:
        if path == "/cgi-bin/get_api_domain_ip":
            record = self.app_tokens.get(params.get("access_token", ""))
            if record is None or record["revoked"]:
                return self._json(writer, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid "
                                           "or not latest rid: 0000-fake"})
            return self._json(writer, {"ip_list": ["127.0.0.1"]})
        if self.stable_latency:
            await asyncio.sleep(self.stable_latency)
        if self.stable_mode != "ok":
            return await self._fault(self.stable_mode, writer)
        if not isinstance(body, dict) or not body.get("appid") or not body.get("secret"):
            return self._json(writer, {"errcode": 47001, "errmsg": "data format error"})
        appid = str(body["appid"])
        current = self.stable_current.get(appid)
        if body.get("force_refresh") is True:
            self.stale.discard(appid)
            current = self._new_app_token(appid)
        elif current is None or (self.app_tokens[current]["revoked"] and appid not in self.stale):
            current = self._new_app_token(appid)
        return self._json(writer, {"access_token": current, "expires_in": 7200})

    def phone_calls_for(self, code: str) -> int:
        """getuserphonenumber requests that reached the stand-in with this code."""
        return sum(1 for c in self.calls if c.path == "/wxa/business/getuserphonenumber"
                   and isinstance(c.body, dict) and c.body.get("code") == code)

    async def _phone_answer(self, params: dict[str, str], body: Any, writer: asyncio.StreamWriter) -> bool:
        record = self.app_tokens.get(params.get("access_token", ""))
        if record is None or record["revoked"]:
            return self._json(writer, {"errcode": 40001, "errmsg": "invalid credential rid: 0000-fake"})
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        mode, _, rest = code.partition(".")
        if mode in FAULT_MODES and mode != "slow":
            return await self._fault(mode, writer)
        if mode != "ok" or code in self.used:
            return self._json(writer, {"errcode": 40029, "errmsg": "invalid code rid: 0000-fake"})
        self.used.add(code)
        digits = str(int(hashlib.sha256(rest.split(".")[0].encode()).hexdigest(), 16))[-9:]
        return self._json(writer, {"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": "13" + digits, "purePhoneNumber": "13" + digits, "countryCode": "86",
            "watermark": {"timestamp": 1700000000, "appid": record["appid"]}}})

    def secrets_seen(self) -> set[str]:
        return {s for c in self.calls for s in c.params.get("secret", [])}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        answered = 0  # requests answered on this connection so far
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                target = line.split(" ")[1] if line.count(" ") >= 2 else "/"
                parts = urlsplit(target)
                params: dict[str, list[str]] = {}
                for key, value in parse_qsl(parts.query, keep_blank_values=True):
                    params.setdefault(key, []).append(value)
                body: Any = None
                length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
                if length and int(length.group(1)):
                    raw = await reader.readexactly(int(length.group(1)))
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw
                self.calls.append(Call(parts.path, params, reused=answered > 0, body=body))
                if self.latency:
                    await asyncio.sleep(self.latency)
                if parts.path == "/wxa/business/getuserphonenumber":
                    keep = await self._phone_answer({k: v[0] for k, v in params.items()}, body, writer)
                elif parts.path in ("/cgi-bin/stable_token", "/cgi-bin/get_api_domain_ip"):
                    keep = await self._app_token_answer(parts.path, {k: v[0] for k, v in params.items()}, body,
                                                        writer)
                else:
                    keep = await self._answer(parts.path, params, writer, reused=answered > 0)
                if not keep:
                    return
                answered += 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            self._open.discard(writer)
            if not writer.is_closing():
                writer.close()

    async def _answer(self, path: str, params: dict[str, list[str]], writer: asyncio.StreamWriter,
                      reused: bool) -> bool:
        one = {k: v[0] for k, v in params.items()}
        if path in ("/sns/oauth2/access_token", "/sns/jscode2session"):
            code = one.get("code") or one.get("js_code") or ""
            mode, _, rest = code.partition(".")
            person = rest.split(".")[0] or "nobody"
            self.attempts[code] = self.attempts.get(code, 0) + 1
            if mode == "slow":  # a slow success: the caller's timeout decides whether it is a failure
                await asyncio.sleep(self.slow_seconds)
            if mode == "lag":  # slow, within the caller's timeout
                await asyncio.sleep(self.lag_seconds)
            if mode == "closekept" and reused:
                return False  # read, then closed without a byte (the caller closes the socket)
            if mode == "m1once" and self.attempts[code] == 1:
                return self._json(writer, {"errcode": -1, "errmsg": ERRMSG[-1]})
            if mode in FAULT_MODES and mode != "slow":
                return await self._fault(mode, writer)
            if mode not in KNOWN_MODES:
                return self._json(writer, {"errcode": 40029, "errmsg": ERRMSG[40029]})  # like a random code
            if code in self.used:
                return self._json(writer, {"errcode": 40163, "errmsg": ERRMSG[40163]})
            self.used.add(code)
            openid, unionid = ids(one.get("appid", ""), person, mode)
            body: dict[str, Any] = {"openid": openid, "scope": "snsapi_login"}
            if path.endswith("jscode2session"):
                body = {"openid": openid, "session_key": "U0tNQVJLU0tNQVJLU0tNQQ=="}  # b64 of "SKMARKSKMARKSKMA"
            else:
                body.update({"access_token": f"AT.{mode}.{person}.{one.get('appid', '')}", "expires_in": 7200,
                             "refresh_token": f"RT.{person}"})
            if unionid is not None:
                body["unionid"] = unionid
            if mode == "cjktoken":
                body.update({"access_token": CJK_TOKEN} if "access_token" in body else {"session_key": CJK_SESSION_KEY})
            return self._json(writer, body)
        if path == "/sns/userinfo":
            _, mode, person, appid = (one.get("access_token", "") + "...").split(".")[:4]
            if mode == "uiclosekept" and reused:
                return False
            if mode.startswith("ui") and mode[2:] in FAULT_MODES:
                if mode == "uislow":
                    await asyncio.sleep(self.slow_seconds)
                else:
                    return await self._fault(mode[2:], writer)
            openid, unionid = ids(appid, person, mode)
            body = {"openid": openid, "nickname": f"假微信 {person}", "sex": 0, "headimgurl": "", "privilege": []}
            if unionid is not None:
                body["unionid"] = unionid
            if mode == "uisurrogate":
                body["headimgurl"] = SURROGATE_AVATAR
            elif mode == "uirtl":
                body["nickname"] = BIDI_NICKNAME.format(person=person)
            elif mode == "uiavatarhost":
                body["headimgurl"] = FOREIGN_AVATAR.format(person=person)
            elif mode == "uihttpavatar":
                body["headimgurl"] = HTTP_AVATAR.format(person=person)
            # A lone surrogate has no UTF-8: JSON carries it as the escape "\ud800", as any JSON encoder would.
            return self._json(writer, body, ascii_only=mode == "uisurrogate")
        return self._raw(writer, 404, "text/plain", b"not found")

    async def _fault(self, mode: str, writer: asyncio.StreamWriter) -> bool:
        if mode.startswith("http"):
            return self._raw(writer, int(mode[4:]), "text/html", b"<html><body>502 Bad Gateway</body></html>")
        if mode == "reset":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                         b'{"access_token":"AT","openid":"o')
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if mode == "noreply":
            return False  # the request was read; the caller closes the socket without writing a byte
        if mode == "truncated":
            return self._raw(writer, 200, "application/json", b'{"access_token":"AT","expires_in":72')
        if mode == "html":
            return self._raw(writer, 200, "text/html", "<html><body>系统繁忙，请稍后再试</body></html>".encode())
        if mode == "big":
            blob = b'{"padding":"' + b"x" * (10 * 1024 * 1024) + b'"}'
            return self._raw(writer, 200, "application/json", blob)
        if mode == "redirect":
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/evil\r\nContent-Length: 0\r\n\r\n")
            return True
        if mode == "noopenid":
            return self._json(writer, {"access_token": "AT.x.y.z", "expires_in": 7200, "session_key": "x"})
        if mode == "openidint":
            return self._json(writer, {"access_token": "AT.x.y.z", "openid": 123, "session_key": "x"})
        errcode = int(mode[1:])
        return self._json(writer, {"errcode": errcode, "errmsg": ERRMSG[errcode]})

    def _json(self, writer: asyncio.StreamWriter, body: dict[str, Any], ascii_only: bool = False) -> bool:
        # WeChat answers JSON as text/plain; the client must not care.
        return self._raw(writer, 200, "text/plain", json.dumps(body, ensure_ascii=ascii_only).encode())

    @staticmethod
    def _raw(writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes) -> bool:
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}; charset=utf-8\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return True
