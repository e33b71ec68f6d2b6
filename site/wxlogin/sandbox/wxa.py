"""The emulated mini-program APIs that take the app's own token (wechat-platform.md sections 2 and 4):
``POST /wxa/business/getuserphonenumber``, ``GET /wxa/checksession``, ``GET /wxa/resetusersessionkey``, and
the developer endpoint that plays the getPhoneNumber button (``POST /dev/phone-code``).

WeChat's documented errcodes: 40029 (a phone code wrong, expired, used, another app's or another person's),
87009 (checksession/reset: the signature is not the current session_key's), 87008 (sig_method other than
hmac_sha256), 40003 (unknown openid), 47001 (body not JSON), 48001 (not a mini-program's token), and the
app-token ones (40001, 40014, 41001, 42001) from ``state.check_app_token``. Scripted people
(``people.SCRIPTED_ERRORS``) make these answer 40226/45011/-1; ``people.APP_TOKEN_FAULTS`` make the site's
app token die just before the first call with their phone code (40001 or 42001). The signature is
computed here with the standard library, never with the site's code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import tornado.routing
import tornado.web

from wxlogin.sandbox import people
from wxlogin.sandbox.base import RegisteredApp
from wxlogin.sandbox.cgi import CgiHandler
from wxlogin.sandbox.dev import DevHandler
from wxlogin.sandbox.state import CODE_TTL


class WxaHandler(CgiHandler):
    """A mini-program API: a valid app token of a registered mini-program, or WeChat's errcode."""

    def token_app(self) -> RegisteredApp | None:
        token = self.check_token()
        if token is None:
            return None
        app = self.sandbox.app(self.sandbox.state.app_token_appid(token) or "")
        if app is None or app.kind != "miniprogram":
            self.wechat_error(48001, "api unauthorized")
            return None
        return app

    def person_of(self, appid: str, openid: str) -> tuple[people.Person, str] | None:
        """The person with this openid under ``appid`` and their current session_key, if they ever had one."""
        for (key_appid, key), session_key in self.sandbox.state.session_keys.items():
            someone = people.person(key) if key_appid == appid else None
            if someone is not None and people.openid_for(appid, someone) == openid:
                return someone, session_key
        return None

    def signed_person(self, app: RegisteredApp) -> tuple[people.Person, str] | None:
        """Check openid, sig_method and signature = hex HMAC-SHA256(session_key text, ""); answer errors."""
        if self.get_query_argument("sig_method", "") != "hmac_sha256":
            self.wechat_error(87008, "invalid sig_method")
            return None
        found = self.person_of(app.appid, self.get_query_argument("openid", "") or "")
        if found is None:
            self.wechat_error(40003, "invalid openid")
            return None
        someone, session_key = found
        checks = sum(1 for o in self.sandbox.state.session_checks if o == people.openid_for(app.appid, someone))
        self.sandbox.state.session_checks.append(people.openid_for(app.appid, someone))
        scripted = people.scripted_error(someone.key, checks + 1)
        if scripted:
            self.wechat_error(*scripted)
            return None
        expected = hmac.new(session_key.encode(), b"", hashlib.sha256).hexdigest()
        given = self.get_query_argument("signature", "") or ""
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            self.wechat_error(87009, "invalid signature")
            return None
        return someone, session_key


class PhoneNumberHandler(WxaHandler):
    """POST /wxa/business/getuserphonenumber?access_token= {"code", optional "openid"}: the button's number."""

    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"")
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        grant = self.sandbox.state.phone_codes.get(code) if isinstance(code, str) else None
        if grant is not None and not grant.fault_played:
            grant.fault_played = True
            self.play_token_fault(grant.appid, people.app_token_fault(grant.person))
        if isinstance(code, str):
            self.sandbox.state.phone_calls.append(code)
        app = self.token_app()
        if app is None:
            return None
        if not isinstance(body, dict) or not isinstance(code, str) or not code:
            return self.wechat_error(47001, "data format error")
        if grant is None or grant.appid != app.appid:
            return self.wechat_error(40029, "invalid code")
        grant.attempts += 1
        scripted = people.scripted_error(grant.person, grant.attempts)
        if scripted:
            return self.wechat_error(*scripted)
        if grant.used:
            return self.wechat_error(40029, "invalid code, code been used")
        if time.time() - grant.created > CODE_TTL:
            return self.wechat_error(40029, "invalid code, code expired")
        someone = people.person(grant.person)
        assert someone is not None
        openid = body.get("openid")
        if openid is not None and openid != people.openid_for(app.appid, someone):
            return self.wechat_error(40029, "invalid code, code and openid do not match")
        grant.used = True
        self.sandbox.state.phone_billed[app.appid] += 1  # what WeChat would charge the site for
        country, national = people.phone_for(someone)
        self.write_wechat_json({"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": national if country == "86" else f"+{country}{national}",
            "purePhoneNumber": national, "countryCode": country,
            "watermark": {"timestamp": int(time.time()), "appid": app.appid}}})
        return None

    def play_token_fault(self, appid: str, fault: str | None) -> None:
        """The site's app token dies just now: revoked (40001), or past its expiry (42001)."""
        if fault == "revoked":
            self.sandbox.state.revoke_app_tokens(appid)
        elif fault == "tokenexpired":
            self.sandbox.state.age_app_token(appid, 10 * 7200)


class CheckSessionHandler(WxaHandler):
    """GET /wxa/checksession?access_token=&openid=&signature=&sig_method=hmac_sha256: is the key current?"""

    def get(self) -> None:
        app = self.token_app()
        if app is None or self.signed_person(app) is None:
            return
        self.write_wechat_json({"errcode": 0, "errmsg": "ok"})


class ResetSessionKeyHandler(WxaHandler):
    """GET /wxa/resetusersessionkey (same query): a new session_key for the person, the old one is stale."""

    def get(self) -> None:
        app = self.token_app()
        found = self.signed_person(app) if app is not None else None
        if app is None or found is None:
            return
        someone, _ = found
        fresh = self.sandbox.state.rotate_session_key(app.appid, someone.key)
        self.write_wechat_json({"errcode": 0, "errmsg": "ok", "openid": people.openid_for(app.appid, someone),
                                "session_key": fresh})


class PhoneCodeHandler(DevHandler):
    """POST /dev/phone-code {"person"}: what the getPhoneNumber button's event hands the mini-program."""

    def post(self) -> None:
        person, appid = self.person_and_app("miniprogram")
        self.finish({"code": self.sandbox.state.issue_phone_code(appid, person.key), "errMsg": "getPhoneNumber:ok"})


def routes(prefix: str, init: dict[str, Any]) -> list[tornado.routing.URLSpec]:
    return [
        tornado.web.url(prefix + r"/wxa/business/getuserphonenumber", PhoneNumberHandler, init),
        tornado.web.url(prefix + r"/wxa/checksession", CheckSessionHandler, init),
        tornado.web.url(prefix + r"/wxa/resetusersessionkey", ResetSessionKeyHandler, init),
        tornado.web.url(prefix + r"/dev/phone-code", PhoneCodeHandler, init),
    ]
