"""The JSON API for the mini-program and the mobile app: logins, /api/me, logout, phone numbers, profile fill-in.

Handlers here read no cookies (so they need no XSRF protection) and take tokens only from
``Authorization: Bearer``. Every failure is ``{"error": <stable code>, "message": <text>}`` with the
status and headers from the one error table in handlers/errors.py (the README documents it).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import tornado.web

from wxlogin import errors as e
from wxlogin.config import APP_NAME_RE
from wxlogin.handlers.base import BaseHandler, public
from wxlogin.handlers.errors import api_error
from wxlogin.handlers.openapi import openapi_document
from wxlogin.handlers.uploads import uploaded_file
from wxlogin.models import BoundPhone, Channel, User
from wxlogin.services.api import ApiCaller, ApiLogin
from wxlogin.services.deletion import iso

MAX_API_BODY = 32 * 1024
# The avatar upload's own limits (the JSON cap above is far too small for an image): the file, and the whole
# multipart body around it. Well under [server] max_body_size (2 MiB), which bounds what Tornado reads at all.
AVATAR_MAX_FILE = 1024 * 1024
AVATAR_MAX_BODY = AVATAR_MAX_FILE + 16 * 1024
AVATAR_FIELD = "file"  # wx.uploadFile({name: "file", ...})
_CODE_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,2048}$")

P = ParamSpec("P")
R = TypeVar("R")


class APIHandler(BaseHandler):
    """Bearer-authenticated JSON; cookie-blind by construction."""

    with_login_methods = False  # /api/me also loads the login methods, in the same query
    # Open to a closing account (注销, grace period): restore, export, logout, /api/me (issue 16); every other
    # bearer endpoint answers 403 deletion_pending.
    allowed_while_pending = False

    async def prepare(self) -> None:
        # Deliberately not BaseHandler.prepare: the API never reads the session cookie.
        self.open_db_budget()
        self.open_wechat_deadline()

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
                              parse_constant=_no_constants, parse_float=_finite_float)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise e.BadRequest("body is not JSON") from None
        if not isinstance(data, dict):
            raise e.BadRequest("body is not a JSON object")
        return data

    async def authenticate(self) -> ApiCaller:
        """The caller of ``Authorization: Bearer <token>`` (one header, any case); InvalidToken otherwise."""
        values = self.request.headers.get_list("Authorization")
        if len(values) != 1:
            raise e.InvalidToken()
        scheme, _, token = values[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not _TOKEN_RE.match(token):
            raise e.InvalidToken()
        return await self.services.api.authenticate(token, self.with_login_methods, self.allowed_while_pending)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Status, code, message and headers all come from the one table in handlers/errors.py.
        answer = api_error(kwargs.get("exc_info", (None, None, None))[1], status_code)
        self.set_status(answer.status)
        for name, value in answer.headers:
            self.set_header(name, value)
        self.finish(answer.body())


def bearer_required(
    method: Callable[Concatenate[Any, ApiCaller, P], Awaitable[R]],
) -> Callable[Concatenate[Any, P], Awaitable[R]]:
    """Mark an API method as needing a bearer token, and hand it the authenticated caller.

    The route walk in the tests finds every method so marked and proves it answers 401 without a token.
    """

    async def wrapper(self: APIHandler, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await method(self, await self.authenticate(), *args, **kwargs)

    functools.update_wrapper(wrapper, method)
    wrapper.access = "bearer_required"  # type: ignore[attr-defined]
    return wrapper


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity, which is not JSON's idea of a number
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _code(data: dict[str, Any]) -> str:
    code = data.get("code")
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise e.BadRequest("code must be a short printable string")
    return code


# --- issue 13, several apps of a kind: the optional "app" field (begin) -----------------------------------
def app_name(data: dict[str, Any]) -> str:
    """The body's optional ``"app"``: which app of the kind (absent, null or "": the default app).

    Endpoints acting for one mini-program (login, profile; phone and avatar/nickname too) take it, and their
    service resolves it with ``services.apps.choose_app`` (an unknown name: 400 ``bad_request``).
    """
    name = data.get("app")
    if name is None or name == "":
        return ""
    if not isinstance(name, str) or not APP_NAME_RE.match(name):
        raise e.BadRequest("app must be the name of a configured app")
    return name
# --- issue 13, several apps of a kind (end) ------------------------------------------------------------------


def _open_data(data: dict[str, Any]) -> dict[str, Any]:
    fields = {k: data.get(k) for k in ("encryptedData", "iv", "rawData", "signature")}
    for value in fields.values():
        if value is not None and not isinstance(value, str):
            raise e.EncryptedDataInvalid()  # a wrong type is just another malformed ciphertext
    return fields


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url}


def phone_json(phone: BoundPhone | None) -> dict[str, str] | None:
    """A bound number as the API shows it: masked, never in full (personal data)."""
    if phone is None:
        return None
    return {"masked": phone.number.masked, "country_code": phone.number.country_code}


def login_json(result: ApiLogin) -> dict[str, Any]:
    answer = {"token": result.token, "token_type": "Bearer", "expires_in": result.expires_in,
              "user": user_json(result.user), "created": result.created}
    if result.user.deletion_scheduled_at is not None:
        # The account is closing (issue 16): the client offers to cancel (POST /api/me/restore) or to sign out.
        answer["deletion_scheduled_at"] = iso(result.user.deletion_scheduled_at)
    return answer


def confirm_channel(data: dict[str, Any]) -> Channel:
    """The body's optional ``"channel"`` of a confirmation code: "miniprogram" (wx.login, default) or "app"."""
    channel = data.get("channel", Channel.MINIPROGRAM.value)
    if channel not in (Channel.MINIPROGRAM.value, Channel.APP.value):
        raise e.BadRequest("channel must be miniprogram or app")
    return Channel(channel)


class MiniProgramLoginHandler(APIHandler):
    """POST /api/miniprogram/login {"code", optional "encryptedData", "iv", "rawData", "signature", "app"}."""

    @public
    async def post(self) -> None:
        data = self.json_body()
        result = await self.services.api.miniprogram_login(_code(data), _open_data(data), self.request_context(),
                                                           app_name(data))
        self.finish(login_json(result))


class AppLoginHandler(APIHandler):
    """POST /api/app/login {"code", optional "app"}: the mobile app's WeChat login."""

    @public
    async def post(self) -> None:
        data = self.json_body()
        result = await self.services.api.app_login(_code(data), self.request_context(), app_name(data))
        self.finish(login_json(result))


class MiniProgramProfileHandler(APIHandler):
    """POST /api/miniprogram/profile {"encryptedData", "iv", optional "app"} (bearer): profile from open data."""

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        data = self.json_body()
        user = await self.services.api.miniprogram_profile(caller, _open_data(data), app_name(data))
        self.finish({"user": user_json(user)})


class MiniProgramPhoneHandler(APIHandler):
    """POST /api/miniprogram/phone {"code"} (bearer): bind the number behind a getPhoneNumber code."""

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        data = self.json_body()
        phone = await self.services.phones.bind(caller.user, _code(data), self.request_context(), app_name(data))
        self.finish({"phone": phone_json(phone), "user": user_json(caller.user)})


class MePhoneHandler(APIHandler):
    """DELETE /api/me/phone (bearer): unbind the account's number (204, also when there was none)."""

    @bearer_required
    async def delete(self, caller: ApiCaller) -> None:
        await self.services.phones.unbind(caller.user.id, self.request_context())
        self.set_status(204)
        self.finish()


class MiniProgramNicknameHandler(APIHandler):
    """POST /api/miniprogram/nickname {"nickname"} (bearer): what the person typed in the nickname input."""

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        data = self.json_body()
        user = await self.services.profile.set_nickname(caller.user, data.get("nickname"), app_name(data))
        self.finish({"user": user_json(user)})


class MiniProgramAvatarHandler(APIHandler):
    """POST /api/miniprogram/avatar, multipart/form-data with one file "file" (bearer): the chooseAvatar image.

    The answer's user still has the old avatar: the new one is shown once WeChat's check passes it
    (``avatar_pending``).
    """

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        if len(self.request.body) > AVATAR_MAX_BODY:
            raise tornado.web.HTTPError(413)
        data = uploaded_file(self.request, AVATAR_FIELD, AVATAR_MAX_FILE)
        # wx.uploadFile sends a file, not JSON: the mini-program names itself in the query (?app=<name>).
        upload = await self.services.profile.upload_avatar(
            caller.user, data, app_name({"app": self.get_query_argument("app", None)}))
        self.finish({"user": user_json(upload.user), "avatar_pending": upload.pending})


# --- issue 14, desktop login by mini-program code: the mini-program's scan, confirm, refuse (begin) ----------
# A scene as the code carries it: the scene core makes 32 letters and digits; anything else is a bad request
# that never reaches MySQL (a slash, NUL, 33 characters, a number, ...).
_SCENE_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")


def scene_of(data: dict[str, Any]) -> str:
    scene = data.get("scene")
    if not isinstance(scene, str) or not _SCENE_RE.fullmatch(scene):  # fullmatch: "$" lets a final \n in
        raise e.BadRequest("scene must be the 1 to 32 letters and digits the mini-program code carried")
    return scene


class QrLoginScanHandler(APIHandler):
    """POST /api/miniprogram/qr-login/scan {"scene"} (bearer): the mini-program opened the desktop's code."""

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        status = await self.services.wxacode.scan(caller.user, scene_of(self.json_body()))
        self.finish({"status": status.value})


class QrLoginConfirmHandler(APIHandler):
    """POST /api/miniprogram/qr-login/confirm {"scene"} (bearer): sign the desktop in as the caller's account."""

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        status = await self.services.wxacode.confirm(caller.user, scene_of(self.json_body()))
        self.finish({"status": status.value})


class QrLoginRefuseHandler(APIHandler):
    """POST /api/miniprogram/qr-login/refuse {"scene"} (bearer): the person declined; the desktop shows 已取消."""

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        status = await self.services.wxacode.refuse(caller.user, scene_of(self.json_body()))
        self.finish({"status": status.value})
# --- issue 14 (end) ------------------------------------------------------------------------------------------


class MeHandler(APIHandler):
    """GET /api/me (bearer): the user, their login methods and their phone number (masked).

    DELETE /api/me {"code", optional "channel", "app"} (bearer): close the account (注销). The code is a fresh
    one from wx.login (or the app's OpenSDK, ``"channel": "app"``) and must be this account's WeChat; 202 with
    the date the deletion will happen. Every token and session ends at once, this one included.
    """

    with_login_methods = True
    allowed_while_pending = True

    @bearer_required
    async def get(self, caller: ApiCaller) -> None:
        methods = caller.login_methods or ()
        self.finish({
            "user": user_json(caller.user),
            "login_methods": [{"channel": m.channel.value, "appid": m.appid,
                               "linked_at": m.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")} for m in methods],
            "phone": phone_json(caller.phone),
            "deletion_scheduled_at": iso(caller.user.deletion_scheduled_at),
        })

    @bearer_required
    async def delete(self, caller: ApiCaller) -> None:
        data = self.json_body()
        code, channel, app = _code(data), confirm_channel(data), app_name(data)
        await self.services.api.confirm_identity(caller, code, channel, self.request_context(), app)
        when = await self.services.deletion.schedule(caller.user.id)
        self.set_status(202)
        self.finish({"deletion_scheduled_at": iso(when)})


class MeRestoreHandler(APIHandler):
    """POST /api/me/restore (bearer): cancel the account's deletion (取消注销); the token works fully again."""

    allowed_while_pending = True

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        restored = await self.services.deletion.cancel(caller.user.id)
        self.finish({"restored": restored, "user": user_json(caller.user), "deletion_scheduled_at": None})


class MeExportHandler(APIHandler):
    """GET /api/me/export[?phone=full] (bearer): everything held about the person (the page's download).

    The phone number is masked; in full only with ``phone=full`` from a token of a login within
    ``[accounts] reauth_window`` (else 403 ``reauth_required``: call wx.login, log in, ask again).
    """

    allowed_while_pending = True

    @bearer_required
    async def get(self, caller: ApiCaller) -> None:
        full = self.get_query_argument("phone", "") == "full"
        if full and not self.services.api.signed_in_recently(caller):
            raise e.ReauthRequired("full phone number")
        self.finish(await self.services.deletion.export(caller.user.id, full_phone=full))


class LogoutHandler(APIHandler):
    """POST /api/logout (bearer): revoke this token."""

    allowed_while_pending = True

    @bearer_required
    async def post(self, caller: ApiCaller) -> None:
        await self.services.api.logout(caller)
        self.set_status(204)
        self.finish()


class OpenApiHandler(APIHandler):
    """GET /api/openapi.json: the machine-readable description of this API."""

    @public
    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish(openapi_document(self.services.settings.server.public_url, self.reverse_url))


class ApiNotFoundHandler(APIHandler):
    """Unknown /api/ paths answer JSON, not an HTML page."""

    @public
    async def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


routes = [
    tornado.web.url(r"/api/miniprogram/login", MiniProgramLoginHandler, name="api_miniprogram_login"),
    tornado.web.url(r"/api/miniprogram/profile", MiniProgramProfileHandler, name="api_miniprogram_profile"),
    tornado.web.url(r"/api/miniprogram/nickname", MiniProgramNicknameHandler, name="api_miniprogram_nickname"),
    tornado.web.url(r"/api/miniprogram/avatar", MiniProgramAvatarHandler, name="api_miniprogram_avatar"),
    tornado.web.url(r"/api/app/login", AppLoginHandler, name="api_app_login"),
    tornado.web.url(r"/api/miniprogram/phone", MiniProgramPhoneHandler, name="api_miniprogram_phone"),
    tornado.web.url(r"/api/miniprogram/qr-login/scan", QrLoginScanHandler, name="api_qr_login_scan"),
    tornado.web.url(r"/api/miniprogram/qr-login/confirm", QrLoginConfirmHandler, name="api_qr_login_confirm"),
    tornado.web.url(r"/api/miniprogram/qr-login/refuse", QrLoginRefuseHandler, name="api_qr_login_refuse"),
    tornado.web.url(r"/api/me", MeHandler, name="api_me"),
    tornado.web.url(r"/api/me/phone", MePhoneHandler, name="api_me_phone"),
    tornado.web.url(r"/api/me/restore", MeRestoreHandler, name="api_me_restore"),
    tornado.web.url(r"/api/me/export", MeExportHandler, name="api_me_export"),
    tornado.web.url(r"/api/logout", LogoutHandler, name="api_logout"),
    tornado.web.url(r"/api/openapi\.json", OpenApiHandler, name="api_openapi"),
    tornado.web.url(r"/api/.*", ApiNotFoundHandler),
]
