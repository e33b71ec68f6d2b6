"""Start-up announces what the process talks to, so a sandbox or stand-in is never mistaken for WeChat;
it refuses settings that would mislead, and finds its templates where it is told."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from server import announce
from wxlogin.app import Assets, make_app
from wxlogin.config import settings_from_mapping
from wxlogin.services import build_services

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
    data = {**BASE, "wechat": {**BASE["wechat"], "sandbox": False}, "admin": {"user_ids": [7]}}
    with caplog.at_level(logging.INFO):
        announce(settings_from_mapping(data, env=KEY))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "operator console /admin: accounts 7" in caplog.text


def test_the_shipped_settings_name_no_operator_outside_the_sandbox(caplog):
    # settings.toml used to name account 1 (the sandbox's operator); outside the sandbox that is whoever signed up
    # first. Now the file names nobody and only a sandbox server adds its own operator (test_admin_console.py).
    data = {**BASE, "wechat": {**BASE["wechat"], "sandbox": False}}
    settings = settings_from_mapping(data, env=KEY)
    with caplog.at_level(logging.INFO):
        announce(settings)
    assert settings.admin.user_ids == ()
    assert "operator console /admin: nobody ([admin] user_ids is empty)" in caplog.text


def test_server_refuses_the_sandbox_with_an_official_base_in_one_line(tmp_path):
    """Defect 3: it used to start, announce "SANDBOX MODE: WeChat is emulated at https://open.weixin.qq.com"
    and embed WeChat's real QR page, which cannot finish a sandbox login."""
    text = (ROOT / "settings.toml").read_text("utf-8")
    text = text.replace('open_base = ""', 'open_base = "https://open.weixin.qq.com"', 1)
    assert 'open_base = "https://open.weixin.qq.com"' in text and "sandbox = true" in text
    path = tmp_path / "settings.toml"
    path.write_text(text, "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXLOGIN_")}
    env["WXLOGIN_MYSQL_DATABASE"] = os.environ.get("WXLOGIN_TEST_DATABASE", "wxlogin_test")
    # A bounded wait: before the fix the server started and served until killed.
    run = subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(path)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "[wechat] open_base = 'https://open.weixin.qq.com' but [wechat] sandbox = true" in run.stderr
    assert "SANDBOX MODE" not in run.stdout + run.stderr


def test_the_sandbox_is_announced_at_the_sandbox_address(caplog):
    with caplog.at_level(logging.INFO):
        announce(settings_from_mapping(BASE, env={}))
    sandbox_line = next(r.message for r in caplog.records if "SANDBOX MODE" in r.message)
    assert "http://127.0.0.1:8000/_sandbox" in sandbox_line and "weixin.qq.com" not in sandbox_line


def test_the_app_takes_its_asset_directories_from_the_caller(tmp_path):
    """Not from site/wxlogin's own location, which is site-packages in a wheel install."""
    settings = settings_from_mapping(BASE, env={})
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "templates")):
        make_app(settings, build_services(settings), Assets.beside(tmp_path))
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    shutil.copytree(ROOT / "static", tmp_path / "static")
    app = make_app(settings, build_services(settings), Assets.beside(tmp_path))
    assert app.settings["static_path"] == str(tmp_path / "static")
    assert app.settings["jinja_envs"]["zh"].loader.searchpath == [str(tmp_path / "templates")]
    assert "__file__" not in (ROOT / "site" / "wxlogin" / "app.py").read_text("utf-8")
