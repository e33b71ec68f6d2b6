"""Profile fill-in from the mini-program: a nickname the person types, an avatar they upload, WeChat's checks.

- **Nickname**: cleaned like WeChat's nicknames (``wechat.client.clean_text``), 1 to ``NICKNAME_MAX``
  characters, then WeChat's text check (``/wxa/msg_sec_check`` v2, the caller's mini-program openid):
  ``pass`` is stored, ``review`` is stored and flagged for operators (``users.nickname_review``), ``risky``
  is refused (``ContentRisky``) and nothing is stored. "微信用户" is WeChat's placeholder: it is not
  checked, and it never replaces a real nickname (the rule of ``store.users.merged_profile``).
- **Avatar**: re-encoded (``services/images.py``) and kept in MySQL under its SHA-256; WeChat is asked to
  check it (``/wxa/media_check_async``), fetching it from ``<public_url>/avatars/<sha256>.jpg?check=<key>``.
  Until the verdict arrives by push (``wxa_media_check``) the old avatar stays, and the new image is
  served only with that key, which only WeChat is given: nobody sees an image before WeChat allows it
  (security.md item 58). ``pass`` switches the person's ``avatar_url`` to the image's public URL (long
  caching, the bytes never change); ``risky`` (or a failed check) deletes it; ``review`` keeps it unshown
  and flags the person for operators (``users.avatar_review``): an image WeChat is unsure of is not
  shown until a person has looked at it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import BadRequest, ContentRisky
from wxlogin.models import Channel, PushEvent, User
from wxlogin.services import images
from wxlogin.services.apps import choose_app
from wxlogin.services.apptoken import AppTokenService
from wxlogin.services.pushes import PushApp
from wxlogin.services.ratelimit import RateLimits
from wxlogin.store.profiles import AvatarStatus, ProfileStore
from wxlogin.wechat.client import PLACEHOLDER_NICKNAME, SUGGESTIONS, TRACE_ID_RE, WeChatClient, clean_text

logger = logging.getLogger(__name__)

NICKNAME_MAX = 32  # characters after cleaning (WeChat's own nicknames are shorter)
NICKNAME_RAW_MAX = 256  # characters before cleaning: more is not a nickname input
AVATAR_PATH = "/avatars/{}.jpg"  # handlers/avatars.py serves it (route "avatar"); a test keeps the two equal
UNKNOWN_TRACE_PAUSE = 0.5  # a verdict can overtake our record of its trace_id: read once more after this


@dataclass(frozen=True)
class AvatarUpload:
    """The person after an upload: the avatar shown is still the old one until WeChat's verdict."""

    user: User
    pending: bool


@dataclass(frozen=True)
class ServedAvatar:
    jpeg: bytes
    public: bool  # checked by WeChat: anyone may see and cache it; else only WeChat's fetcher


class ProfileService:
    """Nickname and avatar fill-in for the mini-program, through WeChat's content checks."""

    def __init__(self, settings: Settings, store: ProfileStore, app_tokens: AppTokenService,
                 wechat: WeChatClient, limits: RateLimits) -> None:
        self.settings = settings
        self.store = store
        self.app_tokens = app_tokens
        self.wechat = wechat
        self.limits = limits
        self.public_url = settings.server.public_url

    def _app(self, name: str = "") -> WeChatApp:
        """The mini-program whose checks and openids these are ("" = ``[wechat.miniprogram]``)."""
        return choose_app(self.settings.wechat, Channel.MINIPROGRAM, name)

    def avatar_url(self, sha256: str) -> str:
        return self.public_url + AVATAR_PATH.format(sha256)

    async def _openid(self, user: User, app: WeChatApp) -> str:
        openid = await self.store.miniprogram_openid(user.id, app.appid)
        if openid is None:
            # WeChat's checks need the person's openid under the mini-program (an app login has none).
            raise BadRequest("profile fill-in needs a mini-program login")
        return openid

    # --- nickname --------------------------------------------------------------------------------

    async def set_nickname(self, user: User, raw: object, app_name: str = "") -> User:
        """Check and store a nickname the person typed; ContentRisky when WeChat says risky."""
        if not isinstance(raw, str) or len(raw) > NICKNAME_RAW_MAX:
            raise BadRequest("nickname must be a string of at most 256 characters")
        nickname = clean_text(raw, 4 * NICKNAME_RAW_MAX)
        if not nickname or len(nickname) > NICKNAME_MAX:
            raise BadRequest(f"nickname must be 1 to {NICKNAME_MAX} characters once cleaned")
        if nickname == PLACEHOLDER_NICKNAME:
            updated = await self.store.set_nickname(user.id, nickname, placeholder=True, review=False)
            return updated or user
        app = self._app(app_name)
        await self.limits.profile.hit(str(user.id))  # each check spends WeChat quota
        openid = await self._openid(user, app)
        verdict = await self.app_tokens.call(app, lambda token: self.wechat.msg_sec_check(token, openid, nickname))
        if verdict.suggest == "risky":
            logger.info("nickname of user %d refused: WeChat's check says risky (label %d)", user.id, verdict.label)
            raise ContentRisky()
        review = verdict.suggest == "review"
        if review:
            logger.warning("nickname of user %d stored for operator review (WeChat: review, label %d)",
                           user.id, verdict.label)
        updated = await self.store.set_nickname(user.id, nickname, placeholder=False, review=review)
        return updated or user

    # --- avatar ----------------------------------------------------------------------------------

    async def upload_avatar(self, user: User, data: bytes, app_name: str = "") -> AvatarUpload:
        """Re-encode, keep and send for WeChat's check an uploaded avatar; the old one stays until it passes."""
        app = self._app(app_name)
        await self.limits.profile.hit(str(user.id))  # before decoding: the CPU and WeChat's check quota
        openid = await self._openid(user, app)
        avatar = await images.reencode(data)
        fetch_key, status = await self.store.save_avatar(avatar.sha256, avatar.jpeg, secrets.token_hex(16))
        if status is AvatarStatus.PASS:  # the same picture WeChat passed before: no second check
            shown = await self.store.show_avatar(user.id, self.avatar_url(avatar.sha256))
            return AvatarUpload(user=shown or user, pending=False)
        if status is AvatarStatus.REVIEW:  # waits for an operator; asking WeChat again changes nothing
            return AvatarUpload(user=user, pending=True)
        media_url = f"{self.avatar_url(avatar.sha256)}?check={fetch_key}"
        trace_id = await self.app_tokens.call(
            app, lambda token: self.wechat.media_check_async(token, openid, media_url))
        await self.store.record_check(trace_id, user.id, avatar.sha256)
        logger.info("avatar of user %d sent for WeChat's check (%d bytes re-encoded)", user.id, len(avatar.jpeg))
        return AvatarUpload(user=user, pending=True)

    async def avatar_image(self, sha256: str, check: str) -> ServedAvatar | None:
        """The image at ``/avatars/<sha256>.jpg``: public once WeChat passed it; while pending only to the
        holder of its fetch key (WeChat); never when it waits for review or was refused."""
        stored = await self.store.avatar(sha256)
        if stored is None:
            return None
        if stored.status is AvatarStatus.PASS:
            return ServedAvatar(stored.image, public=True)
        if (stored.status is AvatarStatus.PENDING and check
                and hmac.compare_digest(check.encode("ascii", "replace"), stored.fetch_key.encode("ascii"))):
            return ServedAvatar(stored.image, public=False)
        return None

    async def on_media_check(self, app: PushApp, event: PushEvent) -> None:
        """The push handler for ``wxa_media_check``: apply WeChat's verdict on an avatar, once."""
        checked = {a.appid for a in self.settings.wechat.apps(Channel.MINIPROGRAM.value).values()}
        if app.kind is not Channel.MINIPROGRAM or app.appid not in checked:
            logger.warning("push %s: wxa_media_check for an app that makes no media checks; ignored", app.label)
            return
        trace_id = event.fields.get("trace_id", "")
        if not TRACE_ID_RE.fullmatch(trace_id):
            logger.warning("push %s: wxa_media_check without a usable trace_id; ignored", app.label)
            return
        suggest = event.fields.get("result_suggest", "")
        failed = event.fields.get("errcode", "0") not in ("", "0")
        verdict = suggest if suggest in SUGGESTIONS and not failed else "failed"
        outcome = await self.store.complete_check(trace_id, verdict, self.avatar_url)
        if outcome.user_id is None:
            await asyncio.sleep(UNKNOWN_TRACE_PAUSE)
            outcome = await self.store.complete_check(trace_id, verdict, self.avatar_url)
        if outcome.user_id is None:
            logger.info("push %s: wxa_media_check for an unknown or settled trace; ignored", app.label)
            return
        what = {"pass": "now shown" if outcome.newest else "passed, but a newer upload waits",
                "review": "kept for operator review, not shown",
                "risky": "refused" + (" and deleted" if outcome.deleted else "")}.get(
                    verdict, "check failed" + (", image deleted" if outcome.deleted else ""))
        log = logger.warning if verdict in ("risky", "review") else logger.info
        log("avatar of user %d: WeChat says %s: %s", outcome.user_id, verdict, what)
