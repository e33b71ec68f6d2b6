"""WeChat's event pushes on the wire: the query signature, safe mode's AES envelope, strict XML/JSON parsing.

WeChat signs a push's query with ``sha1(sorted(token, timestamp, nonce))`` and, in safe mode, the body's
``Encrypt`` with ``msg_signature = sha1(sorted(token, timestamp, nonce, Encrypt))``. ``Encrypt`` is
AES-256-CBC under ``base64(EncodingAESKey + "=")`` with IV = the key's first 16 bytes, PKCS#7-padded to
32-byte blocks, over ``16 random bytes | length (4 bytes, big-endian) | message | appid``
(../shared/wechat-platform.md §5). Every failure to open an envelope (base64, length, padding, length
prefix, appid) is the same ``PushMalformed("encrypted envelope")``: one error, one answer.

XML from the network goes through ``parse_message``: expat with every DTD hook refusing (no DOCTYPE, so no
entity can be declared, expanded or fetched), a depth and size bound, UTF-8 only. The stdlib's expat is
enough for WeChat's flat documents; defusedxml would add a dependency to do the same refusing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import pyexpat
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from wxlogin.wechat.crypto import aes_cbc

MAX_PUSH_BODY = 16 * 1024  # a WeChat event is well under 2 KiB; a long text message in safe mode under 12 KiB
MAX_FIELDS = 256
MAX_DEPTH = 6  # <xml><A><B><item><C> is as deep as WeChat's documented pushes go
BLOCK = 32  # WeChat pads to 32-byte blocks, not AES's 16
_RANDOM = 16
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{40}$")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,10}$")
_NONCE_RE = re.compile(r"^[0-9A-Za-z]{1,64}$")
_AES_KEY_RE = re.compile(r"^[0-9A-Za-z]{43}$")


class PushRejected(Exception):
    """A push failed a check. ``reason`` goes to the log only; the answer depends on the class alone."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PushUnauthentic(PushRejected):
    """The signature, the msg_signature or the timestamp's freshness did not check out (403)."""


class PushMalformed(PushRejected):
    """The body is not a well-formed push for this app: bad XML/JSON, a bad envelope, a missing field (400)."""


class PushTooLarge(PushRejected):
    """The body is over ``MAX_PUSH_BODY`` (413)."""


# ---- signatures ---------------------------------------------------------------------------------------

def signature(token: str, *parts: str) -> str:
    """``sha1`` of the token and the parts, sorted as strings and joined: the query's and the envelope's."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode("utf-8")).hexdigest()


def check_query(token: str, timestamp: str, nonce: str, given: str) -> None:
    """Refuse a query whose ``signature`` is missing, malformed or wrong (compared in constant time)."""
    if not _TIMESTAMP_RE.match(timestamp) or not _NONCE_RE.match(nonce) or not _SIGNATURE_RE.match(given):
        raise PushUnauthentic("signature parameters missing or malformed")
    if not hmac.compare_digest(signature(token, timestamp, nonce), given):
        raise PushUnauthentic("signature mismatch")


def check_msg_signature(token: str, timestamp: str, nonce: str, encrypt: str, given: str) -> None:
    """Refuse an envelope whose ``msg_signature`` is missing, malformed or wrong (constant time)."""
    if not _SIGNATURE_RE.match(given):
        raise PushUnauthentic("msg_signature missing or malformed")
    if not hmac.compare_digest(signature(token, timestamp, nonce, encrypt), given):
        raise PushUnauthentic("msg_signature mismatch")


# ---- the safe-mode envelope ----------------------------------------------------------------------------

def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key behind WeChat's 43-character EncodingAESKey (ValueError if it is not one)."""
    if not _AES_KEY_RE.match(encoding_aes_key):
        raise ValueError("an EncodingAESKey is 43 letters and digits")
    return base64.b64decode(encoding_aes_key + "=")


def encrypt(key: bytes, message: bytes, appid: str, prefix: bytes | None = None) -> str:
    """Seal ``message`` for ``appid`` the way WeChat does; ``prefix`` (16 bytes) only for test vectors."""
    prefix = secrets.token_bytes(_RANDOM) if prefix is None else prefix
    plain = prefix + len(message).to_bytes(4, "big") + message + appid.encode("ascii")
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    return base64.b64encode(aes_cbc(key, plain, decrypt=False)).decode("ascii")


def decrypt(key: bytes, encrypted: str, appid: str) -> bytes:
    """Open an ``Encrypt`` value and check that it was sealed for ``appid``; returns the message bytes.

    Raises PushMalformed("encrypted envelope"), and only that, for every kind of failure.
    """
    try:
        if not encrypted or len(encrypted) > (MAX_PUSH_BODY * 4) // 3 + 4:
            _bad_envelope()
        blob = base64.b64decode(encrypted, validate=True)
        if not blob or len(blob) % BLOCK:
            _bad_envelope()
        plain = aes_cbc(key, blob, decrypt=True)
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            _bad_envelope()
        content = plain[:-pad]
        if len(content) < _RANDOM + 4:
            _bad_envelope()
        length = int.from_bytes(content[_RANDOM:_RANDOM + 4], "big")
        end = _RANDOM + 4 + length
        if end > len(content):
            _bad_envelope()
        # The appid is not secret, but compare_digest keeps this path free of early exits all the same.
        if not hmac.compare_digest(content[end:], appid.encode("ascii")):
            _bad_envelope()
        return content[_RANDOM + 4:end]
    except PushMalformed:
        raise
    except (binascii.Error, ValueError, IndexError):
        raise PushMalformed("encrypted envelope") from None


def _bad_envelope() -> NoReturn:
    raise PushMalformed("encrypted envelope")


# ---- parsing --------------------------------------------------------------------------------------------

def parse_message(body: bytes) -> dict[str, str]:
    """A push body, XML (``<xml>...</xml>``) or JSON (an object), as flat fields.

    Nested elements or objects are joined with ``_`` (``ScanCodeInfo_ScanType``, ``result_suggest``);
    repeated nested names get ``_1``, ``_2``... Two top-level fields of one name are refused: which one
    would a reader believe?
    """
    if len(body) > MAX_PUSH_BODY:
        raise PushTooLarge(f"{len(body)} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PushMalformed("not UTF-8") from None
    start = text.lstrip(" \t\r\n")[:1]
    if start == "<":
        return _parse_xml(text)
    if start == "{":
        return _parse_json(text)
    raise PushMalformed("neither XML nor a JSON object")


def _refuse(*_: Any) -> NoReturn:
    raise PushMalformed("DTD, entity or notation declared")


class _Builder:
    """Collects ``<xml>``'s children as flat fields while expat parses (depth, count and name bounds)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.path: list[str] = []
        self.text: list[list[str]] = []
        self.parents: list[bool] = []  # per open element: has it had a child element?
        self.seen_root = False

    def start(self, name: str, _attrs: Any) -> None:
        if not self.path:
            if self.seen_root or name != "xml":
                raise PushMalformed("the root element is not <xml>")
            self.seen_root = True
        if len(self.path) >= MAX_DEPTH:
            raise PushMalformed("nested too deep")
        if self.parents:
            self.parents[-1] = True
        self.path.append(name)
        self.text.append([])
        self.parents.append(False)

    def end(self, name: str) -> None:
        text = "".join(self.text.pop())
        self.path.pop()
        if not self.path or self.parents.pop():
            return  # the root, or a container whose children are fields of their own
        key = "_".join([*self.path[1:], name])
        if len(self.path) == 1 and key in self.fields:
            raise PushMalformed(f"two <{name}> fields")
        _put(self.fields, key, text)

    def data(self, chunk: str) -> None:
        if self.text:
            self.text[-1].append(chunk)


def _put(fields: dict[str, str], key: str, value: str) -> None:
    if len(fields) >= MAX_FIELDS:
        raise PushMalformed("too many fields")
    name, n = key, 0
    while name in fields:
        n += 1
        name = f"{key}_{n}"
    fields[name] = value


def _parse_xml(text: str) -> dict[str, str]:
    parser = pyexpat.ParserCreate(encoding="utf-8")  # the declared encoding is ignored: we decoded UTF-8
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.NotationDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    builder = _Builder()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(text, True)
    except pyexpat.ExpatError:
        raise PushMalformed("not well-formed XML") from None
    if not builder.seen_root:
        raise PushMalformed("no <xml> element")
    return builder.fields


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PushMalformed(f"two {key!r} keys")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise PushMalformed(f"JSON constant {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PushMalformed("a number out of range")
    return value


def _parse_json(text: str) -> dict[str, str]:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        raise PushMalformed("not JSON") from None
    if not isinstance(data, dict):
        raise PushMalformed("not a JSON object")
    fields: dict[str, str] = {}
    _flatten(fields, "", data, 0)
    return fields


def _flatten(fields: dict[str, str], prefix: str, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise PushMalformed("nested too deep")
    items: Iterable[tuple[str, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        _put(fields, prefix, _scalar(value))
        return
    for key, item in items:
        _flatten(fields, f"{prefix}_{key}" if prefix else key, item, depth + 1)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Characters XML 1.0 cannot carry at all, not even in CDATA (C0 controls but tab, CR, LF; lone surrogates;
# U+FFFE/U+FFFF): dropped from replies rather than sent as a document WeChat cannot read.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside one CDATA section: close it and open another between "]]" and ">".
    return "<![CDATA[" + _NOT_XML.sub("", value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: Iterable[tuple[str, str | int]]) -> bytes:
    """``<xml>`` with one child per field: strings in CDATA, numbers bare (WeChat's own layout)."""
    parts = ["<xml>"]
    for name, value in fields:
        parts.append(f"<{name}>{value if isinstance(value, int) else _cdata(value)}</{name}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")
