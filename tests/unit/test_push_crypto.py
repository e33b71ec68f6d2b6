"""Event-push crypto and parsing: the §5 vectors of ../shared/wechat-platform.md through both implementations
(wechat/push_crypto.py, the site's; sandbox/push.py, WeChat's side), strict envelopes, hardened XML."""

from __future__ import annotations

import base64
import hashlib

import pytest
from Crypto.Cipher import AES

from wxlogin.sandbox import push as wechat_side
from wxlogin.wechat import push_crypto as ours
from wxlogin.wechat.push_crypto import PushMalformed, PushTooLarge, PushUnauthentic

# ../shared/wechat-platform.md §5. The message's exact bytes were recovered from the SHA-256 the document
# gives (15d2d784…ba59b0a); the full Encrypt below starts and ends as the document says.
TOKEN, TIMESTAMP, NONCE = "AAAAA", "1714036504", "1514711492"
URL_SIGNATURE = "f464b24fc39322e44b38aa78f5edd27bd1441696"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx5823bf96d3bd56c7"
PREFIX = b"0123456789abcdef"
MESSAGE = (
    b"<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[oTESTopenid0000000000000000]]>"
    b"</FromUserName><CreateTime>1714036504</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA["
    b"subscribe]]></Event><EventKey><![CDATA[qrscene_Ab12Cd34]]></EventKey><Ticket><![CDATA[gQTEST]]></Ticket></xml>"
)
ENCRYPT = (
    "Q3stYC6hdFzMh9T8HCvyDFdxkJPMUJHVRPNpaFc6VV7Fyc/sPNsTneA9sPS7Xe0I4EVeKHKDfqvxwJft0mq3RnIH/DgFgIkTu+B7LucLH0XxEq"
    "f/2C/UhQEOj/1jjZv6mTYw584ks25RU74TeBurIX2hIcQBiSZly3yoJ/B1YrmoGqdNumM2z7KqSfrRLz4GUm4r6lPmykDg6r0vTgGxbLdbfbHE"
    "o1uaAFyaen2O10IJpD96fzatBpty/JuR40a+79D6A/wS19YQUl5aD7eOjS8lI4ND03USpw2IZZN4mt87JKUs8/a8kZ9TOeu4frxxtsJnUB1cOq"
    "HD52kBJYwI+oI9syO9kuTBQX20PoRriXgUTOFS2Niv2MwbXrjMa6bxkh62ydyw+tRgQFn8oSvqW45J/ejtCoRwNGu7H7d9o7LG9AkoYjpcWHo4"
    "nR1bc4x3YbjZPyEbldA8PgLQ4UnSYpvsAwV+r0hv9friBYU2KxVH92EvWEpR8BdbvJwGpLlW"
)
MSG_SIGNATURE = "668100d8dea06a958bbc85693c6b02ba1e96ecf1"
KEY = ours.aes_key(ENCODING_AES_KEY)


def test_the_documented_vector_is_the_one_the_document_describes():
    assert hashlib.sha256(MESSAGE).hexdigest().startswith("15d2d784")
    assert hashlib.sha256(MESSAGE).hexdigest().endswith("ba59b0a")
    assert len(ENCRYPT) == 512 and ENCRYPT.startswith("Q3stYC6hdFzMh9T8HCvy") and ENCRYPT.endswith("BdbvJwGpLlW")


@pytest.mark.parametrize("sign", [ours.signature, wechat_side.sign], ids=["site", "sandbox"])
def test_url_and_message_signature_vectors(sign):
    assert sign(TOKEN, TIMESTAMP, NONCE) == URL_SIGNATURE
    assert sign(TOKEN, TIMESTAMP, NONCE, ENCRYPT) == MSG_SIGNATURE


def test_both_implementations_seal_the_vector_identically():
    assert ours.encrypt(KEY, MESSAGE, APPID, prefix=PREFIX) == ENCRYPT
    assert wechat_side.seal(ENCODING_AES_KEY, APPID, MESSAGE, prefix=PREFIX) == ENCRYPT


def test_both_implementations_open_the_vector():
    assert ours.decrypt(KEY, ENCRYPT, APPID) == MESSAGE
    assert wechat_side.unseal(ENCODING_AES_KEY, ENCRYPT) == (MESSAGE, APPID)


def test_the_site_checks_the_vector_and_parses_its_message():
    ours.check_query(TOKEN, TIMESTAMP, NONCE, URL_SIGNATURE)
    ours.check_msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT, MSG_SIGNATURE)
    assert ours.parse_message(ours.decrypt(KEY, ENCRYPT, APPID)) == {
        "ToUserName": "gh_123456789abc", "FromUserName": "oTESTopenid0000000000000000", "CreateTime": "1714036504",
        "MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_Ab12Cd34", "Ticket": "gQTEST",
    }


def test_round_trips_between_the_two_implementations():
    for message in (b"", b"x", "关注 ✓".encode() * 40, b"a" * 31, b"a" * 32, b"a" * 33):
        assert ours.decrypt(KEY, wechat_side.seal(ENCODING_AES_KEY, APPID, message), APPID) == message
        assert wechat_side.unseal(ENCODING_AES_KEY, ours.encrypt(KEY, message, APPID)) == (message, APPID)


@pytest.mark.parametrize("given", [
    "", URL_SIGNATURE.upper(), URL_SIGNATURE[:-1], URL_SIGNATURE[:-1] + "7", "g" * 40, URL_SIGNATURE + "0",
])
def test_a_wrong_or_malformed_signature_is_refused(given):
    with pytest.raises(PushUnauthentic):
        ours.check_query(TOKEN, TIMESTAMP, NONCE, given)


@pytest.mark.parametrize("timestamp, nonce", [("", NONCE), (TIMESTAMP, ""), ("-1", NONCE), ("1e9", NONCE),
                                              ("17140365040", NONCE), (TIMESTAMP, "a b"), (TIMESTAMP, "n" * 65)])
def test_malformed_signature_parameters_are_refused(timestamp, nonce):
    with pytest.raises(PushUnauthentic):
        ours.check_query(TOKEN, timestamp, nonce, ours.signature(TOKEN, timestamp, nonce))


def test_a_msg_signature_over_another_body_is_refused():
    with pytest.raises(PushUnauthentic):
        ours.check_msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT[:-4] + "AAAA", MSG_SIGNATURE)
    with pytest.raises(PushUnauthentic):
        ours.check_msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT, URL_SIGNATURE)


def _raw(plain: bytes) -> str:
    """Encrypt exactly ``plain`` (already padded by the caller), for hand-made bad envelopes."""
    return base64.b64encode(AES.new(KEY, AES.MODE_CBC, iv=KEY[:16]).encrypt(plain)).decode()


def _padded(content: bytes, pad: int | None = None) -> bytes:
    size = 32 - len(content) % 32 if pad is None else pad
    return content + bytes([size]) * size


BODY = PREFIX + len(MESSAGE).to_bytes(4, "big") + MESSAGE
BAD_ENVELOPES = {
    "another app's appid": wechat_side.seal(ENCODING_AES_KEY, "wx0000000000000000", MESSAGE),
    "appid with a suffix": _raw(_padded(BODY + APPID.encode() + b"x")),
    "no appid": _raw(_padded(BODY)),
    "not base64": "!!!!" + ENCRYPT[4:],
    "url-safe alphabet": ENCRYPT.replace("+", "-").replace("/", "_"),
    "spaces": ENCRYPT[:100] + " " + ENCRYPT[100:],
    "truncated base64": ENCRYPT[:-1],
    "a block short": base64.b64encode(base64.b64decode(ENCRYPT)[:-16]).decode(),
    "16-byte multiple only": base64.b64encode(base64.b64decode(ENCRYPT) + b"\0" * 16).decode(),
    "empty": "",
    "padding byte 0": _raw(BODY + APPID.encode() + bytes(32 - (len(BODY) + 18) % 32)),
    "padding byte 33": _raw(BODY + APPID.encode() + b"!" * (32 - (len(BODY) + 18) % 32)),
    "padding bytes disagree": _raw(_padded(BODY + APPID.encode())[:-2] + b"\x01\x05"),
    "length prefix too long": _raw(_padded(PREFIX + (len(MESSAGE) + 99).to_bytes(4, "big") + MESSAGE + APPID.encode())),
    "length prefix too short": _raw(_padded(PREFIX + (len(MESSAGE) - 1).to_bytes(4, "big") + MESSAGE + APPID.encode())),
    "length prefix 2**32-1": _raw(_padded(PREFIX + b"\xff\xff\xff\xff" + MESSAGE + APPID.encode())),
    "shorter than the prefix": _raw(_padded(b"0123456789")),
    "another key": wechat_side.seal("Z" * 43, APPID, MESSAGE),
    "16 KiB": "A" * (24 * 1024),
}


@pytest.mark.parametrize("name", list(BAD_ENVELOPES))
def test_every_bad_envelope_is_one_error(name):
    with pytest.raises(PushMalformed) as error:
        ours.decrypt(KEY, BAD_ENVELOPES[name], APPID)
    assert error.value.reason == "encrypted envelope"


BAD_BODIES = {
    "DOCTYPE with an entity": b'<!DOCTYPE xml [<!ENTITY a "x">]><xml><ToUserName>&a;</ToUserName></xml>',
    "billion laughs": (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;'
                       b'&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                       b"<xml><A>&lol3;</A></xml>"),
    "external entity (XXE)": b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><A>&x;</A></xml>',
    "external DTD": b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><A>a</A></xml>',
    "parameter entity": b'<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]><xml/>',
    "undeclared entity": b"<xml><A>&nbsp;</A></xml>",
    "two FromUserName": b"<xml><FromUserName>a</FromUserName><FromUserName>b</FromUserName></xml>",
    "root not xml": b"<root><A>a</A></root>",
    "two roots": b"<xml><A>a</A></xml><xml><A>b</A></xml>",
    "unclosed": b"<xml><A>a</A>",
    "text after the root": b"<xml/>junk",
    "too deep": b"<xml>" + b"<a>" * 10 + b"x" + b"</a>" * 10 + b"</xml>",
    "invalid UTF-8": b"<xml><A>\xff\xfe</A></xml>",
    "GBK": "<xml><A>关注</A></xml>".encode("gbk"),
    "BOM": b"\xef\xbb\xbf<xml><A>a</A></xml>",
    "empty": b"",
    "plain text": b"success",
    "JSON array": b"[1, 2]",
    "JSON duplicate keys": b'{"FromUserName": "a", "FromUserName": "b"}',
    "JSON NaN": b'{"CreateTime": NaN}',
    "JSON 1e999": b'{"CreateTime": 1e999}',
    "JSON 5000 digits": b'{"CreateTime": ' + b"9" * 5000 + b"}",
    "JSON deep": b'{"a":' * 50 + b"1" + b"}" * 50,
    "JSON truncated": b'{"ToUserName": "gh_x"',
    "too many fields": b"<xml>" + b"".join(b"<f%d>x</f%d>" % (i, i) for i in range(300)) + b"</xml>",
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_are_refused_without_expanding_anything(name):
    with pytest.raises(PushMalformed):
        ours.parse_message(BAD_BODIES[name])


def test_an_oversize_body_is_its_own_refusal():
    with pytest.raises(PushTooLarge):
        ours.parse_message(b"<xml><A>" + b"a" * ours.MAX_PUSH_BODY + b"</A></xml>")


def test_nested_fields_are_flattened_with_underscores():
    xml = (b"<xml><MsgType>event</MsgType><ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult>"
           b"</ScanCodeInfo><List><item><A>1</A></item><item><A>2</A></item></List></xml>")
    assert ours.parse_message(xml) == {"MsgType": "event", "ScanCodeInfo_ScanType": "qrcode",
                                       "ScanCodeInfo_ScanResult": "1", "List_item_A": "1", "List_item_A_1": "2"}
    media_check = (b'{"ToUserName":"gh_x","FromUserName":"o1","CreateTime":1626959646,"MsgType":"event",'
                   b'"Event":"wxa_media_check","trace_id":"t1","version":2,"detail":[{"suggest":"pass","label":100}],'
                   b'"errcode":0,"result":{"suggest":"risky","label":20002}}')
    fields = ours.parse_message(media_check)
    assert fields["CreateTime"] == "1626959646" and fields["trace_id"] == "t1"
    assert fields["result_suggest"] == "risky" and fields["detail_0_label"] == "100"


def test_replies_are_well_formed_whatever_the_text():
    text = "欢迎 ]]> <b>&amp; \x00\x1f end"
    built = ours.build_xml([("Content", text), ("CreateTime", 5)])
    assert ours.parse_message(built) == {"Content": "欢迎 ]]> <b>&amp;  end", "CreateTime": "5"}


@pytest.mark.parametrize("value", ["", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "+"])
def test_aes_keys_are_43_letters_and_digits(value):
    with pytest.raises(ValueError):
        ours.aes_key(value)
