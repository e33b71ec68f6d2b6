"""Helpers shared by the tests: walking the sandbox like a person, and checking redirects."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import io
import json
import re
import secrets
import struct
import time
import zlib
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urljoin

import httpx
from Crypto.Cipher import AES
from PIL import Image

from wxlogin.sandbox import push as wechat_push

# Return targets that must never leave the site: security.md list 4.B (Django's list plus our own).
BAD_RETURN_TARGETS = [
    "http://example.com", "http:///example.com", "https://example.com", "ftp://example.com", "\\\\example.com",
    "\\\\\\example.com", "/\\\\/example.com", "\\\\//example.com", "/\\/example.com", "\\/example.com",
    "/\\example.com", "http:/\\//example.com", "http:\\/example.com", "http:/\\example.com",
    'javascript:alert("XSS")', "\njavascript:alert(x)", "\x08//example.com", "http://otherserver\\@example.com",
    "http:\\\\testserver\\@example.com", "http://testserver\\me:pass@example.com", "http:999999999",
    "ftp:9999999999", "\n", "http://[2001:cdba::3257:9652/", "//evil.com", "///evil.com", "/%2F%2Fevil.com",
    "/%5Cevil.com", "/%09/evil.com", " //evil.com", "%0d%0aLocation:%20https://evil.com",
    "\r\nLocation: https://evil.com", "@evil.com",
    ".evil.com", "https://127.0.0.1.evil.com", "https://127.0.0.1@evil.com", "https:evil.com",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox", "/logout", "/auth/wechat/web",
    "/" + "a" * 5000,
    # Dot segments a browser removes before resolving (issue 12): each becomes //evil.com.
    "/.//evil.com", "/%2e//evil.com", "/..//evil.com", "/a/..//evil.com", "/./%2Fevil.com", "/x//evil.com",
]


# Scene ids in a waiting page's URLs (/login/scene/<scene>/...): security.md part 6's list (too long, with / or
# NUL, unknown) and more. Each gets a 404 from every scene route, never a 500; a well-formed unknown id is
# told apart from nothing (scene_not_found, the same answer as another browser's scene).
BAD_SCENE_IDS = [
    "", "a", "A" * 31, "A" * 33, "A" * 64, "A" * 5000, "AAAA%2F" + "A" * 28, "AAAA/" + "A" * 28,
    "%00" + "A" * 31, "A" * 31 + "%00", "A" * 31 + "-", "A" * 31 + "_", "..%2F..%2Fetc%2Fpasswd", "%2E%2E",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%E4%BA%8C", "%F0%9F%90%BC" * 8, "A" * 31 + "%0d%0aSet-Cookie:x=y",
    "login_" + "A" * 26, "qrscene_" + "A" * 24, "' OR 1=1 -- AAAAAAAAAAAAAAAAAAAA", "A" * 31 + "%20",
    "0" * 32, "z" * 32,  # well formed, unknown
]

JSON = "application/json"
# Bad bodies for the JSON login endpoints: security.md list 4.C plus our own, with the status each gets.
BAD_JSON_BODIES: dict[str, tuple[bytes, str, int]] = {
    "empty": (b"", JSON, 400),
    "not json": (b"not json", JSON, 400),
    "open brace": (b"{", JSON, 400),
    "text/plain": (b'{"code":"x"}', "text/plain", 415),
    "form": (b"code=x", "application/x-www-form-urlencoded", 415),
    "latin1": ('{"code":"é"}'.encode("latin-1"), "application/json; charset=latin1", 400),
    "utf-16": ('{"code":"x"}'.encode("utf-16"), JSON, 400),
    "BOM": (b'\xef\xbb\xbf{"code":"x"}', JSON, 400),
    "invalid UTF-8": (b'{"code": "\xff\xfe"}', JSON, 400),
    "null": (b"null", JSON, 400),
    "array": (b"[]", JSON, 400),
    "string": (b'"code"', JSON, 400),
    "number": (b"123", JSON, 400),
    "deep nesting": (b"[" * 100000 + b"]" * 100000, JSON, 413),
    "5000 digits": (b'{"code":' + b"9" * 5000 + b"}", JSON, 400),
    "NaN": (b'{"code":NaN}', JSON, 400),
    "Infinity": (b'{"code":Infinity}', JSON, 400),
    "1e999 (infinity by overflow)": (b'{"code":"x","n":1e999}', JSON, 400),
    "{}": (b"{}", JSON, 400),
    "code null": (b'{"code":null}', JSON, 400),
    "code int": (b'{"code":123}', JSON, 400),
    "code true": (b'{"code":true}', JSON, 400),
    "code list": (b'{"code":["a"]}', JSON, 400),
    "code object (CVE-2024-36039)": (b'{"code":{"x\' OR 1=1 -- ":1}}', JSON, 400),
    "code empty": (b'{"code":""}', JSON, 400),
    "code space": (b'{"code":" "}', JSON, 400),
    "code 10 KB": (b'{"code":"' + b"a" * 10240 + b'"}', JSON, 400),
    "code NUL": (b'{"code":"a\\u0000"}', JSON, 400),
    "lone surrogate": (b'{"code":"\\ud800"}', JSON, 400),
    "RTL override": (b'{"code":"a\\u202e"}', JSON, 400),
    "duplicate keys": (b'{"code":"a","code":"b"}', JSON, 400),
    "40 KB": (b'{"code":"' + b"a" * (40 << 10) + b'"}', JSON, 413),
    "1 MB": (b'{"code":"' + b"a" * (1 << 20) + b'"}', JSON, 413),
}


# Pushes that must change nothing (security.md part 6's bad inputs), for an app in safe mode, with the status
# each gets. Built by ``bad_push`` with fresh timestamps; the sandbox's own signing plays WeChat (or the forger).
BAD_PUSHES: dict[str, int] = {
    "bad signature": 403, "no signature": 403, "signature of an empty token": 403, "bad msg_signature": 403,
    "no msg_signature": 403, "plain body to a safe-mode app": 403, "wrong appid inside": 400,
    "another app's key": 400, "replayed old timestamp": 403, "future timestamp": 403, "DOCTYPE outside": 400,
    "entity expansion inside": 400, "external entity inside": 400, "malformed XML inside": 400,
    "malformed XML outside": 400, "JSON array inside": 400, "malformed JSON outside": 400,
    "no FromUserName inside": 400, "openid with a newline inside": 400, "Encrypt not base64": 400,
    "padding wrong": 400, "oversize body": 413, "1 MB body": 413,
}
PUSH_OPENID = "oBADPUSHopenid00000000000000"


def bad_push(case: str, token: str, key: str, appid: str) -> tuple[dict[str, str], bytes, int]:
    """(query, body, expected status) of one ``BAD_PUSHES`` case."""
    message = wechat_push.event_fields(appid, PUSH_OPENID, "subscribe")
    good = wechat_push.signed_push(token, key, appid, message, "safe")
    query, body = dict(good.query), good.body
    now = str(int(time.time()))

    def sealed(inner: bytes, for_appid: str = appid, timestamp: str = now,
               encrypted: str | None = None) -> tuple[dict[str, str], bytes]:
        encrypted = wechat_push.seal(key, for_appid, inner) if encrypted is None else encrypted
        return ({"signature": wechat_push.sign(token, timestamp, "77"), "timestamp": timestamp, "nonce": "77",
                 "encrypt_type": "aes", "msg_signature": wechat_push.sign(token, timestamp, "77", encrypted)},
                wechat_push.render({"ToUserName": "gh_x", "Encrypt": encrypted}))

    rendered = wechat_push.render(message)
    if case == "bad signature":
        query["signature"] = wechat_push.sign("NotTheToken", query["timestamp"], query["nonce"])
    elif case == "no signature":
        del query["signature"]
    elif case == "signature of an empty token":
        query["signature"] = wechat_push.sign("", query["timestamp"], query["nonce"])
    elif case == "bad msg_signature":
        query["msg_signature"] = wechat_push.sign("NotTheToken", query["timestamp"], query["nonce"], "x")
    elif case == "no msg_signature":
        del query["msg_signature"]
    elif case == "plain body to a safe-mode app":
        plain = wechat_push.signed_push(token, key, appid, message, "plain")
        query, body = plain.query, plain.body
    elif case == "wrong appid inside":
        query, body = sealed(rendered, for_appid="wx0000000000000000")
    elif case == "another app's key":
        query, body = sealed(b"", encrypted=wechat_push.seal("A" * 43, appid, rendered))
    elif case in ("replayed old timestamp", "future timestamp"):
        query, body = sealed(rendered, timestamp=str(int(now) + (-600 if case.startswith("replayed") else 600)))
    elif case == "DOCTYPE outside":
        body = b'<!DOCTYPE xml [<!ENTITY e "x">]>' + body
    elif case == "entity expansion inside":
        query, body = sealed(b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                             b"<xml><ToUserName>gh_x</ToUserName><FromUserName>&b;</FromUserName></xml>")
    elif case == "external entity inside":
        query, body = sealed(b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><FromUserName>&x;'
                             b"</FromUserName></xml>")
    elif case == "malformed XML inside":
        query, body = sealed(b"<xml><FromUserName>o1</FromUserName>")
    elif case == "malformed XML outside":
        body = body[:-3]
    elif case == "JSON array inside":
        query, body = sealed(b"[1]")
    elif case == "malformed JSON outside":
        body = b'{"ToUserName": "gh_x", "Encrypt": '
    elif case == "no FromUserName inside":
        query, body = sealed(b"<xml><ToUserName>gh_x</ToUserName><CreateTime>1</CreateTime>"
                             b"<MsgType>event</MsgType><Event>subscribe</Event></xml>")
    elif case == "openid with a newline inside":
        query, body = sealed(wechat_push.render({**message, "FromUserName": "o1\nINJECTED"}))
    elif case == "Encrypt not base64":
        query, body = sealed(b"", encrypted="!!" + wechat_push.seal(key, appid, rendered)[2:])
    elif case == "padding wrong":
        # Block-aligned and for this app, but padded with zero bytes instead of PKCS#7.
        aes = base64.b64decode(key + "=")
        plain = b"r" * 16 + len(rendered).to_bytes(4, "big") + rendered + appid.encode()
        plain += bytes(32 - len(plain) % 32)
        encrypted = base64.b64encode(AES.new(aes, AES.MODE_CBC, iv=aes[:16]).encrypt(plain)).decode()
        query, body = sealed(b"", encrypted=encrypted)
    elif case == "oversize body":
        body = b"<xml><ToUserName>" + b"a" * (20 * 1024) + b"</ToUserName></xml>"
    elif case == "1 MB body":
        body = b"<xml>" + b"<a>x</a>" * (1 << 17) + b"</xml>"
    else:
        raise AssertionError(case)
    return query, body, BAD_PUSHES[case]



# Forwarded scan events (POST /wechat/forward/mp, README "Forwarding mode") that must change nothing, with the
# status each gets: signatures and timestamps (403, an empty answer, before the body is parsed), then bodies
# signed right but malformed (400) or too large (413). Built by ``bad_forward`` with fresh timestamps.
BAD_FORWARDS: dict[str, int] = {
    "wrong secret": 403, "no signature": 403, "empty signature": 403, "no timestamp": 403,
    "signature in capitals": 403, "signature not hex": 403, "signature truncated": 403,
    "signature of another body": 403,
    "signature without the timestamp": 403, "signature of the timestamp only": 403, "SHA-1 HMAC": 403,
    "two signatures": 403, "two timestamps": 403, "replayed old timestamp": 403, "future timestamp": 403,
    "timestamp not a number": 403, "timestamp with decimals": 403, "timestamp negative": 403,
    "timestamp in milliseconds": 403, "timestamp 5000 digits": 403, "timestamp with a plus sign": 403,
    "empty body": 400, "DOCTYPE": 400, "entity expansion": 400, "external entity": 400, "malformed XML": 400,
    "JSON array": 400, "malformed JSON": 400, "no FromUserName": 400, "openid with a newline": 400,
    "an unopened safe-mode envelope": 400, "oversize body": 413, "1 MB body": 413,
}


def forward_signature(secret: str, timestamp: str, body: bytes, digest: str = "sha256") -> str:
    """HMAC over the timestamp, a line feed and the body, as the README tells a forwarder to sign."""
    return hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, digest).hexdigest()


def bad_forward(case: str, secret: str, appid: str, event_key: str) -> tuple[list[tuple[str, str]], bytes, int]:
    """(headers, body, expected status) of one ``BAD_FORWARDS`` case: a SCAN of ``event_key`` otherwise."""
    message = wechat_push.event_fields(appid, PUSH_OPENID, "SCAN", event_key)
    body = wechat_push.render(message)
    stamp = str(int(time.time()))
    signed_stamp, signature = stamp, ""
    extra: list[tuple[str, str]] = []
    if case == "empty body":
        body = b""
    elif case == "DOCTYPE":
        body = b'<!DOCTYPE xml [<!ENTITY e "x">]>' + body
    elif case == "entity expansion":
        body = (b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                b"<xml><ToUserName>gh_x</ToUserName><FromUserName>&b;</FromUserName></xml>")
    elif case == "external entity":
        body = b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><FromUserName>&x;</FromUserName></xml>'
    elif case == "malformed XML":
        body = body[:-3]
    elif case == "JSON array":
        body = b"[1]"
    elif case == "malformed JSON":
        body = b'{"ToUserName": "gh_x", "FromUserName": '
    elif case == "no FromUserName":
        body = wechat_push.render({k: v for k, v in message.items() if k != "FromUserName"})
    elif case == "openid with a newline":
        body = wechat_push.render({**message, "FromUserName": "o1\nINJECTED"})
    elif case == "an unopened safe-mode envelope":  # the forwarder must open WeChat's envelope itself
        body = wechat_push.render({"ToUserName": "gh_x", "Encrypt": wechat_push.seal("A" * 43, appid, body)})
    elif case == "oversize body":
        body = wechat_push.render({**message, "EventKey": "a" * (20 * 1024)})
    elif case == "1 MB body":
        body = b"<xml>" + b"<a>x</a>" * (1 << 17) + b"</xml>"
    elif case in ("replayed old timestamp", "future timestamp"):
        stamp = signed_stamp = str(int(stamp) + (-306 if case.startswith("replayed") else 306))
    elif case.startswith("timestamp"):
        stamp = signed_stamp = {"timestamp not a number": "now", "timestamp with decimals": stamp + ".5",
                                "timestamp negative": "-" + stamp, "timestamp in milliseconds": stamp + "000",
                                "timestamp 5000 digits": "9" * 5000, "timestamp with a plus sign": "+" + stamp}[case]
    signature = forward_signature(secret, signed_stamp, body)
    if case == "wrong secret":
        signature = forward_signature("another-secret-0123456789abcdef-0123", stamp, body)
    elif case == "empty signature":
        signature = ""
    elif case == "signature in capitals":
        signature = signature.upper()
    elif case == "signature not hex":
        signature = "z" * 64
    elif case == "signature truncated":
        signature = signature[:63]
    elif case == "signature of another body":
        signature = forward_signature(secret, stamp, body.replace(b"SCAN", b"subscribe"))
    elif case == "signature without the timestamp":
        signature = hmac.new(secret.encode(), body, "sha256").hexdigest()
    elif case == "signature of the timestamp only":
        signature = forward_signature(secret, stamp, b"")
    elif case == "SHA-1 HMAC":
        signature = forward_signature(secret, stamp, body, "sha1")
    elif case == "two signatures":
        extra = [("X-WxLogin-Signature", "0" * 64)]
    elif case == "two timestamps":
        extra = [("X-WxLogin-Timestamp", stamp)]
    headers = [("Content-Type", "text/xml"), ("X-WxLogin-Timestamp", stamp), ("X-WxLogin-Signature", signature),
               *extra]
    if case == "no signature":
        headers = [h for h in headers if h[0] != "X-WxLogin-Signature"]
    elif case == "no timestamp":
        headers = [h for h in headers if h[0] != "X-WxLogin-Timestamp"]
    return headers, body, BAD_FORWARDS[case]

# ---- profile fill-in (issue 13): nicknames and avatar uploads ----------------------------------------------

# Nickname bodies refused before WeChat is asked (status and code), for /api/miniprogram/nickname.
BAD_NICKNAMES: dict[str, tuple[bytes, int, str]] = {
    "no nickname": (b"{}", 400, "bad_request"),
    "null": (b'{"nickname":null}', 400, "bad_request"),
    "number": (b'{"nickname":123}', 400, "bad_request"),
    "list": (b'{"nickname":["a"]}', 400, "bad_request"),
    "object (CVE-2024-36039)": (b'{"nickname":{"x\' OR 1=1 -- ":1}}', 400, "bad_request"),
    "empty": (b'{"nickname":""}', 400, "bad_request"),
    "only spaces": (b'{"nickname":"   "}', 400, "bad_request"),
    "only controls and bidi": (b'{"nickname":"\\u0000\\u202e\\u200b"}', 400, "bad_request"),
    "33 characters": (('{"nickname":"%s"}' % ("名" * 33)).encode(), 400, "bad_request"),
    "257 characters": (b'{"nickname":"' + b"a" * 257 + b'"}', 400, "bad_request"),
    "lone surrogate": (b'{"nickname":"\\ud800"}', 400, "bad_request"),
    "duplicate keys": (b'{"nickname":"a","nickname":"b"}', 400, "bad_request"),
    "40 KB": (b'{"nickname":"' + b"a" * (40 << 10) + b'"}', 413, "body_too_large"),
}


def png_bytes(width: int = 320, height: int = 240, color: tuple[int, int, int] = (30, 160, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def jpeg_with_gps(width: int = 300, height: int = 300) -> bytes:
    """A phone photo's JPEG: EXIF with the camera and a GPS position (Beijing)."""
    image = Image.new("RGB", (width, height), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"  # Make
    gps = exif.get_ifd(0x8825)  # GPSInfo
    gps.update({1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)})
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))


def animated_gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (255, 0, 0)).save(out, format="GIF", save_all=True,
                                                 append_images=[Image.new("RGB", (40, 40), (0, 0, 255))])
    return out.getvalue()


def multipart(parts: list[tuple[str, str | None, bytes, str]], boundary: str = "wxuploadBoundary7MA4YWxk") -> tuple[
        bytes, str]:
    """(body, Content-Type) of a multipart/form-data body; a part is (field, file name or None, bytes, type)."""
    body = b""
    for name, filename, data, content_type in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            body += f"Content-Type: {content_type}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def avatar_upload(data: bytes, filename: str = "tmp_avatar.png", content_type: str = "image/png") -> tuple[
        bytes, str]:
    """What wx.uploadFile({name: "file", filePath}) sends."""
    return multipart([("file", filename, data, content_type)])


def bad_upload(case: str) -> tuple[bytes, str]:
    """(body, Content-Type) of one ``BAD_UPLOADS`` case."""
    good = png_bytes()
    if case == "text named .png":
        return avatar_upload(b"just some text, not an image")
    if case == "SVG named .png":
        return avatar_upload(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    if case == "HTML named .png":
        return avatar_upload(b"<!doctype html><html><script>alert(document.cookie)</script></html>")
    if case == "empty file":
        return avatar_upload(b"")
    if case == "BMP (by content)":
        out = io.BytesIO()
        Image.new("RGB", (64, 64)).save(out, format="BMP")
        return avatar_upload(out.getvalue())
    if case == "PNG bomb (100000 x 100000 declared)":
        return avatar_upload(png_bomb())
    if case == "PNG 5000 pixels wide":
        return avatar_upload(png_bomb(5000, 10))
    if case == "truncated PNG":
        return avatar_upload(png_bytes(600, 600)[:300])
    if case == "animated GIF":
        return avatar_upload(animated_gif(), "a.gif", "image/gif")
    if case == "file over 1 MiB":
        return avatar_upload(good + b"\0" * (1 << 20))
    if case == "no file (a text field only)":
        return multipart([("nickname", None, b"x", "")])
    if case == "two files":
        return multipart([("file", "a.png", good, "image/png"), ("file", "b.png", good, "image/png")])
    if case == "file under another field name":
        return multipart([("avatar", "a.png", good, "image/png")])
    if case == "part header of 8 KiB":
        return multipart([("file", "a" * 8192 + ".png", good, "image/png")])
    if case == "no boundary parameter":
        return avatar_upload(good)[0], "multipart/form-data"
    if case == "boundary not in the body":
        return avatar_upload(good)[0], "multipart/form-data; boundary=somethingElse"
    if case == "no closing delimiter":
        body, content_type = avatar_upload(good)
        return body[: body.rindex(b"--wxupload")], content_type
    if case == "JSON instead of multipart":
        return b'{"file":"x"}', "application/json"
    raise AssertionError(case)


# Uploads refused before WeChat is asked: (status, code) each gets (security.md part 6's upload list and ours).
BAD_UPLOADS: dict[str, tuple[int, str]] = {
    "text named .png": (400, "image_invalid"),
    "SVG named .png": (400, "image_invalid"),
    "HTML named .png": (400, "image_invalid"),
    "empty file": (400, "image_invalid"),
    "BMP (by content)": (400, "image_invalid"),
    "PNG bomb (100000 x 100000 declared)": (400, "image_invalid"),
    "PNG 5000 pixels wide": (400, "image_invalid"),
    "truncated PNG": (400, "image_invalid"),
    "animated GIF": (400, "image_invalid"),
    "file over 1 MiB": (413, "body_too_large"),
    "no file (a text field only)": (400, "bad_request"),
    "two files": (400, "bad_request"),
    "file under another field name": (400, "bad_request"),
    "part header of 8 KiB": (400, "bad_request"),
    "no boundary parameter": (400, "bad_request"),
    "boundary not in the body": (400, "bad_request"),
    "no closing delimiter": (400, "bad_request"),
    "JSON instead of multipart": (415, "unsupported_media_type"),
}


# ---- desktop login by mini-program code (issue 14): login scenes and scene ids ------------------------------

async def insert_scene(sql: Any, kind: str = "miniprogram", status: str = "waiting", life: int = 300,
                       scene: str | None = None) -> str:
    """A login scene row as the scene core makes it (random 32 letters and digits), ``life`` seconds from now
    (negative: expired). ``sql(query, *args)`` runs one statement on the suite's database."""
    scene = scene or secrets.token_hex(16)
    await sql("INSERT INTO login_scenes (scene, kind, binding, status, user_id, next_path, created_at, expires_at) "
              "VALUES (%s, %s, %s, %s, NULL, '/', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL %s SECOND)",
              scene, kind, hashlib.sha256(scene.encode()).digest(), status, life)
    return scene


# Scene bodies for /api/miniprogram/qr-login/{scan,confirm,refuse} refused before MySQL or WeChat: (body,
# Content-Type, status, code) (security.md part 6: scene ids too long, with / or NUL; plus our own).
BAD_SCENES: dict[str, tuple[bytes, str, int, str]] = {
    "no scene": (b"{}", JSON, 400, "bad_request"),
    "null": (b'{"scene":null}', JSON, 400, "bad_request"),
    "number": (b'{"scene":12345}', JSON, 400, "bad_request"),
    "true": (b'{"scene":true}', JSON, 400, "bad_request"),
    "list": (b'{"scene":["a"]}', JSON, 400, "bad_request"),
    "object (CVE-2024-36039)": (b'{"scene":{"x\' OR 1=1 -- ":1}}', JSON, 400, "bad_request"),
    "empty": (b'{"scene":""}', JSON, 400, "bad_request"),
    "33 characters": (b'{"scene":"' + b"a" * 33 + b'"}', JSON, 400, "bad_request"),
    "10 KB": (b'{"scene":"' + b"a" * 10240 + b'"}', JSON, 400, "bad_request"),
    "slash": (b'{"scene":"abc/def"}', JSON, 400, "bad_request"),
    "dot segments": (b'{"scene":"../../etc"}', JSON, 400, "bad_request"),
    "NUL": (b'{"scene":"abc\\u0000"}', JSON, 400, "bad_request"),
    "space": (b'{"scene":"abc def"}', JSON, 400, "bad_request"),
    "still URI-encoded": (b'{"scene":"abc%2Fdef"}', JSON, 400, "bad_request"),
    "SQL wildcard": (b'{"scene":"%"}', JSON, 400, "bad_request"),
    "quote": (b'{"scene":"a\' OR \'1\'=\'1"}', JSON, 400, "bad_request"),
    "CJK": ('{"scene":"场景"}'.encode(), JSON, 400, "bad_request"),
    "fullwidth digits": ('{"scene":"１２３"}'.encode(), JSON, 400, "bad_request"),
    "lone surrogate": (b'{"scene":"\\ud800"}', JSON, 400, "bad_request"),
    "RTL override": (b'{"scene":"abc\\u202e"}', JSON, 400, "bad_request"),
    "trailing newline": (b'{"scene":"abc\\n"}', JSON, 400, "bad_request"),
    "duplicate keys": (b'{"scene":"a","scene":"b"}', JSON, 400, "bad_request"),
    "not JSON": (b"scene=abc", JSON, 400, "bad_request"),
    "form": (b"scene=abc", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    "40 KB": (b'{"scene":"' + b"a" * (40 << 10) + b'"}', JSON, 413, "body_too_large"),
}
QR_LOGIN_STEPS = ("scan", "confirm", "refuse")


class Flows:
    """Walks the sandbox the way a person would, over HTTP."""

    def __init__(self, server: Any) -> None:
        self.server = server

    async def start_qr(self, client: httpx.AsyncClient, next_path: str = "/") -> str:
        """Open the full-page QR flow; return the sandbox QR page URL (state bound to this client)."""
        response = await client.get(f"{self.server.url}/auth/wechat/web", params={"next": next_path})
        assert response.status_code == 302, response.text
        return response.headers["location"].split("#", 1)[0]

    async def scan(self, client: httpx.AsyncClient, qr_url: str, person: str, action: str = "allow") -> str:
        """Load the QR page, confirm on the 'phone' as ``person``; return the callback URL WeChat sends."""
        page = await client.get(qr_url)
        assert page.status_code == 200, page.text
        phone = re.search(r'data-phone="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        xsrf = re.search(r'data-xsrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        answer = await client.post(phone, data={"_xsrf": xsrf, "person": person, "action": action,
                                                "respond": "json"})
        assert answer.status_code == 200, answer.text
        return answer.json()["redirect"]

    async def qr_callback_url(self, client: httpx.AsyncClient, person: str, next_path: str = "/") -> str:
        return await self.scan(client, await self.start_qr(client, next_path), person)

    async def mp_login(self, client: httpx.AsyncClient, person: str, next_path: str = "/",
                       consent: str = "allow") -> Trace:
        """One tap in the WeChat browser as ``person`` (the sandbox's persona cookie says who WeChat sees)."""
        client.cookies.set("sbwx", person)
        return await follow(client, f"{self.server.url}/auth/wechat/mp?next={next_path}", consent)

    async def login(self, client: httpx.AsyncClient, person: str, next_path: str = "/") -> httpx.Response:
        """Complete a desktop QR login; returns the callback's response (302 to next on success)."""
        return await client.get(await self.qr_callback_url(client, person, next_path))


class Trace(list):
    """The responses a browser saw while following a flow, first to last."""

    def visited(self, fragment: str) -> bool:
        return any(fragment in str(r.url) for r in self)


async def follow(client: httpx.AsyncClient, url: str, consent: str = "allow", limit: int = 12) -> Trace:
    """Follow redirects like a browser, answering the sandbox's consent page with ``consent``."""
    trace = Trace()
    for _ in range(limit):
        response = await client.get(url.split("#", 1)[0])
        trace.append(response)
        if response.status_code in (301, 302, 303):
            url = urljoin(str(response.url), response.headers["location"])
            continue
        # Our own consent step (someone new after the silent grant): a person taps the button.
        ours = re.search(r'id="one-tap" data-consent="1" href="([^"]+)"', response.text)
        if response.status_code == 200 and ours:
            url = urljoin(str(response.url), html.unescape(ours.group(1)))
            continue
        consent_page = 'name="action" value="allow"' in response.text and "网页授权" in response.text
        if response.status_code == 200 and consent_page:
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
            fields = {k: html.unescape(v) for k, v in fields.items()}
            fields["action"] = consent
            posted = await client.post(str(response.url).split("?")[0], data=fields)
            trace.append(posted)
            if posted.status_code in (301, 302, 303):
                url = urljoin(str(posted.url), posted.headers["location"])
                continue
        return trace
    raise AssertionError("too many redirects")


def signed_claims(value: str) -> dict[str, Any]:
    """The JSON inside a signed value (a session cookie, a bearer token): ``payload.timestamp.signature``, where a
    payload that compresses well (itsdangerous) is zlib data with a leading dot."""
    payload = value.rsplit(".", 2)[0]
    data = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
    loaded: dict[str, Any] = json.loads(zlib.decompress(data) if payload.startswith(".") else data)
    return loaded


def forged(value: str, claims: dict[str, Any]) -> str:
    """``value`` with its payload replaced by ``claims`` and its timestamp and signature kept (so invalid)."""
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    return payload + "." + ".".join(value.rsplit(".", 2)[1:])


async def page_xsrf(client: httpx.AsyncClient, url: str) -> str:
    """The XSRF token a page embeds in its forms."""
    page = await client.get(url)
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def location_path(response: httpx.Response, base: str) -> str:
    """The path a redirect points to, asserting it stays on ``base``'s origin."""
    target = urljoin(base + "/", response.headers["location"])
    assert target.startswith(base + "/"), target
    return target[len(base):]


async def gather(*aws: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*aws))
