"""Scan to follow the official account (扫码关注公众号登录): parametric QR codes and the pushes that confirm them.

The desktop's scene (services/scenes.py, the CORE engineer's ``SceneService``) gets a temporary
``QR_STR_SCENE`` code whose ``scene_str`` is ``"login_" + scene``, created with the official account's
own token and rendered here from the ``url`` WeChat returns (segno, SVG). Scanning it pushes ``subscribe``
with ``EventKey = "qrscene_login_<scene>"`` (a new follower) or ``SCAN`` with ``EventKey = "login_<scene>"``
(an existing one). The push handler reads the person with ``/cgi-bin/user/info`` (the unionid; no
nickname since 2021, so the profile is WeChat's placeholder and never overwrites a real one), runs
login-or-register on the official account's appid (one account per unionid with every other channel),
and confirms the scene with the user's id, which never leaves the server: the waiting page finishes the
sign-in with its binding cookie.

Order, so that a scene works once and a stale one changes nothing: the person is read first (a WeChat
call, nothing written: if it fails the push is given back and WeChat's retry starts over), then the
scene is claimed (``scanned``: WAITING -> SCANNED, False for an unknown, expired, used or foreign scene),
and only then is anyone logged in or registered and the scene confirmed. Pushes arrive authenticated and
deduplicated by services/pushes.py (also forwarded ones, ``/wechat/forward/mp``).
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections import OrderedDict
from typing import Protocol

import segno

from wxlogin.config import Settings, WeChatMpApp
from wxlogin.errors import AccountDisabled, NotFound
from wxlogin.models import Channel, PushEvent, RequestContext, WeChatIdentity, WeChatProfile
from wxlogin.services.apptoken import AppTokenService
from wxlogin.services.login import LoginService
from wxlogin.services.pushes import PushApp, PushService
from wxlogin.wechat.client import PLACEHOLDER_NICKNAME, WeChatClient

logger = logging.getLogger(__name__)

SCENE_RE = re.compile(r"^[A-Za-z0-9]{32}$")  # login_scenes.scene (CHAR(32), random letters and digits)
SCENE_PREFIX = "login_"  # scene_str = "login_" + scene: other parametric codes of the account are not ours
NEW_FOLLOWER_PREFIX = "qrscene_"  # WeChat's prefix on a subscribe event's EventKey
QR_SECONDS = 300  # the QR code's life at WeChat; the scene's own expiry in MySQL is what counts
_QR_CACHE_MAX = 10_000

# Replies the person sees in WeChat (the official account's passive text reply).
SIGNING_IN = "电脑端正在登录，请回到电脑上继续。"
SCENE_GONE = "二维码已失效，请在电脑上刷新二维码后重新扫码。"
NOT_FOLLOWING = "请先关注公众号，再扫码登录。"
ACCOUNT_DISABLED = "该账号已停用，无法登录。"

# login_or_register keeps a real profile when WeChat hands its placeholder (store/users.py merged_profile);
# user/info has had no nickname or avatar since 2021-12-27, so this is all a follower brings.
PLACEHOLDER_PROFILE = WeChatProfile(nickname=PLACEHOLDER_NICKNAME, avatar_url="", is_placeholder=True)
# The push comes from WeChat's servers, not from the person's browser: no IP or user agent of theirs.
PUSH_CONTEXT = RequestContext(ip="", user_agent="WeChat push: scan to follow")


class Scenes(Protocol):
    """What this service needs of ``SceneService`` (services/scenes.py), as issue14.md defines it."""

    async def scanned(self, scene: str) -> bool: ...

    async def confirm(self, scene: str, user_id: int) -> bool: ...


def scene_of(event: PushEvent) -> str | None:
    """The login scene a subscribe/SCAN push is for, or None (another code, no code, malformed)."""
    key = event.event_key
    if event.event == "subscribe":
        if not key.startswith(NEW_FOLLOWER_PREFIX):
            return None  # a follow from search or a shared card: no code at all
        key = key[len(NEW_FOLLOWER_PREFIX):]
    elif event.event != "SCAN":
        return None
    if not key.startswith(SCENE_PREFIX):
        return None
    scene = key[len(SCENE_PREFIX):]
    return scene if SCENE_RE.match(scene) else None


class FollowLoginService:
    """Creates and renders the follow QR of a scene, and turns its scan into a confirmed scene."""

    def __init__(self, settings: Settings, app_tokens: AppTokenService, wechat: WeChatClient, scenes: Scenes,
                 login: LoginService, qr_seconds: int = QR_SECONDS) -> None:
        self.app: WeChatMpApp = settings.wechat.mp  # the default official account: the one with follow_login
        self.app_tokens = app_tokens
        self.wechat = wechat
        self.scenes = scenes
        self.login = login
        self.qr_seconds = qr_seconds
        # scene -> (url, until): a reloaded QR image does not spend another qrcode/create in this process.
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.app.follow_login

    def register(self, pushes: PushService) -> None:
        """Take the scans of our codes: new followers (subscribe) and existing ones (SCAN)."""
        if self.enabled:
            for event in ("subscribe", "SCAN"):
                pushes.register(event, self.on_scan)

    # ---- the QR code ------------------------------------------------------------------------------

    async def create_qr(self, scene: str) -> str:
        """The ``url`` of a new temporary QR_STR_SCENE code for ``scene`` (POST /cgi-bin/qrcode/create)."""
        if not self.enabled or not SCENE_RE.match(scene):
            raise NotFound("no follow QR for this scene")
        now = time.monotonic()
        cached = self._urls.get(scene)
        if cached is not None and now < cached[1]:
            return cached[0]
        scene_str = SCENE_PREFIX + scene
        qr = await self.app_tokens.call(
            self.app, lambda token: self.wechat.create_qrcode(token, scene_str, self.qr_seconds))
        self._urls[scene] = (qr.url, now + min(qr.expire_seconds, self.qr_seconds))
        while len(self._urls) > _QR_CACHE_MAX:
            self._urls.popitem(last=False)
        return qr.url

    async def qr_image(self, scene: str) -> str:
        """The follow QR of ``scene`` as an SVG document (``image/svg+xml``), rendered here from WeChat's url."""
        url = await self.create_qr(scene)
        out = io.BytesIO()
        segno.make(url, error="m").save(out, kind="svg", scale=6, border=2, xmldecl=False,
                                        title="扫码关注公众号登录")
        return out.getvalue().decode("utf-8")

    # ---- the scan ---------------------------------------------------------------------------------

    async def on_scan(self, app: PushApp, event: PushEvent) -> str | None:
        """A subscribe/SCAN push: sign the scene's desktop in as the person who scanned; a text reply."""
        scene = scene_of(event)
        if scene is None:
            return None  # not one of our login codes: log_follow has logged it
        if app.kind is not Channel.MP or app.appid != self.app.appid:
            # Our codes are the default official account's: a scene_str seen by another app is not ours.
            logger.warning("follow login: %s pushed a login scene it cannot have issued; ignored", app.label)
            return None
        openid = event.from_user  # from the authenticated push, never from a browser
        follower = await self.app_tokens.call(self.app, lambda token: self.wechat.follower_info(token, openid))
        if not follower.subscribed:
            logger.info("follow login: the person no longer follows the account; scene left as it was")
            return NOT_FOLLOWING
        if not await self.scenes.scanned(scene):
            logger.info("follow login: %s of a scene that is unknown, expired or used; nothing done", event.event)
            return SCENE_GONE
        identity = WeChatIdentity(Channel.MP, self.app.appid, openid, follower.unionid)
        try:
            result = await self.login.login(identity, PLACEHOLDER_PROFILE, PUSH_CONTEXT)
        except AccountDisabled:  # an answer, not a failure: WeChat must not retry it
            logger.info("follow login: the account is disabled; scene not confirmed")
            return ACCOUNT_DISABLED
        if not await self.scenes.confirm(scene, result.user.id):
            logger.info("follow login: the scene expired while user %d was signing in", result.user.id)
            return SCENE_GONE
        logger.info("follow login: scene confirmed for user %d (%s)", result.user.id,
                    "new follower" if event.event == "subscribe" else "existing follower")
        return SIGNING_IN
