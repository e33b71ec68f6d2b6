"""What every sandbox handler shares: the emulator's state, the registered apps, and the SANDBOX marks."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jinja2
import tornado.web

from wxlogin.sandbox.state import SandboxState


@dataclass(frozen=True)
class RegisteredApp:
    appid: str
    secret: str
    kind: str  # web | mp | app | miniprogram
    name: str = ""  # "" for the default app of its kind, else the site's [wechat.more.<kind>.<name>]
    push_token: str = ""  # the console's event-push settings (mp and miniprogram): sandbox/push.py
    push_aes_key: str = ""


@dataclass
class Sandbox:
    """The emulator: its public base URL, the apps registered with 'WeChat', and its memory."""

    base_url: str  # where the sandbox is served, e.g. http://127.0.0.1:8000/_sandbox
    callback_host: str  # the reviewed callback domain (host[:port]) of the website and official account
    apps: dict[str, RegisteredApp]
    jinja_env: jinja2.Environment
    path_prefix: str = "/_sandbox"
    state: SandboxState = field(default_factory=SandboxState)

    def app(self, appid: str, kind: str | None = None) -> RegisteredApp | None:
        found = self.apps.get(appid)
        if found is None or (kind is not None and found.kind != kind):
            return None
        return found

    def named(self, kind: str, name: object = "") -> RegisteredApp | None:
        """The app of ``kind`` the site calls ``name`` ("" or absent: the default one): what the developer
        endpoints' ``"app"`` field picks, as a phone holds one mini-program or app, not another."""
        name = "" if name is None else name
        return next((a for a in self.apps.values() if a.kind == kind and a.name == name), None)

    def redirect_allowed(self, redirect_uri: str) -> bool:
        parts = urlsplit(redirect_uri)
        return parts.scheme in ("http", "https") and parts.netloc == self.callback_host


class SandboxHandler(tornado.web.RequestHandler):
    """Base for the emulator's handlers; every response says it comes from the sandbox."""

    sandbox: Sandbox

    def initialize(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def set_default_headers(self) -> None:
        self.set_header("X-WeChat-Sandbox", "1")
        self.set_header("X-Content-Type-Options", "nosniff")
        # The QR page is framed by the site's login page, like WeChat's own qrconnect.
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'self'; base-uri 'none'",
        )

    @property
    def english(self) -> bool:
        """``?lang=en`` (what the site passes to WeChat's QR page): the sandbox's pages speak English."""
        return self.get_query_argument("lang", "") == "en"

    def render_page(self, name: str, **context: Any) -> None:
        template = self.sandbox.jinja_env.get_template(name)
        context.setdefault("status_code", 200)
        context.setdefault("en", self.english)
        self.set_status(context["status_code"])
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(template.render(base_url=self.sandbox.base_url, xsrf_token=self.xsrf_token.decode(), **context))

    def write_wechat_json(self, data: dict[str, Any]) -> None:
        """Answer like WeChat's API: HTTP 200 always, UTF-8 JSON labelled with 'encoding=' (sic)."""
        self.set_header("Content-Type", "application/json; encoding=utf-8")
        self.finish(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def wechat_error(self, errcode: int, errmsg: str) -> None:
        rid = f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        self.write_wechat_json({"errcode": errcode, "errmsg": f"{errmsg} rid: {rid}"})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"SANDBOX: HTTP {status_code}\n")
