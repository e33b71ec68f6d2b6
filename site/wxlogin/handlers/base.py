"""BaseHandler: the signed-in person, one render method, security headers, and errors as friendly pages.

``prepare`` resolves the session and never lets it 500: a bad cookie means anonymous (and is cleared),
a database outage is a 503 page. Every handler method is marked ``public`` or ``login_required`` so a
test can walk the routes and prove none was forgotten.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
import markupsafe
import tornado.web

from wxlogin import dbbudget, wxdeadline
from wxlogin.errors import DatabaseUnavailable, DeletionPending, WxLoginError
from wxlogin.handlers.brand import BrandView
from wxlogin.handlers.errors import ErrorPage, Retry, api_error, error_page
from wxlogin.handlers.i18n import Translator, choose_locale
from wxlogin.models import RequestContext, SessionClaims, User
from wxlogin.services import Services
from wxlogin.services.sessions import ResolvedSession
from wxlogin.useragent import Surface, classify, in_wechat

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP")
_MAX_WARNED_PEERS = 1024  # one line per peer, and never an unbounded set


def public(method: F) -> F:
    """Mark a handler method as open to anonymous visitors."""
    method.access = "public"  # type: ignore[attr-defined]
    return method


def login_required(method: F) -> F:
    """Mark a handler method as needing a signed-in person; others go to /login and come back."""

    @functools.wraps(method)
    async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.reverse_url("login") + "?" + urlencode({"next": self.request.uri}))
                return None
            raise tornado.web.HTTPError(403)
        if self.current_user.deletion_pending and not self.allowed_while_pending:
            # A closing account (issue 16) only restores, exports and signs out: every other page offers
            # the choice instead, and every other action is refused.
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.reverse_url("account_close"))
                return None
            raise DeletionPending()
        result = method(self, *args, **kwargs)
        if isinstance(result, Awaitable):
            return await result
        return result

    wrapper.access = "login_required"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class BaseHandler(tornado.web.RequestHandler):
    """Common ground for every page and API handler."""

    services: Services
    session: ResolvedSession | None = None
    # Open to a closing account (注销, grace period): restore, export, sign out, the closing page (issue 16).
    allowed_while_pending = False

    def initialize(self) -> None:
        self.services = self.application.settings["services"]
        self.session = None
        self._session_checked = False  # True once a session cookie was resolved (or found invalid)
        self._counted = self.application.settings.get("in_flight")
        if self._counted is not None:
            self._counted.started()
        self._warn_untrusted_forwarding()

    def on_finish(self) -> None:
        if self._counted is not None:
            self._counted.finished()
            self._counted = None

    # --- identity -------------------------------------------------------------------------

    @property
    def cookie_names(self) -> dict[str, str]:
        names: dict[str, str] = self.application.settings["cookie_names"]
        return names

    @property
    def secure_cookies(self) -> bool:
        return self.services.settings.server.secure_cookies

    def check_xsrf_cookie(self) -> None:
        """Cookie-authenticated writes: same-origin only (Origin, Sec-Fetch-Site), then Tornado's XSRF token.

        SameSite=Lax and the token already stop forged posts; the origin check is the second lock the
        OWASP cheat sheet asks for, and it refuses ``Origin: null`` (sandboxed frames, data: URLs).
        """
        if self.request.headers.get("Sec-Fetch-Site", "") == "cross-site":
            raise tornado.web.HTTPError(403, "cross-site request")
        origin = self.request.headers.get("Origin")
        if origin is not None and origin != self.services.settings.server.public_origin:
            raise tornado.web.HTTPError(403, "foreign origin")
        super().check_xsrf_cookie()

    def open_db_budget(self) -> None:
        """One request waits on MySQL for at most one acquire plus one query timeout in total."""
        mysql = self.services.settings.mysql
        dbbudget.open_budget(mysql.acquire_timeout + mysql.query_timeout)

    def open_wechat_deadline(self) -> None:
        """One request waits on WeChat (its queue, both calls of a login, the retry) until one deadline."""
        wxdeadline.open_deadline(self.services.settings.wechat.login_deadline)

    async def prepare(self) -> None:
        self.open_db_budget()
        self.open_wechat_deadline()
        chosen = self.get_query_argument("lang", None)
        if chosen in ("zh", "en"):
            self.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="Lax", secure=self.secure_cookies)
        value = self.get_cookie(self.cookie_names["session"])
        if not value:
            return
        self.session = await self.services.sessions.resolve(value)
        self._session_checked = True
        if self.session is None:
            self.clear_session_cookie()
        elif self.session.needs_refresh:
            self.set_session_cookie(self.services.sessions.cookie_value(self.session.claims))

    @property
    def surface(self) -> Surface:
        """Where the visitor is. In sandbox mode only, ?sandbox_ua=wechat lets a laptop play the WeChat browser."""
        if self.services.settings.wechat.sandbox:
            chosen = self.get_query_argument("sandbox_ua", None)
            if chosen in ("wechat", "off"):
                self.set_cookie("sandbox_ua", chosen, httponly=True, samesite="Lax")
            if (chosen or self.get_cookie("sandbox_ua")) == "wechat":
                return Surface.WECHAT
        return classify(self.request.headers.get("User-Agent"))

    def get_current_user(self) -> User | None:
        return self.session.user if self.session else None

    @property
    def signed_in_user(self) -> User:
        """The person, inside a method marked ``login_required`` (which guarantees there is one)."""
        user: User | None = self.current_user
        if user is None:
            raise tornado.web.HTTPError(403)
        return user

    @property
    def session_claims(self) -> SessionClaims | None:
        return self.session.claims if self.session else None

    def set_session_cookie(self, value: str) -> None:
        self.set_cookie(
            self.cookie_names["session"], value, max_age=self.services.settings.server.session_max_age,
            httponly=True, secure=self.secure_cookies, samesite="Lax",
        )

    def start_session(self, value: str) -> None:
        """Hand the browser a freshly signed-in session, with a new XSRF token to go with it.

        A token planted or read before the login (checklist item 28) must not carry over into the session.
        """
        self.set_session_cookie(value)
        self.clear_cookie("_xsrf", httponly=True, secure=self.secure_cookies, samesite="Lax")

    def after_sign_in(self, user: User, next_path: str) -> str:
        """Where a fresh sign-in goes: ``next_path``, or for a closing account the page offering to cancel."""
        return self.reverse_url("account_close") if user.deletion_pending else next_path

    def clear_session_cookie(self) -> None:
        self.clear_cookie(self.cookie_names["session"], httponly=True, secure=self.secure_cookies, samesite="Lax")

    def request_context(self) -> RequestContext:
        return RequestContext(ip=self.client_ip(), user_agent=self.request.headers.get("User-Agent", "")[:255])

    def _warn_untrusted_forwarding(self) -> None:
        """Say once per peer that it forwards client addresses we ignore (the usual cause: a proxy that is
        missing from trusted_proxies, which puts every client behind it into one rate-limit budget)."""
        peer = self.request.remote_ip or ""
        warned: set[str] = self.application.settings.setdefault("untrusted_forwarders", set())
        if peer in warned or peer in self.services.settings.ratelimit.trusted_proxies:
            return
        if len(warned) >= _MAX_WARNED_PEERS or not any(h in self.request.headers for h in _FORWARDING_HEADERS):
            return
        warned.add(peer)
        logger.warning(
            "requests from %s carry X-Forwarded-For or X-Real-IP, but %s is not in [ratelimit] trusted_proxies: "
            "the header is ignored, so rate limits and the login audit see every client behind it as %s "
            "(if it is your proxy, add it to trusted_proxies)", peer, peer, peer,
        )

    def client_ip(self) -> str:
        # X-Forwarded-For is honoured only from a configured proxy; anyone can send the header.
        peer = self.request.remote_ip or ""
        if peer in self.services.settings.ratelimit.trusted_proxies:
            forwarded = self.request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
            if forwarded:
                return forwarded[:45]
        return peer[:45]

    # --- rendering --------------------------------------------------------------------------

    @property
    def locale_code(self) -> str:
        return choose_locale(
            self.get_query_argument("lang", None), self.get_cookie("lang"),
            self.request.headers.get("Accept-Language", ""),
        )

    def render_template(self, name: str, **context: Any) -> None:
        """Render a Jinja2 template with the common namespace; fetch data before calling this."""
        translator = Translator(self.locale_code)
        env: jinja2.Environment = self.application.settings["jinja_envs"][translator.locale]
        namespace = {
            "current_user": self.current_user,
            "static_url": self._cached_static_url,
            "reverse_url": self.reverse_url,
            # Lazy: only pages with a form set the XSRF cookie (and pay for the token).
            "xsrf_token": _Lazy(lambda: self.xsrf_token.decode("ascii")),
            "locale": translator.locale,
            "_": translator.gettext,
            "sandbox": self.services.settings.wechat.sandbox,
            "request_path": self.route_path(),
            "lang_switch_url": self._lang_switch_url(translator.locale),
            "brand": self.brand,
            # A session cookie the database could not check (it is down or busy): the person may be signed in,
            # so the page offers no "sign in" (issue 15).
            "session_unknown": bool(self.get_cookie(self.cookie_names["session"])) and not self._session_checked,
        }
        namespace.update(context)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(env.get_template(name).render(**namespace))

    @property
    def brand(self) -> BrandView:
        """The site's name, logo, colours, legal links and footer lines ([brand]), built once per application."""
        view: BrandView | None = self.application.settings.get("brand_view")
        if view is None:
            view = BrandView.build(self.services.settings.brand, self._cached_static_url, self.reverse_url)
            self.application.settings["brand_view"] = view
        return view

    def _cached_static_url(self, path: str) -> str:
        if self.services.settings.server.debug:
            return self.static_url(path)  # files may change while a developer works
        cache: dict[str, str] = self.application.settings["static_urls"]
        url = cache.get(path)
        if url is None:
            url = cache[path] = self.static_url(path)
        return url

    def route_path(self) -> str:
        """This page's path rebuilt from its named route, never the raw request path; home when unrouted.

        A raw path such as ``//evil.com`` printed into a link would point at another site.
        """
        for rule in self.application.wildcard_router.rules:
            if rule.target is type(self) and rule.name:
                return self.reverse_url(rule.name, *self.path_args)
        return self.reverse_url("home")

    def _lang_switch_url(self, locale: str) -> str:
        query = [(k, v[-1].decode("utf-8", "replace")) for k, v in self.request.query_arguments.items() if k != "lang"]
        query.append(("lang", "zh" if locale == "en" else "en"))
        return self.route_path() + "?" + urlencode(query)

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")  # with clear_header("Server"): pages.plain_headers
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", self.application.settings["csp"])
        self.clear_header("Server")

    # --- errors -------------------------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Status, text and headers all come from the one table in handlers/errors.py.
        page = error_page(kwargs.get("exc_info", (None, None, None))[1], status_code,
                          in_wechat=in_wechat(classify(self.request.headers.get("User-Agent"))))
        self.set_status(page.status)
        self.set_header("Cache-Control", "no-store")
        for name, value in page.headers:
            self.set_header(name, value)
        self.render_template("error.html", page=page, **self._next_step(page))

    def _next_step(self, page: ErrorPage) -> dict[str, str | None]:
        """The error page's main button: sign in again, back to the account, try the same page again, or none.

        Never "sign in again" to someone who is signed in, or may be: when the database is down or busy the
        session cookie cannot be checked, so a 503 (``Retry.RELOAD``) offers "try again" whoever is asking.
        """
        if not page.retry:
            return {"retry_url": None, "retry_label": None}
        if page.retry_by is Retry.RELOAD:
            # href="" reloads this very address without printing its query (a callback's code) into the page;
            # only a GET is safe to repeat that way.
            if self.request.method in ("GET", "HEAD"):
                return {"retry_url": "", "retry_label": "重试"}
            return {"retry_url": None, "retry_label": None}
        if self.current_user is not None:
            return {"retry_url": self.reverse_url("account"), "retry_label": "返回我的账号"}
        return {"retry_url": self.get_retry_url(), "retry_label": "重新登录"}

    def write_json_error(self, status_code: int, **kwargs: Any) -> None:
        """For page routes that scripts call: the API's JSON error answer (one error table), not a page."""
        answer = api_error(kwargs.get("exc_info", (None, None, None))[1], status_code)
        self.clear()
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in answer.headers:
            self.set_header(name, value)
        self.finish(json.dumps(answer.body(), ensure_ascii=False))

    def get_retry_url(self) -> str:
        return self.reverse_url("login")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Expected failures get one warning line; only real bugs get "Uncaught exception", with the
        # traceback for operators. Every line names the method and the path, never the URI or the
        # request's repr (Tornado's own line prints both): a callback's query string carries WeChat's
        # code and our state. A bug answers the table's bare 500 (internal_error: a clean page or JSON,
        # no stack trace), which the reliability figures count as a defect.
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, DatabaseUnavailable):
            logger.warning("%s: database unavailable (%s)", where, value.detail)
        elif isinstance(value, WxLoginError):
            logger.warning("%s: %s", where, value.code)
        elif isinstance(value, tornado.web.HTTPError):
            if value.status_code >= 500:
                logger.warning("%s: HTTP %d", where, value.status_code)
        else:
            logger.error("Uncaught exception %s", where, exc_info=(typ, value, tb))


class _Lazy:
    """A template value computed the first time a template prints it (Jinja calls ``__html__``)."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = self._make()
        return self._value

    def __html__(self) -> str:
        return str(markupsafe.escape(str(self)))
