"""Developer endpoints that play the WeChat *client*: wx.login, wx.getUserInfo and the app's OpenSDK.

They hand out what the mini-program or app would hold (a code; encryptedData, iv, rawData and
signature), never the session_key. The sandbox encrypts with its own code, not the client's, so the
two cannot share a mistake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import tornado.routing
import tornado.web
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from wxlogin.sandbox import people
from wxlogin.sandbox.base import SandboxHandler


def seal_user_info(session_key: str, appid: str, person: people.Person, base_url: str) -> dict[str, str]:
    """What wx.getUserInfo returns: the profile as rawData + signature, and encrypted with a watermark."""
    profile = {"nickName": person.nickname, "gender": 0, "language": "zh_CN", "city": "", "province": "",
               "country": "", "avatarUrl": people.avatar_for(person, base_url)}
    raw_data = json.dumps(profile, ensure_ascii=False, separators=(",", ":"))
    full = {"openId": people.openid_for(appid, person), **profile,
            "watermark": {"timestamp": int(time.time()), "appid": appid}}
    unionid = people.unionid_for(person)
    if unionid:
        full["unionId"] = unionid
    iv = secrets.token_bytes(16)
    cipher = AES.new(base64.b64decode(session_key), AES.MODE_CBC, iv=iv)
    blob = cipher.encrypt(pad(json.dumps(full, ensure_ascii=False).encode("utf-8"), 16, style="pkcs7"))
    return {
        "encryptedData": base64.b64encode(blob).decode(), "iv": base64.b64encode(iv).decode(),
        "rawData": raw_data, "signature": hashlib.sha1((raw_data + session_key).encode("utf-8")).hexdigest(),
    }


class DevHandler(SandboxHandler):
    """JSON in, JSON out; no XSRF (the sandbox only listens on loopback)."""

    def check_xsrf_cookie(self) -> None:
        return None

    def body_json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400) from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400)
        return data

    def person_and_app(self, kind: str) -> tuple[people.Person, str]:
        data = self.body_json()
        person = people.person(str(data.get("person", "")))
        app = self.sandbox.named(kind, data.get("app", ""))  # {"app": "<name>"}: a further app of the kind
        if person is None or app is None:
            raise tornado.web.HTTPError(400)
        return person, app.appid


class WxLoginHandler(DevHandler):
    """POST /dev/wx.login {"person", optional "app"}: a fresh code (this rotates the person's session_key, as
    WeChat's does)."""

    def post(self) -> None:
        person, appid = self.person_and_app("miniprogram")
        key = self.sandbox.state.rotate_session_key(appid, person.key)
        code = self.sandbox.state.issue_code(appid, person.key, "")
        self.finish({"code": code, **seal_user_info(key, appid, person, self.sandbox.base_url)})


class WxGetUserInfoHandler(DevHandler):
    """POST /dev/wx.getUserInfo {"person", optional "app"}: open data under the person's current session_key."""

    def post(self) -> None:
        person, appid = self.person_and_app("miniprogram")
        key = self.sandbox.state.session_keys.get((appid, person.key))
        if key is None:
            raise tornado.web.HTTPError(409)  # wx.login first
        self.finish(seal_user_info(key, appid, person, self.sandbox.base_url))


class AppAuthHandler(DevHandler):
    """POST /dev/app.auth {"person", optional "app"}: what the mobile app's SendAuth.Resp carries (a code)."""

    def post(self) -> None:
        person, appid = self.person_and_app("app")
        self.finish({"code": self.sandbox.state.issue_code(appid, person.key, "snsapi_userinfo"), "errCode": 0})


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/dev/wx\.login", WxLoginHandler, init),
        tornado.web.url(prefix + r"/dev/wx\.getUserInfo", WxGetUserInfoHandler, init),
        tornado.web.url(prefix + r"/dev/app\.auth", AppAuthHandler, init),
    ]
