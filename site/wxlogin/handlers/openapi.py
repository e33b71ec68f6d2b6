"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json, checked against real answers)."""

from __future__ import annotations

from typing import Any

_ERROR_CODES = [
    "bad_request", "encrypted_data_invalid", "code_invalid", "invalid_token", "account_disabled", "wechat_blocked",
    "not_found", "rate_limited", "wechat_rate_limited", "wechat_misconfigured", "wechat_timeout",
    "wechat_unavailable", "wechat_busy", "wechat_error", "database_unavailable", "method_not_allowed",
    "body_too_large", "unsupported_media_type", "internal_error", "overloaded",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed input", 401: "Bad or reused code, or bad token", 403: "Blocked by WeChat or disabled",
            413: "Body too large", 415: "Not application/json", 429: "Too many attempts (see Retry-After)",
            502: "WeChat failed", 503: "WeChat busy, database down, or overloaded", 504: "WeChat timed out"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


_LOGIN_ERRORS = (400, 401, 403, 413, 415, 429, 502, 503, 504)
_BEARER_ERRORS = (401, 403, 503)


def openapi_document(server_url: str) -> dict[str, Any]:
    """Build the document for a server at ``server_url``."""
    bearer = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "wxlogin API", "version": "1.0.0",
                 "description": "WeChat login for the mini-program and the mobile app, with bearer tokens."},
        "servers": [{"url": server_url}],
        "paths": {
            "/api/miniprogram/login": {"post": {
                "summary": "Log in with a wx.login code (jscode2session); optional open data updates the profile",
                "operationId": "miniprogramLogin",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("MiniProgramLogin")}}},
                "responses": {"200": _json(_ref("LoginResponse"), "Logged in"), **_errors(*_LOGIN_ERRORS)},
            }},
            "/api/app/login": {"post": {
                "summary": "Log in with the mobile app's OpenSDK code",
                "operationId": "appLogin",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CodeLogin")}}},
                "responses": {"200": _json(_ref("LoginResponse"), "Logged in"), **_errors(*_LOGIN_ERRORS)},
            }},
            "/api/miniprogram/profile": {"post": {
                "summary": "Update the profile from encryptedData sealed with the session's session_key",
                "operationId": "miniprogramProfile", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("OpenData")}}},
                "responses": {"200": _json(_ref("UserResponse"), "Profile updated"),
                              **_errors(400, 401, 403, 413, 415, 429, 503)},
            }},
            "/api/me": {"get": {
                "summary": "The signed-in user and their login methods", "operationId": "me", "security": bearer,
                "responses": {"200": _json(_ref("Me"), "The user"), **_errors(*_BEARER_ERRORS)},
            }},
            "/api/logout": {"post": {
                "summary": "Revoke this bearer token", "operationId": "logout", "security": bearer,
                "responses": {"204": {"description": "Revoked"}, **_errors(*_BEARER_ERRORS)},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CodeLogin": {"type": "object", "required": ["code"],
                              "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 128}}},
                "OpenData": {"type": "object", "required": ["encryptedData", "iv"], "properties": {
                    "encryptedData": {"type": "string"}, "iv": {"type": "string"}}},
                "MiniProgramLogin": {"type": "object", "required": ["code"], "properties": {
                    "code": {"type": "string", "minLength": 1, "maxLength": 128},
                    "encryptedData": {"type": "string"}, "iv": {"type": "string"},
                    "rawData": {"type": "string"}, "signature": {"type": "string"}}},
                "User": {"type": "object", "required": ["id", "nickname", "avatar_url"],
                         "additionalProperties": False, "properties": {
                             "id": {"type": "integer"}, "nickname": {"type": "string"},
                             "avatar_url": {"type": "string"}}},
                "LoginResponse": {"type": "object", "additionalProperties": False,
                                  "required": ["token", "token_type", "expires_in", "user", "created"], "properties": {
                                      "token": {"type": "string"}, "token_type": {"const": "Bearer"},
                                      "expires_in": {"type": "integer", "minimum": 1}, "user": _ref("User"),
                                      "created": {"type": "boolean"}}},
                "UserResponse": {"type": "object", "required": ["user"], "additionalProperties": False,
                                 "properties": {"user": _ref("User")}},
                "Me": {"type": "object", "required": ["user", "login_methods"], "additionalProperties": False,
                       "properties": {"user": _ref("User"), "login_methods": {"type": "array", "items": {
                           "type": "object", "required": ["channel", "appid", "linked_at"],
                           "additionalProperties": False, "properties": {
                               "channel": {"enum": ["web", "mp", "app", "miniprogram"]},
                               "appid": {"type": "string"}, "linked_at": {"type": "string", "format": "date-time"}}}}}},
                "Error": {"type": "object", "required": ["error", "message"], "additionalProperties": False,
                          "properties": {"error": {"enum": _ERROR_CODES}, "message": {"type": "string"}}},
            },
        },
    }
