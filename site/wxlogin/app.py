"""make_app(settings, services, assets): the Tornado application (Jinja environment, routes, 404 last)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import tornado.web

from wxlogin.config import PUSH_KINDS, Settings
from wxlogin.handlers import admin, api, avatars, closing, forward, legal, oauth, pages, push, scenes
from wxlogin.handlers import metrics as metrics_handlers
from wxlogin.handlers.i18n import LOCALES, CompiledGettext
from wxlogin.handlers.inflight import InFlight
from wxlogin.handlers.pages import NotFoundHandler
from wxlogin.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assets:
    """Where the Jinja templates and the static files are.

    Given by the caller (server.py sits beside them), never derived from this module's own path: in a
    wheel install this module lives in site-packages, far from the project's templates/ and static/.
    """

    templates: Path
    static: Path

    @classmethod
    def beside(cls, root: Path) -> Assets:
        """The project layout: ``root/templates`` and ``root/static``."""
        return cls(templates=root / "templates", static=root / "static")

    def missing(self) -> list[Path]:
        """The directories that do not exist (empty when all is well)."""
        return [path for path in (self.templates, self.static) if not path.is_dir()]


def make_jinja_env(debug: bool, locale: str = "zh", *, templates: Path) -> jinja2.Environment:
    """The environment for one locale: autoescape, StrictUndefined, reloading only in debug.

    Fixed ``_("...")`` text is translated while compiling (``CompiledGettext``), hence one per locale.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=jinja2.select_autoescape(("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        auto_reload=debug,
        cache_size=400,
        extensions=[CompiledGettext],
    )
    env.extend(wx_locale=locale)
    return env


def content_security_policy(settings: Settings) -> str:
    """CSP for pages: only our own resources, plus WeChat's QR page in a frame and avatars over https."""
    qr = urlsplit(settings.wechat.open_base)
    frame = "'self'" if qr.netloc == urlsplit(settings.server.public_url).netloc else f"{qr.scheme}://{qr.netloc}"
    return (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
        f"frame-src {frame}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    )


def cookie_names(settings: Settings) -> dict[str, str]:
    # __Host- cookies must be Secure; local development runs on plain http, so the prefix follows public_url.
    prefix = "__Host-" if settings.server.secure_cookies else ""
    return {"session": prefix + "wxsid", "binding": prefix + "wxstate", "scene": prefix + "wxscene"}


access_log = logging.getLogger("tornado.access")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log without query strings: callback URLs carry WeChat codes, which must not be logged."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s %.1fms", status, handler.request.method, handler.request.path,
                   1000.0 * handler.request.request_time())


def make_app(settings: Settings, services: Services, assets: Assets) -> tornado.web.Application:
    """Build the application; reads nothing global."""
    if assets.missing():
        raise FileNotFoundError(f"wxlogin: asset directory {str(assets.missing()[0])!r} does not exist")
    jinja_envs = {locale: make_jinja_env(settings.server.debug, locale, templates=assets.templates)
                  for locale in LOCALES}
    jinja_env = jinja_envs["zh"]  # the sandbox's pages are Chinese only, like WeChat's
    routes = (pages.routes + oauth.routes + api.routes + push.routes + forward.routes + avatars.routes
              + scenes.routes + legal.routes + closing.routes + admin.routes)
    emulator = None
    if settings.wechat.sandbox:
        from wxlogin import sandbox

        emulator = sandbox.build_sandbox(settings, jinja_env)
        routes = routes + sandbox.routes(emulator)
    secure = settings.server.secure_cookies
    return tornado.web.Application(
        routes,
        services=services,
        sandbox=emulator,
        jinja_envs=jinja_envs,
        static_urls={},  # path -> versioned URL, filled on first use (the files do not change while serving)
        csp=content_security_policy(settings),
        in_flight=InFlight(),
        cookie_names=cookie_names(settings),
        static_path=str(assets.static),
        static_url_prefix="/static/",
        static_handler_class=pages.StaticHandler,
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Lax", "secure": secure},
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        debug=False,
        autoreload=False,
        compiled_template_cache=True,
        serve_traceback=False,
        compress_response=False,
    )


def make_metrics_app(services: Services) -> tornado.web.Application:
    """The metrics listener's application: GET /metrics and nothing else (issue 16).

    Its own Application on its own socket, so nothing of the public site (pages, cookies, the sandbox) is
    reachable there and /metrics is not reachable on the public port.
    """
    return tornado.web.Application(metrics_handlers.routes(services), log_function=log_request, debug=False,
                                   autoreload=False, serve_traceback=False, compress_response=False)


def push_urls(settings: Settings) -> list[tuple[str, str]]:
    """(settings key, URL) of each push endpoint to paste into WeChat's console ("服务器地址(URL)"), reversed
    from the routes themselves (an Application of just those routes); only apps with a push token have one."""
    app = tornado.web.Application(push.routes + forward.routes)
    found: list[tuple[str, str]] = []
    base = settings.server.public_url
    for kind in PUSH_KINDS:
        for name, push_app in settings.wechat.push_apps(kind).items():
            if not push_app.push_token.value:
                continue
            path = app.reverse_url("wechat_push_named", kind, name) if name else app.reverse_url("wechat_push", kind)
            table = f"[wechat.more.{kind}.{name}]" if name else f"[wechat.{kind}]"
            found.append((f"{table} push_token", base + path))
    forward_secret = settings.wechat.mp.forward_secret.value
    if forward_secret:
        found.append(("[wechat.mp] forward_secret", base + app.reverse_url("wechat_forward")))
    return found
