"""WeChat's replies, validated before they reach MySQL or a template: bytes, Unicode validity, hosts.

Pure functions of the client on parsed replies (the reliability suite sends the same replies over real
HTTP from the stand-in). The column sizes are read from the migrations, so a narrower column fails here.
"""

from __future__ import annotations

import re

import pytest

from wxlogin.errors import WeChatError, WeChatUnavailable
from wxlogin.store.migrations import MIGRATIONS
from wxlogin.wechat import client as c
from wxlogin.wechat.crypto import TokenCipher

OPENID = "oABCDEFGHIJKLMNOPQRSTUVWXYZa"
GOOD = {"access_token": "AT_" + "x" * 100, "refresh_token": "RT_" + "y" * 100, "expires_in": 7200,
        "scope": "snsapi_login", "openid": OPENID, "unionid": "uABCDEF"}


def column(name: str) -> str:
    sql = " ".join(s for m in MIGRATIONS for s in m.statements)
    match = re.search(rf"\b{name} ([A-Z]+\(\d+\))", sql)
    assert match, name
    return match.group(1)


def test_the_bounds_are_the_columns():
    assert column("access_token_enc") == f"VARBINARY({c.TOKEN_COLUMN_BYTES})"
    assert column("refresh_token_enc") == f"VARBINARY({c.TOKEN_COLUMN_BYTES})"
    assert column("session_key_enc") == f"VARBINARY({c.SESSION_KEY_COLUMN_BYTES})"
    assert column("nickname") == f"VARCHAR({c.NICKNAME_CHARS})"
    assert column("avatar_url") == f"VARCHAR({c.AVATAR_BYTES})"
    assert column("scope") == f"VARCHAR({c.SCOPE_BYTES})"
    cipher = TokenCipher([b"k" * 32])
    assert len(cipher.encrypt("A" * c.MAX_TOKEN_BYTES)) <= c.TOKEN_COLUMN_BYTES
    assert len(cipher.encrypt("A" * c.MAX_TOKEN_BYTES)) - c.MAX_TOKEN_BYTES == c.SEALED_OVERHEAD
    assert len(cipher.encrypt("U0tNQVJLU0tNQVJLU0tNQQ==")) <= c.SESSION_KEY_COLUMN_BYTES


def test_a_good_token_reply_passes():
    tokens = c._tokens(dict(GOOD))
    assert (tokens.access_token, tokens.refresh_token, tokens.scope, tokens.openid) == (
        GOOD["access_token"], GOOD["refresh_token"], "snsapi_login", OPENID)
    assert len(c._tokens({**GOOD, "access_token": "A" * 512}).access_token) == 512


@pytest.mark.parametrize("access_token", [
    "令" * 512,              # 512 characters, 1,536 bytes: once a DataError 1406 (a 500)
    "令" * 100,              # fits the column, but is no token WeChat issues
    "AT\ud800",              # a lone surrogate: once a UnicodeEncodeError (a 500)
    "A" * 513, "", "AT with space", "AT\n", 12345, None,
])
def test_an_unusable_access_token_is_wechat_unavailable(access_token):
    with pytest.raises(WeChatUnavailable):
        c._parse("/sns/oauth2/access_token", lambda: c._tokens({**GOOD, "access_token": access_token}))


@pytest.mark.parametrize("refresh_token", ["令" * 512, "RT\udfff", "R" * 513, 7])
def test_an_unusable_refresh_token_is_dropped(refresh_token):
    assert c._tokens({**GOOD, "refresh_token": refresh_token}).refresh_token == ""


@pytest.mark.parametrize("reply", [
    {"scope": "范围"}, {"scope": "s" * 65}, {"scope": ["snsapi_login"]}, {"scope": "a\ud800"},
    {"openid": OPENID + "\n"}, {"openid": "o" * 65}, {"openid": "o\ud800"}, {"unionid": "联合"},
    {"unionid": "u\n"},
])
def test_malformed_ids_and_scope_are_refused(reply):
    with pytest.raises(WeChatUnavailable):
        c._parse("/sns/oauth2/access_token", lambda: c._tokens({**GOOD, **reply}))


@pytest.mark.parametrize("expires_in, seconds", [(1e308, 86400), ("1e5", 7200), (-5, 0), (None, 7200)])
def test_expires_in_is_bounded(expires_in, seconds):
    assert c._tokens({**GOOD, "expires_in": expires_in}).expires_in == seconds


@pytest.mark.parametrize("session_key", ["钥" * 24, "U0tNQVJLU0tNQVJLU0tNQQ=\ud800", "x" * 24, "U0tNQVJLU0tNQVJLU0tNQQ",
                                         "U0tNQVJLU0tNQVJLU0tNQQ==\n", None])
def test_an_unusable_session_key_is_refused(session_key):
    with pytest.raises(WeChatUnavailable):
        c._session_key({"session_key": session_key})
    assert c._session_key({"session_key": "U0tNQVJLU0tNQVJLU0tNQQ=="}) == "U0tNQVJLU0tNQVJLU0tNQQ=="


def test_anything_unexpected_while_parsing_is_wechat_unavailable():
    def broken() -> None:
        raise TypeError("a shape nobody expected")

    with pytest.raises(WeChatUnavailable):
        c._parse("/sns/userinfo", broken)


@pytest.mark.parametrize("control", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                                     "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "\u200b", "\ufeff",
                                     "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ud800", "\udfff"])
def test_nicknames_lose_bidi_format_control_and_surrogate_characters(control):
    profile = c.profile_from(f"{control}张{control}三{control}", "")
    assert profile.nickname == "张三"
    profile.nickname.encode("utf-8")  # what MySQL and the templates need


def test_nicknames_keep_emoji_sequences_and_are_capped():
    family = "👨\u200d👩\u200d👧"
    assert c.profile_from(f" 🐼熊猫🎉 {family} ", "").nickname == f"🐼熊猫🎉 {family}"
    assert c.profile_from("名" * 500, "").nickname == "名" * c.NICKNAME_CHARS
    assert c.profile_from(None, None).nickname == ""
    assert c.profile_from("微信用户", "").is_placeholder


@pytest.mark.parametrize("url, stored", [
    ("https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132", "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132"),
    ("http://wx.qlogo.cn/mmopen/vi_32/abc/0", "https://wx.qlogo.cn/mmopen/vi_32/abc/0"),  # upgraded
    ("https://a.thirdwx.qlogo.cn/x/46", "https://a.thirdwx.qlogo.cn/x/46"),
    ("https://WX.QLOGO.CN/x", "https://wx.qlogo.cn/x"),
    ("https://tracker.example/pixel.gif", ""),
    ("https://qlogo.cn/x", ""), ("https://evilwx.qlogo.cn/x", ""), ("https://wx.qlogo.cn.evil.example/x", ""),
    ("https://wx.qlogo.cn@evil.example/x", ""), ("https://user@wx.qlogo.cn/x", ""),
    ("https://wx.qlogo.cn:8443/x", ""), ("ftp://wx.qlogo.cn/x", ""), ("javascript:alert(1)", ""),
    ("//wx.qlogo.cn/x", ""), ("https://thirdwx.qlogo.cn/\ud800/132", ""), ("https://thirdwx.qlogo.cn/头像", ""),
    ('https://wx.qlogo.cn/x"onerror="alert(1)', ""), ("https://wx.qlogo.cn/x y", ""),
    ("https://wx.qlogo.cn/" + "a" * 1100, ""), ("https://[::1/", ""), (None, ""), (42, ""),
])
def test_avatars_are_https_on_wechat_avatar_hosts_only(url, stored):
    assert c.profile_from("n", url).avatar_url == stored


def test_the_sandbox_avatars_are_allowed_only_under_the_given_base():
    base = "http://127.0.0.1:8000/_sandbox/"
    assert c.clean_avatar(base + "avatar/zhangsan.svg", base) == base + "avatar/zhangsan.svg"
    assert c.clean_avatar(base + "avatar/zhangsan.svg") == ""  # sandbox off: no extra base
    assert c.clean_avatar("http://127.0.0.1:8000/elsewhere.svg", base) == ""


@pytest.mark.parametrize("errcode, number", [(40029, 40029), ("40029", 40029), ("-1", -1), (True, None),
                                             ("４００２９", None), (1.5, None), ([1], None), (None, None)])
def test_errcodes_are_numbers_or_nothing(errcode, number):
    assert c._errcode(errcode) == number


def test_errmsg_is_cleaned_before_it_is_logged_or_kept():
    error = c._error_for(40029, "invalid code\u202e\ud800\n, rid: 6650-abc " + "x" * 500)
    assert isinstance(error, WeChatError) and error.code == "code_invalid"
    assert "\u202e" not in error.errmsg and "\ud800" not in error.errmsg and "\n" not in error.errmsg
    assert len(error.errmsg) <= c.MAX_ERRMSG and error.rid == "6650-abc"
