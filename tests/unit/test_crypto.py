"""Crypto: tokens at rest (AES-GCM) and mini-program open data, with the official test vector."""

from __future__ import annotations

import hashlib

import pytest

from wxlogin.wechat.crypto import EncryptedDataInvalid, TokenCipher, decrypt_open_data, raw_data_signature_ok

APPID = "wx4f4bc4dec97d474b"
SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="
IV = "r7BXXKkLb8qrSNn05n0qiA=="
ENCRYPTED = (
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOE"
    "TKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJ"
    "Xwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrX"
    "d2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiK"
    "dYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
)
EXPECTED = (
    '{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou",'
    '"province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak'
    '2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA",'
    '"watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}'
)


def test_official_vector_decrypts_to_the_recorded_json():
    import json

    data = decrypt_open_data(SESSION_KEY, ENCRYPTED, IV, APPID)
    assert hashlib.sha256(EXPECTED.encode()).hexdigest() == (
        "3237d8a5dbd413523c194882c7156544d8a06e2afcc97383cc300c17bd09391b")
    assert data == json.loads(EXPECTED)
    assert data["openId"] == "oGZUI0egBJY1zhBYw2KhdUfwVJJE"  # the official demo's comment omits it


@pytest.mark.parametrize("key, data, iv, appid", [
    (SESSION_KEY, ENCRYPTED, IV, "wx0000000000000000"),  # watermark of another app
    ("HyVFkGl5F5OQWJZZaNzBBg==", ENCRYPTED, IV, APPID),  # stale session_key
    (SESSION_KEY, ENCRYPTED, "AAAAAAAAAAAAAAAAAAAAAA==", APPID),  # wrong iv: garbage first block
    (SESSION_KEY, ENCRYPTED[:-24] + "==", IV, APPID),
    (SESSION_KEY, "!!!!", IV, APPID),
    (SESSION_KEY, ENCRYPTED, "r7BXXKkLb8qrSNn05n0q", APPID),  # iv not 16 bytes
    (SESSION_KEY, "", IV, APPID),
    (SESSION_KEY, None, IV, APPID),
    (SESSION_KEY, ENCRYPTED.replace("+", "-").replace("/", "_"), IV, APPID),
    (SESSION_KEY, "A" * 12000, IV, APPID),
])
def test_every_failure_is_the_same_error(key, data, iv, appid):
    with pytest.raises(EncryptedDataInvalid) as error:
        decrypt_open_data(key, data, iv, appid)
    assert str(error.value) == "encrypted_data_invalid"


def test_raw_data_signature_vector():
    raw = ('{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong",'
           '"country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503'
           'Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}')
    assert raw_data_signature_ok(raw, "HyVFkGl5F5OQWJZZaNzBBg==", "75e81ceda165f4ffa64f4068af58c64b8f54b88c")
    assert not raw_data_signature_ok(raw + " ", "HyVFkGl5F5OQWJZZaNzBBg==", "75e81ceda165f4ffa64f4068af58c64b8f54b88c")


def test_token_cipher_round_trip_tamper_and_rotation():
    k1, k2 = b"1" * 32, b"2" * 32
    sealed = TokenCipher([k1]).encrypt("access-token-€")
    assert TokenCipher([k1]).decrypt(sealed) == "access-token-€"
    assert b"access-token" not in sealed
    assert TokenCipher([k1, k2]).decrypt(sealed) == "access-token-€"  # old key still listed
    assert TokenCipher([k2]).decrypt(sealed) is None  # removed key
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert TokenCipher([k1]).decrypt(tampered) is None
    assert TokenCipher([k1]).decrypt(None) is None
