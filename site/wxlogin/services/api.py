"""The JSON API's logins (mini-program, mobile app) and bearer tokens.

A bearer token is signed under its own salt and carries ``{uid, sid, sv, iat, wat}``: it expires,
dies with the user's session version, and can be revoked one by one (its ``sid``). The mini-program's
``session_key`` is kept encrypted next to its login method, replaced on every login, and never leaves
this module except into the database.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wxlogin import metrics
from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import (
    AccountDisabled,
    DeletionPending,
    EncryptedDataInvalid,
    InvalidToken,
    RateLimited,
    SessionKeyExpired,
    WeChatError,
    WrongAccount,
    WxLoginError,
)
from wxlogin.models import (
    BoundPhone,
    Channel,
    EncryptedGrant,
    LinkedMethod,
    RequestContext,
    SessionClaims,
    User,
    WeChatIdentity,
)
from wxlogin.services.apps import choose_app
from wxlogin.services.apptoken import AppTokenService
from wxlogin.services.login import LoginService
from wxlogin.services.ratelimit import RateLimits
from wxlogin.services.sessions import SessionService, claims_from, payload_of
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, UserStore
from wxlogin.store.users import StoredSessionKey
from wxlogin.wechat.client import WeChatClient
from wxlogin.wechat.crypto import decrypt_open_data, raw_data_signature_ok

logger = logging.getLogger(__name__)

WATERMARK_MAX_AGE = 24 * 3600  # open data older than a day is not "this session's" data


@dataclass(frozen=True)
class ApiLogin:
    token: str
    expires_in: int
    user: User
    created: bool


@dataclass(frozen=True)
class ApiCaller:
    user: User
    claims: SessionClaims
    login_methods: tuple[LinkedMethod, ...] | None = None  # loaded only when asked for (/api/me)
    phone: BoundPhone | None = None  # loaded with the login methods


class ApiService:
    """Logins and tokens for clients that cannot follow redirects or keep the site's cookies."""

    def __init__(self, settings: Settings, signing: Signing, wechat: WeChatClient, login: LoginService,
                 users: UserStore, accounts: AccountStore, sessions: SessionService, limits: RateLimits,
                 app_tokens: AppTokenService) -> None:
        self.settings = settings
        self.signing = signing
        self.wechat = wechat
        self.login = login
        self.users = users
        self.accounts = accounts
        self.sessions = sessions
        self.token_max_age = settings.server.api_token_max_age
        self.limits = limits
        self.app_tokens = app_tokens

    def _miniprogram(self, name: str = "") -> WeChatApp:
        """The mini-program a request is for ("" = ``[wechat.miniprogram]``): the one place that picks it."""
        return choose_app(self.settings.wechat, Channel.MINIPROGRAM, name)

    # --- logins -------------------------------------------------------------------------------

    async def miniprogram_login(self, code: str, open_data: dict[str, Any], context: RequestContext,
                                app_name: str = "") -> ApiLogin:
        """wx.login code -> jscode2session -> login-or-register; optional open data must verify.

        ``app_name``: which mini-program ("" = ``[wechat.miniprogram]``); its appid keys the login method, and
        the person's unionid joins it to their account of any other app.
        """
        with _counted_failure(Channel.MINIPROGRAM):
            app = self._miniprogram(app_name)  # before the limit: no cost yet
            await self.limits.login.hit(context.ip)
            try:
                return await self._miniprogram_login(app, code, open_data, context)
            except (WeChatError, AccountDisabled) as exc:
                await self._audit_failure(Channel.MINIPROGRAM, exc, context)
                raise

    async def _audit_failure(self, channel: Channel, exc: WeChatError | AccountDisabled,
                             context: RequestContext) -> None:
        """Keep WeChat's refusals (errcode, rid) and a disabled account's attempts for the operator console."""
        user_id = exc.user_id if isinstance(exc, AccountDisabled) else None
        await self.login.record_failure(channel.value, exc.code, context, user_id, error=exc)

    async def _miniprogram_login(self, app: WeChatApp, code: str, open_data: dict[str, Any],
                                 context: RequestContext) -> ApiLogin:
        session = await self.wechat.jscode2session(app, code)
        profile = None
        signed = open_data.get("rawData") is not None or open_data.get("signature") is not None
        if signed and not raw_data_signature_ok(open_data.get("rawData"), session.session_key,
                                                open_data.get("signature")):
            raise EncryptedDataInvalid()
        if open_data.get("encryptedData") is not None or open_data.get("iv") is not None:
            data = decrypt_open_data(session.session_key, open_data.get("encryptedData"), open_data.get("iv"),
                                     app.appid, max_age=WATERMARK_MAX_AGE)
            # Only the profile is taken: identity comes from WeChat's server reply, never the client.
            profile = self.wechat.profile_from(data.get("nickName"), data.get("avatarUrl"))
        identity = WeChatIdentity(Channel.MINIPROGRAM, app.appid, session.openid, session.unionid)
        grant = EncryptedGrant(session_key_enc=self.login.cipher.encrypt(session.session_key))
        result = await self.login.login(identity, profile, context, grant=grant)
        return self._issue(result.user, result.created)

    async def app_login(self, code: str, context: RequestContext, app_name: str = "") -> ApiLogin:
        """The mobile app's OpenSDK code -> access token -> userinfo -> login-or-register (``app_name``: which app)."""
        with _counted_failure(Channel.APP):
            app = choose_app(self.settings.wechat, Channel.APP, app_name)
            await self.limits.login.hit(context.ip)
            try:
                tokens = await self.wechat.exchange_code(app, code)
                info = await self.wechat.userinfo(tokens.access_token, tokens.openid)
                identity = WeChatIdentity(Channel.APP, app.appid, tokens.openid, tokens.unionid or info.unionid)
                result = await self.login.login(identity, info.profile, context,
                                                grant=self.login.seal_tokens(tokens))
            except (WeChatError, AccountDisabled) as exc:
                await self._audit_failure(Channel.APP, exc, context)
                raise
            return self._issue(result.user, result.created)

    async def miniprogram_profile(self, caller: ApiCaller, open_data: dict[str, Any], app_name: str = "") -> User:
        """Update the profile from open data sealed with the stored session_key.

        The session_key is per appid, so the client names its mini-program as it did to log in (``app_name``;
        the token does not record it, and the caller can only ever pick among its own login methods).
        When the data does not open, WeChat is asked whether the stored key is still the person's
        (``/wxa/checksession``): a stale one is ``SessionKeyExpired`` (call wx.login again) and is forgotten,
        so later requests get that answer without asking again. Every other failure stays the one
        ``EncryptedDataInvalid``. Not a decryption oracle: the check depends on the stored key alone, never
        on the ciphertext, and it is rate-limited per account (it spends WeChat quota).
        """
        app = self._miniprogram(app_name)
        await self.limits.decrypt.hit(caller.claims.sid)
        stored = await self.users.miniprogram_session_key(caller.user.id, app.appid)
        if stored is None:
            raise EncryptedDataInvalid()  # no mini-program login behind this token: same answer as bad data
        session_key = self.login.cipher.decrypt(stored.session_key_enc)
        if session_key is None:
            # Forgotten as stale, or sealed by a key since removed from secret_keys: only wx.login helps.
            raise SessionKeyExpired()
        try:
            data = decrypt_open_data(session_key, open_data.get("encryptedData"), open_data.get("iv"), app.appid,
                                     max_age=WATERMARK_MAX_AGE)
        except EncryptedDataInvalid:
            if await self._stale(caller.user.id, app, stored, session_key):
                raise SessionKeyExpired() from None
            raise
        profile = self.wechat.profile_from(data.get("nickName"), data.get("avatarUrl"))
        await self.accounts.update_profile(caller.user.id, profile)
        user = await self.users.get_user(caller.user.id)
        assert user is not None
        return user

    async def _stale(self, user_id: int, app: WeChatApp, stored: StoredSessionKey, session_key: str) -> bool:
        """Whether WeChat says the stored session_key is stale (87009); forget it if so.

        Best effort: over the check's limit, or when WeChat fails, the answer stays encrypted_data_invalid.
        """
        try:
            await self.limits.session_check.hit(str(user_id))
        except RateLimited:
            return False
        try:
            valid = await self.app_tokens.call(
                app, lambda token: self.wechat.check_session_key(token, stored.openid, session_key))
        except WeChatError as exc:
            logger.warning("session key check for user %d failed (%s)", user_id, exc.code)
            return False
        if valid:
            return False
        if stored.session_key_enc is not None:
            await self.users.forget_session_key(stored.method_id, stored.session_key_enc)
        logger.info("the stored session_key of user %d is stale (87009); forgotten until the next wx.login", user_id)
        return True

    # --- tokens ------------------------------------------------------------------------------

    def _issue(self, user: User, created: bool) -> ApiLogin:
        """A token for a login WeChat just vouched for (a code exchanged now): so it is "recent" (``wat``)."""
        now = int(time.time())
        claims = SessionClaims(user_id=user.id, sid=secrets.token_urlsafe(16), session_version=user.session_version,
                               issued_at=now, wechat_at=now)
        return ApiLogin(self.signing.dump_api_token(payload_of(claims)), self.token_max_age, user, created)

    async def authenticate(self, token: str, with_login_methods: bool = False,
                           allow_pending: bool = False) -> ApiCaller:
        """Resolve a bearer token to its user; raise InvalidToken for anything else.

        ``with_login_methods`` also loads the user's login methods, in the same query. A closing account
        (注销, grace period) raises DeletionPending unless ``allow_pending`` (restore, export, logout, /api/me).
        """
        loaded = self.signing.load_api_token(token, max_age=self.token_max_age)
        claims = claims_from(loaded[0]) if loaded else None
        if loaded is None or claims is None:
            raise InvalidToken()
        methods: tuple[LinkedMethod, ...] | None = None
        phone: BoundPhone | None = None
        if with_login_methods:
            user, revoked, found, phone = await self.users.get_session_user_with_methods(claims.user_id, claims.sid)
            methods = tuple(found)
        else:
            user, revoked = await self.users.get_session_user(claims.user_id, claims.sid)
        if user is None or revoked or user.session_version != claims.session_version:
            raise InvalidToken()
        if user.disabled:
            raise AccountDisabled()
        if user.deletion_pending and not allow_pending:
            raise DeletionPending()
        return ApiCaller(user=user, claims=claims, login_methods=methods, phone=phone)

    def signed_in_recently(self, caller: ApiCaller) -> bool:
        """Whether the token came from a WeChat login within ``[accounts] reauth_window`` (the full export)."""
        return self.sessions.signed_in_recently(caller.claims)

    async def confirm_identity(self, caller: ApiCaller, code: str, channel: Channel, context: RequestContext,
                               app_name: str = "") -> None:
        """Exchange a fresh code (``wx.login``'s, or the app's OpenSDK one) and prove it is the caller's WeChat.

        For closing the account by API: the token alone may be old or copied; a code only the person's WeChat
        can hand out now is the fresh confirmation. Raises WrongAccount (audited on the account, nothing
        changes) when WeChat names another identity. Nothing is stored: the new session_key or grant of a
        confirmation is dropped, the login method keeps the one of the last login.
        """
        await self.limits.login.hit(context.ip)
        if channel is Channel.APP:
            app = choose_app(self.settings.wechat, Channel.APP, app_name)
            tokens = await self.wechat.exchange_code(app, code)
            identity = WeChatIdentity(Channel.APP, app.appid, tokens.openid, tokens.unionid)
        else:
            app = self._miniprogram(app_name)
            session = await self.wechat.jscode2session(app, code)
            identity = WeChatIdentity(Channel.MINIPROGRAM, app.appid, session.openid, session.unionid)
        if not await self.login.is_own(caller.user, identity):
            await self.login.record_failure(channel.value, WrongAccount.code, context, caller.user.id)
            raise WrongAccount(f"user {caller.user.id}")

    async def logout(self, caller: ApiCaller) -> None:
        await self.sessions.end(caller.claims, lifetime=self.token_max_age)


@contextlib.contextmanager
def _counted_failure(channel: Channel) -> Iterator[None]:
    """A failed API login in the metrics, by its error code (successes are counted by the login service). The
    browser flows audit their failures (LoginService.record_failure, which counts them); the API's are counted here."""
    try:
        yield
    except (WeChatError, AccountDisabled):
        raise  # audited by LoginService.record_failure, which counts them: once, not twice
    except WxLoginError as exc:
        metrics.LOGINS.labels(channel.value, exc.code).inc()
        raise
