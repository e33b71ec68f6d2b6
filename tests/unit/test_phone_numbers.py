"""Phone numbers as WeChat attests them (issue 13): strict parsing of ``phone_info``, the masked form, and
the session-key signature of ``/wxa/checksession`` (wechat-platform.md section 4's vectors)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from wxlogin.errors import WeChatUnavailable
from wxlogin.models import PhoneNumber
from wxlogin.wechat.client import parse_phone_info
from wxlogin.wechat.crypto import session_key_signature

APPID = "wxa0b1c2d3e4f50004"


def answer(**info: Any) -> dict[str, Any]:
    phone_info = {"phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": "86",
                  "watermark": {"timestamp": int(time.time()), "appid": APPID}, **info}
    return {"errcode": 0, "errmsg": "ok", "phone_info": phone_info}


def test_session_key_signature_vectors():
    key = "o0q0otL8aEzpcZL/FT9WsQ=="
    assert session_key_signature(key) == "46e043c5525c2d817c44be603d30837a808a1d930d038f6fdc3e62a201fed128"
    assert session_key_signature(key, b'{"foo":"bar"}') == (
        "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b")


def test_a_good_answer_is_normalised_with_its_country_code():
    number = parse_phone_info(answer(), APPID)
    assert (number.country_code, number.national, number.e164) == ("86", "13800138000", "+8613800138000")
    foreign = parse_phone_info(answer(phoneNumber="+85261234567", purePhoneNumber="61234567", countryCode=852),
                               APPID)
    assert foreign.e164 == "+85261234567" and foreign.country_code == "852"


# security.md 4.D.5: phoneNumber with letters, 200 digits, "+86 " prefix variants; and the rest of the shape.
BAD = {
    "letters": {"purePhoneNumber": "1380013800a"},
    "200 digits": {"purePhoneNumber": "1" * 200},
    "+86 prefix": {"purePhoneNumber": "+86 13800138000"},
    "+86 without space": {"purePhoneNumber": "+8613800138000"},
    "spaces": {"purePhoneNumber": "138 0013 8000"},
    "Arabic-Indic digits": {"purePhoneNumber": "١٣٨٠٠١٣٨٠٠٠"},
    "fullwidth digits": {"purePhoneNumber": "１３８００１３８０００"},
    "three digits": {"purePhoneNumber": "138"},
    "over 15 in all": {"purePhoneNumber": "1" * 14},
    "number as int": {"purePhoneNumber": 13800138000},
    "no number": {"purePhoneNumber": None},
    "country code 0": {"countryCode": "0"},
    "country code +86": {"countryCode": "+86"},
    "country code 086": {"countryCode": "086"},
    "country code 5 digits": {"countryCode": "12345"},
    "country code true": {"countryCode": True},
    "another app's watermark": {"watermark": {"timestamp": 1, "appid": "wx0000000000000000"}},
    "no watermark": {"watermark": None},
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_answers_are_wechat_unavailable(name):
    with pytest.raises(WeChatUnavailable) as caught:
        parse_phone_info(answer(**BAD[name]), APPID)
    assert "13800138000" not in str(caught.value) and "1380013800" not in caught.value.errmsg


@pytest.mark.parametrize("data", [{}, {"phone_info": "13800138000"}, {"phone_info": []}])
def test_answers_without_phone_info_are_wechat_unavailable(data):
    with pytest.raises(WeChatUnavailable):
        parse_phone_info(data, APPID)


@pytest.mark.parametrize("country, national, masked", [
    ("86", "13800138000", "138****8000"),
    ("852", "61234567", "+852 61****67"),
    ("1", "4155552671", "+1 41******71"),
    ("44", "7911123456789", "+44 791******6789"),
    ("86", "12345", "1***5"),
    ("86", "1234", "1**4"),
])
def test_the_masked_form(country, national, masked):
    number = PhoneNumber(country_code=country, national=national)
    assert number.masked == masked
    assert national not in repr(number) and masked in repr(number), "the repr is masked too (logs, tracebacks)"
