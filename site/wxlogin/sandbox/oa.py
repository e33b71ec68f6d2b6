"""The emulated official-account web authorisation (/connect/oauth2/authorize) inside "WeChat".

Inside WeChat the person is already known to WeChat; the sandbox remembers who you are playing in
the ``sbwx`` cookie (picked on first visit). ``snsapi_base`` redirects at once; ``snsapi_userinfo``
shows a consent page whose "deny" returns with the state and no code. Errors are the documented
authorize-page codes (10003, 10005, 10010-10016), shown as a page, never JSON. A browser outside WeChat
gets WeChat's refusal, "请在微信客户端打开链接", unless it plays the WeChat browser (``?sandbox_ua=wechat``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import tornado.routing
import tornado.web

from wxlogin.sandbox import people
from wxlogin.sandbox.base import SandboxHandler
from wxlogin.sandbox.pages import STATE_RE, redirect_with

PERSON_COOKIE = "sbwx"
SANDBOX_UA_COOKIE = "sandbox_ua"  # set by the site's /login?sandbox_ua=wechat|off (same origin as the sandbox)
SCOPES = ("snsapi_base", "snsapi_userinfo")


class AuthorizeHandler(SandboxHandler):
    """GET /connect/oauth2/authorize, and POST for the consent page's answer."""

    def _params(self, source: str) -> dict[str, str]:
        get = self.get_query_argument if source == "query" else self.get_body_argument
        return {k: get(k, "") or "" for k in ("appid", "redirect_uri", "response_type", "scope", "state")}

    def _problem(self, q: dict[str, str]) -> str | None:
        if not q["appid"]:
            return "10012 appid 参数为空"
        if not q["redirect_uri"]:
            return "10011 redirect_uri 参数为空"
        if not q["scope"]:
            return "10010 scope 参数为空"
        app = self.sandbox.app(q["appid"])
        if app is None:
            return "appid 错误：不是已注册的公众号"
        if app.kind != "mp":
            return "10016 不支持开放平台 appid，请使用公众号 appid"
        if not self.sandbox.redirect_allowed(q["redirect_uri"]):
            return "10003 redirect_uri 域名与后台配置不一致"
        if q["scope"] not in SCOPES or q["response_type"] != "code":
            return "10005 此公众号并没有这些 scope 的权限"
        if not STATE_RE.match(q["state"]):
            return "state 参数错误：只能包含字母和数字，最多 128 字节"
        return None

    def get(self) -> None:
        q = self._params("query")
        problem = self._problem(q)
        if problem:
            self.render_page("sandbox/unavailable.html", problem=problem)
            return
        if not self._in_wechat():
            # Real WeChat answers a browser elsewhere with this page and no way on (snsapi_base included).
            self.render_page("sandbox/wechat_only.html")
            return
        person = people.person(self.get_cookie(PERSON_COOKIE) or "")
        if person is None:
            self.render_page("sandbox/persona.html", presets=people.PRESETS, return_to=self.request.uri)
            return
        if q["scope"] == "snsapi_base":
            self.redirect(self._code_redirect(q, person))
            return
        self.render_page("sandbox/authorize.html", q=q, person=person)

    def _in_wechat(self) -> bool:
        """The WeChat browser (``MicroMessenger`` in its User-Agent), or a laptop playing it (the site's
        ``/login?sandbox_ua=wechat`` cookie). Scripts (no ``Mozilla/`` User-Agent: curl, the tests' HTTP
        clients) are let through: they walk the flow as the WeChat browser would."""
        agent = self.request.headers.get("User-Agent", "")
        if "MicroMessenger" in agent or not agent.startswith("Mozilla/"):
            return True
        return self.get_cookie(SANDBOX_UA_COOKIE) == "wechat"

    def post(self) -> None:
        q = self._params("body")
        problem = self._problem(q)
        person = people.person(self.get_cookie(PERSON_COOKIE) or "")
        if problem or person is None:
            raise tornado.web.HTTPError(400)
        if self.get_body_argument("action", "") != "allow":
            self.redirect(redirect_with(q["redirect_uri"], state=q["state"]))
            return
        self.redirect(self._code_redirect(q, person))

    def _code_redirect(self, q: dict[str, str], person: people.Person) -> str:
        code = self.sandbox.state.issue_code(q["appid"], person.key, q["scope"], snapshot=person.snapshot)
        return redirect_with(q["redirect_uri"], code=code, state=q["state"])


class PersonaHandler(SandboxHandler):
    """POST /wechat-user: choose which WeChat user the sandbox plays in this browser."""

    def post(self) -> None:
        person = people.person(self.get_body_argument("person", ""))
        return_to = self.get_body_argument("return_to", "")
        if person is None or not return_to.startswith(self.sandbox.path_prefix + "/"):
            raise tornado.web.HTTPError(400)
        self.set_cookie(PERSON_COOKIE, person.key, max_age=30 * 24 * 3600, httponly=True, samesite="Lax")
        self.redirect(return_to)

    def get(self) -> None:
        self.render_page("sandbox/persona.html", presets=people.PRESETS,
                         return_to=self.sandbox.path_prefix + "/?" + urlencode(
                             {"chosen": "1", **({"lang": "en"} if self.english else {})}))


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/connect/oauth2/authorize", AuthorizeHandler, init),
        tornado.web.url(prefix + r"/wechat-user", PersonaHandler, init),
    ]
