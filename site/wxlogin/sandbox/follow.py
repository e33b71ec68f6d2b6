"""Scan to follow, WeChat's side: ``POST /cgi-bin/qrcode/create``, ``GET /cgi-bin/user/info``, and the phone that
scans a follow QR as a new follower (``subscribe``) or an existing one (``SCAN``), after which the sandbox
pushes the event to the site's server URL the way WeChat does (sandbox/push.py: signed, sealed in safe mode,
5 s timeout, 3 tries). wechat-platform.md section 6.

- ``GET|POST /_sandbox/q/<code>``: the url a follow QR encodes (WeChat's ``http://weixin.qq.com/q/...``); the
  page lets a test person follow (new follower) or scan again (existing follower).
- ``POST /_sandbox/dev/follow/scan {"url": "<the QR's url>", "person": "zhangsan", "as": "new" | "existing" |
  "auto"}``: the same for tests; answers what the site said (``status``, ``tries``, ``reply``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import tornado.routing
import tornado.web

from wxlogin.sandbox import people, push
from wxlogin.sandbox.base import RegisteredApp, Sandbox, SandboxHandler
from wxlogin.sandbox.cgi import CgiHandler
from wxlogin.sandbox.dev import DevHandler
from wxlogin.sandbox.state import FollowQr

MAX_EXPIRE = 2_592_000  # 30 days, WeChat's longest temporary code
DEFAULT_EXPIRE = 60  # when expire_seconds is missing
_SCENE_STR_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
_CODE_RE = r"([A-Za-z0-9_-]{1,64})"
AS_CHOICES = ("new", "existing", "auto")


class QrCodeCreateHandler(CgiHandler):
    """POST /cgi-bin/qrcode/create?access_token=: a temporary QR_STR_SCENE (or QR_SCENE) code."""

    def post(self) -> None:
        token = self.check_token()
        if token is None:
            return
        appid = self.sandbox.state.app_token_appid(token)
        app = self.sandbox.app(appid or "", "mp")
        if app is None:
            return self.wechat_error(48001, "api unauthorized")  # only an official account has these codes
        try:
            body = json.loads(self.request.body or b"")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.wechat_error(47001, "data format error")
        action, info = body.get("action_name"), body.get("action_info")
        scene = info.get("scene") if isinstance(info, dict) else None
        seconds = body.get("expire_seconds", DEFAULT_EXPIRE)
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 < seconds <= MAX_EXPIRE:
            return self.wechat_error(40009, "invalid expire_seconds")
        scene_str: Any = None
        if action == "QR_STR_SCENE" and isinstance(scene, dict):
            scene_str = scene.get("scene_str")
        elif action == "QR_SCENE" and isinstance(scene, dict):
            scene_id = scene.get("scene_id")
            if isinstance(scene_id, int) and not isinstance(scene_id, bool) and 0 < scene_id < 2**32:
                scene_str = str(scene_id)
        if not isinstance(scene_str, str) or not _SCENE_STR_RE.match(scene_str):
            return self.wechat_error(40097, "invalid args")  # permanent kinds are not played: not for logins
        qr = self.sandbox.state.follow.new_code(app.appid, scene_str, seconds)
        self.write_wechat_json({"ticket": qr.ticket, "expire_seconds": seconds, "url": _url(self.sandbox, qr)})
        return None


class UserInfoHandler(CgiHandler):
    """GET /cgi-bin/user/info?access_token=&openid=&lang=: a follower's unionid; no nickname since 2021."""

    def get(self) -> None:
        token = self.check_token()
        if token is None:
            return
        appid = self.sandbox.state.app_token_appid(token) or ""
        if self.sandbox.app(appid, "mp") is None:
            return self.wechat_error(48001, "api unauthorized")
        openid = self.get_query_argument("openid", "") or ""
        state = self.sandbox.state.follow
        key = state.seen.get((appid, openid))
        person = people.person(key) if key is not None else None
        if person is None:
            return self.wechat_error(40003, "invalid openid")
        following = state.following.get((appid, openid))
        if following is None:
            return self.write_wechat_json({"subscribe": 0, "openid": openid})
        since, scene_str = following
        answer: dict[str, Any] = {
            "subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": int(since), "remark": "",
            "groupid": 0, "tagid_list": [], "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 0,
            "qr_scene_str": scene_str,
        }
        unionid = people.unionid_for(person)
        if unionid:
            answer["unionid"] = unionid
        return self.write_wechat_json(answer)


def _url(sandbox: Sandbox, qr: FollowQr) -> str:
    return f"{sandbox.base_url}/q/{qr.code}"


def _code_of(sandbox: Sandbox, url: str) -> str:
    prefix = f"{sandbox.base_url}/q/"
    return url[len(prefix):] if url.startswith(prefix) else ""


async def scan(sandbox: Sandbox, qr: FollowQr, person: people.Person, as_: str) -> dict[str, Any]:
    """The person scans ``qr``: WeChat's push to the site (subscribe for a new follower, SCAN otherwise)."""
    app = sandbox.app(qr.appid, "mp")
    assert app is not None  # codes are only made for registered official accounts
    openid = people.openid_for(app.appid, person)
    state = sandbox.state.follow
    state.seen[(app.appid, openid)] = person.key
    new = (app.appid, openid) not in state.following if as_ == "auto" else as_ == "new"
    if new:
        state.following[(app.appid, openid)] = (time.time(), qr.scene_str)
    else:
        state.following.setdefault((app.appid, openid), (time.time(), qr.scene_str))
    event, key = ("subscribe", "qrscene_" + qr.scene_str) if new else ("SCAN", qr.scene_str)
    url = _push_url(sandbox, app)
    mode = "safe" if app.push_aes_key else "plain"
    signed = push.signed_push(app.push_token, app.push_aes_key, app.appid,
                              push.event_fields(app.appid, openid, event, key, qr.ticket), mode)
    delivery = await push.deliver(url, signed)
    return {"event": event, "url": url, "mode": mode, "tries": delivery.tries, "status": delivery.status,
            "reply": push.DevPushHandler.readable(app, delivery.body)}


def _push_url(sandbox: Sandbox, app: RegisteredApp) -> str:
    # The server URL typed into "WeChat's console": the site's own, never one from the request.
    site = sandbox.base_url.removesuffix(sandbox.path_prefix)
    return f"{site}/wechat/push/mp" + (f"/{app.name}" if app.name else "")


def _reply_text(reply: str) -> str:
    found = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", reply, re.S)
    return found.group(1) if found else ""


class FollowPhoneHandler(SandboxHandler):
    """GET/POST /q/<code>: the phone that scanned a follow QR; a test person follows or scans again."""

    def get(self, code: str) -> None:
        qr = self.sandbox.state.follow.code(code)
        app = self.sandbox.app(qr.appid) if qr is not None else None
        self.render_page("sandbox/follow.html", qr=qr, app=app, presets=people.PRESETS[:4], result=None,
                         status_code=200 if qr else 404)

    async def post(self, code: str) -> None:
        qr = self.sandbox.state.follow.code(code)
        person = people.person(self.get_body_argument("person", ""))
        as_ = self.get_body_argument("as", "auto")
        if qr is None:
            self.render_page("sandbox/follow.html", qr=None, app=None, presets=(), result=None, status_code=404)
            return
        app = self.sandbox.app(qr.appid, "mp")
        if person is None or as_ not in AS_CHOICES:
            raise tornado.web.HTTPError(400)
        if app is None or not app.push_token:
            raise tornado.web.HTTPError(409)  # the site has no server URL for this account
        result = await scan(self.sandbox, qr, person, as_)
        self.render_page("sandbox/follow.html", qr=qr, app=app, presets=(), result=result, person=person,
                         reply_text=_reply_text(result["reply"]))


class DevFollowScanHandler(DevHandler):
    """POST /dev/follow/scan {"url", "person", "as"}: a test person scans a follow QR; what the site said."""

    async def post(self) -> None:
        data = self.body_json()
        url, as_ = data.get("url", ""), data.get("as", "auto")
        person = people.person(str(data.get("person", "zhangsan")))
        if not isinstance(url, str) or person is None or as_ not in AS_CHOICES:
            raise tornado.web.HTTPError(400)
        qr = self.sandbox.state.follow.code(_code_of(self.sandbox, url))
        if qr is None:
            self.set_status(404)
            self.finish({"error": "expired", "message": "二维码已过期"})
            return
        app = self.sandbox.app(qr.appid, "mp")
        if app is None or not app.push_token:
            raise tornado.web.HTTPError(409)
        result = await scan(self.sandbox, qr, person, as_)
        self.finish({**result, "reply_text": _reply_text(result["reply"])})


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/cgi-bin/qrcode/create", QrCodeCreateHandler, init),
        tornado.web.url(prefix + r"/cgi-bin/user/info", UserInfoHandler, init),
        tornado.web.url(prefix + r"/q/" + _CODE_RE, FollowPhoneHandler, init),
        tornado.web.url(prefix + r"/dev/follow/scan", DevFollowScanHandler, init),
    ]
