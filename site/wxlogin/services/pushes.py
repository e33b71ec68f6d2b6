"""WeChat's event pushes: authenticate, open, parse, deduplicate and dispatch them, within WeChat's 5 seconds.

Order matters (security.md item 51): the query's signature and timestamp are checked before the body is
read (the handler calls ``authenticate`` from ``prepare``), then the body's size; in safe mode the
envelope's ``msg_signature``, then it is decrypted and its appid checked; only then is anything parsed as a
message. An app with a ``push_aes_key`` takes only encrypted pushes (safe or compatible mode): the plain
query signature does not cover the body, so accepting plain bodies there would undo what the key is for.

Deduplication: WeChat retries a push it got no answer to within 5 s (3 tries). A push is claimed in MySQL
(``wechat_pushes``, shared by every process) before it is dispatched; a retry finds the claim and is
acknowledged without a second dispatch. A handler that fails or overruns gives up the claim, so the retry
is handled again. Pushes nobody handles (unknown events, messages) are acknowledged, logged, not stored.

The dispatcher: ``register(event, handler)`` with WeChat's ``Event`` value; handlers get the app and the
``PushEvent`` and may return text, which an official account's follower sees as the reply (encrypted
in safe mode). Handlers must be idempotent: a failure of one after another succeeded reruns both.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from wxlogin.config import DEV_PUSH_MARKER, NamedApp, WeChatMpApp, WeChatPushApp, WeChatSettings
from wxlogin.errors import WxLoginError
from wxlogin.models import Channel, PushEvent
from wxlogin.store.pushes import PushStore
from wxlogin.wechat import push_crypto
from wxlogin.wechat.push_crypto import MAX_PUSH_BODY as MAX_PUSH_BODY
from wxlogin.wechat.push_crypto import PushMalformed as PushMalformed
from wxlogin.wechat.push_crypto import PushRejected as PushRejected
from wxlogin.wechat.push_crypto import PushTooLarge as PushTooLarge
from wxlogin.wechat.push_crypto import PushUnauthentic as PushUnauthentic

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW = 300  # seconds a push's timestamp may differ from our clock: older is a replay
ANSWER_WITHIN = 4.0  # WeChat gives up after 5 s; a second is left for the network and for us
PUSH_KINDS = (Channel.MP, Channel.MINIPROGRAM)
_ECHO_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ORIGINAL_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
_CREATE_TIME_RE = re.compile(r"^[0-9]{1,10}$")
_MSG_TYPE_RE = re.compile(r"^[A-Za-z_]{1,32}$")
_EVENT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MSG_ID_RE = re.compile(r"^[0-9]{1,20}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_CORE = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "EventKey", "Ticket", "MsgId", "Encrypt")


@dataclass(frozen=True)
class PushApp:
    """One app whose "server URL" we are: its kind, its name ("" for the one of ``[wechat.<kind>]``)."""

    kind: Channel
    name: str
    config: WeChatPushApp = field(repr=False)
    key: bytes | None = field(default=None, repr=False)  # the AES key; None: plain mode

    @property
    def appid(self) -> str:
        return self.config.appid

    @property
    def label(self) -> str:
        return f"{self.kind.value}/{self.name}" if self.name else self.kind.value

    @property
    def token(self) -> str:
        return self.config.push_token.value


@dataclass(frozen=True)
class PushQuery:
    """The query WeChat signs: the handler copies it here (one value each) and adds nothing."""

    signature: str = ""
    timestamp: str = ""
    nonce: str = ""
    echostr: str = ""
    encrypt_type: str = ""
    msg_signature: str = ""


@dataclass(frozen=True)
class PushReply:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


SUCCESS = PushReply(b"success")
EventHandler = Callable[[PushApp, PushEvent], Awaitable[str | None]]


class PushNotHandled(Exception):
    """A handler failed or overran; the claim was given up so that WeChat's retry is handled again."""


class PushService:
    """Receives pushes for the configured apps and dispatches events to registered handlers."""

    def __init__(self, wechat: WeChatSettings, store: PushStore, clock: Callable[[], float] = time.time,
                 answer_within: float = ANSWER_WITHIN) -> None:
        self.store = store
        self.clock = clock
        self.answer_within = answer_within
        self._handlers: dict[str, list[EventHandler]] = {}
        self._apps: dict[tuple[str, str], PushApp] = {}
        for kind in PUSH_KINDS:  # every app of the kind: the default ("") and [wechat.more.<kind>.<name>]
            for name, config in wechat.push_apps(kind.value).items():
                app = _push_app(kind, name, config, wechat.sandbox)
                if app is not None:
                    self._apps[(kind.value, name)] = app
        # Forwarding mode: the default official account, plain (the forwarder opened WeChat's envelope),
        # whether or not it has a push_token here (its server URL points at the other system).
        self._forward: PushApp | None = None
        if wechat.mp.forward_secret.value:
            self._forward = PushApp(kind=Channel.MP, name="", config=wechat.mp)

    # ---- apps and handlers ------------------------------------------------------------------------

    def app(self, kind: str, name: str = "") -> PushApp | None:
        """The app served at /wechat/push/<kind>[/<name>], or None (no such app, or no push_token)."""
        return self._apps.get((kind, name))

    @property
    def apps(self) -> Mapping[tuple[str, str], PushApp]:
        return MappingProxyType(self._apps)

    def register(self, event: str, handler: EventHandler) -> None:
        """Call ``handler`` for every new push of ``MsgType`` "event" whose ``Event`` is ``event``."""
        self._handlers.setdefault(event, []).append(handler)

    def unregister(self, event: str, handler: EventHandler) -> None:
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    # ---- checks ------------------------------------------------------------------------------------

    def authenticate(self, app: PushApp, query: PushQuery) -> None:
        """The query's signature and freshness; PushUnauthentic otherwise. Needs no body and no database."""
        push_crypto.check_query(app.token, query.timestamp, query.nonce, query.signature)
        if abs(self.clock() - int(query.timestamp)) > MAX_CLOCK_SKEW:
            raise PushUnauthentic("timestamp more than 5 minutes off: a replay, or a clock to fix")

    def echo(self, app: PushApp, query: PushQuery) -> str:
        """WeChat's URL check: the ``echostr`` to send back, once the query checks out."""
        self.authenticate(app, query)
        if not _ECHO_RE.match(query.echostr):
            raise PushMalformed("echostr missing or malformed")
        logger.info("push %s: URL check answered", app.label)
        return query.echostr

    # ---- receiving ---------------------------------------------------------------------------------

    async def receive(self, app: PushApp, query: PushQuery, body: bytes) -> PushReply:
        """Check, open, parse, deduplicate and dispatch one push; the reply WeChat should get.

        Raises PushRejected (unauthentic, malformed, too large) for bad input, PushNotHandled when a
        handler failed, and DatabaseUnavailable/Overloaded when the claim could not be recorded.
        """
        deadline = asyncio.get_running_loop().time() + self.answer_within
        self.authenticate(app, query)
        if len(body) > MAX_PUSH_BODY:
            raise PushTooLarge(f"{len(body)} bytes")
        fields = self._open(app, query, push_crypto.parse_message(body))
        return await self._dispatch(app, fields, body, deadline)

    # ---- forwarding mode (issue 14): another system owns the account's server URL ------------------

    @property
    def forward_app(self) -> PushApp | None:
        """The official account whose events another system forwards to /wechat/forward/mp, if any."""
        return self._forward

    def authenticate_forward(self, timestamp: str) -> None:
        """A forwarded push's freshness, before its body is read (its HMAC needs the body)."""
        if self._forward is None:
            raise PushUnauthentic("forwarding is off")
        if not _CREATE_TIME_RE.match(timestamp):
            raise PushUnauthentic("forward timestamp missing or malformed")
        if abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW:
            raise PushUnauthentic("forward timestamp more than 5 minutes off: a replay, or a clock to fix")

    async def receive_forwarded(self, timestamp: str, signature: str, body: bytes) -> PushReply:
        """A push another system received from WeChat (checked and opened there), signed with our shared
        secret: HMAC-SHA256(forward_secret, timestamp + "\n" + body), hex. Then as ``receive``."""
        deadline = asyncio.get_running_loop().time() + self.answer_within
        self.authenticate_forward(timestamp)
        app = self._forward
        assert app is not None  # authenticate_forward refused otherwise
        if len(body) > MAX_PUSH_BODY:
            raise PushTooLarge(f"{len(body)} bytes")
        secret = app.config.forward_secret.value if isinstance(app.config, WeChatMpApp) else ""
        expected = forward_signature(secret, timestamp, body)
        if not _HEX64_RE.match(signature) or not hmac.compare_digest(expected, signature):
            raise PushUnauthentic("forward signature mismatch")
        fields = push_crypto.parse_message(body)
        fields.pop("Encrypt", None)  # the forwarder opened the envelope; a leftover copy means nothing here
        return await self._dispatch(app, fields, body, deadline)

    async def _dispatch(self, app: PushApp, fields: dict[str, str], body: bytes, deadline: float) -> PushReply:
        """Deduplicate and dispatch an authenticated, opened message; the reply for WeChat."""
        event = _event(fields)
        handlers = list(self._handlers.get(event.event, ())) if event.msg_type == "event" else []
        if not handlers:
            logger.info("push %s: %s %s acknowledged (no handler)", app.label, event.msg_type, event.event or "-")
            return SUCCESS
        key = _dedupe_key(app, event)
        if not await self.store.claim(key, app.appid, event.event):
            logger.info("push %s: %s repeated (a retry), acknowledged once more", app.label, event.event)
            return SUCCESS
        reply: str | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for handler in handlers:
                    text = await handler(app, event)
                    reply = reply or text
        except Exception as exc:
            await self._give_up(app, key, event, exc)
            raise PushNotHandled(event.event) from None
        logger.info("push %s: %s dispatched to %d handler(s)", app.label, event.event, len(handlers))
        if not reply or app.kind is not Channel.MP or body.lstrip()[:1] != b"<":
            return SUCCESS  # only an official account's XML pushes take a passive reply
        return self._reply(app, event, reply)

    def _open(self, app: PushApp, query: PushQuery, fields: dict[str, str]) -> dict[str, str]:
        """The message's fields: decrypted in safe/compatible mode (the plain copy is then ignored)."""
        if app.key is None:
            fields.pop("Encrypt", None)  # compatible mode seen by an app in plain mode: the plain copy
            return fields
        encrypted = fields.get("Encrypt")
        if query.encrypt_type != "aes" or encrypted is None:
            raise PushUnauthentic("plain push to an app with a push_aes_key")
        push_crypto.check_msg_signature(app.token, query.timestamp, query.nonce, encrypted, query.msg_signature)
        inner = push_crypto.parse_message(push_crypto.decrypt(app.key, encrypted, app.appid))
        inner.pop("Encrypt", None)
        return inner

    async def _give_up(self, app: PushApp, key: bytes, event: PushEvent, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            logger.warning("push %s: %s handlers overran %.1fs; not acknowledged", app.label, event.event,
                           self.answer_within)
        elif isinstance(exc, WxLoginError):  # expected (e.g. MySQL down): one line, no traceback
            logger.warning("push %s: a %s handler failed (%s); not acknowledged", app.label, event.event, exc.code)
        else:
            logger.error("push %s: a %s handler failed; not acknowledged", app.label, event.event,
                         exc_info=(type(exc), exc, exc.__traceback__))
        try:
            await self.store.release(key)
        except Exception as release_error:  # the claim then stays a day: log it, answer anyway
            logger.warning("push %s: could not release the claim (%s)", app.label, type(release_error).__name__)

    def _reply(self, app: PushApp, event: PushEvent, text: str) -> PushReply:
        """A passive text reply to the follower, sealed when the push was."""
        message = push_crypto.build_xml([
            ("ToUserName", event.from_user), ("FromUserName", event.to_user), ("CreateTime", int(self.clock())),
            ("MsgType", "text"), ("Content", text),
        ])
        if app.key is None:
            return PushReply(message, "text/xml; charset=utf-8")
        timestamp, nonce = str(int(self.clock())), str(secrets.randbelow(10**10))
        encrypted = push_crypto.encrypt(app.key, message, app.appid)
        envelope = push_crypto.build_xml([
            ("Encrypt", encrypted), ("MsgSignature", push_crypto.signature(app.token, timestamp, nonce, encrypted)),
            ("TimeStamp", int(timestamp)), ("Nonce", nonce),
        ])
        return PushReply(envelope, "text/xml; charset=utf-8")


def forward_signature(secret: str, timestamp: str, body: bytes) -> str:
    """A forwarded push's signature: hex HMAC-SHA256 keyed with ``forward_secret`` over timestamp, LF, body."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"\n" + body, hashlib.sha256).hexdigest()


def _push_app(kind: Channel, name: str, config: WeChatPushApp, sandbox: bool) -> PushApp | None:
    token, aes = config.push_token.value, config.push_aes_key.value
    if not token:
        return None
    named = NamedApp(kind.value, name, config)
    if not sandbox and (token.startswith(DEV_PUSH_MARKER) or aes.startswith(DEV_PUSH_MARKER)):
        # The development keys are public (settings.toml): anyone could sign a push with them.
        logger.warning("%s push_token or push_aes_key is a development key and the sandbox is off: "
                       "/wechat/push/%s is disabled until real keys are set", named.table, named.label)
        return None
    return PushApp(kind=kind, name=name, config=config, key=push_crypto.aes_key(aes) if aes else None)


def _field(fields: Mapping[str, str], name: str, pattern: re.Pattern[str] | None, required: bool,
           limit: int = 512) -> str:
    value = fields.get(name, "")
    if not value:
        if required:
            raise PushMalformed(f"{name} missing")
        return ""
    if len(value) > limit or (pattern is not None and not pattern.match(value)):
        raise PushMalformed(f"{name} malformed")
    return value


def _event(fields: Mapping[str, str]) -> PushEvent:
    """The PushEvent of a message's fields, every core field checked (PushMalformed otherwise)."""
    msg_type = _field(fields, "MsgType", _MSG_TYPE_RE, required=True)
    return PushEvent(
        to_user=_field(fields, "ToUserName", _ORIGINAL_ID_RE, required=True),
        from_user=_field(fields, "FromUserName", _OPENID_RE, required=True),
        create_time=int(_field(fields, "CreateTime", _CREATE_TIME_RE, required=True)),
        msg_type=msg_type,
        event=_field(fields, "Event", _EVENT_RE, required=msg_type == "event"),
        event_key=_field(fields, "EventKey", None, required=False),
        ticket=_field(fields, "Ticket", None, required=False),
        msg_id=_field(fields, "MsgId", _MSG_ID_RE, required=False),
        fields=MappingProxyType({k: v for k, v in fields.items() if k not in _CORE}),
    )


def _dedupe_key(app: PushApp, event: PushEvent) -> bytes:
    """WeChat's identity of a message: MsgId, else FromUserName + CreateTime (with the type and event, which
    a retry repeats too, so two different events of one second are not mistaken for one, and the trace_id
    of a content-check verdict: two checks of one person can finish in the same second)."""
    if event.msg_id:
        identity = f"m:{event.msg_id}"
    else:
        identity = f"u:{event.from_user}|{event.create_time}|{event.msg_type}|{event.event}"
        if event.fields.get("trace_id"):
            identity += f"|{event.fields['trace_id']}"
    return hashlib.sha256(f"{app.appid}\0{identity}".encode()).digest()


async def log_follow(app: PushApp, event: PushEvent) -> None:
    """A handler for subscribe/unsubscribe that only says so (no openid in the log)."""
    scene = "with a scene" if event.event_key else "without a scene"
    logger.info("push %s: %s %s", app.label, event.event, scene if event.event == "subscribe" else "")
