"""Start-up announces what the process talks to, so a sandbox or stand-in is never mistaken for WeChat."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from server import announce
from wxlogin.config import settings_from_mapping

ROOT = Path(__file__).resolve().parents[2]
BASE = tomllib.loads((ROOT / "settings.toml").read_text("utf-8"))
KEY = {"WXLOGIN_SERVER_SECRET_KEYS": "0123456789abcdef0123456789abcdef-real"}


def test_sandbox_is_announced(caplog):
    with caplog.at_level(logging.INFO):
        announce(settings_from_mapping(BASE, env={}))
    assert any("SANDBOX MODE" in r.message and r.levelno == logging.WARNING for r in caplog.records)


def test_non_official_base_is_announced(caplog):
    data = {**BASE, "wechat": {**BASE["wechat"], "sandbox": False, "api_base": "http://127.0.0.1:18080"}}
    with caplog.at_level(logging.INFO):
        announce(settings_from_mapping(data, env=KEY))
    warning = next(r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert "NOT the official" in warning and "http://127.0.0.1:18080" in warning


def test_official_bases_are_quiet(caplog):
    data = {**BASE, "wechat": {**BASE["wechat"], "sandbox": False}}
    with caplog.at_level(logging.INFO):
        announce(settings_from_mapping(data, env=KEY))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
