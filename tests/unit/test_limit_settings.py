"""[ratelimit] and [retention]: the shipped values match the shipped nginx, and every key can be overridden."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from wxlogin.config import ConfigError, load_settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_settings_trust_the_shipped_nginx_and_keep_events_180_days():
    settings = load_settings(ROOT / "settings.toml", env={})
    upstream = (ROOT / "deploy" / "nginx" / "wxlogin.conf").read_text()
    assert "server 127.0.0.1:8000" in upstream and "X-Forwarded-For $remote_addr" in upstream
    assert "127.0.0.1" in settings.ratelimit.trusted_proxies, "nginx connects from loopback"
    assert all(p in ("127.0.0.1", "::1") for p in settings.ratelimit.trusted_proxies), "and only loopback"
    assert (settings.ratelimit.callback_per_minute, settings.ratelimit.start_per_minute) == (60, 60)
    assert settings.retention.login_events_days == 180


def test_limit_and_retention_keys_come_from_the_environment():
    data = tomllib.loads((ROOT / "settings.toml").read_text("utf-8"))
    env = {"WXLOGIN_RATELIMIT_CALLBACK_PER_MINUTE": "7", "WXLOGIN_RATELIMIT_START_PER_MINUTE": "9",
           "WXLOGIN_RETENTION_LOGIN_EVENTS_DAYS": "30", "WXLOGIN_RATELIMIT_TRUSTED_PROXIES": ""}
    settings = settings_from_mapping(data, env)
    assert (settings.ratelimit.callback_per_minute, settings.ratelimit.start_per_minute) == (7, 9)
    assert settings.retention.login_events_days == 30
    assert settings.ratelimit.trusted_proxies == ()
    with pytest.raises(ConfigError, match=r"\[retention\] login_events_days"):
        settings_from_mapping(data, {"WXLOGIN_RETENTION_LOGIN_EVENTS_DAYS": "0"})
