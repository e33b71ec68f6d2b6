"""Desktop login by mini-program code (小程序扫码登录, issue 14): the code's image, and the mini-program's steps.

- **The code** (``code_image``): ``POST /wxa/getwxacodeunlimit`` with the app's own token draws a code that
  opens ``[wechat.miniprogram] code_login_page`` with the scene (32 letters and digits, the most WeChat takes).
  It is drawn once per scene and kept in MySQL for the scene's life (``wxa_scenes``), so a reload, another
  process or another machine serves it without spending WeChat's quota again; inside a process concurrent
  requests for one scene share one call. Only a live mini-program scene gets a code.
- **The steps** (``scan``, ``confirm``, ``refuse``): the mini-program, signed in through the API (its bearer
  token), reports the scan, then confirms or refuses. Each step is one transition of ``SceneService`` (one
  UPDATE that checks status and expiry), so two phones cannot both win. When a step fails, the scene's row
  says why: unknown (or not a mini-program scene), expired, refused, or used already, each its own error.
- **One phone per scene**: the first account whose mini-program acts on a scene owns it (``wxa_scenes``,
  one INSERT decides a race); another account's scan, confirm or refuse is ``scene_used``. Someone who
  photographs the desktop's code cannot confirm it after its owner scanned it (and sign that desktop into
  their own account while its person waits to confirm on their phone).
  Confirming signs the desktop in as the *caller's* account: the user id goes into the scene in MySQL and
  never through the browser; the desktop's waiting page completes with its binding cookie (the scene core).
"""

from __future__ import annotations

import asyncio
import logging

from wxlogin.config import Settings
from wxlogin.errors import NotFound, SceneExpired, SceneNotFound, SceneRefused, SceneUsed
from wxlogin.models import SceneStatus, User
from wxlogin.services.apptoken import AppTokenService
from wxlogin.services.scenes import SceneService
from wxlogin.store.wxacodes import SceneFacts, WxaCodeStore
from wxlogin.wechat.client import WeChatClient, WxaCode

logger = logging.getLogger(__name__)

CODE_WIDTH = 430  # pixels: WeChat's default, sharp enough on a desktop page (the page scales it)


class MiniProgramCodeService:
    """Mini-program codes for login scenes, and the mini-program's scan, confirm and refuse."""

    def __init__(self, settings: Settings, store: WxaCodeStore, app_tokens: AppTokenService, wechat: WeChatClient,
                 scenes: SceneService) -> None:
        self.settings = settings
        self.store = store
        self.app_tokens = app_tokens
        self.wechat = wechat
        self.scenes = scenes
        self._drawing: dict[str, asyncio.Future[WxaCode]] = {}  # scene -> the call in flight in this process

    @property
    def page(self) -> str:
        """The mini-program page the code opens; empty when the login by mini-program code is off."""
        return self.settings.wechat.miniprogram.code_login_page

    @property
    def enabled(self) -> bool:
        return bool(self.page)

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise NotFound("mini-program code login is off ([wechat.miniprogram] code_login_page is empty)")

    # --- the code the desktop shows ------------------------------------------------------------------

    async def code_image(self, scene: str) -> tuple[bytes, str]:
        """The scene's mini-program code: (image bytes, content type), drawn once and kept for the scene's life.

        Raises SceneNotFound (no such mini-program scene), SceneExpired, NotFound (the login is off), or
        WeChat's errors (45009: wechat_rate_limited; 41030, the page is not published: wechat_misconfigured).
        """
        self._require_enabled()
        facts = await self.store.scene(scene)
        if facts is None or not facts.is_miniprogram:
            raise SceneNotFound()
        if facts.image is not None:
            return facts.image, facts.content_type
        if facts.expired:
            raise SceneExpired()
        code = await self._draw(scene)
        await self.store.keep(scene, code.image, code.content_type)
        return code.image, code.content_type

    async def _draw(self, scene: str) -> WxaCode:
        """One getwxacodeunlimit call per scene in this process; concurrent callers share it."""
        pending = self._drawing.get(scene)
        if pending is not None:
            return await asyncio.shield(pending)
        app = self.settings.wechat.miniprogram
        task = asyncio.ensure_future(self.app_tokens.call(
            app, lambda token: self.wechat.wxa_code_unlimited(token, scene, self.page, CODE_WIDTH)))
        self._drawing[scene] = task
        task.add_done_callback(lambda _: self._drawing.pop(scene, None))
        # Shielded: a caller that goes away does not cancel the call the others wait for.
        return await asyncio.shield(task)

    # --- the mini-program's steps ------------------------------------------------------------------

    async def scan(self, user: User, scene: str) -> SceneStatus:
        """The mini-program opened the scene: the desktop shows "已扫码". A repeat of the scan is answered alike."""
        await self._owned(user, scene)
        if not await self.scenes.scanned(scene):
            facts = await self.store.scene(scene)
            if not (facts is not None and facts.status == SceneStatus.SCANNED and not facts.expired):
                raise self._why(facts)
        logger.info("mini-program code login: user %d scanned a scene", user.id)
        return SceneStatus.SCANNED

    async def confirm(self, user: User, scene: str) -> SceneStatus:
        """The person confirmed in the mini-program: the desktop signs in as ``user`` (once)."""
        await self._owned(user, scene)
        if not await self.scenes.confirm(scene, user.id):
            raise self._why(await self.store.scene(scene))
        logger.info("mini-program code login: user %d confirmed a scene", user.id)
        return SceneStatus.CONFIRMED

    async def refuse(self, user: User, scene: str) -> SceneStatus:
        """The person refused in the mini-program: the desktop shows 已取消. Refusing again is answered alike."""
        await self._owned(user, scene)
        if not await self.scenes.refuse(scene):
            facts = await self.store.scene(scene)
            if not (facts is not None and facts.status == SceneStatus.REFUSED):
                raise self._why(facts)
        logger.info("mini-program code login: user %d refused a scene", user.id)
        return SceneStatus.REFUSED

    async def _owned(self, user: User, scene: str) -> None:
        """A live mini-program scene this account owns (it acted on it first), or the error that says why not.

        Only mini-program scenes take these steps (a follow scene is not the mini-program's to confirm).
        """
        self._require_enabled()
        facts = await self.store.scene(scene)
        if facts is None or not facts.is_miniprogram:
            raise SceneNotFound()
        owner = facts.owner_id
        if owner is None and facts.open:  # an ended scene gets no owner: the step explains how it ended
            owner = await self.store.claim(scene, user.id)
        if owner is not None and owner != user.id:
            logger.info("mini-program code login: user %d refused a scene another account opened first", user.id)
            raise SceneUsed("another account's mini-program opened this scene first")

    @staticmethod
    def _why(facts: SceneFacts | None) -> SceneNotFound | SceneExpired | SceneRefused | SceneUsed:
        """Why a step did not move the scene: the state it is in now (used and refused outlive the expiry)."""
        if facts is None or not facts.is_miniprogram:
            return SceneNotFound()
        if facts.settled:
            return SceneUsed()
        if facts.status == SceneStatus.REFUSED:
            return SceneRefused()
        if facts.expired or facts.status == SceneStatus.EXPIRED:
            return SceneExpired()
        return SceneUsed()  # moved by another request between the two statements (a racing phone)
