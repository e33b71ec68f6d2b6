"""Pages for people: home, login (adapts to where the visitor is), account, logout, health."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlencode

import segno
import tornado.web

from wxlogin.errors import BadRequest, DatabaseUnavailable
from wxlogin.handlers.base import BaseHandler, login_required, public
from wxlogin.handlers.errors import ERRORS
from wxlogin.handlers.oauth import CHANNEL_NAMES, OAuthHandler, mp_start_url
from wxlogin.handlers.scenes import bind_scene
from wxlogin.models import Channel, SceneKind
from wxlogin.redirects import safe_next
from wxlogin.services import Services
from wxlogin.services.accounts import RefreshOutcome
from wxlogin.services.oauth import SCOPE_USERINFO, Flow, Purpose
from wxlogin.useragent import Surface, in_wechat


class HomeHandler(BaseHandler):
    """GET /: knows who is signed in."""

    @public
    def get(self) -> None:
        self.render_template("home.html")


# The desktop methods' tab names ([wechat] desktop_methods; catalog_en.py has the English).
DESKTOP_METHOD_NAMES = {"qr": "微信扫码登录", "follow": "关注公众号登录", "miniprogram": "小程序扫码登录"}


class LoginHandler(OAuthHandler):
    """GET /login?next=PATH[&method=qr|follow|miniprogram]: adapts to where the visitor is.

    Desktop browser: the methods of ``[wechat] desktop_methods`` as tabs (plain links, ``?method=``), the
    first one shown by default: the website QR code in the page, or a scan-login scene (the official
    account's follow QR, the mini-program code) with its waiting page (static/js/scene.js). WeChat browser
    (phone or desktop WeChat): arrival starts the official account's silent snsapi_base flow at once, so a
    known person is signed in without a tap (someone new gets the consent button from the callback); with
    ``manual`` or ``retry`` in the query (a person back from a cancel or an error) the page shows the
    button instead, so nothing loops. Phone browser outside WeChat, WeCom,
    mini-program web-view: how to open the page in WeChat (a phone cannot scan its own screen).
    """

    @public
    async def get(self) -> None:
        next_path = safe_next(self.get_query_argument("next", "/"))
        if self.current_user is not None:
            self.redirect(next_path)
            return
        self.set_header("Cache-Control", "no-store")
        if not await self.services.maintenance.sign_in_ready():
            # Nobody can sign in while MySQL is away: say so now, not after a scan that cannot finish.
            self.set_status(503)
            self.set_header("Retry-After", str(LOGIN_RETRY_AFTER))
            self.render_template("login.html", unavailable=True, method="", methods=[], next_path=next_path,
                                 retry_url=self.reverse_url("login") + "?" + urlencode({"next": next_path}))
            return
        surface = self.surface
        context: dict[str, object] = {
            "surface": surface.value, "next_path": next_path, "qr_iframe_url": "", "page_qr": "", "unavailable": False,
            "one_tap_url": mp_start_url(self, next_path), "consent": False,
            "full_page_url": self.reverse_url("auth_web") + "?" + urlencode({"next": next_path})}
        if in_wechat(surface):
            query = self.request.query_arguments
            if "manual" not in query and "retry" not in query:
                self.redirect(mp_start_url(self, next_path))
                return
            template = "login_wechat.html"
        elif surface is Surface.DESKTOP:
            template = "login.html"
            await self._desktop(next_path, context)
        else:
            page_url = (self.services.settings.server.public_url + self.reverse_url("login") + "?"
                        + urlencode({"next": next_path}))
            template = "login_elsewhere.html"
            context.update(page_url=page_url, page_qr=segno.make(page_url, error="m").svg_data_uri(scale=4))
        self.render_template(template, **context)


    async def _desktop(self, next_path: str, context: dict[str, object]) -> None:
        """The desktop page's tabs and the chosen method: the website QR's frame, or a new scene."""
        methods = self.services.settings.wechat.desktop_methods
        chosen = self.get_query_argument("method", methods[0])
        method = chosen if chosen in methods else methods[0]

        def method_url(name: str) -> str:
            return self.reverse_url("login") + "?" + urlencode({"next": next_path, "method": name})

        context.update(method=method, methods=[(m, DESKTOP_METHOD_NAMES[m], method_url(m)) for m in methods],
                       refresh_url=method_url(method), scene="")
        if method == "qr":
            context.update(qr_card(self, next_path), qr_iframe_url=self.begin_flow(Flow(Channel.WEB), next_path,
                                                                                    embedded=True))
            return
        # A scene costs a row now and WeChat quota for its image: counted like a flow start.
        await self.services.oauth.count_start(self.client_ip())
        new = await self.services.scenes.create(SceneKind(method), next_path)
        bind_scene(self, new.scene, new.binding_secret)
        context.update(scene=new.scene, scene_expires_in=new.expires_in,
                       scene_qr_url=self.reverse_url("scene_qr", new.scene),
                       scene_events_url=self.reverse_url("scene_events", new.scene),
                       scene_wait_url=self.reverse_url("scene_wait", new.scene),
                       scene_complete_url=self.reverse_url("scene_complete", new.scene))


# What a failed attempt on the account page says: the title of the page the person saw then (errors.py).
OUTCOME_TITLES: dict[str, str] = {}
for _row in ERRORS:
    OUTCOME_TITLES.setdefault(_row.code, _row.title)
# The phone number's changes (issue 13), which share the history with sign-ins.
PHONE_OUTCOMES = {"phone_bound": "已绑定", "phone_unbound": "已解除绑定", "phone_in_use": "号码属于其他账号，未改变"}


def confirmed(handler: BaseHandler) -> bool:
    """A destructive account action runs only on its confirmation page's second POST (works without JS)."""
    return handler.get_body_argument("confirm", "") == "1"


LOGIN_RETRY_AFTER = 5  # seconds: what /login's "cannot sign in now" answer suggests as the wait


def qr_card(handler: OAuthHandler, next_path: str) -> dict[str, object]:
    """What static/js/qrcard.js needs to show the website QR's states and renew it without a reload."""
    settings = handler.services.settings
    wx = settings.wechat
    return {
        "qr_renew_url": handler.reverse_url("login_qr"), "qr_max_age": wx.qr_max_age,
        "state_max_age": settings.server.state_max_age,
        # Only the sandbox's emulated QR tells the page its states (postMessage); real WeChat's frame does not.
        "qr_frame_origin": settings.server.public_origin if wx.sandbox else "",
    }


class LoginQrHandler(OAuthHandler):
    """POST /login/qr (XSRF-checked, same origin): a fresh embedded QR for the login page, without a reload.

    The page (static/js/qrcard.js) asks when its QR expired and the person clicked it, or before the
    state it holds runs out (``[server] state_max_age``). Like /login, it binds the new state to this
    browser (the binding cookie) and answers ``{"url", "qr_max_age", "state_max_age"}``; a browser signed
    in meanwhile (another tab) gets ``{"next"}``. Errors are the API's JSON.
    """

    @public
    async def post(self) -> None:
        self.set_header("Cache-Control", "no-store")
        next_path = safe_next(self.get_body_argument("next", "/"))
        if self.current_user is not None:
            self.finish({"next": next_path})
            return
        if not await self.services.maintenance.sign_in_ready():
            raise DatabaseUnavailable("sign-in readiness")
        # Every renewal is a new flow start: counted like /auth/wechat/web, so a loop cannot mint states freely.
        await self.services.oauth.count_start(self.client_ip())
        url = self.begin_flow(Flow(Channel.WEB), next_path, embedded=True)
        card = qr_card(self, next_path)
        self.finish({"url": url, "qr_max_age": card["qr_max_age"], "state_max_age": card["state_max_age"]})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.write_json_error(status_code, **kwargs)  # read by fetch() in qrcard.js


class AccountHandler(BaseHandler):
    """GET /account: the signed-in person's profile, login methods, recent logins and account actions.

    The link buttons are decided for where the person is (``BaseHandler.surface``): a link that cannot
    work here says where it would instead of failing after a tap.
    """

    @login_required
    async def get(self) -> None:
        user = self.signed_in_user
        overview = await self.services.accounts.overview(user.id, self.surface)
        self.set_header("Cache-Control", "no-store")
        claims = self.session_claims
        self.render_template("account.html", user=user, overview=overview, channel_names=CHANNEL_NAMES,
                             outcome_titles=OUTCOME_TITLES, phone_outcomes=PHONE_OUTCOMES,
                             done=self.get_query_argument("done", ""),
                             # Issue 16: the full export needs a recent sign-in; closing states its grace period.
                             recent=claims is not None and self.services.sessions.signed_in_recently(claims),
                             grace_days=self.services.settings.accounts.deletion_grace_days)


class UnlinkHandler(BaseHandler):
    """POST /account/unlink: remove one login method (never the last), after a confirmation page.

    Without ``confirm=1`` nothing changes: the answer is the confirmation page, whose form posts again
    with it (a ``<dialog>`` does the same in place when JavaScript runs).
    """

    @login_required
    async def post(self) -> None:
        try:
            method_id = int(self.get_body_argument("method_id", ""))
        except ValueError:
            raise BadRequest("method_id") from None
        if not confirmed(self):
            method = await self.services.accounts.method_to_unlink(self.signed_in_user.id, method_id)
            self.set_header("Cache-Control", "no-store")
            self.render_template("account_confirm.html", action="unlink", method=method,
                                 channel_names=CHANNEL_NAMES)
            return
        user = await self.services.accounts.unlink(self.signed_in_user.id, method_id)
        # Unlinking ended every session and token of this person (the removed method's among them);
        # this browser, where they asked for it, gets a fresh session under the new session version.
        # Not a sign-in: the new session keeps the old one's WeChat sign-in time (an unlink never makes it recent).
        claims = self.session_claims
        assert claims is not None  # login_required
        self.start_session(await self.services.sessions.rotate(user, claims))
        self.redirect(self.reverse_url("account") + "?done=unlinked")


class PhoneUnbindHandler(BaseHandler):
    """POST /account/phone/unbind (XSRF-checked): remove the account's phone number."""

    @login_required
    async def post(self) -> None:
        await self.services.phones.unbind(self.signed_in_user.id, self.request_context())
        self.redirect(self.reverse_url("account") + "?done=phone_unbound")


class MergeHandler(OAuthHandler):
    """POST /account/merge: start the merge confirmation offered on the conflict page; nothing merges here.

    The signed offer only opens a MERGE flow bound to this browser; the merge happens in that flow's
    callback, when the other account's WeChat is confirmed again.
    """

    @login_required
    async def post(self) -> None:
        try:
            channel = Channel(self.get_body_argument("channel", Channel.WEB.value))
        except ValueError:
            raise BadRequest("channel") from None
        if channel not in (Channel.WEB, Channel.MP):
            raise BadRequest("channel")
        # Like linking: an older session confirms with its own WeChat first (then links again to get the offer).
        if self.reauth_first():
            return
        flow = Flow(channel, Purpose.MERGE)
        start = await self.services.oauth.start_merge(
            self.signed_in_user.id, self.get_body_argument("offer", ""), channel, self.reverse_url("account"),
            self.reverse_url("auth_callback", flow.slug), lang=self.locale_code,
        )
        self.bind(start.binding_secret)
        self.set_header("Cache-Control", "no-store")
        self.redirect(start.url)


class RefreshProfileHandler(OAuthHandler):
    """POST /account/refresh: re-read nickname and avatar from WeChat."""

    @login_required
    async def post(self) -> None:
        outcome = await self.services.accounts.refresh_profile(self.signed_in_user.id)
        if outcome is RefreshOutcome.REAUTHORIZE:
            # The refresh token is gone: only a new authorisation can bring the profile back.
            if self.reauth_first():  # a LINK flow: a recent sign-in first, as linking
                return
            channel = Channel.MP if in_wechat(self.surface) else Channel.WEB
            self.start_flow(Flow(channel, Purpose.LINK), self.reverse_url("account"), scope=SCOPE_USERINFO)
            return
        self.redirect(self.reverse_url("account") + f"?done={outcome.value}")


class LogoutHandler(BaseHandler):
    """POST /logout (XSRF-checked): ends this session, or every session with ``everywhere=1``.

    Signing out everywhere asks first (``confirm=1`` on the confirmation page's form) and then says what
    happened, on a page of its own: the person is signed out, so the account page's flash cannot.
    """

    @public
    async def post(self) -> None:
        claims = self.session_claims
        everywhere = self.get_body_argument("everywhere", "") == "1"
        self.set_header("Cache-Control", "no-store")
        if claims is not None and everywhere and not confirmed(self):
            self.render_template("account_confirm.html", action="everywhere")
            return
        if claims is not None:
            if everywhere:
                await self.services.sessions.end_all(claims.user_id)
            else:
                await self.services.sessions.end(claims)
        self.clear_session_cookie()
        if claims is not None and everywhere:
            self.session, self.current_user = None, None  # the page below is for a signed-out visitor
            self.render_template("account_confirm.html", action="signed_out_everywhere")
            return
        self.redirect(self.reverse_url("home"))


def plain_headers(handler: tornado.web.RequestHandler) -> None:
    """What every answer carries, pages or not: no Server banner, no content sniffing."""
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.clear_header("Server")


class StaticHandler(tornado.web.StaticFileHandler):
    """/static/: our assets (content-hashed URLs, long caching) with the site's plain headers."""

    def set_default_headers(self) -> None:
        plain_headers(self)

    @public
    async def get(self, path: str, include_body: bool = True) -> None:
        await super().get(path, include_body)

    @public
    def head(self, path: str) -> Awaitable[None]:
        return self.get(path, include_body=False)


class HealthHandler(tornado.web.RequestHandler):
    """GET /healthz: 200 when the database answers, 503 when it does not (for load balancers).

    ``?deep=1`` (for operators and deploy checks, not load balancers: a WeChat outage would take every
    server out) also makes one call with each app's access token and reports it per app.
    """

    def set_default_headers(self) -> None:
        plain_headers(self)

    @public
    async def get(self) -> None:
        services: Services = self.application.settings["services"]
        ready = await services.maintenance.database_ready()
        body: dict[str, object] = {"status": "ok" if ready else "unavailable",
                                   "database": "ok" if ready else "unavailable"}
        if self.get_query_argument("deep", "") == "1":
            checks = await services.maintenance.check_app_tokens()
            body["app_tokens"] = checks
            ready = ready and all(result == "ok" for result in checks.values())
            body["status"] = "ok" if ready else "unavailable"
        self.set_status(200 if ready else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class NotFoundHandler(BaseHandler):
    """Everything no route claims: a friendly 404 page."""

    def check_xsrf_cookie(self) -> None:
        """A 404 whatever the method: a POST without a token must not get a 403 here but a 404 at /admin (where
        non-operators get 404 before the XSRF check), or the difference would show the console is there."""

    @public
    async def prepare(self) -> None:
        await super().prepare()
        raise tornado.web.HTTPError(404)


routes = [
    tornado.web.url(r"/", HomeHandler, name="home"),
    tornado.web.url(r"/login", LoginHandler, name="login"),
    tornado.web.url(r"/login/qr", LoginQrHandler, name="login_qr"),
    tornado.web.url(r"/account", AccountHandler, name="account"),
    tornado.web.url(r"/account/unlink", UnlinkHandler, name="account_unlink"),
    tornado.web.url(r"/account/merge", MergeHandler, name="account_merge"),
    tornado.web.url(r"/account/phone/unbind", PhoneUnbindHandler, name="account_phone_unbind"),
    tornado.web.url(r"/account/refresh", RefreshProfileHandler, name="account_refresh"),
    tornado.web.url(r"/logout", LogoutHandler, name="logout"),
    tornado.web.url(r"/healthz", HealthHandler, name="healthz"),
]
