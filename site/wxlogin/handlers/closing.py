"""Closing an account (注销) and downloading my data, on the site's pages (issue 16).

/account/close says what will be deleted and when, asks for a fresh WeChat confirmation of this very
account (``Purpose.REAUTH``) and then schedules the deletion: every session and token ends at once. During
the grace period a sign-in lands on the same page, which then offers to cancel (取消注销) or to go on and
sign out. /account/export is the JSON download of everything held about the person.
"""

from __future__ import annotations

import json
from datetime import datetime

import tornado.web

from wxlogin.errors import ReauthRequired
from wxlogin.handlers.base import login_required
from wxlogin.handlers.oauth import OAuthHandler
from wxlogin.models import Channel
from wxlogin.redirects import safe_next
from wxlogin.services.accounts import to_local
from wxlogin.services.oauth import SCOPE_USERINFO, Flow, Purpose
from wxlogin.useragent import in_wechat


class ClosingHandler(OAuthHandler):
    """Shared by the closing pages: the times they show, in the site's zone."""

    allowed_while_pending = True

    def local(self, moment: datetime) -> datetime:
        return to_local(moment, self.services.settings.server.zone)

    def render_close(self, state: str, when: datetime, **context: object) -> None:
        """account_close.html in one of its states: confirm, reauth, scheduled, pending."""
        self.set_header("Cache-Control", "no-store")
        self.render_template("account_close.html", state=state, when=self.local(when),
                             grace_days=self.services.settings.accounts.deletion_grace_days, **context)


class CloseAccountHandler(ClosingHandler):
    """GET /account/close: what closing deletes and when; POST (XSRF, ``confirm=1``): close the account.

    Closing needs a WeChat sign-in within ``[accounts] reauth_window``; an older session gets the page's
    "confirm with WeChat" button instead (a 403 when it was a POST), and nothing changes.
    """

    @login_required
    async def get(self) -> None:
        user = self.signed_in_user
        if user.deletion_scheduled_at is not None:
            self.render_close("pending", user.deletion_scheduled_at)
            return
        self.render_close("confirm" if self.recent() else "reauth", self.services.deletion.would_delete_at())

    @login_required
    async def post(self) -> None:
        user = self.signed_in_user
        if user.deletion_scheduled_at is not None:
            self.redirect(self.reverse_url("account_close"))
            return
        if not self.recent() or self.get_body_argument("confirm", "") != "1":
            self.set_status(403)
            self.render_close("reauth", self.services.deletion.would_delete_at(), stale=True)
            return
        when = await self.services.deletion.schedule(user.id)
        # Every session and token ended with the schedule (session_version); this browser's cookie goes too.
        self.clear_session_cookie()
        self.session, self.current_user = None, None  # the page below is for a signed-out visitor
        self.render_close("scheduled", when)


class ReauthStartHandler(ClosingHandler):
    """POST /account/reauth (XSRF) ``next``: confirm with WeChat that it is still you, then back to ``next``.

    Desktop: the website QR (full page); inside WeChat: the official account, with ``snsapi_userinfo`` so WeChat
    asks for a tap rather than granting silently. Only this account's WeChat is accepted (``Purpose.REAUTH``).
    """

    @login_required
    def post(self) -> None:
        channel = Channel.MP if in_wechat(self.surface) else Channel.WEB
        next_path = safe_next(self.get_body_argument("next", self.reverse_url("account")))
        self.start_flow(Flow(channel, Purpose.REAUTH), next_path, scope=SCOPE_USERINFO)


class RestoreHandler(ClosingHandler):
    """POST /account/restore (XSRF): cancel the deletion (取消注销); the account works again at once."""

    @login_required
    async def post(self) -> None:
        cancelled = await self.services.deletion.cancel(self.signed_in_user.id)
        self.redirect(self.reverse_url("account") + ("?done=restored" if cancelled else ""))


class ExportHandler(ClosingHandler):
    """GET /account/export[?phone=full]: everything held about the person, as a JSON download.

    The phone number is masked; in full only with ``phone=full`` and a recent WeChat sign-in (``ReauthRequired``
    otherwise: the account page offers the confirmation first). Never a token or a session key.
    """

    @login_required
    async def get(self) -> None:
        full = self.get_query_argument("phone", "") == "full"
        if full and not self.recent():
            raise ReauthRequired("full phone number")
        data = await self.services.deletion.export(self.signed_in_user.id, full_phone=full)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Disposition", f'attachment; filename="wxlogin-{self.signed_in_user.id}.json"')
        self.finish(json.dumps(data, ensure_ascii=False, indent=2))


routes = [
    tornado.web.url(r"/account/close", CloseAccountHandler, name="account_close"),
    tornado.web.url(r"/account/reauth", ReauthStartHandler, name="account_reauth"),
    tornado.web.url(r"/account/restore", RestoreHandler, name="account_restore"),
    tornado.web.url(r"/account/export", ExportHandler, name="account_export"),
]
