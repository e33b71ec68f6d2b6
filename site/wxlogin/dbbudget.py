"""How long one request may wait on MySQL in total, across all its statements.

Each wait is already bounded (``acquire_timeout``, ``query_timeout``), but a request that runs several
statements against a slow server could add those bounds up. Handlers open a budget per request; the
store spends from it and gives up with a 503 once it is gone. Code outside a request (start-up,
the purge task, tests) has no budget and only the per-wait bounds apply.
"""

from __future__ import annotations

import time
from contextvars import ContextVar


class Budget:
    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def spend(self, seconds: float) -> None:
        self.left -= seconds


_current: ContextVar[Budget | None] = ContextVar("wxlogin_db_budget", default=None)


def open_budget(seconds: float) -> None:
    """Give the current request ``seconds`` of MySQL waiting in total."""
    _current.set(Budget(seconds))


def allowance(bound: float) -> float:
    """The time the next wait may take: ``bound``, or less when the request's budget is nearly spent."""
    budget = _current.get()
    return bound if budget is None else min(bound, budget.left)


class Meter:
    """Context manager that charges the elapsed time of one wait to the request's budget."""

    def __enter__(self) -> Meter:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        budget = _current.get()
        if budget is not None:
            budget.spend(time.monotonic() - self.start)
