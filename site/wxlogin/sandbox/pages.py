"""The emulated browser-facing pages: the website QR page (full and embeddable), its long-poll,
the "phone" that scans and confirms, generated avatars, and the sandbox's own index."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import segno
import tornado.routing
import tornado.web

from wxlogin.sandbox import people
from wxlogin.sandbox.base import SandboxHandler
from wxlogin.sandbox.state import QrSession

STATE_RE = re.compile(r"^[A-Za-z0-9]{0,128}$")  # the stricter official-account rule, applied everywhere
LONG_POLL_SECONDS = 20.0


def redirect_with(redirect_uri: str, **params: str) -> str:
    """Append WeChat's query parameters to a callback URL, as WeChat does (? or &)."""
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)


def qr_svg_data_uri(text: str) -> str:
    return segno.make(text, error="m").svg_data_uri(scale=5, border=2)


class QrConnectHandler(SandboxHandler):
    """GET /connect/qrconnect: the website-application QR page (embeddable with login_type=jssdk)."""

    def get(self) -> None:
        q = {k: self.get_query_argument(k, "") for k in
             ("appid", "redirect_uri", "response_type", "scope", "state", "login_type", "self_redirect",
              "stylelite")}
        app = self.sandbox.app(q["appid"], "web")
        en = self.english
        problem = None
        if app is None:
            problem = ("appid is not a reviewed website application (wrong Open Platform AppID)" if en
                       else "appid 不是已审核的网站应用（Open Platform AppID 错误）")
        elif q["scope"] != "snsapi_login":
            problem = "Wrong scope, or no permission for it" if en else "Scope 参数错误或没有 Scope 权限"
        elif q["response_type"] != "code":
            problem = "response_type must be code" if en else "response_type 必须是 code"
        elif not self.sandbox.redirect_allowed(q["redirect_uri"]):
            problem = ("redirect_uri is not on the reviewed callback domain" if en
                       else "redirect_uri 与审核通过的授权回调域不一致")
        elif not STATE_RE.match(q["state"]):
            problem = ("state may hold only letters and digits, at most 128 bytes" if en
                       else "state 只能包含字母和数字，且不超过 128 字节")
        if problem:
            self.render_page("sandbox/unavailable.html", problem=problem, status_code=200)
            return
        session = self.sandbox.state.new_qr(q["appid"], q["redirect_uri"], q["state"])
        phone_url = f"{self.sandbox.base_url}/phone/{session.uuid}" + ("?lang=en" if en else "")
        parts = urlsplit(q["redirect_uri"])
        self.render_page(
            "sandbox/qrconnect.html", embedded=q["login_type"] == "jssdk",
            self_redirect=q["self_redirect"] == "true", uuid=session.uuid, phone_url=phone_url,
            qr_data_uri=qr_svg_data_uri(phone_url), presets=people.PRESETS[:4] + people.CONSOLE_DEMO,
            # wxLogin.js's stylelite: the compact QR without a heading of its own (the site has the heading)
            lite=q["stylelite"] == "1",
            # The page that framed this QR (the callback's site) hears its states: scanned, expired.
            parent_origin=f"{parts.scheme}://{parts.netloc}",
            expires_in=max(1, int(self.sandbox.state.qr_left(session))),
        )


class QrPollHandler(SandboxHandler):
    """GET /connect/l/qrconnect?uuid=: long-poll for the scan result (WeChat's own is undocumented)."""

    async def get(self) -> None:
        state = self.sandbox.state
        session = state.get_qr(self.get_query_argument("uuid", ""))
        if session is None:
            self.finish({"status": "expired"})
            return
        # ``last``: the status the page already shows; answer when it changes (or the code expires).
        if session.status in ("waiting", "scanned") and session.status == self.get_query_argument("last", "waiting"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.changed.wait(), timeout=min(LONG_POLL_SECONDS, state.qr_left(session)))
        if state.get_qr(session.uuid) is None:
            self.finish({"status": "expired"})
            return
        self.finish(_poll_result(session))


def _poll_result(session: QrSession) -> dict[str, Any]:
    if session.status == "confirmed":
        return {"status": "confirmed", "redirect": redirect_with(session.redirect_uri, code=session.code,
                                                                 state=session.state)}
    if session.status == "denied":
        # The older documented behaviour: back to the site with the state and no code.
        return {"status": "denied", "redirect": redirect_with(session.redirect_uri, state=session.state)}
    return {"status": session.status}


class PhoneHandler(SandboxHandler):
    """GET/POST /phone/<uuid>: the phone that scanned the QR code; pick a person, allow or deny."""

    def get(self, uuid: str) -> None:
        session = self.sandbox.state.get_qr(uuid)
        if session is not None and session.status == "waiting":
            session.move("scanned")  # the phone has the code: WeChat's QR page says "scanned, confirm on the phone"
        self.render_page("sandbox/phone.html", session=session, presets=people.PRESETS[:4] + people.CONSOLE_DEMO,
                         done=False,
                         status_code=200 if session else 404)

    def post(self, uuid: str) -> None:
        session = self.sandbox.state.get_qr(uuid)
        if session is None or session.status not in ("waiting", "scanned"):
            self.render_page("sandbox/phone.html", session=None, presets=(), done=False, status_code=404)
            return
        action = self.get_body_argument("action", "allow")
        person = people.person(self.get_body_argument("person", ""))
        if action == "deny":
            session.move("denied")
        elif person is None:
            raise tornado.web.HTTPError(400)
        else:
            session.code = self.sandbox.state.issue_code(session.appid, person.key, "snsapi_login")
            session.move("confirmed")
        if self.get_body_argument("respond", "") == "json":
            self.finish(_poll_result(session))
            return
        self.render_page("sandbox/phone.html", session=session, presets=(), done=True, person=person)


class AvatarHandler(SandboxHandler):
    """GET /avatar/<person>.svg: a generated avatar so test people have faces without the internet."""

    def get(self, key: str) -> None:
        person = people.person(key)
        if person is None:
            raise tornado.web.HTTPError(404)
        hue = sum(key.encode()) * 37 % 360
        initial = html.escape(person.nickname[:1] or "?")
        self.set_header("Content-Type", "image/svg+xml")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="132" height="132" viewBox="0 0 132 132">'
            f'<rect width="132" height="132" fill="hsl({hue},55%,55%)"/>'
            f'<text x="66" y="84" font-size="56" text-anchor="middle" fill="#fff" '
            f'font-family="sans-serif">{initial}</text></svg>'
        )


class IndexHandler(SandboxHandler):
    """GET /_sandbox/: what the sandbox is, and who can log in."""

    def get(self) -> None:
        self.render_page("sandbox/index.html", presets=people.PRESETS, apps=sorted(self.sandbox.apps.values(),
                         key=lambda a: a.kind), qr_ttl=self.sandbox.state.qr_ttl, now=time.time())


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/?", IndexHandler, init, name="sandbox_index"),
        tornado.web.url(prefix + r"/connect/qrconnect", QrConnectHandler, init),
        tornado.web.url(prefix + r"/connect/l/qrconnect", QrPollHandler, init),
        tornado.web.url(prefix + r"/phone/([A-Za-z0-9_-]{1,40})", PhoneHandler, init),
        tornado.web.url(prefix + r"/avatar/([A-Za-z0-9_-]{1,32})\.svg", AvatarHandler, init),
    ]
