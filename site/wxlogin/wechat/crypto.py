"""Cryptography for WeChat data: tokens encrypted at rest (AES-GCM) and mini-program open data.

The only module that imports pycryptodome (push_crypto.py gets its AES-CBC from ``aes_cbc`` here).
``decrypt_open_data`` turns every failure into the same
``EncryptedDataInvalid`` so that callers cannot become a padding oracle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from Crypto.Cipher import AES
from Crypto.Util.Padding import unpad

# Defined with the other domain errors; re-exported (explicitly, for mypy --strict) for callers of this module.
from wxlogin.errors import EncryptedDataInvalid as EncryptedDataInvalid

_VERSION = b"\x01"
MAX_CIPHERTEXT = 8 * 1024


class TokenCipher:
    """AES-256-GCM for secrets kept at rest; each ciphertext names the key that sealed it."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._keys = {hashlib.sha256(k).digest()[:4]: k for k in keys}
        self._newest = keys[-1]
        self._newest_id = hashlib.sha256(self._newest).digest()[:4]

    def encrypt(self, plaintext: str) -> bytes:
        """Seal a string: version | key id | nonce | tag | ciphertext."""
        nonce = secrets.token_bytes(12)
        cipher = AES.new(self._newest, AES.MODE_GCM, nonce=nonce)
        body, tag = cipher.encrypt_and_digest(plaintext.encode("utf-8"))
        return _VERSION + self._newest_id + nonce + tag + body

    def decrypt(self, blob: bytes | None) -> str | None:
        """Open a sealed string; None when it is absent, tampered or sealed by a removed key."""
        if not blob or len(blob) < 33 or blob[:1] != _VERSION:
            return None
        key = self._keys.get(bytes(blob[1:5]))
        if key is None:
            return None
        nonce, tag, body = blob[5:17], blob[17:33], blob[33:]
        try:
            return AES.new(key, AES.MODE_GCM, nonce=nonce).decrypt_and_verify(body, tag).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None


def aes_cbc(key: bytes, data: bytes, *, decrypt: bool) -> bytes:
    """Raw AES-CBC with IV = the key's first 16 bytes and no padding: WeChat's push envelope (the caller
    pads, to 32-byte blocks, which pycryptodome's pad/unpad do not check)."""
    cipher = AES.new(key, AES.MODE_CBC, iv=key[:16])
    return cipher.decrypt(data) if decrypt else cipher.encrypt(data)


def _b64(value: Any, exact_len: int | None = None) -> bytes:
    if not isinstance(value, str) or not value or len(value) > (MAX_CIPHERTEXT * 4) // 3 + 4:
        raise EncryptedDataInvalid()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptedDataInvalid() from None
    if exact_len is not None and len(raw) != exact_len:
        raise EncryptedDataInvalid()
    return raw


def decrypt_open_data(
    session_key: str, encrypted_data: Any, iv: Any, appid: str, max_age: int | None = None
) -> dict[str, Any]:
    """Decrypt ``encryptedData`` (AES-128-CBC, strict PKCS#7) and check its watermark.

    Raises EncryptedDataInvalid, and only that, for every kind of failure.
    """
    try:
        key = _b64(session_key, 16)
        vector = _b64(iv, 16)
        blob = _b64(encrypted_data)
        if not blob or len(blob) % 16 or len(blob) > MAX_CIPHERTEXT:
            raise EncryptedDataInvalid()
        plain = unpad(AES.new(key, AES.MODE_CBC, iv=vector).decrypt(blob), 16, style="pkcs7")
        data = json.loads(plain.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(data, dict):
            raise EncryptedDataInvalid()
        watermark = data.get("watermark")
        if not isinstance(watermark, dict) or watermark.get("appid") != appid:
            raise EncryptedDataInvalid()
        if max_age is not None:
            stamp = watermark.get("timestamp")
            if not isinstance(stamp, int) or isinstance(stamp, bool) or abs(time.time() - stamp) > max_age:
                raise EncryptedDataInvalid()
        return data
    except EncryptedDataInvalid:
        raise
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError, KeyError):
        raise EncryptedDataInvalid() from None


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def raw_data_signature_ok(raw_data: Any, session_key: str, signature: Any) -> bool:
    """Check ``signature == sha1(rawData + session_key)`` in constant time."""
    if not isinstance(raw_data, str) or not isinstance(signature, str) or len(signature) != 40:
        return False
    expected = hashlib.sha1((raw_data + session_key).encode("utf-8", "surrogatepass")).hexdigest()
    # As bytes: compare_digest refuses a str with non-ASCII characters (TypeError), and the signature is the
    # client's, so any text may arrive here; 40 characters of it never equal a hex digest unless all are hex.
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "surrogatepass"))


def session_key_signature(session_key: str, message: bytes = b"") -> str:
    """WeChat's user-state signature: hex HMAC-SHA256 keyed with the session_key's base64 *text*
    (wechat-platform.md section 4). Over the empty message it is what ``/wxa/checksession`` wants."""
    return hmac.new(session_key.encode("utf-8"), message, hashlib.sha256).hexdigest()
