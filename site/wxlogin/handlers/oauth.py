"""The redirect flows: start (302 to WeChat with a bound state) and the callback that finishes them.

The binding cookie holds the nonces of the flows this browser started (a few, so two tabs work);
the callback accepts a state only if its nonce is there. Every callback outcome removes its nonce.
"""

from __future__ import annotations

import hmac
import logging
import re
from urllib.parse import urlencode

import tornado.web

from wxlogin.errors import BadRequest, StateUnbound
from wxlogin.handlers.base import BaseHandler, login_required, public
from wxlogin.redirects import safe_next
from wxlogin.services.oauth import MAX_PENDING_BINDINGS, SCOPE_BASE, SCOPE_USERINFO, FlowResult
from wxlogin.signing import binding_nonce, state_nonce

logger = logging.getLogger(__name__)

_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_CODE_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_SINGLE_VALUED = ("code", "state", "next", "retry")


class OAuthHandler(BaseHandler):
    """Shared helpers for the binding cookie."""

    def binding_secrets(self) -> list[str]:
        raw = self.get_cookie(self.cookie_names["binding"]) or ""
        return [n for n in raw.split(".") if _SECRET_RE.match(n)][:MAX_PENDING_BINDINGS]

    def bound_nonces(self) -> list[str]:
        return [binding_nonce(s) for s in self.binding_secrets()]

    def bind(self, secret: str) -> None:
        """Remember that this browser started a flow (10 minutes; Lax so WeChat's redirect back carries it)."""
        secrets = [secret] + [s for s in self.binding_secrets() if not hmac.compare_digest(s, secret)]
        self._write_binding(secrets[:MAX_PENDING_BINDINGS])

    def unbind(self, nonce: str) -> None:
        secrets = [s for s in self.binding_secrets() if not hmac.compare_digest(binding_nonce(s), nonce)]
        if secrets:
            self._write_binding(secrets)
        else:
            self.clear_cookie(self.cookie_names["binding"], httponly=True, secure=self.secure_cookies, samesite="Lax")

    def _write_binding(self, secrets: list[str]) -> None:
        # Not signed: a secret only matters when its hash is the nonce inside a validly signed state.
        self.set_cookie(
            self.cookie_names["binding"], ".".join(secrets), max_age=self.services.settings.server.state_max_age,
            httponly=True, secure=self.secure_cookies, samesite="Lax",
        )

    def start_flow(self, flow: str, next_path: str, retry: bool = False, scope: str = SCOPE_BASE) -> None:
        start = self.services.oauth.start(flow, next_path, scope=scope, retry=retry, lang=self.locale_code)
        self.bind(start.binding_secret)
        self.set_header("Cache-Control", "no-store")
        self.redirect(start.url)


class WebStartHandler(OAuthHandler):
    """GET /auth/wechat/web?next=PATH: full-page website QR login."""

    @public
    def get(self) -> None:
        self.start_flow("web", safe_next(self.get_query_argument("next", "/")),
                        retry=self.get_query_argument("retry", "") == "1")


class MpStartHandler(OAuthHandler):
    """GET /auth/wechat/mp?next=PATH: the official account's web authorisation, silent snsapi_base first."""

    @public
    def get(self) -> None:
        self.start_flow("mp", safe_next(self.get_query_argument("next", "/")),
                        retry=self.get_query_argument("retry", "") == "1", scope=SCOPE_BASE)


class LinkStartHandler(OAuthHandler):
    """POST /account/link/(web|mp): a signed-in person starts attaching another WeChat login."""

    @login_required
    def post(self, channel: str) -> None:
        # Linking is an explicit action, so asking for the profile (snsapi_userinfo) is justified.
        self.start_flow(f"{channel}-link", "/account", scope=SCOPE_USERINFO)


class CallbackHandler(OAuthHandler):
    """GET /auth/wechat/callback/<flow>: WeChat sends the browser back here with code and state."""

    flow = "web"

    @public
    async def get(self, flow: str) -> None:
        self.flow = flow
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        params = self._single_valued_params()
        code, state = params.get("code"), params.get("state")
        next_path = safe_next(params.get("next", "/"))
        retry = params.get("retry") == "1"
        if not state:
            raise BadRequest("state missing")
        if code is not None and not _CODE_RE.match(code):
            raise BadRequest("code malformed")
        claims = self.session_claims
        try:
            result = await self.services.oauth.finish(
                flow, code, state, next_path, self.bound_nonces(), self.request_context(),
                signed_in_user_id=claims.user_id if claims else None,
            )
        except StateUnbound:
            if not retry and flow in ("web", "mp") and not self.bound_nonces():
                # WeChat's browser drops cookies now and then: start over once, then explain. A browser
                # that still holds bindings, none of them for this state, was handed someone else's link.
                logger.info("callback without binding cookie; restarting the %s flow once", flow)
                self.redirect(f"/auth/wechat/{flow}?" + urlencode({"next": next_path, "retry": "1"}))
                return
            raise
        finally:
            self._unbind_state(state)
        await self._complete(result)

    async def _complete(self, result: FlowResult) -> None:
        if result.needs_userinfo:
            self.start_flow(self.flow, result.next_path, scope=SCOPE_USERINFO)
            return
        if result.link_conflict_user_id is not None:
            await self._offer_merge(result.user_id, result.link_conflict_user_id)
            return
        if result.linked:
            self.redirect("/account?done=linked")
            return
        current = self.session_claims
        if result.repeat and current is not None and current.user_id == result.user_id:
            self.redirect(result.next_path)  # the double callback: already signed in as this person
            return
        user = result.user or await self.services.users.get_user(result.user_id)
        if user is None:
            raise BadRequest("user vanished")
        if current is not None:
            await self.services.sessions.end(current)  # a login never upgrades an existing session
        value, _ = self.services.sessions.new_session(user)
        self.set_session_cookie(value)
        self.redirect(result.next_path)

    async def _offer_merge(self, user_id: int, other_id: int) -> None:
        other = await self.services.users.get_user(other_id)
        methods = await self.services.users.list_login_methods(other_id)
        self.set_status(409)
        self.render_template(
            "link_conflict.html", other=other, other_methods=methods,
            offer=self.services.accounts.merge_offer(user_id, other_id),
        )

    def _unbind_state(self, state: str | None) -> None:
        nonce = state_nonce(state)
        if nonce is not None and nonce in self.bound_nonces():
            self.unbind(nonce)

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
        if self.flow.endswith("-link"):
            return "/account"
        values = self.request.query_arguments.get("next", [])
        next_path = safe_next(values[0].decode("utf-8", "replace") if len(values) == 1 else "/")
        start = "/login" if self.flow == "web" else f"/auth/wechat/{self.flow}"
        return start + "?" + urlencode({"next": next_path})


routes = [
    tornado.web.url(r"/auth/wechat/web", WebStartHandler, name="auth_web"),
    tornado.web.url(r"/auth/wechat/mp", MpStartHandler, name="auth_mp"),
    tornado.web.url(r"/account/link/(web|mp)", LinkStartHandler, name="account_link"),
    tornado.web.url(r"/auth/wechat/callback/(web|mp|web-link|mp-link)", CallbackHandler, name="auth_callback"),
]
