"""Pages for people: home, login (adapts to where the visitor is), account, logout, health."""

from __future__ import annotations

from urllib.parse import urlencode

import tornado.web

from wxlogin.errors import DatabaseUnavailable
from wxlogin.handlers.base import BaseHandler, login_required, public
from wxlogin.handlers.oauth import OAuthHandler
from wxlogin.redirects import safe_next
from wxlogin.useragent import Surface, classify

CHANNEL_NAMES = {"web": "网站扫码登录", "mp": "公众号登录", "app": "移动应用登录", "miniprogram": "小程序登录"}


class HomeHandler(BaseHandler):
    """GET /: knows who is signed in."""

    @public
    def get(self) -> None:
        self.render_template("home.html")


class LoginHandler(OAuthHandler):
    """GET /login?next=PATH: the WeChat QR code embedded in the page (desktop)."""

    @public
    def get(self) -> None:
        next_path = safe_next(self.get_query_argument("next", "/"))
        if self.current_user is not None:
            self.redirect(next_path)
            return
        self.set_header("Cache-Control", "no-store")
        surface = classify(self.request.headers.get("User-Agent"))
        start = self.services.oauth.start("web", next_path, embedded=True, lang=self.locale_code)
        self.bind(start.binding_secret)
        self.render_template(
            "login.html", surface=surface.value, qr_iframe_url=start.url, next_path=next_path,
            full_page_url=self.reverse_url("auth_web") + "?" + urlencode({"next": next_path}),
            is_mobile=surface is Surface.MOBILE,
        )


class AccountHandler(BaseHandler):
    """GET /account: the signed-in person's profile, login methods and recent logins."""

    @login_required
    async def get(self) -> None:
        user = self.current_user
        assert user is not None
        methods = await self.services.users.list_login_methods(user.id)
        events = await self.services.events.recent(user.id, limit=10)
        self.set_header("Cache-Control", "no-store")
        self.render_template("account.html", user=user, methods=methods, events=events, channel_names=CHANNEL_NAMES)


class LogoutHandler(BaseHandler):
    """POST /logout (XSRF-checked): ends this session, or every session with ``everywhere=1``."""

    @public
    async def post(self) -> None:
        claims = self.session_claims
        if claims is not None:
            if self.get_body_argument("everywhere", "") == "1":
                await self.services.sessions.end_all(claims.user_id)
            else:
                await self.services.sessions.end(claims)
        self.clear_session_cookie()
        self.set_header("Cache-Control", "no-store")
        self.redirect("/")


class HealthHandler(tornado.web.RequestHandler):
    """GET /healthz: 200 when the database answers, 503 when it does not (for load balancers)."""

    @public
    async def get(self) -> None:
        services = self.application.settings["services"]
        try:
            ready = await services.database_ready()
        except DatabaseUnavailable:
            ready = False
        self.set_status(200 if ready else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish({"status": "ok" if ready else "unavailable", "database": "ok" if ready else "unavailable"})


class NotFoundHandler(BaseHandler):
    """Everything no route claims: a friendly 404 page."""

    @public
    async def prepare(self) -> None:
        await super().prepare()
        raise tornado.web.HTTPError(404)


routes = [
    tornado.web.url(r"/", HomeHandler, name="home"),
    tornado.web.url(r"/login", LoginHandler, name="login"),
    tornado.web.url(r"/account", AccountHandler, name="account"),
    tornado.web.url(r"/logout", LogoutHandler, name="logout"),
    tornado.web.url(r"/healthz", HealthHandler, name="healthz"),
]
