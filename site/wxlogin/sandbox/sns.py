"""The emulated back-channel API: /sns/oauth2/access_token, /sns/userinfo, /sns/oauth2/refresh_token,
/sns/auth and /sns/jscode2session, with WeChat's documented errcodes (protocol reference, sections 3, 5, 8)."""

from __future__ import annotations

import time
from typing import Any

import tornado.routing
import tornado.web

from wxlogin.sandbox import people
from wxlogin.sandbox.base import SandboxHandler
from wxlogin.sandbox.state import ACCESS_TOKEN_TTL, CODE_TTL, REFRESH_TOKEN_TTL, Grant


class SnsHandler(SandboxHandler):
    """Shared parameter checks."""

    def arg(self, name: str) -> str:
        return self.get_query_argument(name, "") or ""

    def check_app(self, with_secret: bool = True) -> Any:
        """Return the registered app, or answer the errcode WeChat would and return None."""
        appid = self.arg("appid")
        if not appid:
            self.wechat_error(41002, "appid missing")
            return None
        if with_secret and not self.arg("secret"):
            self.wechat_error(41004, "appsecret missing")
            return None
        app = self.sandbox.app(appid)
        if app is None:
            self.wechat_error(40013, "invalid appid")
            return None
        if with_secret and self.arg("secret") != app.secret:
            self.wechat_error(40125, "invalid appsecret")
            return None
        return app

    def code_request(self, code_param: str) -> tuple[Any, str] | None:
        """Check the parts every code exchange shares: app, secret, grant_type and the code itself."""
        app = self.check_app()
        if app is None:
            return None
        if self.arg("grant_type") != "authorization_code":
            self.wechat_error(40002, "invalid grant_type")
            return None
        code = self.arg(code_param)
        if not code:
            self.wechat_error(41008, "missing code")  # also what a misnamed parameter gets
            return None
        return app, code

    def take_code(self, app: Any, code: str, expired_errcode: int = 42003) -> Grant | None:
        """Consume a code once, or answer the errcode WeChat would (scripted people included)."""
        grant = self.sandbox.state.codes.get(code)
        if grant is None or grant.appid != app.appid:
            self.wechat_error(40029, "invalid code")
            return None
        if grant.used:
            self.wechat_error(40163, "code been used")
            return None
        if time.time() - grant.created > CODE_TTL:
            self.wechat_error(expired_errcode, "code expired" if expired_errcode == 42003 else "invalid code")
            return None
        grant.attempts += 1
        scripted = people.scripted_error(grant.person, grant.attempts)
        if scripted:
            self.wechat_error(*scripted)
            return None
        grant.used = True
        return grant

    def identity_fields(self, grant: Grant) -> dict[str, Any]:
        person = people.person(grant.person)
        assert person is not None
        if grant.snapshot:
            # Snapshot-page people are virtual: their IDs must never match the real person's.
            virtual = people.person("snapshot-" + person.key[:20])
            assert virtual is not None
            return {"openid": people.openid_for(grant.appid, virtual), "unionid": people.unionid_for(virtual)}
        return {"openid": people.openid_for(grant.appid, person), "unionid": people.unionid_for(person)}


class AccessTokenHandler(SnsHandler):
    """GET /sns/oauth2/access_token: exchange a code, once, within 5 minutes."""

    def get(self) -> None:
        request = self.code_request("code")
        if request is None:
            return
        app, code = request
        grant = self.take_code(app, code)
        if grant is None:
            return
        access, refresh = self.sandbox.state.issue_tokens(grant)
        ids = self.identity_fields(grant)
        body: dict[str, Any] = {
            "access_token": access, "expires_in": ACCESS_TOKEN_TTL, "refresh_token": refresh,
            "openid": ids["openid"], "scope": grant.scope,
        }
        # The current doc: an official account's unionid comes only with snsapi_userinfo.
        if ids["unionid"] and grant.scope != "snsapi_base":
            body["unionid"] = ids["unionid"]
        if grant.snapshot:
            body["is_snapshotuser"] = 1
        self.write_wechat_json(body)


class UserInfoHandler(SnsHandler):
    """GET /sns/userinfo: the profile, for snsapi_userinfo / snsapi_login grants only."""

    def get(self) -> None:
        grant = self.sandbox.state.access_tokens.get(self.arg("access_token"))
        if grant is None:
            return self.wechat_error(40001, "invalid credential, access_token is invalid or not latest")
        if time.time() - grant.created > ACCESS_TOKEN_TTL:
            return self.wechat_error(42001, "access_token expired")
        ids = self.identity_fields(grant)
        if self.arg("openid") != ids["openid"]:
            return self.wechat_error(40003, "invalid openid")
        if grant.scope == "snsapi_base" or grant.snapshot:
            return self.wechat_error(48001, "api unauthorized")
        person = people.person(grant.person)
        assert person is not None
        body: dict[str, Any] = {
            "openid": ids["openid"], "nickname": person.nickname, "sex": 0, "language": "",
            "city": "", "province": "", "country": "",
            "headimgurl": people.avatar_for(person, self.sandbox.base_url), "privilege": [],
        }
        if ids["unionid"]:
            body["unionid"] = ids["unionid"]
        self.write_wechat_json(body)


class RefreshTokenHandler(SnsHandler):
    """GET /sns/oauth2/refresh_token: a new (or extended) access token; the refresh token is not renewed."""

    def get(self) -> None:
        app = self.check_app(with_secret=False)
        if app is None:
            return
        if self.arg("grant_type") != "refresh_token":
            return self.wechat_error(40002, "invalid grant_type")
        token = self.arg("refresh_token")
        if not token:
            return self.wechat_error(41003, "refresh_token missing")
        grant = self.sandbox.state.refresh_tokens.get(token)
        if grant is None or grant.appid != app.appid:
            return self.wechat_error(40030, "invalid refresh_token")
        if time.time() - grant.created > REFRESH_TOKEN_TTL:
            return self.wechat_error(42002, "refresh_token expired")
        access, _ = self.sandbox.state.issue_tokens(grant)
        ids = self.identity_fields(grant)
        self.write_wechat_json({
            "access_token": access, "expires_in": ACCESS_TOKEN_TTL, "refresh_token": token,
            "openid": ids["openid"], "scope": grant.scope,
        })


class AuthHandler(SnsHandler):
    """GET /sns/auth: is this user access token still valid?"""

    def get(self) -> None:
        grant = self.sandbox.state.access_tokens.get(self.arg("access_token"))
        if grant is None:
            return self.wechat_error(40001, "invalid credential, access_token is invalid or not latest")
        if time.time() - grant.created > ACCESS_TOKEN_TTL:
            return self.wechat_error(42001, "access_token expired")
        if self.arg("openid") != self.identity_fields(grant)["openid"]:
            return self.wechat_error(40003, "invalid openid")
        self.write_wechat_json({"errcode": 0, "errmsg": "ok"})


class Jscode2SessionHandler(SnsHandler):
    """GET /sns/jscode2session: a mini-program's wx.login code -> openid, session_key (+ unionid)."""

    def get(self) -> None:
        request = self.code_request("js_code")
        if request is None:
            return
        app, code = request
        if app.kind != "miniprogram":
            return self.wechat_error(40013, "invalid appid")
        grant = self.take_code(app, code, expired_errcode=40029)
        if grant is None:
            return
        person = people.person(grant.person)
        assert person is not None
        key = self.sandbox.state.session_keys.get((app.appid, person.key)) or \
            self.sandbox.state.rotate_session_key(app.appid, person.key)
        body: dict[str, Any] = {"openid": people.openid_for(app.appid, person), "session_key": key}
        unionid = people.unionid_for(person)
        if unionid:
            body["unionid"] = unionid
        self.write_wechat_json(body)  # success omits errcode, as WeChat does nowadays


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/sns/oauth2/access_token", AccessTokenHandler, init),
        tornado.web.url(prefix + r"/sns/userinfo", UserInfoHandler, init),
        tornado.web.url(prefix + r"/sns/oauth2/refresh_token", RefreshTokenHandler, init),
        tornado.web.url(prefix + r"/sns/auth", AuthHandler, init),
        tornado.web.url(prefix + r"/sns/jscode2session", Jscode2SessionHandler, init),
    ]
