"""Desktop scan-login scenes: one per QR shown, bound to the browser, confirmed by the phone, completed once.

A scene (``login_scenes``) is what a desktop login page shows as a follow QR or a mini-program code. The
phone side (services/follow.py, services/wxacode.py) moves it with ``scanned``, ``confirm`` and ``refuse``;
the waiting page follows it through ``waiting`` and finishes with ``complete``, which only the browser
holding the binding secret can do, once. No openid, unionid or user id ever reaches the browser.

The truth is in MySQL, because the push that confirms a scene may land on another process or machine
than the waiting page. Waiting is cheap all the same: each process keeps one ``SceneWatcher`` that reads
the state of every scene its pages wait on in **one** statement per ``[server] scene_poll_interval``
(0.5 s: 2 statements a second per process whether 1 or 1,000 pages wait), and wakes the pages whose scene
changed. A change made in this process wakes the watcher at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import logging
import re
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from wxlogin import metrics
from wxlogin.config import Settings
from wxlogin.errors import (
    AccountDisabled,
    DatabaseUnavailable,
    NotFound,
    Overloaded,
    RateLimited,
    SceneExpired,
    SceneNotFound,
    ScenePending,
    SceneRefused,
    SceneUsed,
)
from wxlogin.models import RequestContext, SceneKind, SceneStatus, User
from wxlogin.redirects import safe_next
from wxlogin.store.events import EventStore
from wxlogin.store.scenes import STATES_CHUNK, SceneStore
from wxlogin.store.users import UserStore

logger = logging.getLogger(__name__)

SCENE_LENGTH = 32  # getwxacodeunlimit's scene takes at most 32 characters; scene_str "login_" + 32 fits 64
SCENE_RE = re.compile(rf"^[A-Za-z0-9]{{{SCENE_LENGTH}}}$")
_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_ALPHABET = string.ascii_letters + string.digits  # 62**32: about 190 bits
MAX_WAITS_PER_SCENE = 4  # one page, a reconnect overlapping its old stream, a second tab
# A scene nobody waits on any more stays watched this long, so a long-poll's next request (or an SSE
# reconnect) is answered from memory, without a query.
LINGER_SECONDS = 10.0

QrImage = tuple[bytes, str]  # (body, content type)
# What a kind's engineer provides: the image for a scene (SVG text, image bytes, or bytes with their type).
QrSource = Callable[[str], Awaitable[bytes | str | QrImage]]
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


@dataclass(frozen=True)
class NewScene:
    """A scene just created: its id (for the page and the QR), the secret for the browser's cookie, its life."""

    scene: str
    binding_secret: str
    expires_in: int


def binding_of(secret: str) -> bytes:
    """What MySQL keeps of a browser's binding secret: its SHA-256 (a stolen table binds no browser)."""
    return hashlib.sha256(secret.encode("ascii")).digest()


# --- the per-process watcher ---------------------------------------------------------------------------


@dataclass
class _Entry:
    """One watched scene: its binding, its last known status, and the event its waiters sleep on."""

    binding: bytes
    status: SceneStatus
    waiters: int = 0
    idle_since: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class SceneWait:
    """One open wait of a page on a scene (``SceneService.waiting``)."""

    scene: str
    client: str
    _watcher: SceneWatcher
    _entry: _Entry

    @property
    def status(self) -> SceneStatus:
        """The scene's status as this process last read it."""
        return self._entry.status

    @property
    def closing(self) -> bool:
        """The process is shutting down: end the wait (the browser reconnects to another process)."""
        return self._watcher.closing

    async def next(self, known: SceneStatus | None, timeout: float) -> SceneStatus | None:
        """The status once it differs from ``known`` (at once if it already does); None after ``timeout``
        seconds without a change, or when the process is shutting down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._watcher.closing:
            if self._entry.status != known:
                return self._entry.status
            left = deadline - loop.time()
            if left <= 0:
                return None
            event = self._entry.changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await event.wait()
        return None


class SceneWatcher:
    """The scenes this process's pages wait on, read from MySQL together: one statement per interval."""

    def __init__(self, store: SceneStore, interval: float, per_client: int, limit_clients: bool) -> None:
        self.store = store
        self.interval = interval
        self.per_client = per_client
        self.limit_clients = limit_clients
        self.closing = False
        self.polls = 0  # rounds that read MySQL (for tests and figures)
        self.statements = 0
        self._entries: dict[str, _Entry] = {}
        self._clients: dict[str, int] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    @property
    def waiting(self) -> int:
        """Open waits in this process."""
        return sum(entry.waiters for entry in self._entries.values())

    def known(self, scene: str) -> tuple[bytes, SceneStatus] | None:
        """(binding, status) of a scene watched here, or None (then ask MySQL)."""
        entry = self._entries.get(scene)
        return (entry.binding, entry.status) if entry is not None else None

    def open(self, scene: str, binding: bytes, status: SceneStatus, client: str) -> SceneWait:
        """Start a wait; RateLimited when the client or the scene already holds its share of open waits."""
        if self.limit_clients and self._clients.get(client, 0) >= self.per_client:
            raise RateLimited(5)
        entry = self._entries.get(scene)
        if entry is None:
            entry = self._entries[scene] = _Entry(binding, status)
        elif entry.waiters >= MAX_WAITS_PER_SCENE:
            raise RateLimited(5)
        entry.waiters += 1
        self._clients[client] = self._clients.get(client, 0) + 1
        self._ensure_running()
        return SceneWait(scene, client, self, entry)

    def close(self, wait: SceneWait) -> None:
        """End a wait (the scene stays watched a little longer for the page's next request)."""
        wait._entry.waiters -= 1
        if wait._entry.waiters <= 0:
            wait._entry.idle_since = asyncio.get_running_loop().time()
        left = self._clients.get(wait.client, 1) - 1
        if left > 0:
            self._clients[wait.client] = left
        else:
            self._clients.pop(wait.client, None)

    def poke(self, scene: str) -> None:
        """A scene changed in this process: read MySQL now instead of at the next interval."""
        if scene in self._entries and self._wake is not None:
            self._wake.set()

    def shutdown(self) -> None:
        """Wake every wait with "closing" (their pages reconnect elsewhere) and stop reading."""
        self.closing = True
        for entry in self._entries.values():
            entry.changed.set()
        if self._wake is not None:
            self._wake.set()

    def _ensure_running(self) -> None:
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # A fresh context: the task must not inherit the first waiting request's MySQL budget (dbbudget).
        self._task = loop.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        while not self.closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await wake.wait()
            wake.clear()
            now = loop.time()
            for scene, entry in list(self._entries.items()):
                if entry.waiters <= 0 and now - entry.idle_since > LINGER_SECONDS:
                    del self._entries[scene]
            if not self._entries or self.closing:
                break
            try:
                await self._read()
            except (DatabaseUnavailable, Overloaded) as exc:
                # The pages keep waiting (heartbeats go on); the next round tries again.
                if not self._warned:
                    logger.warning("scene watcher: cannot read scenes (%s); retrying", exc.code)
                    self._warned = True
            except Exception:
                logger.exception("scene watcher: unexpected error; retrying")
        self._task = None

    async def _read(self) -> None:
        scenes = list(self._entries)
        states = await self.store.states(scenes)
        self.polls += 1
        self.statements += -(-len(scenes) // STATES_CHUNK)
        self._warned = False
        for scene in scenes:
            entry = self._entries.get(scene)
            if entry is None:
                continue
            status = states.get(scene, SceneStatus.EXPIRED)  # purged: as good as expired
            if status != entry.status:
                entry.status = status
                fired, entry.changed = entry.changed, asyncio.Event()
                fired.set()


# --- the service ---------------------------------------------------------------------------------------


class SceneService:
    """Create scenes, move them for the phone side, and let the browser that asked follow and complete them."""

    def __init__(self, settings: Settings, store: SceneStore, users: UserStore, events: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.users = users
        self.events = events
        self.watcher = SceneWatcher(store, settings.server.scene_poll_interval,
                                    settings.ratelimit.scene_waits_per_ip, settings.ratelimit.enabled)
        self._qr: dict[SceneKind, QrSource] = {}

    # --- the interface the phone sides use (issue14.md) --------------------------------------------

    async def create(self, kind: SceneKind, next_path: str) -> NewScene:
        """A new WAITING scene for this kind; the browser keeps ``binding_secret`` in its cookie."""
        scene = "".join(secrets.choice(_ALPHABET) for _ in range(SCENE_LENGTH))
        secret = secrets.token_hex(16)
        life = self.settings.wechat.scene_max_age
        await self.store.create(scene, kind, binding_of(secret), safe_next(next_path), life)
        return NewScene(scene=scene, binding_secret=secret, expires_in=life)

    async def scanned(self, scene: str) -> bool:
        """WAITING -> SCANNED; False if the scene is unknown, expired or not waiting."""
        return await self._advance(scene, SceneStatus.SCANNED, (SceneStatus.WAITING,))

    async def confirm(self, scene: str, user_id: int) -> bool:
        """WAITING|SCANNED -> CONFIRMED for ``user_id``; False if unknown, expired or already decided."""
        return await self._advance(scene, SceneStatus.CONFIRMED, (SceneStatus.WAITING, SceneStatus.SCANNED), user_id)

    async def refuse(self, scene: str) -> bool:
        """WAITING|SCANNED -> REFUSED; False if unknown, expired or already decided."""
        return await self._advance(scene, SceneStatus.REFUSED, (SceneStatus.WAITING, SceneStatus.SCANNED))

    async def state(self, scene: str, binding_secret: str) -> SceneStatus:
        """The scene's status for the browser holding ``binding_secret``; SceneNotFound for anyone else."""
        status, _ = await self._check(scene, binding_secret)
        return status

    async def complete(self, scene: str, binding_secret: str, context: RequestContext) -> User:
        """Sign-in step of the waiting page: CONFIRMED -> DONE once, for the right browser; returns the user."""
        user, _ = await self.complete_with_next(scene, binding_secret, context)
        return user

    # --- for the waiting page (CORE) ---------------------------------------------------------------

    async def complete_with_next(self, scene: str, binding_secret: str,
                                 context: RequestContext) -> tuple[User, str]:
        """``complete``, and where the browser goes next (the ``next`` the scene was created with)."""
        if not SCENE_RE.match(scene) or not _SECRET_RE.match(binding_secret):
            raise SceneNotFound()
        binding = binding_of(binding_secret)
        finished = await self.store.finish(scene, binding)
        if finished is None:
            row = await self.store.get(scene)
            if row is None or not hmac.compare_digest(row.binding, binding):
                # Another browser holding a copied scene id: a failed attempt for the audit trail.
                kind = row.kind.value if row is not None else "scene"
                metrics.LOGINS.labels(kind, "scene_unbound").inc()
                await self.events.record_failure(kind, "scene_unbound", context)
                raise SceneNotFound()
            self.watcher.poke(scene)
            match row.status:
                case SceneStatus.WAITING | SceneStatus.SCANNED:
                    raise ScenePending()
                case SceneStatus.REFUSED:
                    raise SceneRefused()
                case SceneStatus.DONE:
                    raise SceneUsed()
                case _:  # expired, or confirmed for an account deleted since
                    raise SceneExpired()
        user_id, next_path = finished
        self.watcher.poke(scene)
        user = await self.users.get_user(user_id)
        if user is None:
            raise SceneExpired()
        if user.disabled:
            raise AccountDisabled()
        return user, safe_next(next_path)

    @contextlib.asynccontextmanager
    async def waiting(self, scene: str, binding_secret: str, client: str) -> AsyncIterator[SceneWait]:
        """Follow a scene from the page that asked for it (SceneNotFound for anyone else), cheaply."""
        status, binding = await self._check(scene, binding_secret)
        wait = self.watcher.open(scene, binding, status, client)
        try:
            yield wait
        finally:
            self.watcher.close(wait)

    def register_qr(self, kind: SceneKind, source: QrSource) -> None:
        """The kind's image maker (follow: the parametric QR as SVG; miniprogram: getwxacodeunlimit's image)."""
        self._qr[kind] = source

    async def qr_image(self, scene: str, binding_secret: str) -> QrImage:
        """The scene's image for the browser that asked for it, while it can still be scanned."""
        if not SCENE_RE.match(scene) or not _SECRET_RE.match(binding_secret):
            raise SceneNotFound()
        row = await self.store.get(scene)
        if row is None or not hmac.compare_digest(row.binding, binding_of(binding_secret)):
            raise SceneNotFound()
        if row.status not in (SceneStatus.WAITING, SceneStatus.SCANNED):
            raise SceneExpired()
        source = self._qr.get(row.kind)
        if source is None:
            raise NotFound(f"no image for {row.kind}")
        return _as_image(await source(scene))

    def shutdown(self) -> None:
        """End every wait of this process now (its pages reconnect to another one)."""
        self.watcher.shutdown()

    async def _check(self, scene: str, binding_secret: str) -> tuple[SceneStatus, bytes]:
        if not SCENE_RE.match(scene) or not _SECRET_RE.match(binding_secret):
            raise SceneNotFound()
        binding = binding_of(binding_secret)
        known = self.watcher.known(scene)
        if known is not None:
            if not hmac.compare_digest(known[0], binding):
                raise SceneNotFound()
            return known[1], binding
        row = await self.store.get(scene)
        if row is None or not hmac.compare_digest(row.binding, binding):
            raise SceneNotFound()
        return row.status, binding

    async def _advance(self, scene: str, to: SceneStatus, from_statuses: tuple[SceneStatus, ...],
                       user_id: int | None = None) -> bool:
        if not SCENE_RE.match(scene):
            return False
        changed = await self.store.advance(scene, to, from_statuses, user_id)
        if changed:
            self.watcher.poke(scene)
        return changed


def _as_image(made: bytes | str | QrImage) -> QrImage:
    """Whatever the kind's image maker returned, as (bytes, content type); only images we can name."""
    if isinstance(made, tuple):
        body, content_type = made
    elif isinstance(made, str):
        body, content_type = made.encode("utf-8"), "image/svg+xml"
    elif made.startswith(b"\x89PNG\r\n\x1a\n"):
        body, content_type = made, "image/png"
    elif made.startswith(b"\xff\xd8\xff"):
        body, content_type = made, "image/jpeg"
    else:
        body, content_type = made, "image/svg+xml" if made.lstrip()[:5] in (b"<svg ", b"<?xml") else ""
    content_type = content_type.split(";")[0].strip().lower()
    if content_type not in _IMAGE_TYPES:
        raise NotFound(f"image of type {content_type!r}")
    return body, content_type
