"""The browser OAuth flows (website QR and official account): start with a bound state, finish once.

A callback goes one way: the handler asks ``verify`` for the state (signature, flow, return path,
age), then ``finish`` with the browser's bindings and session, and turns the tagged outcome into
HTTP. Order of checks, each before anything costs WeChat quota: the state's signature (which also
covers the flow and the return path), its age, the browser binding, then its single use in MySQL.
WeChat's habit of hitting the callback twice is handled in one place, ``_repeat_hit``.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

from wxlogin.config import APP_NAME_RE, LOGIN_DEADLINE_MARGIN, Settings, WeChatApp
from wxlogin.errors import (
    AccountDisabled,
    LinkConflict,
    LoginCancelled,
    NotFound,
    SnapshotUser,
    StateReplayed,
    StateUnbound,
    WrongAccount,
    WxLoginError,
)
from wxlogin.models import (
    CallbackClaim,
    CallbackStatus,
    Channel,
    RequestContext,
    SessionClaims,
    User,
    WeChatIdentity,
    WeChatProfile,
    WeChatTokens,
)
from wxlogin.redirects import safe_next
from wxlogin.services.accounts import AccountService, MergeProposal
from wxlogin.services.login import LoginService
from wxlogin.services.ratelimit import RateLimits
from wxlogin.services.sessions import SessionService
from wxlogin.signing import Signing, binding_nonce
from wxlogin.store import AccountStore, CallbackStore, UserStore
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)

SCOPE_BASE = "snsapi_base"
SCOPE_USERINFO = "snsapi_userinfo"
MAX_PENDING_BINDINGS = 4  # flows one browser may have open at once (several tabs)
# Waiting for WeChat's first hit: look again after 50 ms, then twice as long each time, at most 2 s
# apart: a waiter costs about eight statements over the longest wait (the login deadline + 1 s).
_FIRST_HIT_POLL_FIRST = 0.05
_FIRST_HIT_POLL_MAX = 2.0


class Purpose(enum.StrEnum):
    LOGIN = "login"
    LINK = "link"  # a signed-in person attaches another WeChat login to their account
    # A signed-in person proves, with a fresh WeChat confirmation of the *other* account, that it is
    # theirs too: only this flow's callback merges that account into theirs.
    MERGE = "merge"
    # A signed-in person confirms it is still them (closing the account, the full export: issue 16). Not a
    # LOGIN flow: that would sign the browser in as whichever WeChat scanned, and a different one would land on
    # (or create) another account and be asked to close *that*. This flow belongs to the signed-in browser,
    # accepts only a WeChat of the signed-in account (else ``WrongAccount``, nothing written), and only
    # renews the session (so its ``wechat_at`` says "just now": SessionService.sign_in).
    REAUTH = "reauth"


_SLUG_SUFFIX = {Purpose.LOGIN: "", Purpose.LINK: "link", Purpose.MERGE: "merge", Purpose.REAUTH: "reauth"}
_PURPOSE_OF_SUFFIX = {suffix: purpose for purpose, suffix in _SLUG_SUFFIX.items()}


@dataclass(frozen=True)
class Flow:
    """Which redirect flow a state belongs to: the WeChat app (channel and name) and what it is for."""

    channel: Channel  # Channel.WEB (website QR) or Channel.MP (official account)
    purpose: Purpose = Purpose.LOGIN
    app: str = ""  # a further official account of [wechat.more.mp.<name>]; "" = the default one

    @classmethod
    def from_slug(cls, slug: str) -> Flow:
        """Parse the route's spelling: ``web``, ``mp``, ``mp.<name>``, each with ``-link`` or ``-merge``."""
        head, _, suffix = slug.partition("-")
        channel, dot, app = head.partition(".")
        purpose = _PURPOSE_OF_SUFFIX.get(suffix)
        if purpose is None or channel not in (Channel.WEB.value, Channel.MP.value):
            raise ValueError(f"no such flow: {slug!r}")
        if dot and (channel != Channel.MP.value or not APP_NAME_RE.match(app)):
            raise ValueError(f"no such flow: {slug!r}")
        flow = cls(Channel(channel), purpose, app)
        if flow.slug != slug:
            raise ValueError(f"no such flow: {slug!r}")
        return flow

    @property
    def slug(self) -> str:
        """The spelling in URLs and in the signed state (so a state cannot cross flows or apps)."""
        suffix = _SLUG_SUFFIX[self.purpose]
        return self.channel.value + ("." + self.app if self.app else "") + ("-" + suffix if suffix else "")

    @property
    def is_link(self) -> bool:
        return self.purpose is Purpose.LINK

    @property
    def for_signed_in(self) -> bool:
        """Link and merge flows belong to the signed-in browser that started them (never a login)."""
        return self.purpose is not Purpose.LOGIN


@dataclass(frozen=True)
class FlowStart:
    """Where to send the browser, and the secret to keep in its binding cookie."""

    url: str
    binding_secret: str


@dataclass(frozen=True)
class VerifiedState:
    """A callback's state after its signature, flow, return path and age were checked."""

    flow: Flow
    nonce: str
    next_path: str


@dataclass(frozen=True)
class Browser:
    """What the returning browser brings: the nonces of flows it started, its session, where it is."""

    bound_nonces: tuple[str, ...]
    session: SessionClaims | None
    context: RequestContext


# --- what a callback can end in -------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """A fresh session for ``user``; the handler sets the cookie and goes to ``next_path``."""

    user: User
    session_cookie: str
    next_path: str


@dataclass(frozen=True)
class AlreadySignedIn:
    """The browser is signed in as the person this callback is for (WeChat's double hit)."""

    next_path: str


@dataclass(frozen=True)
class NeedsConsent:
    """Official account, silent grant, someone we do not know yet: ask again with snsapi_userinfo."""

    flow: Flow
    next_path: str


@dataclass(frozen=True)
class Linked:
    """A link flow attached (or re-authorised) a login method of the signed-in person."""

    user_id: int


@dataclass(frozen=True)
class LinkConflictFound:
    """The identity being linked belongs to another account: offer a merge, never move it silently."""

    proposal: MergeProposal


@dataclass(frozen=True)
class Merged:
    """A merge flow proved the other account's WeChat: that account is now part of ``user_id``'s."""

    user_id: int
    methods_moved: int


FlowOutcome = SignedIn | AlreadySignedIn | NeedsConsent | Linked | LinkConflictFound | Merged


class OAuthService:
    """Starts and finishes the redirect-based WeChat logins."""

    def __init__(
        self, settings: Settings, signing: Signing, wechat: WeChatClient, login: LoginService,
        sessions: SessionService, accounts: AccountService, callbacks: CallbackStore, users: UserStore,
        account_store: AccountStore, limits: RateLimits,
    ) -> None:
        self.settings = settings
        self.signing = signing
        self.wechat = wechat
        self.login = login
        self.sessions = sessions
        self.accounts = accounts
        self.callbacks = callbacks
        self.users = users
        self.account_store = account_store
        self.limits = limits

    def app_for(self, flow: Flow) -> WeChatApp:
        """The app a flow signs in with: the website application, or the (named) official account."""
        if flow.channel is Channel.WEB:
            return self.settings.wechat.web
        app = self.settings.wechat.apps(Channel.MP.value).get(flow.app)
        if app is None:
            raise NotFound("no such official account")
        return app

    # --- start ------------------------------------------------------------------------------

    async def count_start(self, ip: str) -> None:
        """Count an explicit flow start (/auth/wechat/web, /auth/wechat/mp) against this client's budget.

        The login page's embedded QR is not counted: it is the page everyone behind one office NAT
        loads and reloads, it mints a signed state and writes nothing, and every state is worth nothing
        until its callback, which is counted.
        """
        await self.limits.start.hit(ip)

    def start(
        self, flow: Flow, next_path: str, callback_path: str, *, embedded: bool = False,
        scope: str = SCOPE_BASE, retry: bool = False, lang: str = "",
    ) -> FlowStart:
        """Mint a state bound to this flow and return path, and build WeChat's URL for it.

        ``callback_path`` is our callback route for this flow (the handlers own the routes); the
        redirect URI is built on ``public_url``, never on the Host header.
        """
        next_path = safe_next(next_path)
        state, secret = self.signing.make_state(flow.slug, next_path)
        app = self.app_for(flow)
        redirect_uri = f"{self.settings.server.public_url}{callback_path}?next={quote(next_path, safe='/')}"
        if retry:
            redirect_uri += "&retry=1"
        if flow.channel is Channel.WEB:
            url = self.wechat.qrconnect_url(app.appid, redirect_uri, state, embedded=embedded, lang=lang)
        else:
            url = self.wechat.authorize_url(app.appid, redirect_uri, scope, state)
        return FlowStart(url=url, binding_secret=secret)

    async def start_merge(
        self, user_id: int, offer: str, channel: Channel, next_path: str, callback_path: str, *, lang: str = ""
    ) -> FlowStart:
        """Start the merge confirmation a conflict page offered: a MERGE flow bound to this browser.

        The pending merge (into, from) is kept in MySQL keyed by the state's nonce, not signed into
        the state: the state travels through WeChat and the scanning phone in a fixed 72-character
        format (WeChat allows 128), while a row keeps the ids server-side, is single-use with the
        state's claim and dies with either account. Raises BadRequest for an invalid offer and
        MergeRefused when an account is disabled. Asks for ``snsapi_userinfo`` so the official
        account shows its consent page rather than granting silently.
        """
        start = self.start(Flow(channel, Purpose.MERGE), next_path, callback_path, scope=SCOPE_USERINFO, lang=lang)
        await self.accounts.begin_merge(user_id, offer, binding_nonce(start.binding_secret))
        return start

    # --- finish -----------------------------------------------------------------------------

    def verify(self, flow: Flow, state: str, next_path: str) -> VerifiedState:
        """Check the state's signature for this flow and return path, and its age; raises StateInvalid."""
        next_path = safe_next(next_path)
        checked = self.signing.load_state(state, flow.slug, next_path, self.settings.server.state_max_age)
        return VerifiedState(flow=flow, nonce=checked.nonce, next_path=next_path)

    async def finish(self, state: VerifiedState, code: str | None, browser: Browser) -> FlowOutcome:
        """Claim the state once, exchange the code and sign in (or link); raises a WxLoginError on failure."""
        if state.nonce not in browser.bound_nonces:
            # The second of WeChat's double hits may arrive after the first one signed this browser in.
            if browser.session is not None:
                claim = await self.callbacks.get(state.nonce)
                if claim is not None and _finished_for(claim, browser.session):
                    return AlreadySignedIn(state.next_path)
            raise StateUnbound()
        channel = state.flow.channel.value
        if code is None:
            await self._claim(state.nonce, "", browser)
            await self.callbacks.fail(state.nonce)
            await self.login.record_failure(channel, LoginCancelled.code, browser.context, _owner(state, browser))
            raise LoginCancelled()

        claim = await self._claim(state.nonce, code, browser)
        if not claim.fresh:
            return await self._repeat_hit(state, claim, browser)
        try:
            if state.flow.purpose is Purpose.MERGE:
                return await self._exchange_and_merge(state, code, browser.session)
            if state.flow.purpose is Purpose.REAUTH:
                return await self._exchange_and_reauth(state, code, browser)
            if state.flow.is_link:
                return await self._exchange_and_link(state, code, browser.session)
            return await self._exchange_and_login(state, code, browser)
        except BaseException as exc:
            try:
                await self.callbacks.fail(state.nonce)
                # A snapshot-page person is virtual: nothing at all is written for them.
                if isinstance(exc, WxLoginError) and not isinstance(exc, SnapshotUser):
                    await self.login.record_failure(channel, exc.code, browser.context, _owner(state, browser, exc),
                                                    error=exc)
            except WxLoginError:
                pass  # the database is down as well: the original error is what the person sees
            raise

    async def _claim(self, nonce: str, code: str, browser: Browser) -> CallbackClaim:
        """Count the callback against the client's limit, then claim the state: one round trip for both.

        Counted only here: a bound, verified state is the first point where a callback costs anything
        (the claim row, the audit row, WeChat's quota). Junk states stop earlier without touching MySQL.
        A refused callback claims nothing (RateLimited), so the state still works once the client slows down.
        """
        claim = await self.callbacks.claim(nonce, _code_hash(code), self.limits.callback.hit_for(browser.context.ip))
        if claim is None:
            raise self.limits.callback.refusal()
        return claim

    async def _repeat_hit(self, state: VerifiedState, claim: CallbackClaim, browser: Browser) -> FlowOutcome:
        """WeChat's double callback, the whole rule.

        A second hit in the browser already signed in as the state's person just continues. A second
        hit with the same code while the first is in flight waits for it and signs this browser in as
        the same person. Anything else is a replay, even with a copy of the binding cookie.
        """
        if browser.session is not None and _finished_for(claim, browser.session):
            return AlreadySignedIn(state.next_path)
        if not claim.same_code:
            raise StateReplayed()
        if claim.status is CallbackStatus.CONSENT:
            # The first hit asked for consent: so does this one (WeChat's browser may show either answer).
            return NeedsConsent(state.flow, state.next_path)
        if claim.status is not CallbackStatus.PENDING:
            raise StateReplayed()
        user_id = await self._await_first_hit(state.nonce)
        if browser.session is not None and browser.session.user_id == user_id:
            return AlreadySignedIn(state.next_path)
        user = await self.users.get_user(user_id)
        if user is None:
            raise StateReplayed()  # merged away or deleted since the first hit
        return await self._sign_in(user, state, browser)

    async def _await_first_hit(self, nonce: str) -> int:
        """The user the first hit signed in; it has at most two WeChat calls' time to finish."""
        status: CallbackStatus = CallbackStatus.PENDING
        user_id: int | None = None
        # The first hit's WeChat calls end by their own deadline; then one transaction, within a second.
        deadline = time.monotonic() + self.settings.wechat.timeout + LOGIN_DEADLINE_MARGIN + 1
        pause = _FIRST_HIT_POLL_FIRST
        while status is CallbackStatus.PENDING and time.monotonic() < deadline:
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(2 * pause, _FIRST_HIT_POLL_MAX)
            claim = await self.callbacks.get(nonce)
            status, user_id = (claim.status, claim.user_id) if claim else (CallbackStatus.FAILED, None)
        if status is not CallbackStatus.OK or user_id is None:
            raise StateReplayed()
        return user_id

    async def _sign_in(self, user: User, state: VerifiedState, browser: Browser) -> SignedIn:
        cookie = await self.sessions.sign_in(user, browser.session)
        return SignedIn(user=user, session_cookie=cookie, next_path=state.next_path)

    async def _exchange(self, flow: Flow, code: str) -> tuple[WeChatIdentity, WeChatProfile | None, WeChatTokens]:
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
        identity = WeChatIdentity(channel=flow.channel, appid=app.appid, openid=tokens.openid, unionid=unionid)
        return identity, profile, tokens

    async def _exchange_and_link(
        self, state: VerifiedState, code: str, session: SessionClaims | None
    ) -> Linked | LinkConflictFound:
        if session is None:
            raise StateUnbound()  # linking belongs to the signed-in browser that started it
        user_id = session.user_id
        identity, profile, tokens = await self._exchange(state.flow, code)
        try:
            await self.account_store.link(user_id, identity, self.login.seal_tokens(tokens))
        except LinkConflict as conflict:
            await self.callbacks.fail(state.nonce)
            return LinkConflictFound(
                await self.accounts.merge_proposal(user_id, conflict.other_user_id, state.flow.channel)
            )
        if profile is not None:
            await self.account_store.update_profile(user_id, profile)
        await self.callbacks.succeed(state.nonce, user_id)
        logger.info("linked %s login to user %d", identity.channel.value, user_id)
        return Linked(user_id)

    async def _exchange_and_merge(self, state: VerifiedState, code: str, session: SessionClaims | None) -> Merged:
        """The merge flow's callback: the only place a person's merge happens.

        The browser is the one that started the flow (binding, checked in ``finish``) and is still
        signed in as the account that stays; the pending merge is this state's; and the WeChat just
        confirmed must be the account merged away (checked with the merge, in one transaction).
        """
        if session is None:
            raise StateUnbound()  # merging belongs to the signed-in browser that started it
        user_id = session.user_id
        await self.accounts.pending_merge_for(state.nonce, user_id)  # before spending WeChat quota
        identity, _, _ = await self._exchange(state.flow, code)
        moved = await self.accounts.confirm_merge(state.nonce, user_id, identity)
        await self.callbacks.succeed(state.nonce, user_id)
        return Merged(user_id, moved)

    async def _exchange_and_reauth(self, state: VerifiedState, code: str, browser: Browser) -> SignedIn:
        """The re-confirmation's callback: the same account's WeChat renews this browser's session, nothing else."""
        if browser.session is None:
            raise StateUnbound()  # re-confirming belongs to the signed-in browser that started it
        user = await self.users.get_user(browser.session.user_id)
        if user is None:
            raise StateUnbound()
        identity, _, _ = await self._exchange(state.flow, code)
        if not await self.login.is_own(user, identity):
            raise WrongAccount(f"user {user.id}")  # finish() audits it on the signed-in account
        await self.callbacks.succeed(state.nonce, user.id)
        return await self._sign_in(user, state, browser)

    async def _exchange_and_login(self, state: VerifiedState, code: str, browser: Browser) -> SignedIn | NeedsConsent:
        identity, profile, tokens = await self._exchange(state.flow, code)
        try:
            result = await self.login.login(
                identity, profile, browser.context, grant=self.login.seal_tokens(tokens), callback_nonce=state.nonce,
                # A silent snsapi_base grant only signs in people we already know.
                allow_create=profile is not None,
            )
        except NotFound:
            # Finish the claim: a repeat of this callback must not wait for a login that will not come.
            await self.callbacks.need_consent(state.nonce)
            return NeedsConsent(state.flow, state.next_path)
        return await self._sign_in(result.user, state, browser)


def _finished_for(claim: CallbackClaim, session: SessionClaims) -> bool:
    """The state's first hit finished by signing in the person this browser is signed in as."""
    return claim.status is CallbackStatus.OK and claim.user_id == session.user_id


def _owner(state: VerifiedState, browser: Browser, error: BaseException | None = None) -> int | None:
    """Whose failure this is: the signed-in person of a link or merge flow (account page, issue 15); a disabled
    account that WeChat's answer identified (the code was exchanged: the openid is the person's); else nobody."""
    if state.flow.for_signed_in and browser.session is not None:
        return browser.session.user_id
    return error.user_id if isinstance(error, AccountDisabled) else None


def _code_hash(code: str) -> bytes:
    # Codes are credentials for five minutes; only their hash is stored.
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest()
