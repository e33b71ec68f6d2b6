"""State and token signing: format, binding to flow and return path, expiry, keys, salts."""

from __future__ import annotations

import re
import secrets
import time

import pytest

from wxlogin.errors import StateExpired, StateInvalid
from wxlogin.services.oauth import Flow
from wxlogin.services.sessions import claims_from
from wxlogin.signing import Signing, binding_nonce

K1, K2 = "k1-dev-insecure-0000000000000000000000001", "k2-dev-insecure-0000000000000000000000002"


def test_state_matches_wechat_alphabet_and_length():
    signing = Signing([K1])
    states = {signing.make_state("mp", "/" + "x" * 500)[0] for _ in range(1000)}
    assert len(states) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9]{1,128}", s) for s in states)


def test_state_round_trip_gives_the_binding_nonce():
    signing = Signing([K1])
    state, secret = signing.make_state("web", "/account")
    assert signing.load_state(state, "web", "/account", 600).nonce == binding_nonce(secret)
    assert secret not in state  # the cookie's secret never travels in the URL


@pytest.mark.parametrize("flow, next_path", [("mp", "/account"), ("web", "/elsewhere")])
def test_state_is_bound_to_flow_and_return_path(flow, next_path):
    signing = Signing([K1])
    state, _ = signing.make_state("web", "/account")
    with pytest.raises(StateInvalid):
        signing.load_state(state, flow, next_path, 600)


def test_state_expires_and_future_states_are_refused():
    signing = Signing([K1])
    old, _ = signing.make_state("web", "/", now=time.time() - 601)
    future, _ = signing.make_state("web", "/", now=time.time() + 3600)
    with pytest.raises(StateExpired):
        signing.load_state(old, "web", "/", 600)
    with pytest.raises(StateInvalid, match="future"):
        signing.load_state(future, "web", "/", 600)


def test_key_rotation_for_states():
    state, _ = Signing([K1]).make_state("web", "/")
    Signing([K1, K2]).load_state(state, "web", "/", 600)
    with pytest.raises(StateInvalid):
        Signing([K2]).load_state(state, "web", "/", 600)
    new_state, _ = Signing([K1, K2]).make_state("web", "/")
    Signing([K2]).load_state(new_state, "web", "/", 600)  # the newest key signs


def test_session_and_api_token_salts_do_not_mix():
    signing = Signing([K1])
    claims = {"uid": 1, "sid": "x" * 22, "sv": 1, "iat": 1}
    assert signing.load_session(signing.dump_api_token(claims), 60) is None
    assert signing.load_api_token(signing.dump_session(claims), 60) is None
    assert signing.load_session(signing.dump_session(claims), 60)[0] == claims


@pytest.mark.parametrize("value", ["", "x", "a.b.c", "€", "a" * 5000, None, 123])
def test_garbage_sessions_are_none(value):
    assert Signing([K1]).load_session(value, 60) is None


@pytest.mark.parametrize("sid", ["a" * 21, "a" * 23, "a" * 30, "a" * 21 + "!", "a" * 21 + "\u00e9"])
def test_session_ids_other_than_the_minted_shape_are_refused(sid):
    # revoked_sessions.sid is CHAR(22): a longer sid would be cut there and its logout would not stick.
    payload = {"uid": 1, "sid": sid, "sv": 0, "iat": int(time.time())}
    assert claims_from(payload) is None
    assert claims_from({**payload, "sid": secrets.token_urlsafe(16)}) is not None


@pytest.mark.parametrize("slug", ["web", "mp", "mp.news", "web-link", "mp-merge", "mp.news-link"])
def test_flow_slugs_round_trip(slug):
    assert Flow.from_slug(slug).slug == slug


@pytest.mark.parametrize("slug", ["web.news", "app", "mp.", "mp.News", "mp-login", "mp.news-", "mp--link", "x"])
def test_anything_else_is_no_flow(slug):
    with pytest.raises(ValueError):
        Flow.from_slug(slug)
