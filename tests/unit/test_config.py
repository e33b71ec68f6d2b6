"""Settings: validated at start-up with one message naming the key at fault."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from wxlogin.config import ConfigError, Secret, declared_keys, load_settings, settings_from_mapping

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
    # Issue 14: the desktop methods, each known, once, and switched on where it has its own switch.
    ([("wechat.desktop_methods", [])], "[wechat] desktop_methods is empty"),
    ([("wechat.desktop_methods", ["qr", "sms"])], "[wechat] desktop_methods: 'sms' is not one of qr, follow"),
    ([("wechat.desktop_methods", ["qr", "qr"])], "[wechat] desktop_methods names a method twice"),
    ([("wechat.desktop_methods", ["follow"]), ("wechat.mp.follow_login", False)],
     "but [wechat.mp] follow_login is false"),
    ([("wechat.desktop_methods", ["miniprogram"]), ("wechat.miniprogram.code_login_page", "")],
     "but [wechat.miniprogram] code_login_page is empty"),
    ([("wechat.miniprogram.code_login_page", "/pages/login")], "[wechat.miniprogram] code_login_page must be"),
    ([("wechat.scene_max_age", 5)], "[wechat] scene_max_age must be between 30 and 3600"),
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


@pytest.mark.parametrize("public_url", ["https://login.example.com", "http://192.168.1.20:8000", "http://[2001:db8::1]"])
def test_sandbox_refuses_a_public_url_behind_a_proxy_unless_allowed(public_url):
    # Bound to loopback but published through a proxy: the sandbox (and its public key) would be exposed.
    with pytest.raises(ConfigError, match=r"public_url .* sandbox_allow_public"):
        settings_from_mapping(with_changes(("server.public_url", public_url)), env={})
    allowed = settings_from_mapping(with_changes(("server.public_url", public_url),
                                                 ("wechat.sandbox_allow_public", True)), env={})
    assert allowed.wechat.sandbox
    for loopback in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert settings_from_mapping(with_changes(("server.public_url", loopback)), env={}).wechat.sandbox


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


# --- The declaration (site/wxlogin/config.py) and settings.toml agree -------------------------------------
# Rule: every declared key is in settings.toml and every key there is declared. Where a key has a default,
# settings.toml holds exactly that default, unless the declaration's `dev=` says why the development file
# differs (and a `dev=` reason on a key that does not differ is stale, so it fails too).

def toml_keys(data, table=""):
    for name, value in data.items():
        path = f"{table}.{name}" if table else name
        if isinstance(value, dict):
            yield from toml_keys(value, path)
        else:
            yield table, name, value


def test_settings_toml_lists_exactly_the_declared_keys():
    declared = {(key.table, key.name) for key in declared_keys()}
    in_file = {(table, name) for table, name, _ in toml_keys(BASE)}
    assert sorted(declared - in_file) == [], "declared but missing from settings.toml"
    assert sorted(in_file - declared) == [], "in settings.toml but not declared in config.py"


def test_settings_toml_holds_the_defaults_or_the_declaration_says_why_not():
    values = {(table, name): value for table, name, value in toml_keys(BASE)}
    for key in declared_keys():
        if key.required:
            assert not key.dev_reason, f"{key.label} has no default, so dev= explains nothing"
            continue
        differs = key.parse(values[(key.table, key.name)]) != key.default
        if differs:
            assert key.dev_reason, f"{key.label} differs from its default {key.default!r}: say why with dev="
        else:
            assert not key.dev_reason, f"{key.label} equals its default now: drop its stale dev= reason"


def as_toml(value):
    if isinstance(value, Secret):
        return value.value
    if isinstance(value, tuple):
        return [as_toml(v) for v in value]
    return value


def test_every_default_is_within_its_own_limits():
    for key in declared_keys():
        if not key.required:
            assert key.parse(as_toml(key.default)) == key.default, key.label


def test_a_key_left_out_of_the_file_takes_its_declared_default():
    data = with_changes(("mysql.pool_recycle", None), ("ratelimit.decrypt_per_minute", None))
    settings = settings_from_mapping(data, env={})
    assert settings.mysql.pool_recycle == 3600
    assert settings.ratelimit.decrypt_per_minute == 20


@pytest.mark.parametrize("env, message", [
    ({"WXLOGIN_MYSQL_PORT": "abc"}, "[mysql] port must be a whole number"),
    ({"WXLOGIN_SERVER_STATE_MAX_AGE": "7200"}, "[server] state_max_age must be between 1 and 3600, not 7200"),
    ({"WXLOGIN_WECHAT_TIMEOUT": "-1"}, "[wechat] timeout must be above 0"),
    ({"WXLOGIN_RATELIMIT_ENABLED": "maybe"}, "[ratelimit] enabled must be true or false"),
    ({"WXLOGIN_WECHAT_MP_SECRET": "  "}, "[wechat.mp] secret is empty"),
    ({"WXLOGIN_SERVER_SECRET_KEYS": " , "}, "[server] secret_keys is empty"),
])
def test_bad_environment_overrides_name_the_key(env, message):
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(BASE, env=env)
    assert message in str(error.value)


def test_environment_overrides_every_kind_of_key():
    settings = settings_from_mapping(BASE, env={
        "WXLOGIN_RATELIMIT_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.1,",
        "WXLOGIN_MYSQL_POOL_MAX": "7",
        "WXLOGIN_MYSQL_QUERY_TIMEOUT": "1.5",
        "WXLOGIN_RATELIMIT_ENABLED": "off",
        "WXLOGIN_WECHAT_HTTP_CLIENT": "simple",
    })
    assert settings.ratelimit.trusted_proxies == ("127.0.0.1", "10.0.0.1")
    assert settings.mysql.pool_max == 7 and settings.mysql.query_timeout == 1.5
    assert settings.ratelimit.enabled is False and settings.wechat.http_client == "simple"


def test_secrets_never_show_their_value():
    settings = settings_from_mapping(BASE, env={"WXLOGIN_MYSQL_PASSWORD": "hunter2-password"})
    password, web_secret = settings.mysql.password, settings.wechat.web.secret
    for text in (repr(settings), str(settings), repr(password), f"{web_secret}"):
        assert "hunter2" not in text and "sandbox-web-secret" not in text
        assert "dev-insecure-key" not in text


# --- Defect 3: the sandbox with explicit official bases embedded WeChat's real QR page ----------------------

@pytest.mark.parametrize("key, value", [
    ("open_base", "https://open.weixin.qq.com"),
    ("api_base", "https://api.weixin.qq.com"),
    ("open_base", "http://127.0.0.1:18080"),
])
def test_sandbox_refuses_a_base_that_is_not_the_sandbox(key, value):
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(with_changes(("wechat.sandbox", True), (f"wechat.{key}", value)), env={})
    assert str(error.value).startswith(f"[wechat] {key} = {value!r} but [wechat] sandbox = true")
    assert "\n" not in str(error.value)


def test_sandbox_accepts_empty_or_its_own_base():
    own = "http://127.0.0.1:8000/_sandbox"
    settings = settings_from_mapping(with_changes(("wechat.open_base", own + "/"), ("wechat.api_base", "")),
                                     env={})
    assert settings.wechat.open_base == settings.wechat.api_base == own


def test_every_desktop_method_can_be_switched_on():
    settings = settings_from_mapping(with_changes(
        ("wechat.desktop_methods", ["follow", "qr", "miniprogram"]), ("wechat.mp.follow_login", True),
        ("wechat.miniprogram.code_login_page", "pages/login/index")), env={})
    assert settings.wechat.desktop_methods == ("follow", "qr", "miniprogram")
    # Development shows all three (the sandbox plays each phone side); the declared default is the website QR.
    development = load_settings(ROOT / "settings.toml", env={}).wechat
    assert development.desktop_methods == ("qr", "follow", "miniprogram") and development.mp.follow_login
    assert settings_from_mapping(with_changes(("wechat.desktop_methods", None), ("wechat.mp.follow_login", None)),
                                 env={}).wechat.desktop_methods == ("qr",)


def test_operators_are_account_ids_from_the_file_or_the_environment():
    # Shipped empty: nobody (the sandbox's operator is added by the server itself, never by the file).
    assert settings_from_mapping(BASE, env={}).admin.user_ids == ()
    assert settings_from_mapping(BASE, env={"WXLOGIN_ADMIN_USER_IDS": "7, 42"}).admin.user_ids == (7, 42)
    assert settings_from_mapping(BASE, env={"WXLOGIN_ADMIN_USER_IDS": ""}).admin.user_ids == ()
    assert settings_from_mapping(with_changes(("admin.user_ids", [])), env={}).admin.user_ids == ()
    for bad in (["1"], [0], [True], "x", [1.5]):
        with pytest.raises(ConfigError, match=r"\[admin\] user_ids"):
            settings_from_mapping(with_changes(("admin.user_ids", bad)), env={})
