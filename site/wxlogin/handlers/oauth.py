"""The redirect flows: start (302 to WeChat with a bound state) and the callback that finishes them.

The binding cookie holds the secrets of the flows this browser started (a few, so two tabs work);
the callback accepts a state only if the secret's hash is the state's nonce. Once a state is
verified, the callback removes its nonce whatever the outcome, except a request for consent (WeChat may
repeat that callback, and the repeat must find the claim).
"""

from __future__ import annotations

import hmac
import logging
import re
from urllib.parse import urlencode

import tornado.web

from wxlogin.errors import BadRequest, StateUnbound, WxLoginError
from wxlogin.handlers.base import BaseHandler, login_required, public
from wxlogin.models import Channel
from wxlogin.redirects import safe_next
from wxlogin.services.oauth import (
    MAX_PENDING_BINDINGS,
    SCOPE_BASE,
    SCOPE_USERINFO,
    AlreadySignedIn,
    Browser,
    Flow,
    LinkConflictFound,
    Linked,
    Merged,
    NeedsConsent,
    Purpose,
    SignedIn,
)
from wxlogin.signing import binding_nonce
from wxlogin.useragent import in_wechat

logger = logging.getLogger(__name__)

_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_CODE_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_SINGLE_VALUED = ("code", "state", "next", "retry")
# Names of the login methods, for the account and conflict pages (catalog_en.py has the English).
# How people know the login methods (account and merge pages; catalog_en.py has the English).
CHANNEL_NAMES = {"web": "微信扫码", "mp": "微信内登录", "app": "App", "miniprogram": "小程序"}


def mp_start_url(handler: BaseHandler, next_path: str, *, app: str = "", consent: bool = False) -> str:
    """Where an official account's flow starts: silent (snsapi_base) or, with ``consent``, snsapi_userinfo."""
    path = handler.reverse_url("auth_mp_app", app) if app else handler.reverse_url("auth_mp")
    return path + "?" + urlencode({"next": next_path, **({"consent": "1"} if consent else {})})


class OAuthHandler(BaseHandler):
    """Shared helpers for the binding cookie and for starting a flow."""

    _binding: list[str] | None = None  # what this response has set the cookie to, once it changed it

    def binding_secrets(self) -> list[str]:
        if self._binding is not None:
            return list(self._binding)
        raw = self.get_cookie(self.cookie_names["binding"]) or ""
        return [n for n in raw.split(".") if _SECRET_RE.match(n)][:MAX_PENDING_BINDINGS]

    def bound_nonces(self) -> tuple[str, ...]:
        return tuple(binding_nonce(s) for s in self.binding_secrets())

    def bind(self, secret: str) -> None:
        """Remember that this browser started a flow (10 minutes; Lax so WeChat's redirect back carries it)."""
        secrets = [secret] + [s for s in self.binding_secrets() if not hmac.compare_digest(s, secret)]
        self._write_binding(secrets[:MAX_PENDING_BINDINGS])

    def unbind(self, nonce: str) -> None:
        """Forget a flow this browser started; nothing happens when it is not bound here."""
        kept = [s for s in self.binding_secrets() if not hmac.compare_digest(binding_nonce(s), nonce)]
        if len(kept) == len(self.binding_secrets()):
            return
        if kept:
            self._write_binding(kept)
        else:
            self._binding = []
            self.clear_cookie(self.cookie_names["binding"], httponly=True, secure=self.secure_cookies, samesite="Lax")

    def _write_binding(self, secrets: list[str]) -> None:
        self._binding = secrets
        # Not signed: a secret only matters when its hash is the nonce inside a validly signed state.
        self.set_cookie(
            self.cookie_names["binding"], ".".join(secrets), max_age=self.services.settings.server.state_max_age,
            httponly=True, secure=self.secure_cookies, samesite="Lax",
        )

    def begin_flow(
        self, flow: Flow, next_path: str, *, embedded: bool = False, retry: bool = False, scope: str = SCOPE_BASE
    ) -> str:
        """Bind a new state to this browser; returns WeChat's URL for it."""
        start = self.services.oauth.start(
            flow, next_path, self.reverse_url("auth_callback", flow.slug), embedded=embedded, scope=scope,
            retry=retry, lang=self.locale_code,
        )
        self.bind(start.binding_secret)
        return start.url

    def start_flow(self, flow: Flow, next_path: str, retry: bool = False, scope: str = SCOPE_BASE) -> None:
        """Bind a new state to this browser and send it to WeChat."""
        url = self.begin_flow(flow, next_path, retry=retry, scope=scope)
        self.set_header("Cache-Control", "no-store")
        self.redirect(url)

    def recent(self) -> bool:
        """Whether this account's WeChat signed the session in within ``[accounts] reauth_window``."""
        claims = self.session_claims
        return claims is not None and self.services.sessions.signed_in_recently(claims)

    def reauth_first(self) -> bool:
        """Send an older session through WeChat (``Purpose.REAUTH``, this account's WeChat only) and say so.

        For linking and merging: a WeChat linked to the account counts as the account's own from then on (it
        may confirm closing it, ``LoginService.is_own``), so a session on a shared computer, however old, must
        not attach one. After the confirmation the person is back on the account page ("confirmed") and
        presses again.
        """
        if self.recent():
            return False
        channel = Channel.MP if in_wechat(self.surface) else Channel.WEB
        next_path = self.reverse_url("account") + "?done=reauthed"
        self.start_flow(Flow(channel, Purpose.REAUTH), next_path, scope=SCOPE_USERINFO)
        return True


class WebStartHandler(OAuthHandler):
    """GET /auth/wechat/web?next=PATH: full-page website QR login."""

    @public
    async def get(self) -> None:
        await self.services.oauth.count_start(self.client_ip())
        self.start_flow(Flow(Channel.WEB), self.get_query_argument("next", "/"),
                        retry=self.get_query_argument("retry", "") == "1")


class MpStartHandler(OAuthHandler):
    """GET /auth/wechat/mp[/<name>]?next=PATH[&consent=1]: an official account's web authorisation.

    Silent snsapi_base by default; ``consent=1`` (the consent button the callback shows someone new) asks
    for snsapi_userinfo. ``<name>`` is a further official account of ``[wechat.more.mp.<name>]``; without
    it, the default one.
    """

    @public
    async def get(self, app: str = "") -> None:
        await self.services.oauth.count_start(self.client_ip())
        scope = SCOPE_USERINFO if self.get_query_argument("consent", "") == "1" else SCOPE_BASE
        self.start_flow(Flow(Channel.MP, app=app), self.get_query_argument("next", "/"),
                        retry=self.get_query_argument("retry", "") == "1", scope=scope)


class LinkStartHandler(OAuthHandler):
    """POST /account/link/(web|mp): a signed-in person starts attaching another WeChat login.

    Only on a recent WeChat sign-in of the account; an older session confirms with its WeChat first.
    """

    @login_required
    def post(self, channel: str) -> None:
        if self.reauth_first():
            return
        # Linking is an explicit action, so asking for the profile (snsapi_userinfo) is justified.
        self.start_flow(Flow(Channel(channel), Purpose.LINK), self.reverse_url("account"), scope=SCOPE_USERINFO)


class CallbackHandler(OAuthHandler):
    """GET /auth/wechat/callback/<flow>: WeChat sends the browser back here with code and state."""

    flow = Flow(Channel.WEB)

    @public
    async def get(self, slug: str) -> None:
        try:
            self.flow = Flow.from_slug(slug)
        except ValueError:
            raise tornado.web.HTTPError(404) from None
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        params = self._single_valued_params()
        code, state = params.get("code"), params.get("state")
        if not state:
            raise BadRequest("state missing")
        if code is not None and not _CODE_RE.match(code):
            raise BadRequest("code malformed")
        oauth = self.services.oauth
        verified = oauth.verify(self.flow, state, params.get("next", "/"))
        bound = self.bound_nonces()
        try:
            outcome = await oauth.finish(verified, code, Browser(bound, self.session_claims, self.request_context()))
        except StateUnbound:
            if params.get("retry") != "1" and not self.flow.for_signed_in and not bound:
                # WeChat's browser drops cookies now and then: start over once, then explain. A browser
                # that still holds bindings, none of them for this state, was handed someone else's link.
                logger.info("callback without binding cookie; restarting the %s flow once", self.flow.slug)
                self.redirect(self._restart_url(verified.next_path, retry=True))
                return
            raise
        except WxLoginError:
            self.unbind(verified.nonce)
            raise
        if not isinstance(outcome, NeedsConsent):
            # Asking for consent keeps the binding: WeChat's repeat of this callback must reach the claim.
            self.unbind(verified.nonce)
        match outcome:
            case SignedIn(user=user, session_cookie=cookie, next_path=next_path):
                self.start_session(cookie)
                self.redirect(self.after_sign_in(user, next_path))
            case AlreadySignedIn(next_path=next_path):
                self.redirect(next_path)
            case NeedsConsent(flow=flow, next_path=next_path):
                # Someone new: WeChat shares a profile only on an explicit tap, so show the button here
                # rather than bouncing straight on to the snsapi_userinfo page (issue 15).
                self.render_template(
                    "login_wechat.html", consent=True, surface=self.surface.value, next_path=next_path,
                    one_tap_url=mp_start_url(self, next_path, app=flow.app, consent=True),
                    full_page_url=self.reverse_url("auth_web") + "?" + urlencode({"next": next_path}))
            case Linked():
                self.redirect(self.reverse_url("account") + "?done=linked")
            case LinkConflictFound(proposal=proposal):
                self.set_status(409)
                self.render_template("link_conflict.html", proposal=proposal, channel_names=CHANNEL_NAMES)
            case Merged():
                self.redirect(self.reverse_url("account") + "?done=merged")

    def _restart_url(self, next_path: str, retry: bool = False) -> str:
        query = {"next": next_path, **({"retry": "1"} if retry else {})}
        if self.flow.app:  # a further official account starts over from its own start route
            return self.reverse_url("auth_mp_app", self.flow.app) + "?" + urlencode(query)
        if retry:
            # The automatic restart goes straight back to WeChat, for either channel.
            route = "auth_web" if self.flow.channel is Channel.WEB else "auth_mp"
            return self.reverse_url(route) + "?" + urlencode(query)
        # A person starts over from the login page; inside WeChat ``manual`` makes it show the button
        # instead of starting the silent flow again (which could loop back to this error or cancel page).
        if self.flow.channel is Channel.MP:
            query["manual"] = "1"
        return self.reverse_url("login") + "?" + urlencode(query)

    def _single_valued_params(self) -> dict[str, str]:
        # Tornado's get_argument silently takes the last of duplicates; a login callback refuses them.
        result: dict[str, str] = {}
        for name in _SINGLE_VALUED:
            values = self.request.query_arguments.get(name, [])
            if len(values) > 1:
                raise BadRequest(f"duplicate {name}")
            if values:
                try:
                    result[name] = values[0].decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest(f"{name} is not UTF-8") from None
        return result

    def get_retry_url(self) -> str:
        if self.flow.for_signed_in:
            return self.reverse_url("account")
        values = self.request.query_arguments.get("next", [])
        return self._restart_url(safe_next(values[0].decode("utf-8", "replace") if len(values) == 1 else "/"))


routes = [
    tornado.web.url(r"/auth/wechat/web", WebStartHandler, name="auth_web"),
    tornado.web.url(r"/auth/wechat/mp", MpStartHandler, name="auth_mp"),
    tornado.web.url(r"/auth/wechat/mp/([a-z0-9_]{1,32})", MpStartHandler, name="auth_mp_app"),
    tornado.web.url(r"/account/link/(web|mp)", LinkStartHandler, name="account_link"),
    # One plain group (Tornado reverses only those); Flow.from_slug decides which spellings are flows.
    tornado.web.url(r"/auth/wechat/callback/([a-z0-9_.-]{2,48})", CallbackHandler,
                    name="auth_callback"),
]
