"""Property tests (hypothesis) for every parser that sees attacker-controlled text.

Whatever comes in, each parser either accepts something well-formed or refuses with its own domain
error; nothing else escapes (no KeyError, ValueError or UnicodeError that would become a 500).
"""

from __future__ import annotations

import base64
import time

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wxlogin.errors import StateExpired, StateInvalid
from wxlogin.redirects import safe_next
from wxlogin.services.sessions import claims_from
from wxlogin.signing import Signing, binding_nonce, state_nonce
from wxlogin.wechat.crypto import EncryptedDataInvalid, decrypt_open_data, raw_data_signature_ok

SIGNING = Signing(["fuzz-key-one-0000000000000000000000001", "fuzz-key-two-0000000000000000000000002"])
VALID_STATE, _ = SIGNING.make_state("web", "/")
VALID_SESSION = SIGNING.dump_session({"uid": 1, "sid": "a" * 22, "sv": 1, "iat": int(time.time())})
anything = st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")))


def mutations(valid: str) -> st.SearchStrategy[str]:
    """The valid value with one character changed, cut, or junk appended."""
    index = st.integers(min_value=0, max_value=len(valid) - 1)
    return st.one_of(
        st.tuples(index, st.characters()).map(lambda t: valid[:t[0]] + t[1] + valid[t[0] + 1:]),
        index.map(lambda i: valid[:i]),
        anything.map(lambda junk: valid + junk),
    )


@settings(max_examples=400)
@given(st.one_of(anything, mutations(VALID_STATE)), st.sampled_from(["web", "mp", "web-link"]), anything)
def test_state_parser_refuses_cleanly(state, flow, next_path):
    try:
        SIGNING.load_state(state, flow, next_path, 600)
    except (StateInvalid, StateExpired):
        return
    assert state == VALID_STATE and flow == "web" and next_path == "/"


@settings(max_examples=300)
@given(st.one_of(anything, st.integers(), st.none(), st.lists(st.text())))
def test_state_nonce_and_binding_never_raise(value):
    nonce = state_nonce(value)
    assert nonce is None or (isinstance(nonce, str) and len(nonce) == 32)
    if isinstance(value, str):
        assert len(binding_nonce(value)) == 32


@settings(max_examples=400)
@given(st.one_of(anything, mutations(VALID_SESSION)))
def test_session_and_token_parsers_refuse_cleanly(value):
    loaded = SIGNING.load_session(value, 3600)
    assert loaded is None or value.startswith(VALID_SESSION.split(".")[0])
    assert SIGNING.load_api_token(value, 3600) is None  # another salt: never a token
    assert SIGNING.load_merge_offer(value) is None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=4), max_leaves=10)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["uid", "sid", "sv", "iat", "ch", "x"]), json_values))
def test_session_claims_shape_check(payload):
    claims = claims_from(payload)
    if claims is not None:
        assert isinstance(claims.user_id, int) and isinstance(claims.sid, str)


@settings(max_examples=400)
@given(anything)
def test_return_targets_stay_on_site(value):
    target = safe_next(value)
    assert target.startswith("/") and not target.startswith(("//", "/\\"))
    assert all(ch.isprintable() and not ch.isspace() for ch in target)


b64ish = st.one_of(anything, st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))


@settings(max_examples=300)
@given(st.one_of(b64ish, st.none(), st.integers()), st.one_of(b64ish, st.none(), st.integers()), b64ish)
def test_open_data_refuses_with_one_error(data, iv, key):
    try:
        decrypt_open_data(key, data, iv, "wxa0b1c2d3e4f50004")
    except EncryptedDataInvalid:
        return
    raise AssertionError("random input decrypted")


@settings(max_examples=200)
@given(st.one_of(anything, st.none(), st.integers()), st.one_of(anything, st.none(), st.integers()))
@example("{}", "签" * 40)  # 40 characters, not ASCII: compare_digest on str raised TypeError (found by this fuzz)
def test_raw_data_signature_check_never_raises(raw, signature):
    assert raw_data_signature_ok(raw, "U0tNQVJLU0tNQVJLU0tNQQ==", signature) is False
