"""WeChat's content checks (wechat-platform.md §3), emulated, and the client side of profile fill-in.

- ``POST /wxa/msg_sec_check`` (version 2): a text containing one of ``RISKY_WORDS`` is ``risky``, one of
  ``REVIEW_WORDS`` is ``review``, anything else ``pass``.
- ``POST /wxa/media_check_async`` (version 2, images): answers a ``trace_id`` at once, then, after
  ``MEDIA_CHECK_DELAY`` seconds, fetches ``media_url`` (only under the site's own origin: the sandbox is
  no fetcher for other hosts) and pushes ``wxa_media_check`` to the site's mini-program server URL, signed
  and, with a ``push_aes_key``, in safe mode, with sandbox/push.py's sender. An image whose top-left
  corner is magenta (``RISKY_MARK``) is ``risky``, cyan (``REVIEW_MARK``) ``review``, anything else
  ``pass``; an image it cannot fetch or read gets a push with a non-zero errcode and no verdict.

Both check the app token (``state.check_app_token``) and the openid: it must be a person who opened the
mini-program (``wx.login``) under the token's appid, as WeChat wants (else 40003). Errcodes: 40001/40014/
41001/42001 (token), 40003 (openid), 44004 (empty content), 47001 (data format).

Developer endpoints (loopback only, like the rest of the sandbox) play the mini-program's side:
``POST /dev/chooseAvatar {"mark": "", "risky" or "review", "format": "png" or "jpeg", "gps": false}`` hands
out the image a ``<button open-type="chooseAvatar">`` would (with ``gps``: a JPEG whose EXIF holds a GPS
position), and ``POST /dev/input.nickname {"value"}`` what the ``type="nickname"`` input's blur event does.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import secrets
import time
from typing import Any

import tornado.httpclient
import tornado.routing
import tornado.simple_httpclient
import tornado.web
from PIL import ExifTags, Image, ImageDraw

from wxlogin.sandbox import people
from wxlogin.sandbox import push as wechat_push
from wxlogin.sandbox.cgi import ERRMSG, CgiHandler
from wxlogin.sandbox.dev import DevHandler

logger = logging.getLogger(__name__)

RISKY_WORDS = ("违禁", "赌博", "risky-word")
REVIEW_WORDS = ("待审", "review-word")
RISKY_MARK = (255, 0, 255)  # magenta top-left corner
REVIEW_MARK = (0, 255, 255)  # cyan top-left corner
MEDIA_CHECK_DELAY = 1.0  # seconds between the answer and the push (WeChat: up to 30 minutes)
MAX_CONTENT = 2500
MAX_MEDIA = 10 * 1024 * 1024  # what the sandbox fetches at most
_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LABELS = {"pass": 100, "review": 21000, "risky": 20001}  # 100 normal; 20001 politics; 21000 other
_tasks: set[asyncio.Task[None]] = set()  # the pending pushes (a task nobody references may be collected)


def marked(image: Image.Image) -> str:
    """The verdict the sandbox gives an image: its top-left corner (an eighth of each side) decides."""
    rgb = image.convert("RGB")
    corner = rgb.crop((0, 0, max(1, rgb.width // 8), max(1, rgb.height // 8))).resize((1, 1))
    pixel = corner.getpixel((0, 0))
    assert isinstance(pixel, tuple)
    for verdict, mark in (("risky", RISKY_MARK), ("review", REVIEW_MARK)):
        if all(abs(int(a) - b) <= 48 for a, b in zip(pixel, mark, strict=False)):
            return verdict
    return "pass"


def test_avatar(mark: str = "", fmt: str = "png", gps: bool = False, side: int = 640) -> bytes:
    """A square picture like the one chooseAvatar hands out; ``mark`` paints the corner the checks read."""
    image = Image.new("RGB", (side, side), (64, 128, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((side // 4, side // 6, 3 * side // 4, 2 * side // 3), fill=(250, 220, 180))
    draw.rectangle((side // 5, 2 * side // 3, 4 * side // 5, side), fill=(40, 40, 40))
    if mark in ("risky", "review"):
        draw.rectangle((0, 0, side // 5, side // 5), fill=RISKY_MARK if mark == "risky" else REVIEW_MARK)
    out = io.BytesIO()
    if fmt == "jpeg":
        exif = Image.Exif()
        if gps:  # a phone photo's position, which the site must strip
            exif[ExifTags.Base.Make] = "SandboxPhone"
            where = exif.get_ifd(ExifTags.IFD.GPSInfo)
            where[ExifTags.GPS.GPSLatitudeRef] = "N"
            where[ExifTags.GPS.GPSLatitude] = (39.0, 54.0, 27.0)
            where[ExifTags.GPS.GPSLongitudeRef] = "E"
            where[ExifTags.GPS.GPSLongitude] = (116.0, 23.0, 50.0)
        image.save(out, format="JPEG", quality=90, exif=exif)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


class WxaHandler(CgiHandler):
    """A content-check API call: the app token in the query, a JSON body."""

    def checked_call(self) -> tuple[str, dict[str, Any], str] | None:
        """(appid, body, openid) once the token, the JSON, the version and the openid check out."""
        token = self.check_token()
        if token is None:
            return None
        appid = self.sandbox.state.app_token_appid(token)
        app = self.sandbox.app(appid or "", "miniprogram")
        if app is None:
            self.wechat_error(40001, ERRMSG[40001])  # content checks are the mini-program's APIs
            return None
        try:
            body = json.loads(self.request.body or b"")
        except ValueError:
            body = None
        scene = body.get("scene") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("version") != 2 or scene not in (1, 2, 3, 4):
            self.wechat_error(47001, "data format error")
            return None
        openid = body.get("openid")
        if not isinstance(openid, str) or not _OPENID_RE.match(openid) or not self.visited(app.appid, openid):
            self.wechat_error(40003, "invalid openid")
            return None
        return app.appid, body, openid

    def visited(self, appid: str, openid: str) -> bool:
        """Whether this openid is a person who opened the mini-program (wx.login) here."""
        for known_appid, key in self.sandbox.state.session_keys:
            person = people.person(key)
            if known_appid == appid and person is not None and people.openid_for(appid, person) == openid:
                return True
        return False


class MsgSecCheckHandler(WxaHandler):
    """POST /wxa/msg_sec_check: the text check, version 2."""

    def post(self) -> None:
        call = self.checked_call()
        if call is None:
            return
        content = call[1].get("content")
        if not isinstance(content, str) or len(content) > MAX_CONTENT:
            return self.wechat_error(47001, "data format error")
        if not content:
            return self.wechat_error(44004, "empty content")
        suggest = ("risky" if any(w in content for w in RISKY_WORDS)
                   else "review" if any(w in content for w in REVIEW_WORDS) else "pass")
        label = _LABELS[suggest]
        self.write_wechat_json({
            "errcode": 0, "errmsg": "ok", "result": {"suggest": suggest, "label": label},
            "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label,
                        "prob": 90}],
            "trace_id": _trace_id(),
        })
        return None


class MediaCheckAsyncHandler(WxaHandler):
    """POST /wxa/media_check_async: a trace_id now, the verdict pushed later."""

    def post(self) -> None:
        call = self.checked_call()
        if call is None:
            return
        appid, body, openid = call
        media_url, media_type = body.get("media_url"), body.get("media_type")
        if not isinstance(media_url, str) or not media_url.startswith(("http://", "https://")) or media_type != 2:
            return self.wechat_error(47001, "data format error")
        trace = _trace_id()
        task = asyncio.get_running_loop().create_task(self._check_later(appid, openid, media_url, trace))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        self.write_wechat_json({"errcode": 0, "errmsg": "ok", "trace_id": trace})
        return None

    async def _check_later(self, appid: str, openid: str, media_url: str, trace: str) -> None:
        await asyncio.sleep(MEDIA_CHECK_DELAY)
        site = self.sandbox.base_url.removesuffix(self.sandbox.path_prefix)
        verdict = await fetch_and_judge(site, media_url)
        app = self.sandbox.app(appid)
        if app is None or not app.push_token:
            logger.warning("sandbox: media check %s has no server URL to push to (no push_token)", trace)
            return
        fields: dict[str, Any] = {**wechat_push.event_fields(appid, openid, "wxa_media_check"), "appid": appid,
                                  "trace_id": trace, "version": 2}
        if verdict is None:
            fields.update(errcode=-1, errmsg="media fetch or decode failed")
        else:
            label = _LABELS[verdict]
            fields.update(errcode=0, errmsg="ok", result={"suggest": verdict, "label": label},
                          detail=[{"strategy": "content_model", "errcode": 0, "suggest": verdict, "label": label,
                                   "prob": 90}])
        signed = wechat_push.signed_push(app.push_token, app.push_aes_key, appid, fields,
                                         "safe" if app.push_aes_key else "plain")
        delivery = await wechat_push.deliver(f"{site}/wechat/push/miniprogram", signed)
        logger.info("sandbox: media check %s: %s pushed, the site answered %s after %d tries", trace,
                    verdict or "failure", delivery.status, delivery.tries)


async def fetch_and_judge(site: str, media_url: str) -> str | None:
    """Fetch an image from the site (never elsewhere) and judge it; None when that fails."""
    if not media_url.startswith(site + "/"):
        logger.warning("sandbox: media_url outside the site's origin; not fetched")
        return None
    client = tornado.simple_httpclient.SimpleAsyncHTTPClient(force_instance=True, max_body_size=MAX_MEDIA)
    try:
        response = await client.fetch(media_url, raise_error=False, request_timeout=5, follow_redirects=False)
    except (OSError, tornado.httpclient.HTTPClientError):
        return None
    finally:
        client.close()
    if response.code != 200 or not response.body:
        return None
    # Decoding is CPU work: off the IOLoop, as the site itself does (services/images.py).
    return await asyncio.to_thread(_judge, response.body)


def _judge(body: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(body)) as image:
            return marked(image)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _trace_id() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{int(time.time()):x}"


class ChooseAvatarHandler(DevHandler):
    """POST /dev/chooseAvatar: the image the avatar button hands the mini-program (its bytes)."""

    async def post(self) -> None:
        data = self.body_json()
        mark, fmt, gps = data.get("mark", ""), data.get("format", "png"), data.get("gps", False)
        if mark not in ("", "risky", "review") or fmt not in ("png", "jpeg") or not isinstance(gps, bool):
            raise tornado.web.HTTPError(400)
        self.set_header("Content-Type", "image/png" if fmt == "png" else "image/jpeg")
        self.finish(await asyncio.to_thread(test_avatar, mark, fmt, gps and fmt == "jpeg"))


class NicknameInputHandler(DevHandler):
    """POST /dev/input.nickname {"value"}: the nickname input's blur event (its detail)."""

    def post(self) -> None:
        value = self.body_json().get("value")
        if not isinstance(value, str) or len(value) > 256:
            raise tornado.web.HTTPError(400)
        self.finish({"type": "blur", "detail": {"value": value}})


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/wxa/msg_sec_check", MsgSecCheckHandler, init),
        tornado.web.url(prefix + r"/wxa/media_check_async", MediaCheckAsyncHandler, init),
        tornado.web.url(prefix + r"/dev/chooseAvatar", ChooseAvatarHandler, init),
        tornado.web.url(prefix + r"/dev/input\.nickname", NicknameInputHandler, init),
    ]
