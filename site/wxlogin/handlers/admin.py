"""The operator console (/admin): dashboard, search, a user's page, failed logins, the audit log, and actions.

Not discoverable: anyone who is not an operator (``[admin] user_ids``), signed in or not, gets the site's
ordinary 404 page on every route here, whatever the method; the XSRF check waits until the visitor is known
to be an operator, so a POST without a token is a 404 too, not a 403 that would betray the route. Every
action (POST) also needs a recent WeChat sign-in (``[accounts] reauth_window``): an older session is sent
through WeChat's sign-in again, back to the page it came from, and nothing is done.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import tornado.routing
import tornado.web

from wxlogin.errors import BadRequest
from wxlogin.handlers.base import BaseHandler
from wxlogin.handlers.oauth import CHANNEL_NAMES
from wxlogin.handlers.pages import OUTCOME_TITLES
from wxlogin.models import Channel, User
from wxlogin.services.accounts import to_local
from wxlogin.useragent import in_wechat

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_HOURS = 24
# The audit log's action names on the pages (catalog_en.py has the English).
ACTION_NAMES = {"disable": "停用账号", "enable": "恢复账号", "sign_out_everywhere": "退出所有设备",
                "unlink": "解除登录方式", "cancel_deletion": "取消注销", "hasten_deletion": "立即注销"}


def operator_required(method: F) -> F:
    """Mark a console method: operators only; everyone else gets 404 (``AdminHandler.prepare`` enforces it too)."""

    @functools.wraps(method)
    async def wrapper(self: AdminHandler, *args: Any, **kwargs: Any) -> Any:
        if not self.services.admin.is_operator(self.current_user):
            raise tornado.web.HTTPError(404)
        result = method(self, *args, **kwargs)
        if isinstance(result, Awaitable):
            return await result
        return result

    wrapper.access = "operator_required"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class AdminHandler(BaseHandler):
    """Base of the console's handlers: 404 for non-operators before anything else, then XSRF for writes."""

    def check_xsrf_cookie(self) -> None:
        """Tornado checks XSRF before ``prepare``; here it waits until the visitor is known to be an operator."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self.services.admin.is_operator(self.current_user):
            raise tornado.web.HTTPError(404)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Robots-Tag", "noindex")
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            BaseHandler.check_xsrf_cookie(self)

    @property
    def operator(self) -> User:
        return self.signed_in_user

    @property
    def signed_in_recently(self) -> bool:
        claims = self.session_claims
        return claims is not None and self.services.sessions.signed_in_recently(claims)

    def reauth_url(self, back: str) -> str:
        """WeChat's sign-in again (the QR, or inside WeChat the official account), then back to ``back``."""
        start = "auth_mp" if in_wechat(self.surface) else "auth_web"
        return self.reverse_url(start) + "?" + urlencode({"next": back})

    def hours(self) -> int:
        try:
            return int(self.get_query_argument("hours", str(DEFAULT_HOURS)))
        except ValueError:
            return DEFAULT_HOURS

    def render_console(self, name: str, **context: Any) -> None:
        back = self.route_path()
        self.render_template(name, operator=self.operator, recent=self.signed_in_recently,
                             reauth_url=self.reauth_url(back), channel_names=CHANNEL_NAMES,
                             outcome_titles=OUTCOME_TITLES, action_names=ACTION_NAMES,
                             local=functools.partial(to_local, zone=self.services.settings.server.zone), **context)


class DashboardHandler(AdminHandler):
    """GET /admin?hours=N: logins per channel and outcome, WeChat's errcodes, and the search box."""

    @operator_required
    async def get(self) -> None:
        dashboard = await self.services.admin.dashboard(self.hours())
        self.render_console("admin_dashboard.html", dashboard=dashboard)


class SearchHandler(AdminHandler):
    """GET /admin/users?q=: accounts by id, nickname, openid, unionid or phone (shown masked)."""

    @operator_required
    async def get(self) -> None:
        query = self.get_query_argument("q", "")
        hits = await self.services.admin.search(query)
        self.render_console("admin_search.html", query=query, hits=hits)


class UserHandler(AdminHandler):
    """GET /admin/users/<id>: profile, login methods, history with WeChat's errcode and rid, flags, actions."""

    @operator_required
    async def get(self, user_id: str) -> None:
        record = await self.services.admin.record(int(user_id))
        self.render_console("admin_user.html", record=record, done=self.get_query_argument("done", ""))


class FailuresHandler(AdminHandler):
    """GET /admin/failures?hours=&ip=&channel=&errcode=: recent failed logins with WeChat's errcode and rid."""

    @operator_required
    async def get(self) -> None:
        ip = self.get_query_argument("ip", "")
        channel = self.get_query_argument("channel", "")
        if channel and channel not in {c.value for c in Channel}:
            channel = ""
        hours = self.hours()
        errcode_text = self.get_query_argument("errcode", "").strip()
        errcode = int(errcode_text) if re.fullmatch(r"-?[0-9]{1,9}", errcode_text) else None
        failures = await self.services.admin.failures(hours, ip, channel, errcode)
        self.render_console("admin_failures.html", failures=failures, ip=ip, channel=channel, hours=hours,
                            errcode="" if errcode is None else str(errcode), channels=[c.value for c in Channel])


class LogHandler(AdminHandler):
    """GET /admin/log: the operator audit log, every account."""

    @operator_required
    async def get(self) -> None:
        self.render_console("admin_log.html", entries=await self.services.admin.actions())


class ActionHandler(AdminHandler):
    """POST /admin/users/<id>/<action> (XSRF, recent sign-in): act on an account, then back to its page."""

    action = ""

    def initialize(self, action: str = "") -> None:
        super().initialize()
        self.action = action

    @operator_required
    async def post(self, user_id: str) -> None:
        target = int(user_id)
        back = self.reverse_url("admin_user", target)
        if not self.signed_in_recently:
            # Not acting on an old session: a fresh scan first, then the operator presses the button again.
            self.redirect(self.reauth_url(back), status=303)
            return
        admin = self.services.admin
        reason = self.get_body_argument("reason", "")
        if self.action == "disable":
            await admin.disable(self.operator, target, reason)
        elif self.action == "enable":
            await admin.enable(self.operator, target, reason)
        elif self.action == "sign_out_everywhere":
            await admin.sign_out_everywhere(self.operator, target)
        elif self.action == "unlink":
            try:
                method_id = int(self.get_body_argument("method_id", ""))
            except ValueError:
                raise BadRequest("method_id") from None
            await admin.unlink(self.operator, target, method_id)
        elif self.action == "cancel_deletion":
            await admin.cancel_deletion(self.operator, target)
        elif self.action == "hasten_deletion":
            await admin.hasten_deletion(self.operator, target)
        else:
            raise tornado.web.HTTPError(404)
        self.redirect(back + "?" + urlencode({"done": self.action}), status=303)


def _action(name: str) -> tornado.routing.URLSpec:
    return tornado.web.url(rf"/admin/users/([0-9]{{1,19}})/{name}", ActionHandler, {"action": name},
                           name=f"admin_{name}")


routes = [
    tornado.web.url(r"/admin", DashboardHandler, name="admin"),
    tornado.web.url(r"/admin/users", SearchHandler, name="admin_search"),
    tornado.web.url(r"/admin/users/([0-9]{1,19})", UserHandler, name="admin_user"),
    tornado.web.url(r"/admin/failures", FailuresHandler, name="admin_failures"),
    tornado.web.url(r"/admin/log", LogHandler, name="admin_log"),
    *(_action(name) for name in ("disable", "enable", "sign_out_everywhere", "unlink", "cancel_deletion",
                                 "hasten_deletion")),
]
