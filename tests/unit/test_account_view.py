"""What the account page shows of a sign-in without any lookup: the coarse place of an address, local time,
and which link actions work on which surface (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from wxlogin.models import Channel
from wxlogin.services.accounts import Elsewhere, coarse_place, link_works_here, to_local
from wxlogin.useragent import Surface


@pytest.mark.parametrize("ip, local, prefix", [
    ("127.0.0.1", True, ""), ("::1", True, ""), ("10.1.2.3", True, ""), ("172.16.5.4", True, ""),
    ("192.168.1.7", True, ""), ("169.254.1.1", True, ""), ("fd12:3456::1", True, ""), ("fe80::1", True, ""),
    ("::ffff:192.168.0.2", True, ""),
    ("1.2.3.4", False, "1.2.3.0/24"), ("114.114.114.114", False, "114.114.114.0/24"),
    ("::ffff:1.2.3.4", False, "1.2.3.0/24"),
    ("2408:8207:1234:5678::1", False, "2408:8207:1234::/48"),
    ("", False, ""), ("unknown", False, ""), ("1.2.3.4, 5.6.7.8", False, ""),
])
def test_coarse_place(ip, local, prefix):
    place = coarse_place(ip)
    assert (place.local, place.prefix) == (local, prefix)


def test_stored_utc_times_are_shown_in_the_site_zone():
    stored = datetime(2024, 1, 2, 3, 4, 5)  # naive UTC, as MySQL returns it
    assert to_local(stored, ZoneInfo("Asia/Shanghai")).isoformat() == "2024-01-02T11:04:05+08:00"
    assert to_local(stored.replace(tzinfo=UTC), ZoneInfo("UTC")).isoformat() == "2024-01-02T03:04:05+00:00"


@pytest.mark.parametrize("surface, mp, web", [
    (Surface.DESKTOP, Elsewhere.WECHAT, None),
    (Surface.DESKTOP_WECHAT_WINDOWS, None, None),
    (Surface.DESKTOP_WECHAT_MAC, None, None),
    (Surface.WECHAT, None, Elsewhere.COMPUTER),
    (Surface.MOBILE, Elsewhere.WECHAT, Elsewhere.COMPUTER),
    (Surface.WECOM, Elsewhere.WECHAT, Elsewhere.COMPUTER),
    (Surface.MINIPROGRAM_WEBVIEW, Elsewhere.WECHAT, Elsewhere.COMPUTER),
])
def test_link_actions_by_surface(surface, mp, web):
    assert link_works_here(Channel.MP, surface) is mp
    assert link_works_here(Channel.WEB, surface) is web
