"""Send hand-made HTTP/1.1 bytes (framing attacks, oversize headers) and read what comes back."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


async def raw_request(
    base: str, data: bytes, timeout: float = 10, half_close: bool = False
) -> tuple[int | None, bytes]:
    """Return (status, whole reply); status is None when the server closed without answering."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()
        reply = b""
        with contextlib.suppress(ConnectionError):
            reply = await asyncio.wait_for(reader.read(1 << 20), timeout)
    finally:
        writer.close()
    if not reply.startswith(b"HTTP/1."):
        return None, reply
    return int(reply.split(b" ", 2)[1]), reply
