"""Scan to follow: which pushes name a login scene, what a forward signature is, and how replies are read."""

from __future__ import annotations

import hashlib
import hmac
from types import MappingProxyType

import pytest

from wxlogin.errors import WeChatUnavailable
from wxlogin.models import PushEvent
from wxlogin.services.follow import scene_of
from wxlogin.services.pushes import forward_signature
from wxlogin.wechat.client import _follower, _parametric_qr

SCENE = "aB3" + "x" * 29


def event(name: str, key: str) -> PushEvent:
    return PushEvent(to_user="gh_1", from_user="o1", create_time=1, msg_type="event", event=name, event_key=key,
                     ticket="", msg_id="", fields=MappingProxyType({}))


@pytest.mark.parametrize("name, key, expected", [
    ("subscribe", f"qrscene_login_{SCENE}", SCENE),  # a new follower: WeChat's prefix, then ours
    ("SCAN", f"login_{SCENE}", SCENE),  # an existing follower: the scene_str itself
    ("subscribe", f"login_{SCENE}", None),  # the prefix missing where WeChat always puts it
    ("SCAN", f"qrscene_login_{SCENE}", None),
    ("subscribe", "", None), ("subscribe", "qrscene_", None), ("SCAN", "", None),
    ("SCAN", f"login_{SCENE}x", None), ("SCAN", f"login_{SCENE[:-1]}", None), ("SCAN", f"login_{SCENE[:-1]}/", None),
    ("SCAN", f"login_{SCENE[:-1]}\n", None), ("SCAN", f"login_{SCENE[:-1]}\0", None), ("SCAN", "12345", None),
    ("unsubscribe", f"login_{SCENE}", None), ("CLICK", f"login_{SCENE}", None),
])
def test_only_our_keys_name_a_scene(name, key, expected):
    assert scene_of(event(name, key)) == expected


def test_the_forward_signature_is_hmac_sha256_over_timestamp_lf_body():
    expected = hmac.new(b"k" * 32, b"1714036504\n<xml/>", hashlib.sha256).hexdigest()
    assert forward_signature("k" * 32, "1714036504", b"<xml/>") == expected


def test_qrcode_create_answers_are_checked():
    good = {"ticket": "gQ1", "expire_seconds": 300, "url": "http://weixin.qq.com/q/abc"}
    assert _parametric_qr(good, 300).url == "http://weixin.qq.com/q/abc"
    assert _parametric_qr({**good, "expire_seconds": "x"}, 120).expire_seconds == 120
    for bad in ({**good, "url": "javascript:alert(1)"}, {**good, "url": 5}, {**good, "ticket": ""},
                {**good, "url": "http://a b"}):
        with pytest.raises(WeChatUnavailable):
            _parametric_qr(bad, 300)


def test_user_info_answers_are_checked():
    assert _follower({"subscribe": 1, "openid": "o1", "unionid": "u1"}, "o1").unionid == "u1"
    gone = _follower({"subscribe": 0, "openid": "o1", "unionid": "u1"}, "o1")
    assert not gone.subscribed and gone.unionid is None
    for bad in ({"subscribe": 1, "openid": "o2"}, {"subscribe": 1, "openid": "o1", "unionid": "u 1"}):
        with pytest.raises(WeChatUnavailable):
            _follower(bad, "o1")
