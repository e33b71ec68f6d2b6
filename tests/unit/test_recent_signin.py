"""A "recent sign-in" (closing an account, full export, operator actions) is the session's WeChat sign-in time."""
import time

from wxlogin.config import ServerSettings
from wxlogin.models import SessionClaims
from wxlogin.services.sessions import SessionService


def _claims(age: float) -> SessionClaims:
    return SessionClaims(user_id=1, sid="a" * 22, session_version=1, issued_at=int(time.time() - age))


def test_a_sign_in_inside_the_window_is_recent_and_one_outside_is_not():
    server = ServerSettings(host="127.0.0.1", port=0, public_url="http://127.0.0.1", secret_keys=())
    sessions = SessionService(server, None, None, reauth_window=300)  # type: ignore[arg-type]
    assert sessions.signed_in_recently(_claims(10))
    assert not sessions.signed_in_recently(_claims(301))
    # A claim from the future (a clock step on another machine) is not "recent" either.
    assert not sessions.signed_in_recently(_claims(-120))
