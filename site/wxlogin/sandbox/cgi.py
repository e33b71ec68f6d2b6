"""The emulated app access token: ``POST /cgi-bin/stable_token``, ``GET /cgi-bin/token``, an API that
checks the token (``GET /cgi-bin/get_api_domain_ip``), and the developer switch that revokes an app's
tokens so tests can provoke 40001 (wechat-platform.md section 1, wechat-protocol.md 5.9).

Only official accounts and mini-programs have an app token here; the errcodes are WeChat's documented
ones (40002, 40013, 40125, 41002, 41004, 45009, 47001; 40001, 40014, 41001, 42001 on a call).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import tornado.routing
import tornado.web

from wxlogin.sandbox.base import RegisteredApp, SandboxHandler
from wxlogin.sandbox.dev import DevHandler
from wxlogin.sandbox.state import Refused

TOKEN_KINDS = ("mp", "miniprogram")  # the apps that call APIs with their own token
ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40014: "invalid access_token",
    41001: "access_token missing",
    42001: "access_token expired",
}


class CgiHandler(SandboxHandler):
    """Server-to-server calls: no XSRF (WeChat's API has none), every answer WeChat-shaped JSON."""

    def check_xsrf_cookie(self) -> None:
        return None

    def credentials(self, appid: Any, secret: Any, grant_type: Any) -> RegisteredApp | None:
        """The registered app, or None after answering the errcode WeChat would."""
        if grant_type != "client_credential":
            self.wechat_error(40002, "invalid grant_type")
            return None
        if not appid:
            self.wechat_error(41002, "appid missing")
            return None
        if not secret:
            self.wechat_error(41004, "appsecret missing")
            return None
        app = self.sandbox.app(appid) if isinstance(appid, str) else None
        if app is None or app.kind not in TOKEN_KINDS:
            self.wechat_error(40013, "invalid appid")
            return None
        if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), app.secret.encode()):
            self.wechat_error(40125, "invalid appsecret")
            return None
        return app

    def check_token(self) -> str | None:
        """The query's app token when valid; otherwise answer its errcode and return None."""
        token = self.get_query_argument("access_token", "") or ""
        errcode = self.sandbox.state.check_app_token(token)
        if errcode is not None:
            self.wechat_error(errcode, ERRMSG[errcode])
            return None
        return token


class StableTokenHandler(CgiHandler):
    """POST /cgi-bin/stable_token, a JSON body; POST only, as WeChat's."""

    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"")
        except ValueError:
            body = None
        force = body.get("force_refresh", False) if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(force, bool):
            return self.wechat_error(47001, "data format error")
        app = self.credentials(body.get("appid"), body.get("secret"), body.get("grant_type"))
        if app is None:
            return None
        try:
            token, expires_in = self.sandbox.state.stable_token(app.appid, force)
        except Refused as refused:
            return self.wechat_error(refused.errcode, refused.errmsg)
        self.write_wechat_json({"access_token": token, "expires_in": expires_in})
        return None


class BasicTokenHandler(CgiHandler):
    """GET /cgi-bin/token: a new token per call, which kills the previous one 5 minutes later.

    The product never calls it (README "The app access token"); it is here so that what it does to
    other holders can be shown.
    """

    def get(self) -> None:
        q = {k: self.get_query_argument(k, "") for k in ("appid", "secret", "grant_type")}
        app = self.credentials(q["appid"], q["secret"], q["grant_type"])
        if app is None:
            return
        try:
            token, expires_in = self.sandbox.state.basic_token(app.appid)
        except Refused as refused:
            return self.wechat_error(refused.errcode, refused.errmsg)
        self.write_wechat_json({"access_token": token, "expires_in": expires_in})


class ApiDomainIpHandler(CgiHandler):
    """GET /cgi-bin/get_api_domain_ip: WeChat's API addresses, for a valid app token."""

    def get(self) -> None:
        if self.check_token() is None:
            return
        self.write_wechat_json({"ip_list": ["127.0.0.1"]})


class RevokeAppTokenHandler(DevHandler):
    """POST /dev/app-token/revoke {"appid", "keep_handing"}: the app's tokens now answer 40001.

    ``keep_handing: true`` makes stable_token's normal mode go on handing out the dead token (only a
    forced refresh replaces it); by default normal mode hands out a new one.
    """

    def post(self) -> None:
        data = self.body_json()
        app = self.sandbox.app(str(data.get("appid", "")))
        keep = data.get("keep_handing", False)
        if app is None or app.kind not in TOKEN_KINDS or not isinstance(keep, bool):
            raise tornado.web.HTTPError(400)
        self.finish({"revoked": self.sandbox.state.revoke_app_tokens(app.appid, keep_handing=keep)})


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/cgi-bin/stable_token", StableTokenHandler, init),
        tornado.web.url(prefix + r"/cgi-bin/token", BasicTokenHandler, init),
        tornado.web.url(prefix + r"/cgi-bin/get_api_domain_ip", ApiDomainIpHandler, init),
        tornado.web.url(prefix + r"/dev/app-token/revoke", RevokeAppTokenHandler, init),
    ]
