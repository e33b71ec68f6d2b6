"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json, checked against real answers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wxlogin import errors as e
from wxlogin.handlers.errors import ERRORS, STATUSES, api_codes

# What each operation can answer, by error class or bare status; statuses and texts come from the one
# table in handlers/errors.py. Every WeChat error is listed for the logins because WeChat may answer any
# errcode to any call. A 405 belongs to no operation (the method has none), and a 500 is a bug.
_EVERYWHERE: tuple[type[e.WxLoginError] | int, ...] = (e.DatabaseUnavailable, e.Overloaded)
_JSON_BODY: tuple[type[e.WxLoginError] | int, ...] = (e.BadRequest, 413, 415)
# Issue 16: a closing account's token answers deletion_pending everywhere but /api/me, restore, export, logout.
_BEARER_ANY: tuple[type[e.WxLoginError] | int, ...] = (e.InvalidToken, e.AccountDisabled)
_BEARER: tuple[type[e.WxLoginError] | int, ...] = (*_BEARER_ANY, e.DeletionPending)
_WECHAT = tuple(row.cls for row in ERRORS if issubclass(row.cls, e.WeChatError))
_APP_LOGIN = (*_JSON_BODY, e.RateLimited, e.AccountDisabled, *_WECHAT, *_EVERYWHERE)
_MINIPROGRAM_LOGIN = (*_APP_LOGIN, e.EncryptedDataInvalid)
_PROFILE = _BEARER + _JSON_BODY + (e.EncryptedDataInvalid, e.SessionKeyExpired, e.RateLimited) + _EVERYWHERE
_BEARER_ONLY = _BEARER + _EVERYWHERE
_PENDING_OK = _BEARER_ANY + _EVERYWHERE
# Closing by API: a fresh code, exchanged with WeChat like a login's, of this account's WeChat.
_CLOSE = (*_BEARER_ANY, *_JSON_BODY, e.WrongAccount, e.RateLimited, *_WECHAT, *_EVERYWHERE)
_EXPORT = (*_BEARER_ANY, e.ReauthRequired, *_EVERYWHERE)
_WHEN = {"type": "string", "format": "date-time", "description": "ISO 8601 with the zone"}
# The phone call takes the app's own token; WeChat may answer it any errcode, as it may a login.
_PHONE = _BEARER + _JSON_BODY + (e.PhoneCodeInvalid, e.PhoneInUse, e.RateLimited, *_WECHAT) + _EVERYWHERE


# A masked number (models.PhoneNumber.masked): never more than the first 3 and last 4 digits.
_MASKED_PHONE = r"^(\+[1-9][0-9]{0,3} )?[0-9]{1,3}\*+[0-9]{1,4}$"


# Issue 13: which app of the kind ([wechat.more.<kind>.<name>]); absent, null or "": the default app.
_APP = {"type": ["string", "null"], "pattern": "^[a-z0-9_]{0,32}$",
        "description": "The app's name in [wechat.more.<kind>.<name>]; absent: the default app. Unknown: bad_request"}
_NICKNAME = (*_BEARER, *_JSON_BODY, e.ContentRisky, e.RateLimited, *_WECHAT, *_EVERYWHERE)
_AVATAR = (*_BEARER, e.BadRequest, 413, 415, e.ImageInvalid, e.RateLimited, *_WECHAT, *_EVERYWHERE)
# Issue 14: the mini-program's steps on a desktop's login scene (no WeChat call; 404 also when the login is off).
_SCENE_STEP = (*_BEARER, *_JSON_BODY, e.SceneNotFound, e.SceneExpired, e.SceneRefused, e.SceneUsed, e.NotFound,
               *_EVERYWHERE)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(answers: tuple[type[e.WxLoginError] | int, ...]) -> dict[str, Any]:
    """One response per status, described by the codes this operation can answer with it."""
    by_class = {row.cls: row for row in ERRORS}
    by_status = {row.status: row for row in STATUSES}
    grouped: dict[int, dict[str, str]] = {}
    for answer in answers:
        if isinstance(answer, int):
            row = by_status[answer]
            grouped.setdefault(row.status, {})[row.api_code] = row.doc
        else:
            entry = by_class[answer]
            grouped.setdefault(entry.api_status, {})[entry.code] = entry.doc
    return {str(status): _json(_ref("Error"), "; ".join(f"`{code}`: {doc}" for code, doc in grouped[status].items()))
            for status in sorted(grouped)}


def openapi_document(server_url: str, path_of: Callable[[str], str]) -> dict[str, Any]:
    """Build the document for a server at ``server_url``; ``path_of`` reverses a route name into its path."""
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "wxlogin API", "version": "1.0.0",
                 "description": "WeChat login for the mini-program and the mobile app, with bearer tokens."},
        "servers": [{"url": server_url}],
        "paths": {
            path_of("api_miniprogram_login"): {"post": {
                "summary": "Log in with a wx.login code (jscode2session); optional open data updates the profile",
                "operationId": "miniprogramLogin",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("MiniProgramLogin")}}},
                "responses": {"200": _json(_ref("LoginResponse"), "Logged in"), **_errors(_MINIPROGRAM_LOGIN)},
            }},
            path_of("api_app_login"): {"post": {
                "summary": "Log in with the mobile app's OpenSDK code",
                "operationId": "appLogin",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CodeLogin")}}},
                "responses": {"200": _json(_ref("LoginResponse"), "Logged in"), **_errors(_APP_LOGIN)},
            }},
            path_of("api_miniprogram_profile"): {"post": {
                "summary": "Update the profile from encryptedData sealed with the session's session_key",
                "operationId": "miniprogramProfile", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("OpenData")}}},
                "responses": {"200": _json(_ref("UserResponse"), "Profile updated"),
                              **_errors(_PROFILE)},
            }},
            path_of("api_miniprogram_phone"): {"post": {
                "summary": "Bind the phone number behind a getPhoneNumber button's code (shown masked); a number "
                           "another account holds is never moved (409)",
                "operationId": "miniprogramPhone", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CodeLogin")}}},
                "responses": {"200": _json(_ref("PhoneResponse"), "Bound (or already bound by this code)"),
                              **_errors(_PHONE)},
            }},
            path_of("api_miniprogram_nickname"): {"post": {
                "summary": "Set the nickname the person typed (the nickname input); checked by WeChat's msg_sec_check: "
                           "pass is stored, review is stored and flagged for operators, risky is refused",
                "operationId": "miniprogramNickname", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Nickname")}}},
                "responses": {"200": _json(_ref("UserResponse"), "Nickname stored (or kept: a placeholder never "
                                                                 "replaces a real nickname)"),
                              **_errors(_NICKNAME)},
            }},
            path_of("api_miniprogram_avatar"): {"post": {
                "summary": "Upload the chooseAvatar image (wx.uploadFile, field \"file\", at most 1 MiB; JPEG, PNG, "
                           "GIF or WebP by content, at most 4096 pixels a side). It is re-encoded to a 256x256 JPEG "
                           "without metadata and checked by WeChat (media_check_async): the answer's avatar_url stays "
                           "the old one until WeChat's verdict passes it",
                "operationId": "miniprogramAvatar", "security": bearer,
                "parameters": [{"name": "app", "in": "query", "required": False, "schema": _APP}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "contentMediaType": "application/octet-stream",
                                 "description": "the image; its file name and Content-Type are ignored"}}},
                    "encoding": {"file": {"contentType": "image/jpeg, image/png, image/gif, image/webp"}}}}},
                "responses": {"200": _json(_ref("AvatarResponse"), "Uploaded; shown once WeChat's check passes it"),
                              **_errors(_AVATAR)},
            }},
            path_of("api_qr_login_scan"): {"post": {
                "summary": "The mini-program opened a desktop's mini-program code (options.scene): the desktop shows "
                           "that it was scanned. Repeating it is answered alike",
                "operationId": "qrLoginScan", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Scene")}}},
                "responses": {"200": _json(_ref("SceneStep"), "Scanned"), **_errors(_SCENE_STEP)},
            }},
            path_of("api_qr_login_confirm"): {"post": {
                "summary": "Confirm the desktop's login: it signs in as this token's account (once per scene)",
                "operationId": "qrLoginConfirm", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Scene")}}},
                "responses": {"200": _json(_ref("SceneStep"), "Confirmed"), **_errors(_SCENE_STEP)},
            }},
            path_of("api_qr_login_refuse"): {"post": {
                "summary": "Refuse the desktop's login: the desktop shows that it was cancelled. Repeating it is "
                           "answered alike",
                "operationId": "qrLoginRefuse", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Scene")}}},
                "responses": {"200": _json(_ref("SceneStep"), "Refused"), **_errors(_SCENE_STEP)},
            }},
            path_of("api_me"): {"get": {
                "summary": "The signed-in user, their login methods, their phone number (masked), a pending deletion",
                "operationId": "me", "security": bearer,
                "responses": {"200": _json(_ref("Me"), "The user"), **_errors(_PENDING_OK)},
            }, "delete": {
                "summary": "Close the account (注销) with a fresh wx.login code (or the app's, channel app) of this "
                           "account's WeChat: every token and session ends now; the account is deleted after "
                           "[accounts] deletion_grace_days, unless a login before then restores it",
                "operationId": "closeAccount", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CloseAccount")}}},
                "responses": {"202": _json(_ref("DeletionScheduled"), "Closed; deleted at deletion_scheduled_at"),
                              **_errors(_CLOSE)},
            }},
            path_of("api_me_restore"): {"post": {
                "summary": "Cancel the account's deletion during its grace period (取消注销)",
                "operationId": "restoreAccount", "security": bearer,
                "responses": {"200": _json(_ref("Restored"), "The account is kept (restored false: nothing was "
                                                              "pending)"), **_errors(_PENDING_OK)},
            }},
            path_of("api_me_export"): {"get": {
                "summary": "Everything held about the person, without any token or session key; the phone number "
                           "in full only with phone=full and a token from a login within [accounts] reauth_window",
                "operationId": "exportMyData", "security": bearer,
                "parameters": [{"name": "phone", "in": "query", "required": False, "schema": {"enum": ["full"]}}],
                "responses": {"200": _json(_ref("Export"), "The person's data"), **_errors(_EXPORT)},
            }},
            path_of("api_me_phone"): {"delete": {
                "summary": "Unbind the account's phone number (also when there is none)",
                "operationId": "unbindPhone", "security": bearer,
                "responses": {"204": {"description": "No phone number is bound now"}, **_errors(_BEARER_ONLY)},
            }},
            path_of("api_logout"): {"post": {
                "summary": "Revoke this bearer token", "operationId": "logout", "security": bearer,
                "responses": {"204": {"description": "Revoked"}, **_errors(_PENDING_OK)},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CodeLogin": {"type": "object", "required": ["code"],
                              "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 128},
                                             "app": _APP}},
                "OpenData": {"type": "object", "required": ["encryptedData", "iv"], "properties": {
                    "encryptedData": {"type": "string"}, "iv": {"type": "string"}, "app": _APP}},
                "MiniProgramLogin": {"type": "object", "required": ["code"], "properties": {
                    "code": {"type": "string", "minLength": 1, "maxLength": 128},
                    "encryptedData": {"type": "string"}, "iv": {"type": "string"},
                    "rawData": {"type": "string"}, "signature": {"type": "string"}, "app": _APP}},
                "User": {"type": "object", "required": ["id", "nickname", "avatar_url"],
                         "additionalProperties": False, "properties": {
                             "id": {"type": "integer"}, "nickname": {"type": "string"},
                             "avatar_url": {"type": "string"}}},
                "LoginResponse": {"type": "object", "additionalProperties": False,
                                  "required": ["token", "token_type", "expires_in", "user", "created"], "properties": {
                                      "token": {"type": "string"}, "token_type": {"const": "Bearer"},
                                      "expires_in": {"type": "integer", "minimum": 1}, "user": _ref("User"),
                                      "created": {"type": "boolean"},
                                      "deletion_scheduled_at": {**_WHEN, "description": (
                                          "Only while the account is closing: when it will be deleted. Offer to "
                                          "cancel (POST /api/me/restore); meanwhile only restore, export, /api/me "
                                          "and logout work")}}},
                "Phone": {"type": "object", "required": ["masked", "country_code"], "additionalProperties": False,
                          "properties": {
                              "masked": {"type": "string", "pattern": _MASKED_PHONE,
                                         "description": "138****0000; +852 61****67 outside China"},
                              "country_code": {"type": "string", "pattern": "^[1-9][0-9]{0,3}$"}}},
                "PhoneResponse": {"type": "object", "required": ["phone", "user"], "additionalProperties": False,
                                  "properties": {"phone": _ref("Phone"), "user": _ref("User")}},
                "UserResponse": {"type": "object", "required": ["user"], "additionalProperties": False,
                                 "properties": {"user": _ref("User")}},
                "Nickname": {"type": "object", "required": ["nickname"], "properties": {
                    "nickname": {"type": "string", "minLength": 1, "maxLength": 256,
                                 "description": "at most 32 characters once control and format characters go"},
                    "app": _APP}},
                "AvatarResponse": {"type": "object", "required": ["user", "avatar_pending"],
                                   "additionalProperties": False, "properties": {
                                       "user": _ref("User"),
                                       "avatar_pending": {"type": "boolean", "description":
                                                          "true: user.avatar_url is still the old avatar; the new "
                                                          "one replaces it when WeChat's check passes"}}},
                "Me": {"type": "object", "required": ["user", "login_methods", "phone"], "additionalProperties": False,
                       "properties": {"user": _ref("User"),
                                      "deletion_scheduled_at": {"anyOf": [_WHEN, {"type": "null"}]},
                                      "phone": {"anyOf": [_ref("Phone"), {"type": "null"}]},
                                      "login_methods": {"type": "array", "items": {
                           "type": "object", "required": ["channel", "appid", "linked_at"],
                           "additionalProperties": False, "properties": {
                               "channel": {"enum": ["web", "mp", "app", "miniprogram"]},
                               "appid": {"type": "string"}, "linked_at": {"type": "string", "format": "date-time"}}}}}},
                "Scene": {"type": "object", "required": ["scene"], "properties": {
                    "scene": {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$",
                              "description": "decodeURIComponent(options.scene) of the page the code opened"}}},
                "SceneStep": {"type": "object", "required": ["status"], "additionalProperties": False,
                              "properties": {"status": {"enum": ["scanned", "confirmed", "refused"]}}},
                "CloseAccount": {"type": "object", "required": ["code"], "properties": {
                    "code": {"type": "string", "minLength": 1, "maxLength": 128,
                             "description": "a fresh code from wx.login (or the app's OpenSDK): this account's WeChat"},
                    "channel": {"enum": ["miniprogram", "app"], "description": "whose code it is; default miniprogram"},
                    "app": _APP}},
                "DeletionScheduled": {"type": "object", "required": ["deletion_scheduled_at"],
                                      "additionalProperties": False, "properties": {"deletion_scheduled_at": _WHEN}},
                "Restored": {"type": "object", "required": ["restored", "user", "deletion_scheduled_at"],
                             "additionalProperties": False, "properties": {
                                 "restored": {"type": "boolean"}, "user": _ref("User"),
                                 "deletion_scheduled_at": {"type": "null"}}},
                "Export": {"type": "object", "additionalProperties": False,
                           "required": ["format", "exported_at", "user", "login_methods", "phone", "login_history",
                                        "unlinked_identities"], "properties": {
                               "format": {"const": 1}, "exported_at": _WHEN,
                               "user": {"type": "object"},
                               "login_methods": {"type": "array", "items": {
                                   "type": "object", "additionalProperties": False, "properties": {
                                       k: {} for k in ("channel", "appid", "openid", "unionid", "scope", "linked_at",
                                                       "last_login_at")}}},
                               "phone": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                                   "number": {"type": "string"}, "masked": {"type": "boolean"},
                                   "country_code": {"type": "string"}, "bound_at": _WHEN}}]},
                               "login_history": {"type": "array", "items": {"type": "object"}},
                               "unlinked_identities": {"type": "array", "items": {"type": "object"}}}},
                "Error": {"type": "object", "required": ["error", "message"], "additionalProperties": False,
                          "properties": {"error": {"enum": api_codes()}, "message": {"type": "string"}}},
            },
        },
    }
