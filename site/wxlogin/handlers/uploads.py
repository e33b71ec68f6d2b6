"""The one file of a ``multipart/form-data`` upload (what ``wx.uploadFile`` sends), parsed strictly.

Tornado's own multipart parser logs and skips what it cannot read; an upload endpoint wants a clear
answer instead: exactly one file part, under the expected field name, headers of a sane size, a
well-formed boundary and closing delimiter. Text fields (``wx.uploadFile``'s ``formData``) are allowed and
ignored. The file's name and its Content-Type are ignored too: its type is judged by its content later.
"""

from __future__ import annotations

import email.message
import email.utils
import re

import tornado.httputil
import tornado.web

from wxlogin.errors import BadRequest

MAX_PARTS = 16
MAX_PART_HEADERS = 4 * 1024  # bytes of one part's headers
_BOUNDARY_RE = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")  # RFC 2046 bchars


def uploaded_file(request: tornado.httputil.HTTPServerRequest, field: str, max_bytes: int) -> bytes:
    """The bytes of the one file in the request's multipart body, under ``field``.

    HTTPError 415 when the body is not multipart/form-data, 413 when the file is over ``max_bytes``;
    BadRequest for everything malformed: no boundary, no closing delimiter, no file, two files, another
    field name, too many parts, part headers over ``MAX_PART_HEADERS``.
    """
    boundary = _boundary(request.headers.get_list("Content-Type"))
    files = [(name, data) for name, filename, data in _parts(request.body, boundary) if filename is not None]
    if not files:
        raise BadRequest("no file in the upload")
    if len(files) > 1:
        raise BadRequest("more than one file in the upload")
    name, data = files[0]
    if name != field:
        raise BadRequest(f"the file must be the field {field!r}")
    if len(data) > max_bytes:
        raise tornado.web.HTTPError(413)
    return data


def _boundary(values: list[str]) -> bytes:
    if len(values) != 1:
        raise tornado.web.HTTPError(415)
    message = email.message.Message()
    message["Content-Type"] = values[0]
    if message.get_content_type() != "multipart/form-data":
        raise tornado.web.HTTPError(415)
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not _BOUNDARY_RE.match(boundary):
        raise BadRequest("multipart body without a usable boundary")
    return boundary.encode("ascii")


def _parts(body: bytes, boundary: bytes) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name or None, content) of each part, in order."""
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        start = len(delimiter)
    else:  # a preamble (RFC 2046 allows one) ends with CRLF before the first delimiter
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            raise BadRequest("multipart body without its boundary")
        start = found + 2 + len(delimiter)
    end = body.find(b"\r\n" + delimiter + b"--", start)
    if end < 0:
        raise BadRequest("multipart body without its closing delimiter")
    chunks = body[start:end].split(b"\r\n" + delimiter)
    if len(chunks) > MAX_PARTS:
        raise BadRequest("too many parts in the upload")
    return [_part(chunk) for chunk in chunks]


def _part(chunk: bytes) -> tuple[str, str | None, bytes]:
    line_end = chunk.find(b"\r\n")
    if line_end < 0 or chunk[:line_end].strip(b" \t"):
        raise BadRequest("a multipart delimiter followed by something else")  # only padding may follow it
    head_end = chunk.find(b"\r\n\r\n", line_end)
    if head_end < 0 or head_end - line_end > MAX_PART_HEADERS:
        raise BadRequest("part headers missing or too large")
    try:
        headers = tornado.httputil.HTTPHeaders.parse(chunk[line_end + 2:head_end].decode("utf-8"))
    except (UnicodeDecodeError, tornado.httputil.HTTPInputError, ValueError):
        raise BadRequest("part headers malformed") from None
    dispositions = headers.get_list("Content-Disposition")
    if len(dispositions) != 1:
        raise BadRequest("a part without one Content-Disposition")
    message = email.message.Message()
    message["Content-Disposition"] = dispositions[0]
    name = message.get_param("name", header="content-disposition")
    filename = message.get_param("filename", header="content-disposition")
    if message.get_content_disposition() != "form-data" or not isinstance(name, str) or not name:
        raise BadRequest("a part that is not a named form field")
    if filename is not None and not isinstance(filename, str):
        filename = email.utils.collapse_rfc2231_value(filename)
    return name, filename, chunk[head_end + 4:]
