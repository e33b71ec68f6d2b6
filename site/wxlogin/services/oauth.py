"""The browser OAuth flows (website QR and official account): start with a bound state, finish once.

Order of checks on the callback, each before anything costs WeChat quota: the state's signature
(which also covers the flow and the return path), its age, the browser binding, then its single use
in MySQL. WeChat's habit of hitting the callback twice is absorbed: a second hit in the same
browser with the same code waits for the first and signs in as the same user.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import (
    LinkConflict,
    LoginCancelled,
    NotFound,
    SnapshotUser,
    StateReplayed,
    StateUnbound,
    WxLoginError,
)
from wxlogin.models import Channel, RequestContext, User, WeChatIdentity, WeChatProfile, WeChatTokens
from wxlogin.redirects import safe_next
from wxlogin.services.login import LoginService
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, CallbackStore, UserStore
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)

LOGIN_FLOWS = ("web", "mp")
LINK_FLOWS = ("web-link", "mp-link")  # a signed-in person attaches another WeChat login
SCOPE_BASE = "snsapi_base"
SCOPE_USERINFO = "snsapi_userinfo"
MAX_PENDING_BINDINGS = 4  # flows one browser may have open at once (several tabs)


@dataclass(frozen=True)
class FlowStart:
    """Where to send the browser, and the secret to keep in its binding cookie."""

    url: str
    binding_secret: str


@dataclass(frozen=True)
class FlowResult:
    """A finished callback: who logged in, and whether this was a repeat of an earlier hit."""

    user: User | None
    user_id: int
    next_path: str
    created: bool = False
    repeat: bool = False
    conflict_user_id: int | None = None
    needs_userinfo: bool = False  # official account, snsapi_base, unknown person: ask for consent
    linked: bool = False  # a link flow attached (or re-authorised) a login method
    link_conflict_user_id: int | None = None  # a link flow found the identity owned by this account


class OAuthService:
    """Starts and finishes the redirect-based WeChat logins."""

    def __init__(
        self, settings: Settings, signing: Signing, wechat: WeChatClient, login: LoginService,
        callbacks: CallbackStore, users: UserStore, accounts: AccountStore,
    ) -> None:
        self.settings = settings
        self.signing = signing
        self.wechat = wechat
        self.login = login
        self.callbacks = callbacks
        self.users = users
        self.accounts = accounts

    def app_for(self, flow: str) -> WeChatApp:
        return self.settings.wechat.web if flow.startswith("web") else self.settings.wechat.mp

    def redirect_uri(self, flow: str, next_path: str, retry: bool = False) -> str:
        """Our callback URL, built from configuration (never from the Host header)."""
        uri = f"{self.settings.server.public_url}/auth/wechat/callback/{flow}?next={quote(next_path, safe='/')}"
        return uri + "&retry=1" if retry else uri

    def start(
        self, flow: str, next_path: str, embedded: bool = False, scope: str = SCOPE_BASE, retry: bool = False,
        lang: str = "",
    ) -> FlowStart:
        """Mint a state bound to this flow and return path, and build WeChat's URL for it."""
        next_path = safe_next(next_path)
        state, secret = self.signing.make_state(flow, next_path)
        app = self.app_for(flow)
        redirect_uri = self.redirect_uri(flow, next_path, retry)
        if flow.startswith("web"):
            url = self.wechat.qrconnect_url(app.appid, redirect_uri, state, embedded=embedded, lang=lang)
        else:
            url = self.wechat.authorize_url(app.appid, redirect_uri, scope, state)
        return FlowStart(url=url, binding_secret=secret)

    async def finish(
        self,
        flow: str,
        code: str | None,
        state: str,
        next_path: str,
        bound_nonces: list[str],
        context: RequestContext,
        signed_in_user_id: int | None,
    ) -> FlowResult:
        """Verify the callback and log the person in; raises a WxLoginError describing any failure."""
        next_path = safe_next(next_path)
        verified = self.signing.load_state(state, flow, next_path, self.settings.server.state_max_age)
        nonce = verified.nonce
        if nonce not in bound_nonces:
            # The second of WeChat's double hits may arrive after the first one signed this browser in.
            if signed_in_user_id is not None:
                claim = await self.callbacks.get(nonce)
                if claim is not None and claim.status == "ok" and claim.user_id == signed_in_user_id:
                    return FlowResult(user=None, user_id=signed_in_user_id, next_path=next_path, repeat=True)
            raise StateUnbound()
        if code is None:
            await self.callbacks.claim(nonce, _code_hash(""))
            await self.callbacks.fail(nonce)
            await self.login.record_failure(flow.split("-")[0], LoginCancelled.code, context)
            raise LoginCancelled()

        claim = await self.callbacks.claim(nonce, _code_hash(code))
        if not claim.fresh:
            if claim.status == "ok" and claim.user_id == signed_in_user_id:
                return FlowResult(user=None, user_id=claim.user_id, next_path=next_path, repeat=True)
            if claim.status != "pending":
                # Finished already: a replay, even with a copy of the binding cookie.
                raise StateReplayed()
            # WeChat's double hit while the first is still in flight: this browser ends signed in too.
            user_id = await self._await_first_hit(nonce, claim.same_code)
            return FlowResult(user=None, user_id=user_id, next_path=next_path, repeat=True)
        try:
            if flow in LINK_FLOWS:
                return await self._exchange_and_link(flow, code, nonce, next_path, signed_in_user_id)
            return await self._exchange_and_login(flow, code, nonce, next_path, context)
        except BaseException as exc:
            try:
                await self.callbacks.fail(nonce)
                # A snapshot-page person is virtual: nothing at all is written for them.
                if isinstance(exc, WxLoginError) and not isinstance(exc, SnapshotUser):
                    await self.login.record_failure(flow.split("-")[0], exc.code, context)
            except WxLoginError:
                pass  # the database is down as well: the original error is what the person sees
            raise

    async def _await_first_hit(self, nonce: str, same_code: bool) -> int:
        if not same_code:
            raise StateReplayed()
        status, user_id = "pending", None
        deadline = time.monotonic() + 2 * self.settings.wechat.timeout + 2
        while status == "pending" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            claim = await self.callbacks.get(nonce)
            status, user_id = (claim.status, claim.user_id) if claim else ("failed", None)
        if status != "ok" or user_id is None:
            raise StateReplayed()
        return user_id

    async def _exchange(self, flow: str, code: str) -> tuple[WeChatIdentity, WeChatProfile | None, WeChatTokens]:
        """Code -> tokens -> (userinfo when the grant allows it); refuses snapshot-page people."""
        app = self.app_for(flow)
        tokens = await self.wechat.exchange_code(app, code)
        if tokens.is_snapshot_user:
            raise SnapshotUser()
        profile: WeChatProfile | None = None
        unionid = tokens.unionid
        if set(tokens.scope.split(",")) & {"snsapi_login", SCOPE_USERINFO}:
            info = await self.wechat.userinfo(tokens.access_token, tokens.openid)
            profile = info.profile
            unionid = unionid or info.unionid
        channel = Channel.WEB if flow.startswith("web") else Channel.MP
        return WeChatIdentity(channel=channel, appid=app.appid, openid=tokens.openid, unionid=unionid), profile, tokens

    async def _exchange_and_link(
        self, flow: str, code: str, nonce: str, next_path: str, user_id: int | None
    ) -> FlowResult:
        if user_id is None:
            raise StateUnbound()  # linking belongs to the signed-in browser that started it
        identity, profile, tokens = await self._exchange(flow, code)
        try:
            await self.accounts.link(user_id, identity, self.login.seal_tokens(tokens))
        except LinkConflict as conflict:
            await self.callbacks.fail(nonce)
            return FlowResult(user=None, user_id=user_id, next_path=next_path,
                              link_conflict_user_id=conflict.other_user_id)
        if profile is not None:
            await self.accounts.update_profile(user_id, profile)
        await self.callbacks.succeed(nonce, user_id)
        logger.info("linked %s login to user %d", identity.channel.value, user_id)
        return FlowResult(user=None, user_id=user_id, next_path=next_path, linked=True)

    async def _exchange_and_login(
        self, flow: str, code: str, nonce: str, next_path: str, context: RequestContext
    ) -> FlowResult:
        identity, profile, tokens = await self._exchange(flow, code)
        grant = self.login.seal_tokens(tokens)
        try:
            result = await self.login.login(
                identity, profile, context, grant=grant, callback_nonce=nonce,
                # A silent snsapi_base grant only signs in people we already know.
                allow_create=profile is not None,
            )
        except NotFound:
            return FlowResult(user=None, user_id=0, next_path=next_path, needs_userinfo=True)
        return FlowResult(
            user=result.user, user_id=result.user.id, next_path=next_path, created=result.created,
            conflict_user_id=result.conflict_user_id,
        )


def _code_hash(code: str) -> bytes:
    # Codes are credentials for five minutes; only their hash is stored.
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest()

