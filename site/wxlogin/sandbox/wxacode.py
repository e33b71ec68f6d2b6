"""Mini-program codes (wechat-platform.md section 7) and the mini-program that scans them (issue 14).

- ``POST /wxa/getwxacodeunlimit?access_token=`` ``{"scene", "page", "check_path", "env_version", "width", ...}``
  answers a real PNG, as WeChat answers the image itself: a QR code (WeChat draws a round code; a phone camera
  reads a QR code) of ``<sandbox>/miniprogram/open?appid=&page=&scene=``, the page the code opens in the
  sandbox's mini-program, also written in the PNG's ``wxacode`` text chunk. Errors are WeChat's JSON: the app
  token's (40001, 40014, 41001, 42001), 48001 (not a mini-program's token), 47001 (body not JSON), 40169 (scene
  not 1 to 32 of WeChat's characters), 41030 (page not a published page: a leading slash, a query), and any
  errcode queued with ``POST /dev/wxacode/fail {"errcode": 45009|41030, "times": 1}``.
- ``GET/POST /miniprogram/open?appid=&page=&scene=``: the sandbox plays the mini-program the code opened. A
  test person is picked; the sandbox logs them in through the site's own API (``/api/miniprogram/login`` with a
  wx.login code it hands itself, as ``/dev/wx.login`` does) and keeps their bearer token, then calls
  ``/api/miniprogram/qr-login/scan``, ``confirm`` or ``refuse`` with it and shows the site's answer
  (``respond=json``: the answer as JSON, for tests and the play tool).
"""

from __future__ import annotations

import io
import json
import re
from typing import Any
from urllib.parse import urlencode

import segno
import tornado.routing
import tornado.simple_httpclient
import tornado.web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from wxlogin.sandbox import people
from wxlogin.sandbox.base import RegisteredApp, SandboxHandler
from wxlogin.sandbox.dev import DevHandler
from wxlogin.sandbox.wxa import WxaHandler

# WeChat's scene: at most 32 of these (wechat-platform.md section 7).
SCENE_RE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$")
PAGE_RE = re.compile(r"^([A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*)?$")  # no leading slash, no query; "" = home page
FAULTS = {45009: "reach max api minute quota limit", 41030: "invalid page"}
ACTIONS = ("scan", "confirm", "refuse")
API_TIMEOUT = 10.0


def code_png(text: str, width: int) -> bytes:
    """A PNG QR code of ``text`` about ``width`` pixels wide, with ``text`` in its ``wxacode`` chunk."""
    qr = segno.make(text, error="m")
    modules = qr.symbol_size(scale=1, border=4)[0]
    drawn = io.BytesIO()
    qr.save(drawn, kind="png", scale=max(1, width // modules), border=4)
    info = PngInfo()
    info.add_text("wxacode", text)
    out = io.BytesIO()
    with Image.open(io.BytesIO(drawn.getvalue())) as image:
        image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


class WxaCodeHandler(WxaHandler):
    """POST /wxa/getwxacodeunlimit?access_token=: the image, or WeChat's errcode JSON."""

    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"")
        except ValueError:
            body = None
        app = self.token_app()
        if app is None:
            return None
        if not isinstance(body, dict):
            return self.wechat_error(47001, "data format error")
        scene, page = body.get("scene"), body.get("page", "")
        self.sandbox.state.wxacode_calls.append(str(scene))
        if not isinstance(scene, str) or not SCENE_RE.match(scene):
            return self.wechat_error(40169, "invalid length for scene, or the data is not json string")
        if not isinstance(page, str) or not PAGE_RE.match(page):
            return self.wechat_error(41030, "invalid page")
        if self.sandbox.state.wxacode_faults:
            errcode = self.sandbox.state.wxacode_faults.pop(0)
            return self.wechat_error(errcode, FAULTS.get(errcode, "sandbox fault"))
        width = body.get("width", 430)
        width = min(max(width, 280), 1280) if isinstance(width, int) and not isinstance(width, bool) else 430
        opens = f"{self.sandbox.base_url}/miniprogram/open?" + urlencode({"appid": app.appid, "page": page,
                                                                          "scene": scene})
        self.set_header("Content-Type", "image/png")
        self.finish(code_png(opens, width))
        return None


class WxaCodeFaultHandler(DevHandler):
    """POST /dev/wxacode/fail {"errcode": 45009 or 41030, "times": n}: the next n codes answer that errcode."""

    def post(self) -> None:
        data = self.body_json()
        errcode, times = data.get("errcode"), data.get("times", 1)
        if errcode not in FAULTS or not isinstance(times, int) or not 0 <= times <= 100:
            raise tornado.web.HTTPError(400)
        self.sandbox.state.wxacode_faults[:] = [errcode] * times
        self.finish({"queued": times})


class MiniProgramOpenHandler(SandboxHandler):
    """GET/POST /miniprogram/open?appid=&page=&scene=: the mini-program page a code opened, played by the sandbox."""

    def opened(self) -> tuple[RegisteredApp, str, str]:
        app = self.sandbox.app(self.get_query_argument("appid", ""), "miniprogram")
        if app is None:
            raise tornado.web.HTTPError(404)
        return app, self.get_query_argument("page", ""), self.get_query_argument("scene", "")

    def get(self) -> None:
        app, page, scene = self.opened()
        self.render_page("sandbox/miniprogram.html", app=app, page=page, scene=scene, presets=people.PRESETS[:4],
                         person=None, action="", status=0, answer={})

    async def post(self) -> None:
        app, page, scene = self.opened()
        action = self.get_body_argument("action", "")
        someone = people.person(self.get_body_argument("person", ""))
        if action not in ACTIONS or someone is None:
            raise tornado.web.HTTPError(400)
        status, answer = await self.play(app, someone, action, scene)
        if self.get_body_argument("respond", "") == "json":
            self.finish({"status": status, "answer": answer})
            return
        self.render_page("sandbox/miniprogram.html", app=app, page=page, scene=scene, presets=people.PRESETS[:4],
                         person=someone, action=action, status=status, answer=answer)

    async def play(self, app: RegisteredApp, someone: people.Person, action: str, scene: str) -> tuple[int, Any]:
        """What the mini-program's code does: log in once (keep the token), then call the step with it."""
        tokens = self.sandbox.state.miniprogram_tokens
        for attempt in (1, 2):
            token = tokens.get((app.appid, someone.key))
            if token is None:
                self.sandbox.state.rotate_session_key(app.appid, someone.key)  # wx.login
                code = self.sandbox.state.issue_code(app.appid, someone.key, "")
                status, answer = await self.call_api("/api/miniprogram/login",
                                                     {"code": code, **({"app": app.name} if app.name else {})})
                if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
                    return status, answer
                token = tokens[(app.appid, someone.key)] = answer["token"]
            status, answer = await self.call_api(f"/api/miniprogram/qr-login/{action}", {"scene": scene}, token)
            if status == 401 and attempt == 1:  # the stored token expired or was revoked: log in again, once
                tokens.pop((app.appid, someone.key), None)
                continue
            return status, answer
        raise AssertionError("unreachable")

    async def call_api(self, path: str, body: dict[str, str], token: str = "") -> tuple[int, Any]:
        """POST JSON to the site's API (the site serves the sandbox, so it is the sandbox's own origin)."""
        site = self.sandbox.base_url.removesuffix(self.sandbox.path_prefix)
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        client = tornado.simple_httpclient.SimpleAsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(site + path, method="POST", body=json.dumps(body), headers=headers,
                                          raise_error=False, request_timeout=API_TIMEOUT, follow_redirects=False)
        finally:
            client.close()
        if response.code == 599:
            return 599, {"error": "unreachable", "message": type(response.error).__name__}
        try:
            return response.code, json.loads(response.body or b"")
        except ValueError:
            text = (response.body or b"")[:200].decode("utf-8", "replace")
            return response.code, {"error": "not_json", "message": text}


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/wxa/getwxacodeunlimit", WxaCodeHandler, init),
        tornado.web.url(prefix + r"/dev/wxacode/fail", WxaCodeFaultHandler, init),
        tornado.web.url(prefix + r"/miniprogram/open", MiniProgramOpenHandler, init),
    ]
