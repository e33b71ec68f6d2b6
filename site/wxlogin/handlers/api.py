"""The JSON API for the mini-program and the mobile app: logins, /api/me, logout, the OpenAPI document.

Handlers here read no cookies (so they need no XSRF protection) and take tokens only from
``Authorization: Bearer``. Every failure is ``{"error": <stable code>, "message": <text>}`` with the
status from ``API_ERRORS``; that table is the one the README documents.
"""

from __future__ import annotations

import json
import re
from typing import Any

import tornado.web

from wxlogin import errors as e
from wxlogin.handlers.base import BaseHandler, public
from wxlogin.handlers.openapi import openapi_document
from wxlogin.models import User
from wxlogin.services.api import ApiCaller, ApiLogin
from wxlogin.wechat.crypto import EncryptedDataInvalid

MAX_API_BODY = 32 * 1024
_CODE_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,2048}$")

# error class -> (status, message); the most specific class listed first.
API_ERRORS: list[tuple[type[e.WxLoginError], int, str]] = [
    (EncryptedDataInvalid, 400, "加密数据无效或已过期，请重新获取后再试。"),
    (e.BadRequest, 400, "请求格式不正确。"),
    (e.CodeInvalid, 401, "登录凭证 code 无效、已过期或已使用，请重新调用 wx.login。"),
    (e.InvalidToken, 401, "令牌无效、已过期或已注销，请重新登录。"),
    (e.AccountDisabled, 403, "账号已停用。"),
    (e.WeChatRiskBlocked, 403, "微信判断此次登录存在风险，已拦截。"),
    (e.NotFound, 404, "资源不存在。"),
    (e.RateLimited, 429, "请求过于频繁，请稍后再试。"),
    (e.WeChatRateLimited, 429, "微信接口调用过于频繁，请一分钟后再试。"),
    (e.WeChatMisconfigured, 502, "服务端微信配置有误。"),
    (e.WeChatTimeout, 504, "微信服务器响应超时，请稍后再试。"),
    (e.WeChatUnavailable, 502, "微信服务器暂时无法访问，请稍后再试。"),
    (e.WeChatBusy, 503, "微信服务器繁忙，请稍后再试。"),
    (e.WeChatError, 502, "微信返回了错误，请稍后再试。"),
    (e.DatabaseUnavailable, 503, "服务暂时不可用，请稍后再试。"),
    (e.Overloaded, 503, "服务繁忙，请稍后再试。"),
]
STATUS_ERRORS = {
    400: ("bad_request", "请求格式不正确。"),
    404: ("not_found", "接口不存在。"),
    405: ("method_not_allowed", "不支持该请求方法。"),
    413: ("body_too_large", "请求体过大。"),
    415: ("unsupported_media_type", "请使用 Content-Type: application/json。"),
    500: ("internal_error", "服务器内部错误。"),
}


class APIHandler(BaseHandler):
    """Bearer-authenticated JSON; cookie-blind by construction."""

    caller: ApiCaller | None = None

    async def prepare(self) -> None:
        # Deliberately not BaseHandler.prepare: the API never reads the session cookie.
        self.caller = None
        self.open_db_budget()

    def check_xsrf_cookie(self) -> None:
        return None  # no cookies are read, so there is nothing to forge

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.clear_header("Server")

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object, strictly parsed."""
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise tornado.web.HTTPError(415)
        if len(self.request.body) > MAX_API_BODY:
            raise tornado.web.HTTPError(413)
        try:
            data = json.loads(self.request.body.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                              parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise e.BadRequest("body is not JSON") from None
        if not isinstance(data, dict):
            raise e.BadRequest("body is not a JSON object")
        return data

    async def authenticate(self, with_login_methods: bool = False) -> ApiCaller:
        values = self.request.headers.get_list("Authorization")
        if len(values) != 1:
            raise e.InvalidToken()
        scheme, _, token = values[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not _TOKEN_RE.match(token):
            raise e.InvalidToken()
        self.caller = await self.services.api.authenticate(token, with_login_methods)
        return self.caller

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        code, message, status = _describe(exc, status_code)
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="wxlogin", error="invalid_token"')
        if isinstance(exc, (e.RateLimited, e.Overloaded)):
            self.set_header("Retry-After", str(exc.retry_after))
        elif isinstance(exc, e.WeChatRateLimited):
            self.set_header("Retry-After", "60")
        self.finish({"error": code, "message": message})


def _describe(exc: BaseException | None, status_code: int) -> tuple[str, str, int]:
    if isinstance(exc, e.WxLoginError):
        for cls, status, message in API_ERRORS:
            if isinstance(exc, cls):
                return exc.code, message, status
    status = status_code if status_code in STATUS_ERRORS else 500
    code, message = STATUS_ERRORS[status]
    return code, message, status


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _code(data: dict[str, Any]) -> str:
    code = data.get("code")
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise e.BadRequest("code must be a short printable string")
    return code


def _open_data(data: dict[str, Any]) -> dict[str, Any]:
    fields = {k: data.get(k) for k in ("encryptedData", "iv", "rawData", "signature")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise EncryptedDataInvalid()  # a wrong type is just another malformed ciphertext
    return fields


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url}


def login_json(result: ApiLogin) -> dict[str, Any]:
    return {"token": result.token, "token_type": "Bearer", "expires_in": result.expires_in,
            "user": user_json(result.user), "created": result.created}


class MiniProgramLoginHandler(APIHandler):
    """POST /api/miniprogram/login {"code", optional "encryptedData", "iv", "rawData", "signature"}."""

    @public
    async def post(self) -> None:
        data = self.json_body()
        result = await self.services.api.miniprogram_login(_code(data), _open_data(data), self.request_context())
        self.finish(login_json(result))


class AppLoginHandler(APIHandler):
    """POST /api/app/login {"code"}: the mobile app's WeChat login."""

    @public
    async def post(self) -> None:
        result = await self.services.api.app_login(_code(self.json_body()), self.request_context())
        self.finish(login_json(result))


class MiniProgramProfileHandler(APIHandler):
    """POST /api/miniprogram/profile {"encryptedData", "iv"} (bearer): profile from open data."""

    @public  # authenticated by bearer token, not by cookie session
    async def post(self) -> None:
        caller = await self.authenticate()
        data = self.json_body()
        user = await self.services.api.miniprogram_profile(caller, _open_data(data))
        self.finish({"user": user_json(user)})


class MeHandler(APIHandler):
    """GET /api/me (bearer): the user and their login methods."""

    @public  # authenticated by bearer token
    async def get(self) -> None:
        caller = await self.authenticate(with_login_methods=True)
        methods = caller.login_methods or ()
        self.finish({
            "user": user_json(caller.user),
            "login_methods": [{"channel": m.channel.value, "appid": m.appid,
                               "linked_at": m.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")} for m in methods],
        })


class LogoutHandler(APIHandler):
    """POST /api/logout (bearer): revoke this token."""

    @public  # authenticated by bearer token
    async def post(self) -> None:
        await self.services.api.logout(await self.authenticate())
        self.set_status(204)
        self.finish()


class OpenApiHandler(APIHandler):
    """GET /api/openapi.json: the machine-readable description of this API."""

    @public
    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish(openapi_document(self.services.settings.server.public_url))


class ApiNotFoundHandler(APIHandler):
    """Unknown /api/ paths answer JSON, not an HTML page."""

    @public
    async def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


routes = [
    tornado.web.url(r"/api/miniprogram/login", MiniProgramLoginHandler, name="api_miniprogram_login"),
    tornado.web.url(r"/api/miniprogram/profile", MiniProgramProfileHandler, name="api_miniprogram_profile"),
    tornado.web.url(r"/api/app/login", AppLoginHandler, name="api_app_login"),
    tornado.web.url(r"/api/me", MeHandler, name="api_me"),
    tornado.web.url(r"/api/logout", LogoutHandler, name="api_logout"),
    tornado.web.url(r"/api/openapi\.json", OpenApiHandler, name="api_openapi"),
    tornado.web.url(r"/api/.*", ApiNotFoundHandler),
]
