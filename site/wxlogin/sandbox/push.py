"""The sandbox's WeChat side of event pushes: it signs (and in safe mode seals) an event and POSTs it to the
site's server URL the way WeChat does, with a 5-second timeout and 3 tries; and it runs the URL check.

This is a second implementation of ../shared/wechat-platform.md §5, written apart from wechat/push_crypto.py
on purpose (the sandbox imports nothing from wechat/, services/ or store/): the unit tests run the
documented vector through both, so the two cannot share a mistake.

Developer endpoints (loopback only, like the rest of the sandbox):

- ``POST /_sandbox/dev/push {"kind": "mp", "app": "<name>" (optional), "event": "subscribe",
  "person": "zhangsan" | "openid": "o...", "event_key": "qrscene_x", "ticket": "...",
  "mode": "plain|compatible|safe", "format": "xml|json"}``
  pushes one event to ``<public_url>/wechat/push/<kind>`` (``/<kind>/<name>`` for a named app) and says what
  the site answered;
- ``POST /_sandbox/dev/push/check {"kind": "mp", "app": "<name>" (optional)}`` plays the console's "submit"
  (the GET echo check).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import tornado.httpclient
import tornado.routing
import tornado.simple_httpclient
import tornado.web
from Crypto.Cipher import AES

from wxlogin.sandbox import people
from wxlogin.sandbox.base import RegisteredApp
from wxlogin.sandbox.dev import DevHandler

TIMEOUT = 5.0  # WeChat drops the connection after 5 s ...
TRIES = 3  # ... and tries three times in all
MODES = ("plain", "compatible", "safe")
FORMATS = ("xml", "json")
_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EVENT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


# ---- WeChat's crypto, the sandbox's own copy ---------------------------------------------------------------

def sign(token: str, *parts: str) -> str:
    """sha1 over the token and the parts, sorted and joined (signature and msg_signature alike)."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode("utf-8")).hexdigest()


def _key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    if len(encoding_aes_key) != 43 or len(key) != 32:
        raise ValueError("EncodingAESKey must be 43 characters")
    return key


def seal(encoding_aes_key: str, appid: str, message: bytes, prefix: bytes | None = None) -> str:
    """WeChat's Encrypt: AES-256-CBC(random16 | len32be | message | appid), PKCS#7 to 32-byte blocks."""
    key = _key(encoding_aes_key)
    plain = (prefix if prefix is not None else secrets.token_bytes(16)) + len(message).to_bytes(4, "big")
    plain += message + appid.encode()
    size = 32 - len(plain) % 32
    plain += bytes([size]) * size
    return base64.b64encode(AES.new(key, AES.MODE_CBC, iv=key[:16]).encrypt(plain)).decode()


def unseal(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """(message, appid) of an Encrypt value: how WeChat reads the site's encrypted replies."""
    key = _key(encoding_aes_key)
    plain = AES.new(key, AES.MODE_CBC, iv=key[:16]).decrypt(base64.b64decode(encrypted, validate=True))
    plain = plain[:-plain[-1]]
    size = int.from_bytes(plain[16:20], "big")
    return plain[20:20 + size], plain[20 + size:].decode()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(fields: Mapping[str, Any], fmt: str = "xml") -> bytes:
    """A message as WeChat writes it: XML with CDATA strings and bare numbers, or a JSON object.

    A value may nest (a mapping, e.g. wxa_media_check's ``result``; a list of mappings, its ``detail``):
    XML nests elements, a list repeating its element.
    """
    if fmt == "json":
        return json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":")).encode()
    return f"<xml>{_xml_fields(fields)}</xml>".encode()


def _xml_fields(fields: Mapping[str, Any]) -> str:
    out = []
    for k, v in fields.items():
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, Mapping):
                out.append(f"<{k}>{_xml_fields(item)}</{k}>")
            else:
                out.append(f"<{k}>{item if isinstance(item, int) else _cdata(str(item))}</{k}>")
    return "".join(out)


def original_id(appid: str) -> str:
    """The app's gh_ id, which WeChat puts in ToUserName."""
    return "gh_" + hashlib.sha256(appid.encode()).hexdigest()[:12]


def event_fields(appid: str, openid: str, event: str, event_key: str = "", ticket: str = "",
                 create_time: int | None = None, msg_type: str = "event") -> dict[str, str | int]:
    fields: dict[str, str | int] = {
        "ToUserName": original_id(appid), "FromUserName": openid,
        "CreateTime": int(time.time()) if create_time is None else create_time, "MsgType": msg_type,
    }
    if msg_type == "event":
        fields["Event"] = event
    if event_key:
        fields["EventKey"] = event_key
    if ticket:
        fields["Ticket"] = ticket
    return fields


@dataclass(frozen=True)
class SignedPush:
    """What goes on the wire: the query and the body."""

    query: dict[str, str]
    body: bytes
    content_type: str


def signed_push(token: str, aes_key: str, appid: str, fields: Mapping[str, Any], mode: str = "plain",
                fmt: str = "xml", timestamp: str | None = None, nonce: str | None = None) -> SignedPush:
    """Sign (and in compatible/safe mode seal) one message as WeChat would send it."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = str(secrets.randbelow(10**10)) if nonce is None else nonce
    query = {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "openid": str(fields.get("FromUserName", ""))}
    content_type = "application/json" if fmt == "json" else "text/xml"
    message = render(fields, fmt)
    if mode == "plain":
        return SignedPush(query, message, content_type)
    encrypted = seal(aes_key, appid, message)
    query.update(encrypt_type="aes", msg_signature=sign(token, timestamp, nonce, encrypted))
    outer: dict[str, Any] = dict(fields) if mode == "compatible" else {"ToUserName": fields["ToUserName"]}
    outer["Encrypt"] = encrypted
    return SignedPush(query, render(outer, fmt), content_type)


@dataclass(frozen=True)
class Delivery:
    """How a push went: the tries it took, and the site's last answer (status None: no answer at all)."""

    tries: int
    status: int | None
    body: bytes


async def deliver(url: str, push: SignedPush, tries: int = TRIES, timeout: float = TIMEOUT) -> Delivery:
    """POST like WeChat: no answer within ``timeout`` (or no connection) means another try, up to ``tries``."""
    client = tornado.simple_httpclient.SimpleAsyncHTTPClient(force_instance=True)
    try:
        for attempt in range(1, tries + 1):
            request = tornado.httpclient.HTTPRequest(
                f"{url}?{urlencode(push.query)}", method="POST", body=push.body,
                headers={"Content-Type": push.content_type, "User-Agent": "Mozilla/4.0 (sandbox WeChat push)"},
                connect_timeout=timeout, request_timeout=timeout, follow_redirects=False,
            )
            try:
                response = await client.fetch(request, raise_error=False)
            except (OSError, tornado.httpclient.HTTPClientError):
                if attempt == tries:
                    return Delivery(attempt, None, b"")
                continue
            return Delivery(attempt, response.code, response.body or b"")
        return Delivery(tries, None, b"")
    finally:
        client.close()


async def check_url(url: str, token: str, timeout: float = TIMEOUT) -> tuple[int | None, bool]:
    """The console's URL check: GET with a signed echostr; (status, whether the site echoed it)."""
    timestamp, nonce, echostr = str(int(time.time())), str(secrets.randbelow(10**10)), str(secrets.randbits(62))
    query = {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
    client = tornado.simple_httpclient.SimpleAsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(f"{url}?{urlencode(query)}", raise_error=False, request_timeout=timeout,
                                      connect_timeout=timeout, follow_redirects=False)
    except (OSError, tornado.httpclient.HTTPClientError):
        return None, False
    finally:
        client.close()
    return response.code, response.body == echostr.encode()


# ---- the developer endpoints -------------------------------------------------------------------------------

class _PushDevHandler(DevHandler):
    def push_target(self, data: Mapping[str, Any]) -> tuple[RegisteredApp, str]:
        kind = data.get("kind", "mp")
        app = self.sandbox.named(kind, data.get("app", "")) if kind in ("mp", "miniprogram") else None
        if app is None:
            raise tornado.web.HTTPError(400)
        if not app.push_token:
            raise tornado.web.HTTPError(409)  # no push_token: the site has no server URL for this app
        # The server URL typed into "WeChat's console": the site's own, never one from the request.
        site = self.sandbox.base_url.removesuffix(self.sandbox.path_prefix)
        return app, f"{site}/wechat/push/{kind}" + (f"/{app.name}" if app.name else "")


class DevPushHandler(_PushDevHandler):
    """POST /dev/push: push one event to the site, as WeChat would."""

    async def post(self) -> None:
        data = self.body_json()
        app, url = self.push_target(data)
        openid = data.get("openid")
        if openid is None:
            person = people.person(str(data.get("person", "zhangsan")))
            openid = people.openid_for(app.appid, person) if person is not None else None
        event, mode = data.get("event", "subscribe"), data.get("mode", "safe" if app.push_aes_key else "plain")
        fmt, key, ticket = data.get("format", "xml"), data.get("event_key", ""), data.get("ticket", "")
        if (not isinstance(openid, str) or not _OPENID_RE.match(openid) or not isinstance(event, str)
                or not _EVENT_RE.match(event) or mode not in MODES or fmt not in FORMATS
                or not isinstance(key, str) or not isinstance(ticket, str) or len(key) > 256 or len(ticket) > 512
                or (mode != "plain" and not app.push_aes_key)):
            raise tornado.web.HTTPError(400)
        push = signed_push(app.push_token, app.push_aes_key, app.appid,
                           event_fields(app.appid, openid, event, key, ticket), mode, fmt)
        delivery = await deliver(url, push)
        self.finish({"url": url, "mode": mode, "format": fmt, "tries": delivery.tries, "status": delivery.status,
                     "reply": self.readable(app, delivery.body)})

    @staticmethod
    def readable(app: RegisteredApp, body: bytes) -> str:
        """The site's reply as WeChat would read it: an encrypted reply is opened."""
        text = body.decode("utf-8", "replace")
        found = re.search(r"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>", text)
        if found and app.push_aes_key:
            message, _ = unseal(app.push_aes_key, found.group(1))
            return message.decode("utf-8", "replace")
        return text


class DevPushCheckHandler(_PushDevHandler):
    """POST /dev/push/check: the console's URL check (GET with echostr)."""

    async def post(self) -> None:
        app, url = self.push_target(self.body_json())
        status, echoed = await check_url(url, app.push_token)
        self.finish({"url": url, "status": status, "echoed": echoed})


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/dev/push", DevPushHandler, init),
        tornado.web.url(prefix + r"/dev/push/check", DevPushCheckHandler, init),
    ]
