"""Test harness for the reliability suite: processes the suite owns and can break on purpose.

- ``mariadb``    a private MariaDB instance (own data directory and port) to kill, freeze and restart;
- ``serverproc`` the real ``server.py`` in a subprocess with a generated settings file;
- ``fakewechat`` a scriptable WeChat stand-in speaking raw HTTP, so it can misbehave at the socket level;
- ``faultproxy`` a TCP proxy in front of MariaDB that can add latency;
- ``figures``    the counters behind the table ``make check-reliability`` prints.
"""

import os

DATABASE = "wxlogin_rel"  # the suite's database on its private MariaDB
LONG = os.environ.get("WXLOGIN_RELIABILITY") == "long"  # set by `make check-reliability`


def scale(short: int, long: int) -> int:
    """A volume for the fast run (make test) or the long one (make check-reliability)."""
    return long if LONG else short
