"""Return targets (``next``): only same-site paths survive, whatever the input; the fallback is ``/``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_NEXT_LENGTH = 512
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
# Sending someone back into a login or logout step after login would loop or log them out again.
_LOOP_PREFIXES = ("/logout", "/auth/", "/login", "/_sandbox")


def safe_next(value: Any, default: str = "/") -> str:
    """Return ``value`` if it is a harmless same-site path, else ``default``."""
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return default
    # No whitespace, control or non-ASCII characters: browsers strip or reinterpret them (\t//evil).
    if not _PRINTABLE_ASCII.match(value) or "\\" in value:
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    decoded = unquote(value)
    if decoded.startswith("//") or "\\" in decoded or not _PRINTABLE_ASCII.match(decoded.replace(" ", "_")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    # Browsers remove dot segments before they resolve a path: "/.//evil.com" becomes "//evil.com", another
    # host. Refuse dot segments and empty segments outright; no page of ours needs them.
    segments = unquote(parts.path).split("/")[1:]
    if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
        return default
    if any(parts.path == p.rstrip("/") or parts.path.startswith(p) for p in _LOOP_PREFIXES):
        return default
    return value
