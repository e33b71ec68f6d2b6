"""All signing lives here: one salt per purpose (session cookie, API token, OAuth state, key derivation).

``secret_keys`` run oldest to newest; the newest signs and every listed key verifies, so a key can be
rotated in without logging anyone out and rotated out to revoke what it signed.

WeChat's ``state`` must match ``^[A-Za-z0-9]{1,128}$`` while itsdangerous' own text format uses ``.-_``,
so the state is built here from a hex timestamp, a 128-bit hex nonce and a hex HMAC made with a key that
itsdangerous derives for the state salt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from itsdangerous import BadData, Signer, URLSafeTimedSerializer

from wxlogin.errors import StateExpired, StateInvalid

SESSION_SALT = "wxlogin.session"
API_TOKEN_SALT = "wxlogin.api-token"
STATE_SALT = "wxlogin.oauth-state"
MERGE_OFFER_SALT = "wxlogin.merge-offer"
ENCRYPTION_PURPOSE = "wxlogin.token-encryption"

STATE_RE = re.compile(r"^[0-9a-f]{72}$")
_CLOCK_SKEW = 60  # seconds a state's timestamp may lie in the future (clock drift between processes)
_MAC_BYTES = 16


@dataclass(frozen=True)
class OAuthState:
    """A verified state: its nonce (binds the browser, makes it single-use)."""

    nonce: str


class Signing:
    """Signs and verifies every token the site hands out, each purpose under its own salt."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        keys = [k.encode("utf-8") for k in secret_keys]
        signer_kwargs = {"digest_method": hashlib.sha256, "key_derivation": "hmac"}
        self._session = URLSafeTimedSerializer(keys, salt=SESSION_SALT, signer_kwargs=signer_kwargs)
        self._api_token = URLSafeTimedSerializer(keys, salt=API_TOKEN_SALT, signer_kwargs=signer_kwargs)
        self._merge_offer = URLSafeTimedSerializer(keys, salt=MERGE_OFFER_SALT, signer_kwargs=signer_kwargs)
        state_signer = Signer(keys, salt=STATE_SALT, **signer_kwargs)  # type: ignore[arg-type]
        # Derived once: deriving per request would redo the key hashing on the login hot path.
        self._state_keys = [state_signer.derive_key(k) for k in reversed(keys)]  # newest first
        self._encryption_keys = [
            hmac.new(k, ENCRYPTION_PURPOSE.encode(), hashlib.sha256).digest() for k in keys
        ]

    # --- session cookie and API bearer token ---------------------------------------------

    def dump_session(self, claims: dict[str, Any]) -> str:
        """Sign a session cookie payload."""
        return self._session.dumps(claims)

    def load_session(self, value: str, max_age: int) -> tuple[dict[str, Any], int] | None:
        """Return (payload, signed-at) of a valid session cookie signed within ``max_age``, else None."""
        return _load(self._session, value, max_age)

    def dump_api_token(self, claims: dict[str, Any]) -> str:
        """Sign a bearer token payload."""
        return self._api_token.dumps(claims)

    def load_api_token(self, value: str, max_age: int) -> tuple[dict[str, Any], int] | None:
        """Return (payload, signed-at) of a valid bearer token signed within ``max_age``, else None."""
        return _load(self._api_token, value, max_age)

    def dump_merge_offer(self, into_user_id: int, from_user_id: int) -> str:
        """Sign proof that this person just authorised a WeChat identity owned by another account."""
        return self._merge_offer.dumps({"into": into_user_id, "from": from_user_id})

    def load_merge_offer(self, value: str, max_age: int = 600) -> tuple[int, int] | None:
        """Return (into, from) user ids of a valid, recent merge offer, else None."""
        loaded = _load(self._merge_offer, value, max_age)
        if loaded is None:
            return None
        into, source = loaded[0].get("into"), loaded[0].get("from")
        if not (_is_int(into) and _is_int(source)):
            return None
        return into, source

    # --- OAuth state ------------------------------------------------------------------------

    def make_state(self, flow: str, next_path: str, now: float | None = None) -> tuple[str, str]:
        """Mint a WeChat-safe state bound to this flow and return target; returns (state, binding secret).

        The state carries ``binding_nonce(secret)``; the secret itself goes only into the browser's
        binding cookie, so a leaked callback URL does not reveal the cookie that completes it.
        """
        ts = f"{int(now if now is not None else time.time()):08x}"
        secret = secrets.token_hex(16)
        nonce = binding_nonce(secret)
        mac = _state_mac(self._state_keys[0], ts, nonce, flow, next_path)
        return ts + nonce + mac, secret

    def load_state(self, state: str, flow: str, next_path: str, max_age: int, now: float | None = None) -> OAuthState:
        """Verify a state for this flow and return target; raise StateInvalid/StateExpired otherwise."""
        if not isinstance(state, str) or not STATE_RE.match(state):
            raise StateInvalid("malformed")
        ts, nonce, mac = state[:8], state[8:40], state[40:]
        if not any(hmac.compare_digest(mac, _state_mac(k, ts, nonce, flow, next_path)) for k in self._state_keys):
            raise StateInvalid("bad_signature")
        issued = int(ts, 16)
        age = (now if now is not None else time.time()) - issued
        if age < -_CLOCK_SKEW:
            raise StateInvalid("future")
        if age > max_age:
            raise StateExpired()
        return OAuthState(nonce=nonce)

    # --- key material for encryption at rest ---------------------------------------------

    @property
    def encryption_keys(self) -> list[bytes]:
        """32-byte keys for encrypting WeChat tokens at rest, oldest to newest."""
        return list(self._encryption_keys)


def state_nonce(state: object) -> str | None:
    """The nonce part of a well-formed state (unverified: for housekeeping such as clearing the binding)."""
    return state[8:40] if isinstance(state, str) and STATE_RE.match(state) else None


def binding_nonce(secret: str) -> str:
    """The public half of a binding secret: what the state carries."""
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()[:32]


def _is_int(value: object) -> TypeGuard[int]:
    """An int and not a bool (JSON's true is an int to isinstance)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _state_mac(key: bytes, ts: str, nonce: str, flow: str, next_path: str) -> str:
    message = f"{ts}{nonce}\x00{flow}\x00{next_path}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES].hex()


def _load(serializer: URLSafeTimedSerializer, value: str, max_age: int) -> tuple[dict[str, Any], int] | None:
    if not isinstance(value, str) or not value or len(value) > 4096:
        return None
    try:
        payload, signed_at = serializer.loads(value, max_age=max_age, return_timestamp=True)
    except (BadData, ValueError, TypeError, UnicodeError, RecursionError):
        # Every malformed, tampered, foreign-salt or expired value simply means "not signed in".
        return None
    if not isinstance(payload, dict):
        return None
    return payload, int(signed_at.timestamp())
