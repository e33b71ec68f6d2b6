"""One deadline per request for everything it asks WeChat: queueing for a connection, each call, the one retry.

``[wechat] timeout`` bounds one WeChat call, but a login makes two (code exchange, userinfo) and the
HTTP client queues calls beyond ``max_clients`` with no deadline of its own: behind a slow WeChat a
person waited far longer than the configured timeout. Handlers open a deadline per request (like
``dbbudget``); the WeChat client starts its clock at the request's first WeChat call, so time spent on
MySQL before it does not count, and bounds every wait, the queue included, by it. Code outside a
request (start-up, tests) has no deadline and only the per-call timeout applies.
"""

from __future__ import annotations

from contextvars import ContextVar


class Deadline:
    """``seconds`` for all of one request's WeChat calls, counted from the first of them."""

    __slots__ = ("at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at: float | None = None

    def start(self, now: float) -> float:
        """The deadline (in the clock of ``now``), started at the first call and shared by the rest."""
        if self.at is None:
            self.at = now + self.seconds
        return self.at


_current: ContextVar[Deadline | None] = ContextVar("wxlogin_wechat_deadline", default=None)


def open_deadline(seconds: float) -> None:
    """Give the current request ``seconds`` of waiting on WeChat in all, from its first WeChat call."""
    _current.set(Deadline(seconds))


def current() -> Deadline | None:
    """The current request's deadline; None outside a request."""
    return _current.get()
