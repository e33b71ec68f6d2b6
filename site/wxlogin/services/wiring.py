"""The composition root: builds every service from settings (the pool opens lazily on first use)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from wxlogin.config import Settings
from wxlogin.models import SceneKind
from wxlogin.services.accounts import AccountService
from wxlogin.services.admin import AdminService
from wxlogin.services.api import ApiService
from wxlogin.services.apptoken import AppTokenService
from wxlogin.services.configcheck import ConfigCheck
from wxlogin.services.container import Services
from wxlogin.services.deletion import DeletionService
from wxlogin.services.follow import FollowLoginService
from wxlogin.services.login import LoginService
from wxlogin.services.maintenance import MaintenanceService, token_apps
from wxlogin.services.oauth import OAuthService
from wxlogin.services.phones import PhoneService
from wxlogin.services.profile import ProfileService
from wxlogin.services.pushes import PushService, log_follow
from wxlogin.services.ratelimit import RateLimits
from wxlogin.services.scenes import SceneService
from wxlogin.services.sessions import SessionService
from wxlogin.services.wxacode import MiniProgramCodeService
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, CallbackStore, Database, EventStore, RateLimitStore, UserStore
from wxlogin.store.admin import AdminStore
from wxlogin.store.apptokens import AppTokenStore
from wxlogin.store.deletions import DeletionStore
from wxlogin.store.ops import OpsStore
from wxlogin.store.phones import PhoneStore
from wxlogin.store.profiles import ProfileStore
from wxlogin.store.pushes import PushStore
from wxlogin.store.scenes import SceneStore
from wxlogin.store.wxacodes import WxaCodeStore
from wxlogin.wechat.client import WeChatClient
from wxlogin.wechat.crypto import TokenCipher


def build_services(settings: Settings) -> Services:
    """Wire every service; the stores, the pool and the WeChat client stay inside the services."""
    db = Database(settings.mysql)
    signing = Signing([k.value for k in settings.server.secret_keys])
    wechat = WeChatClient(settings.wechat)
    users = UserStore(db)
    events = EventStore(db)
    account_store = AccountStore(db)
    cipher = TokenCipher(signing.encryption_keys)
    login = LoginService(users, events, cipher)
    # The app's own access token (issue 13): for services only, never handed to handlers.
    app_tokens = AppTokenService(settings, AppTokenStore(db), wechat, cipher)
    sessions = SessionService(settings.server, signing, users, settings.accounts.reauth_window)
    phone_store = PhoneStore(db)
    accounts = AccountService(settings, signing, account_store, users, events, wechat, login, phone_store)
    limit_store = RateLimitStore(db)
    limits = RateLimits.from_settings(settings.ratelimit, limit_store)
    phones = PhoneService(settings, phone_store, users, wechat, app_tokens, limits)
    callbacks = CallbackStore(db)
    oauth = OAuthService(settings, signing, wechat, login, sessions, accounts, callbacks, users, account_store,
                         limits)
    api = ApiService(settings, signing, wechat, login, users, account_store, sessions, limits, app_tokens)
    # Desktop scan-login scenes (issue 14): follow QR and mini-program code; the kinds' services take `scenes`
    # (scanned / confirm / refuse) and register their image maker with scenes.register_qr(kind, ...).
    scene_store = SceneStore(db)
    scenes = SceneService(settings, scene_store, users, events)
    push_store = PushStore(db)
    pushes = PushService(settings.wechat, push_store)
    for event in ("subscribe", "unsubscribe"):
        pushes.register(event, log_follow)
    # Scan to follow (issue 14, services/follow.py): its subscribe/SCAN handler confirms scenes; its QR is the
    # follow scene's image. The code lives as long as the scene.
    follow = FollowLoginService(settings, app_tokens, wechat, scenes, login, qr_seconds=settings.wechat.scene_max_age)
    follow.register(pushes)
    scenes.register_qr(SceneKind.FOLLOW, follow.qr_image)
    profile_store = ProfileStore(db)
    profile = ProfileService(settings, profile_store, app_tokens, wechat, limits)
    pushes.register("wxa_media_check", profile.on_media_check)  # the verdict on an uploaded avatar
    # Issue 14, desktop login by mini-program code: the code's image and the mini-program's scan/confirm/refuse.
    wxa_scenes = WxaCodeStore(db)
    wxacode = MiniProgramCodeService(settings, wxa_scenes, app_tokens, wechat, scenes)
    scenes.register_qr(SceneKind.MINIPROGRAM, wxacode.code_image)

    deletion = DeletionService(settings, DeletionStore(db))

    async def close() -> None:
        scenes.shutdown()
        await db.close()
        wechat.close()

    return Services(
        settings=settings, sessions=sessions, oauth=oauth, accounts=accounts, api=api,
        maintenance=MaintenanceService(db, settings.retention, users, callbacks, events, limit_store, push_store,
                                       app_tokens=app_tokens, wechat=wechat,
                                       token_apps=token_apps(settings.wechat),
                                       more_purges=(("avatar_checks, avatars", profile_store.purge_stale),
                                                    ("login_scenes", scene_store.purge_stale),
                                                    # getPhoneNumber code claims, once no code can be that old
                                                    ("phone_codes", phone_store.purge_codes),
                                                    ("wxa_scenes", wxa_scenes.purge))),
        pushes=pushes,
        phones=phones,
        profile=profile,
        scenes=scenes,
        follow=follow,
        wxacode=wxacode,
        admin=AdminService(settings, AdminStore(db)),
        deletion=deletion,
        _close=close,
    )


def build_config_check(settings: Settings) -> tuple[ConfigCheck, Callable[[], Awaitable[None]]]:
    """The configuration check with a pool and a WeChat client of its own (server.py --check and start-up,
    before any service exists); the second item closes them."""
    db = Database(settings.mysql)
    wechat = WeChatClient(settings.wechat)

    async def close() -> None:
        await db.close()
        wechat.close()

    return ConfigCheck(settings, OpsStore(db), wechat), close
