"""Settings: validated at start-up with one message naming the key at fault."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from wxlogin.config import ConfigError, load_settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[2]
BASE = tomllib.loads((ROOT / "settings.toml").read_text("utf-8"))
REAL_KEY = "0123456789abcdef0123456789abcdef-real"


def with_changes(*changes):
    data = copy.deepcopy(BASE)
    for path, value in changes:
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def test_checked_in_settings_load():
    settings = load_settings(ROOT / "settings.toml", env={})
    assert settings.wechat.sandbox
    assert settings.wechat.open_base == "http://127.0.0.1:8000/_sandbox"
    assert "sandbox-web-secret" not in repr(settings)  # secrets are masked in reprs


@pytest.mark.parametrize("changes, message", [
    ([("wechat.web.appid", "")], "[wechat.web] appid is empty"),
    ([("wechat.mp.appid", None)], "[wechat.mp] appid is missing"),
    ([("wechat.app.appid", "wx123")], "[wechat.app] appid must look like"),
    ([("mysql.port", "abc")], "[mysql] port must be a whole number"),
    ([("mysql.pool_min", 50), ("mysql.pool_max", 5)], "[mysql] pool_min (50) must not exceed pool_max (5)"),
    ([("server.public_url", "ftp://x")], "[server] public_url must be an http(s) origin"),
    ([("server.secret_keys", [])], "[server] secret_keys is empty"),
    ([("wechat.timeout", 0)], "[wechat] timeout must be above 0"),
    ([("wechat.http_client", "requests")], "[wechat] http_client must be 'curl' or 'simple'"),
    ([("wechat.api_base", "not a url")], "[wechat] api_base must be an http(s) base URL"),
])
def test_bad_settings_name_the_key(changes, message):
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(with_changes(*changes), env={})
    assert message in str(error.value)


def test_development_keys_refused_outside_the_sandbox():
    with pytest.raises(ConfigError, match=r"secret_keys\[0\] is the development key"):
        settings_from_mapping(with_changes(("wechat.sandbox", False)), env={})


def test_real_keys_and_official_bases_outside_the_sandbox():
    settings = settings_from_mapping(with_changes(("wechat.sandbox", False)),
                                     env={"WXLOGIN_SERVER_SECRET_KEYS": f"old-{REAL_KEY},{REAL_KEY}"})
    assert settings.wechat.open_base == "https://open.weixin.qq.com"
    assert settings.wechat.api_base == "https://api.weixin.qq.com"
    assert settings.wechat.is_official
    assert [k.value for k in settings.server.secret_keys] == [f"old-{REAL_KEY}", REAL_KEY]


def test_non_official_base_is_allowed_but_not_official():
    settings = settings_from_mapping(with_changes(("wechat.sandbox", False), ("wechat.api_base", "http://127.0.0.1:9/")),
                                     env={"WXLOGIN_SERVER_SECRET_KEYS": REAL_KEY})
    assert settings.wechat.api_base == "http://127.0.0.1:9"
    assert not settings.wechat.is_official


def test_secrets_from_the_environment_override_the_file():
    settings = settings_from_mapping(BASE, env={"WXLOGIN_WECHAT_WEB_SECRET": "from-env",
                                                "WXLOGIN_MYSQL_PASSWORD": "pw"})
    assert settings.wechat.web.secret.value == "from-env"
    assert settings.mysql.password.value == "pw"


def test_sandbox_refuses_a_public_address_unless_allowed():
    with pytest.raises(ConfigError, match="sandbox_allow_public"):
        settings_from_mapping(with_changes(("server.host", "0.0.0.0")), env={})
    allowed = settings_from_mapping(with_changes(("server.host", "0.0.0.0"), ("wechat.sandbox_allow_public", True)),
                                    env={})
    assert allowed.wechat.sandbox


def test_several_processes_are_refused_with_the_sandbox():
    with pytest.raises(ConfigError, match=r"\[server\] processes = 2"):
        settings_from_mapping(with_changes(("server.processes", 2)), env={})
    with pytest.raises(ConfigError, match=r"\[server\] processes"):
        settings_from_mapping(with_changes(("server.processes", -1)), env={})
    assert settings_from_mapping(with_changes(("server.processes", 1)), env={}).server.processes == 1


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
