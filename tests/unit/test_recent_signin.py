"""A "recent sign-in" (closing an account, full export, linking, operator actions) is the session's WeChat
sign-in time (claim "wat"), which only a WeChat sign-in sets: minting a session again for another reason keeps it."""
import asyncio
import time
from dataclasses import replace
from datetime import datetime

from wxlogin.config import ServerSettings
from wxlogin.models import SessionClaims, User
from wxlogin.services.sessions import SessionService, claims_from, payload_of
from wxlogin.signing import Signing

SERVER = ServerSettings(host="127.0.0.1", port=0, public_url="http://127.0.0.1", secret_keys=())


def _claims(age: float) -> SessionClaims:
    now = int(time.time() - age)
    return SessionClaims(user_id=1, sid="a" * 22, session_version=1, issued_at=now, wechat_at=now)


def test_a_sign_in_inside_the_window_is_recent_and_one_outside_is_not():
    sessions = SessionService(SERVER, None, None, reauth_window=300)  # type: ignore[arg-type]
    assert sessions.signed_in_recently(_claims(10))
    assert not sessions.signed_in_recently(_claims(301))
    # A claim from the future (a clock step on another machine) is not "recent" either.
    assert not sessions.signed_in_recently(_claims(-120))


def test_a_fresh_session_without_a_wechat_sign_in_is_not_recent():
    sessions = SessionService(SERVER, None, None, reauth_window=300)  # type: ignore[arg-type]
    minted_now = replace(_claims(0), wechat_at=None)  # a cookie from before "wat", or one minted by rotate
    assert not sessions.signed_in_recently(minted_now)
    assert not sessions.signed_in_recently(replace(_claims(0), wechat_at=int(time.time()) - 301))


class _Users:
    async def revoke_session(self, sid: str, expires: object) -> None:
        pass


def test_rotating_a_session_keeps_its_wechat_sign_in_time_and_signing_in_renews_it():
    signing = Signing(["k" * 32])
    sessions = SessionService(SERVER, signing, _Users(), reauth_window=300)  # type: ignore[arg-type]
    user = User(id=1, nickname="n", avatar_url="", profile_is_placeholder=False, unionid=None, session_version=2,
                disabled=False, created_at=datetime(2026, 1, 1), last_login_at=None)
    long_ago = int(time.time()) - 3600
    stale = replace(_claims(3600), wechat_at=long_ago, session_version=2)

    rotated = sessions.parse(asyncio.run(sessions.rotate(user, stale)))
    assert rotated is not None
    assert rotated[0].wechat_at == long_ago and rotated[0].issued_at >= int(time.time()) - 5
    assert not sessions.signed_in_recently(rotated[0])
    # Another person's session rotated into this account's carries nothing over.
    other = sessions.parse(asyncio.run(sessions.rotate(user, replace(_claims(0), user_id=9))))
    assert other is not None and other[0].wechat_at is None

    signed_in = sessions.parse(asyncio.run(sessions.sign_in(user, stale)))
    assert signed_in is not None and sessions.signed_in_recently(signed_in[0])


def test_the_claim_is_optional_and_checked():
    payload = payload_of(_claims(10))
    assert claims_from(payload) == _claims(10)
    assert claims_from({k: v for k, v in payload.items() if k != "wat"}).wechat_at is None
    for bad in (True, "1", 1.5, int(time.time()) + 3600):
        assert claims_from(dict(payload, wat=bad)) is None
