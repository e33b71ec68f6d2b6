"""Logging for operators: one line per event, with CR/LF in any input escaped so nobody can forge lines."""

from __future__ import annotations

import logging
import sys


class OneLineFormatter(logging.Formatter):
    """Escapes CR and LF in the message (tracebacks keep their lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's API
        record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)


def configure_logging(level: str = "INFO") -> None:
    """Send every log line to stderr as 'time level logger: message'."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Tornado's access log would print full callback URLs, which carry WeChat codes.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
