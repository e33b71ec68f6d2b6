"""The server URLs WeChat pushes events to: /wechat/push/mp, /wechat/push/miniprogram (and /<kind>/<name>).

Called by WeChat's servers, never by browsers: no cookie is read (so there is nothing for XSRF to
protect), no page is rendered, and every answer is a plain body: the ``echostr``, ``success``, a passive
reply, or an empty 4xx for bad input with one log line (a 503 only when MySQL or a handler failed).
The body is streamed so that the query's signature and timestamp are checked, and a declared size refused,
before any of it is kept: a refused push's body is drained unread (chunks dropped as they arrive), then
refused, because answering before the body is in makes the server close the connection with unread data,
which resets it: the sender would see a reset, not the 4xx. (Bodies over ``[server] max_body_size`` get
Tornado's own 400 as everywhere.) The query's ``openid`` is ignored: WeChat's signature does not cover it.
"""

from __future__ import annotations

import logging
from typing import Any

import tornado.web

from wxlogin import dbbudget
from wxlogin.errors import WxLoginError
from wxlogin.handlers.base import public
from wxlogin.services import Services
from wxlogin.services.pushes import (
    MAX_PUSH_BODY,
    PushApp,
    PushMalformed,
    PushNotHandled,
    PushQuery,
    PushRejected,
    PushReply,
    PushTooLarge,
    PushUnauthentic,
)

logger = logging.getLogger(__name__)

PUSH_DB_BUDGET = 2.0  # seconds of MySQL waiting per push, well inside WeChat's 5 s
_QUERY = ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature")


def _status(exc: PushRejected) -> int:
    if isinstance(exc, PushTooLarge):
        return 413
    if isinstance(exc, PushUnauthentic):
        return 403
    return 400


@tornado.web.stream_request_body
class PushHandler(tornado.web.RequestHandler):
    """GET: WeChat's URL check. POST: an event or message."""

    SUPPORTED_METHODS: tuple[str, ...] = ("GET", "POST")

    services: Services
    push_app: PushApp | None = None
    query: PushQuery
    refusal: PushRejected | None = None  # decided in prepare, answered once the body is drained

    def initialize(self) -> None:
        self.services = self.application.settings["services"]
        self.chunks: list[bytes] = []
        self.received = 0
        self._counted = self.application.settings.get("in_flight")
        if self._counted is not None:
            self._counted.started()

    def on_finish(self) -> None:
        if self._counted is not None:
            self._counted.finished()
            self._counted = None

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.clear_header("Server")

    def check_xsrf_cookie(self) -> None:
        return None  # WeChat's servers hold no cookie of ours; the signature is the authentication

    @property
    def label(self) -> str:
        return self.push_app.label if self.push_app is not None else "/".join(self.path_args)

    async def prepare(self) -> None:
        mysql = self.services.settings.mysql
        dbbudget.open_budget(min(mysql.acquire_timeout + mysql.query_timeout, PUSH_DB_BUDGET))
        kind, name = self.path_args[0], (self.path_args[1] if len(self.path_args) > 1 else "")
        self.push_app = self.services.pushes.app(kind, name)
        if self.push_app is None:
            raise tornado.web.HTTPError(404)  # no such app, or it has no push_token
        try:
            self.query = self._query()
            self.services.pushes.authenticate(self.push_app, self.query)
            declared = self.request.headers.get("Content-Length", "0")
            if self.request.method == "POST" and (not declared.isdigit() or int(declared) > MAX_PUSH_BODY):
                raise PushTooLarge(f"Content-Length {declared[:20]}")
        except PushRejected as exc:
            if self.request.method == "POST":
                self.refusal = exc
            else:
                self.refuse(exc)

    def data_received(self, chunk: bytes) -> None:
        # A chunked body has no Content-Length to refuse up front: keep at most the cap, note the excess.
        self.received += len(chunk)
        if self.refusal is None and self.received <= MAX_PUSH_BODY:
            self.chunks.append(chunk)

    def _query(self) -> PushQuery:
        values: dict[str, str] = {}
        for name in _QUERY:
            raw = self.request.query_arguments.get(name, [])
            if len(raw) > 1:
                raise PushMalformed(f"{name} repeated")
            try:
                values[name] = raw[0].decode("utf-8") if raw else ""
            except UnicodeDecodeError:
                raise PushMalformed(f"{name} is not UTF-8") from None
        return PushQuery(**values)

    def refuse(self, exc: PushRejected) -> None:
        status = _status(exc)
        logger.warning("push %s: refused with %d (%s)", self.label, status, exc.reason)
        self.set_status(status)
        self.finish()

    @public
    def get(self, *_: str) -> None:
        assert self.push_app is not None  # prepare answered 404 otherwise
        try:
            echostr = self.services.pushes.echo(self.push_app, self.query)
        except PushRejected as exc:
            self.refuse(exc)
            return
        self.finish(echostr)

    @public
    async def post(self, *_: str) -> None:
        assert self.push_app is not None
        if self.refusal is not None:
            self.refuse(self.refusal)
            return
        if self.received > MAX_PUSH_BODY:
            self.refuse(PushTooLarge(f"{self.received} bytes, chunked"))
            return
        try:
            reply = await self.receive(b"".join(self.chunks))
        except PushRejected as exc:
            self.refuse(exc)
            return
        except PushNotHandled:
            self.set_status(503)  # the service logged why; WeChat may retry, and the retry is handled again
            self.finish()
            return
        except WxLoginError as exc:  # MySQL unavailable or overloaded: the claim could not be recorded
            logger.warning("push %s: not taken (%s)", self.label, exc.code)
            self.set_status(503)
            self.finish()
            return
        self.set_header("Content-Type", reply.content_type)
        self.finish(reply.body)

    async def receive(self, body: bytes) -> PushReply:
        """Hand the body to the push service (handlers/forward.py hands it over differently)."""
        assert self.push_app is not None
        return await self.services.pushes.receive(self.push_app, self.query, body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish()  # WeChat reads no error pages: the status says it all

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return  # 404/405: the access log has the line
        super().log_exception(typ, value, tb)


routes = [
    tornado.web.url(r"/wechat/push/(mp|miniprogram)", PushHandler, name="wechat_push"),
    tornado.web.url(r"/wechat/push/(mp|miniprogram)/([A-Za-z0-9_-]{1,32})", PushHandler, name="wechat_push_named"),
]
