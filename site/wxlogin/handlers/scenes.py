"""The desktop waiting page's transport for scan-login scenes: SSE, a long-poll fallback, the QR, completion.

The browser that asked for a scene holds its binding secret in an HttpOnly cookie (``wxscene``: up to four
``<scene>_<secret>`` pairs, so several tabs work); every route here needs it, and a browser without it is
told the scene does not exist (404), whatever the scene's state. The page learns the scene's state from
``/events`` (server-sent events: ``retry:``, ``id:`` = the state, ``Last-Event-ID`` honoured, a comment
every 15 s, closed once the state is final) or, where EventSource fails, from ``/wait?after=<state>``
(answers at once when the state differs, else within 25 s). Once confirmed, the page POSTs ``/complete``
(XSRF-checked), which signs this browser in with a fresh session and answers where to go.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from typing import Any

import tornado.iostream
import tornado.web

from wxlogin.errors import BadRequest, SceneExpired, SceneNotFound, SceneRefused, SceneUsed
from wxlogin.handlers.base import BaseHandler, public
from wxlogin.models import SceneStatus
from wxlogin.services.scenes import SCENE_RE

logger = logging.getLogger(__name__)

MAX_BOUND_SCENES = 4  # scenes one browser may be waiting on at once (tabs)
_PAIR_RE = re.compile(r"^([A-Za-z0-9]{32})_([0-9a-f]{32})$")
RETRY_MS = 2000  # how soon EventSource reconnects after a dropped stream
HEARTBEAT_SECONDS = 15.0  # a comment line, so proxies and browsers keep an idle stream open
LONG_POLL_SECONDS = 25.0  # below nginx's and browsers' usual 30-60 s idle limits
# The page has nothing more to learn once the scene reached one of these: the stream ends there.
_LAST_STATES = (SceneStatus.CONFIRMED, SceneStatus.REFUSED, SceneStatus.EXPIRED, SceneStatus.DONE)
_STATE_NAMES = frozenset(status.value for status in SceneStatus)


def scene_secret(handler: BaseHandler, scene: str) -> str:
    """The binding secret this browser holds for ``scene``, or "" (never another scene's)."""
    raw = handler.get_cookie(handler.cookie_names["scene"]) or ""
    for pair in raw.split(".")[:MAX_BOUND_SCENES]:
        match = _PAIR_RE.match(pair)
        if match and hmac.compare_digest(match.group(1), scene):
            return match.group(2)
    return ""


def bind_scene(handler: BaseHandler, scene: str, secret: str) -> None:
    """Remember in this browser that it asked for ``scene`` (newest first, at most four)."""
    raw = handler.get_cookie(handler.cookie_names["scene"]) or ""
    kept = [p for p in raw.split(".") if _PAIR_RE.match(p) and not p.startswith(scene + "_")]
    pairs = [f"{scene}_{secret}", *kept][:MAX_BOUND_SCENES]
    _write(handler, pairs)


def unbind_scene(handler: BaseHandler, scene: str) -> None:
    """Forget a scene this browser finished with."""
    raw = handler.get_cookie(handler.cookie_names["scene"]) or ""
    kept = [p for p in raw.split(".") if _PAIR_RE.match(p) and not p.startswith(scene + "_")]
    if kept:
        _write(handler, kept[:MAX_BOUND_SCENES])
    else:
        handler.clear_cookie(handler.cookie_names["scene"], httponly=True, secure=handler.secure_cookies,
                             samesite="Lax")


def _write(handler: BaseHandler, pairs: list[str]) -> None:
    settings = handler.services.settings
    # Lives as long as a scene can still be completed (its life and the grace for a late completion).
    handler.set_cookie(handler.cookie_names["scene"], ".".join(pairs), max_age=settings.wechat.scene_max_age + 60,
                       httponly=True, secure=handler.secure_cookies, samesite="Lax")


class SceneHandler(BaseHandler):
    """Common ground: the scene from the path, the binding from the cookie, errors as JSON."""

    _closed: asyncio.Event | None = None

    def secret_for(self, scene: str) -> str:
        if not SCENE_RE.match(scene):  # the route admits only well-formed ids; belt and braces
            raise SceneNotFound()
        return scene_secret(self, scene)

    def on_connection_close(self) -> None:
        if self._closed is not None:
            self._closed.set()
        super().on_connection_close()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.write_json_error(status_code, **kwargs)  # read by scene.js (fetch, EventSource, <img>)

    async def _next_or_closed(self, wait: Any, known: SceneStatus | None, timeout: float) -> SceneStatus | None:
        """``wait.next``, given up as soon as the browser hangs up (its wait must not hold a slot)."""
        assert self._closed is not None
        waiter = asyncio.ensure_future(wait.next(known, timeout))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not waiter.done():
                waiter.cancel()
        return waiter.result() if waiter.done() and not waiter.cancelled() else None


def _event(status: SceneStatus) -> str:
    return f"id: {status.value}\nevent: state\ndata: {json.dumps({'state': status.value})}\n\n"


class SceneEventsHandler(SceneHandler):
    """GET /login/scene/<scene>/events: the scene's state as server-sent events, until it is final."""

    @public
    async def get(self, scene: str) -> None:
        secret = self.secret_for(scene)
        last = self.request.headers.get("Last-Event-ID", "")
        known = SceneStatus(last) if last in _STATE_NAMES else None  # anything else: as if none was sent
        self._closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        # A hard end: a scene cannot outlive this (after it the watcher reports it expired anyway).
        deadline = loop.time() + self.services.settings.wechat.scene_max_age + 90
        async with self.services.scenes.waiting(scene, secret, self.client_ip()) as wait:
            if known in _LAST_STATES and wait.status == known:
                # The browser already has the final state: 204 is how SSE says "stop reconnecting".
                self.set_status(204)
                self.finish()
                return
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Accel-Buffering", "no")  # nginx: pass every event on at once
            self.write(f"retry: {RETRY_MS}\n\n")
            status: SceneStatus | None = wait.status
            try:
                while True:
                    if status is not None and status != known:
                        self.write(_event(status))
                        known = status
                        if status in _LAST_STATES:
                            break
                    elif status is None:
                        self.write(": keep-alive\n\n")
                    await self.flush()
                    left = deadline - loop.time()
                    if self._closed.is_set() or wait.closing or left <= 0:
                        break
                    status = await self._next_or_closed(wait, known, min(HEARTBEAT_SECONDS, left))
            except tornado.iostream.StreamClosedError:
                return
        if not self._closed.is_set():
            self.finish()


class SceneWaitHandler(SceneHandler):
    """GET /login/scene/<scene>/wait?after=<state>: the long-poll fallback; {"state": ...} once it differs."""

    @public
    async def get(self, scene: str) -> None:
        secret = self.secret_for(scene)
        after_values = self.request.query_arguments.get("after", [])
        if len(after_values) > 1:
            raise BadRequest("duplicate after")
        after_text = after_values[0].decode("ascii", "replace") if after_values else ""
        if after_text and after_text not in _STATE_NAMES:
            raise BadRequest("after")
        after = SceneStatus(after_text) if after_text else None
        self._closed = asyncio.Event()
        self.set_header("Cache-Control", "no-store")
        async with self.services.scenes.waiting(scene, secret, self.client_ip()) as wait:
            status: SceneStatus | None = wait.status
            if after is not None and status == after:
                status = await self._next_or_closed(wait, after, LONG_POLL_SECONDS) or wait.status
        if not self._closed.is_set():
            self.finish({"state": status.value if status is not None else after_text})


class SceneCompleteHandler(SceneHandler):
    """POST /login/scene/<scene>/complete (XSRF): sign this browser in once the phone confirmed."""

    @public
    async def post(self, scene: str) -> None:
        secret = self.secret_for(scene)
        self.set_header("Cache-Control", "no-store")
        try:
            user, next_path = await self.services.scenes.complete_with_next(scene, secret, self.request_context())
        except (SceneExpired, SceneRefused, SceneUsed):
            unbind_scene(self, scene)  # this browser is done with it; a pending scene stays bound
            raise
        unbind_scene(self, scene)
        # Like the OAuth callback: end whatever session the browser had, mint a fresh one (no fixation).
        self.start_session(await self.services.sessions.sign_in(user, self.session_claims))
        self.finish({"next": self.after_sign_in(user, next_path)})


class SceneQrHandler(SceneHandler):
    """GET /login/scene/<scene>/qr: the scene's follow QR or mini-program code, for the browser that asked."""

    @public
    async def get(self, scene: str) -> None:
        secret = self.secret_for(scene)
        body, content_type = await self.services.scenes.qr_image(scene, secret)
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        # An SVG opened on its own is a document: it may run nothing and load nothing.
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        self.finish(body)


_SCENE = r"([A-Za-z0-9]{32})"
routes = [
    tornado.web.url(rf"/login/scene/{_SCENE}/events", SceneEventsHandler, name="scene_events"),
    tornado.web.url(rf"/login/scene/{_SCENE}/wait", SceneWaitHandler, name="scene_wait"),
    tornado.web.url(rf"/login/scene/{_SCENE}/complete", SceneCompleteHandler, name="scene_complete"),
    tornado.web.url(rf"/login/scene/{_SCENE}/qr", SceneQrHandler, name="scene_qr"),
]
