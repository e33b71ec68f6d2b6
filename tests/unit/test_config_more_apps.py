"""Several apps of a kind in the settings (issue 13): [wechat.more.<kind>.<name>] tables, read by the generic
reader with every mistake named, environment overrides, and the one registry of apps."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest

from wxlogin.config import ConfigError, Secret, WeChatApp, WeChatSettings, declared_keys, settings_from_mapping

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "settings.toml").read_text("utf-8")
BASE = tomllib.loads(TEXT)
SHOP = {"appid": "wxa0b1c2d3e4f50014", "secret": "shop-secret", "push_token": "ShopToken1"}
NEWS = {"appid": "wxa0b1c2d3e4f50012", "secret": "news-secret"}
LITE = {"appid": "wxa0b1c2d3e4f50013", "secret": "lite-secret"}


def with_more(more, env=None):
    data = copy.deepcopy(BASE)
    data["wechat"]["more"] = copy.deepcopy(more)
    return settings_from_mapping(data, env=env or {})


def refused(more, env=None) -> str:
    with pytest.raises(ConfigError) as error:
        with_more(more, env)
    return str(error.value)


def test_the_commented_example_in_settings_toml_loads():
    # settings.toml documents the tables with a commented example: uncommented, it must be valid.
    block = re.search(r"^# \[wechat\.more\.[a-z].*?(?=^\n)", TEXT, re.S | re.M)
    assert block is not None
    example = "\n".join(line.removeprefix("# ") for line in block.group(0).splitlines())
    more = tomllib.loads(example)["wechat"]["more"]
    settings = with_more(more)
    assert set(settings.wechat.apps("miniprogram")) == {"", "shop"}
    assert set(settings.wechat.apps("mp")) == {"", "news"}


def test_named_apps_join_the_one_registry():
    wx = with_more({"miniprogram": {"shop": SHOP}, "mp": {"news": NEWS}, "app": {"lite": LITE}}).wechat
    assert list(wx.apps("miniprogram")) == ["", "shop"] and wx.apps("miniprogram")[""] is wx.miniprogram
    shop = wx.apps("miniprogram")["shop"]
    assert shop.appid == SHOP["appid"] and shop.secret.value == "shop-secret"
    assert wx.more.miniprogram["shop"].push_token.value == "ShopToken1"
    assert wx.more.miniprogram["shop"].push_aes_key.value == ""  # the declared default
    assert list(wx.apps("web")) == [""] and list(wx.push_apps("mp")) == ["", "news"]
    assert [a.label for a in wx.all_apps()] == ["web", "mp", "mp/news", "app", "app/lite", "miniprogram",
                                                 "miniprogram/shop"]
    found = wx.app_by_appid(SHOP["appid"])
    assert found is not None and (found.kind, found.name, found.table) == (
        "miniprogram", "shop", "[wechat.more.miniprogram.shop]")
    assert wx.app_by_appid(wx.mp.appid) is not None and wx.app_by_appid("wx0000000000000000") is None
    assert "shop-secret" not in repr(wx)
    with pytest.raises(KeyError):
        wx.push_apps("app")


def test_without_more_tables_the_single_app_settings_are_unchanged():
    settings = settings_from_mapping(BASE, env={})
    for kind in ("web", "mp", "app", "miniprogram"):
        assert dict(settings.wechat.apps(kind)) == {"": getattr(settings.wechat, kind)}
    assert all(not key.table.startswith("wechat.more") for key in declared_keys())
    # Built in code (as a test stand-in does), without [wechat.more], the registry still answers.
    app = WeChatApp(appid="wx00000000000retry", secret=Secret("s"))
    built = WeChatSettings(web=app, mp=app, app=app, miniprogram=app)  # type: ignore[arg-type]
    assert list(built.apps("miniprogram")) == [""]


@pytest.mark.parametrize("more, message", [
    ({"miniprogram": {"shop": {**SHOP, "appid": BASE["wechat"]["miniprogram"]["appid"]}}},
     "[wechat.more.miniprogram.shop] appid wxa0b1c2d3e4f50004 is [wechat.miniprogram]'s already"),
    ({"miniprogram": {"shop": SHOP}, "mp": {"news": {**NEWS, "appid": SHOP["appid"]}}},
     "[wechat.more.miniprogram.shop] appid wxa0b1c2d3e4f50014 is [wechat.more.mp.news]'s already"),
    ({"app": {"lite": {**LITE, "appid": BASE["wechat"]["web"]["appid"]}}},
     "[wechat.more.app.lite] appid wxa0b1c2d3e4f50001 is [wechat.web]'s already"),
    ({"miniprogram": {"Shop": SHOP}}, "[wechat.more.miniprogram.Shop]: a name is 1 to 32 of a-z, 0-9 and _"),
    ({"miniprogram": {"shop-eu": SHOP}}, "[wechat.more.miniprogram.shop-eu]: a name is 1 to 32"),
    ({"miniprogram": {"s" * 33: SHOP}}, "a name is 1 to 32 of a-z, 0-9 and _, not 'sssssssss"),
    ({"miniprogram": {"shop": {**SHOP, "pushtoken": "x"}}},
     "[wechat.more.miniprogram.shop] pushtoken is not a setting here (known: appid, secret, push_token, push_aes_key)"),
    ({"app": {"lite": {**LITE, "push_token": "ShopToken1"}}}, "[wechat.more.app.lite] push_token is not a setting"),
    ({"web": {"other": LITE}}, "[wechat.more] web is not a setting here (known: mp, app, miniprogram)"),
    ({"miniprogram": {"shop": "wxa0b1c2d3e4f50014"}}, "[wechat.more.miniprogram.shop] must be a table"),
    ({"miniprogram": "shop"}, "[wechat.more.miniprogram] must be a table"),
    ({"miniprogram": {"shop": {**SHOP, "appid": "wx123"}}}, "[wechat.more.miniprogram.shop] appid must look like"),
    ({"miniprogram": {"shop": {"appid": SHOP["appid"]}}}, "[wechat.more.miniprogram.shop] secret is missing"),
    ({"miniprogram": {"shop": {**SHOP, "push_aes_key": "short"}}},
     "[wechat.more.miniprogram.shop] push_aes_key must be WeChat's EncodingAESKey"),
    ({"mp": {"news": {**NEWS, "secret": " "}}}, "[wechat.more.mp.news] secret is empty"),
])
def test_bad_named_apps_name_the_key(more, message):
    assert message in refused(more)


def test_the_environment_overrides_a_named_apps_keys():
    settings = with_more({"miniprogram": {"shop": SHOP, "shop_eu": {**SHOP, "appid": "wxa0b1c2d3e4f50024"}}}, env={
        "WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_SECRET": "from-env",
        "WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_EU_PUSH_AES_KEY": "k" * 43,  # a name with _ is not mistaken
    })
    shop, shop_eu = settings.wechat.more.miniprogram["shop"], settings.wechat.more.miniprogram["shop_eu"]
    assert shop.secret.value == "from-env" and shop.push_aes_key.value == ""
    assert shop_eu.secret.value == "shop-secret" and shop_eu.push_aes_key.value == "k" * 43


def test_the_environment_alone_can_name_an_app():
    settings = with_more({}, env={"WXLOGIN_WECHAT_MORE_APP_LITE_APPID": LITE["appid"],
                                  "WXLOGIN_WECHAT_MORE_APP_LITE_SECRET": "env-only"})
    assert settings.wechat.apps("app")["lite"].secret.value == "env-only"


@pytest.mark.parametrize("env, message", [
    ({"WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOPP_SECRET": "x"}, "[wechat.more.miniprogram.shopp] appid is missing"),
    ({"WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_SECRE": "x"},
     "WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_SECRE names no setting of [wechat.more.miniprogram.<name>]"),
    ({"WXLOGIN_WECHAT_MORE_WEB_OTHER_SECRET": "x"}, "WXLOGIN_WECHAT_MORE_WEB_OTHER_SECRET names no setting of"),
    ({"WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_APPID": "wxa0b1c2d3e4f50004"}, "is [wechat.miniprogram]'s already"),
    ({"WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_PUSH_TOKEN": "a b"}, "[wechat.more.miniprogram.shop] push_token must be"),
    ({"WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP-EU_SECRET": "x"}, "[wechat.more.miniprogram.shop-eu]: a name is"),
])
def test_bad_environment_names_and_values_for_named_apps_name_the_key(env, message):
    assert message in refused({"miniprogram": {"shop": SHOP}}, env)


def test_named_apps_keep_the_production_rules():
    # The duplicate check runs with or without the sandbox, on the final (overridden) values.
    data = copy.deepcopy(BASE)
    data["wechat"] = {**data["wechat"], "sandbox": False, "more": {"miniprogram": {"shop": SHOP}}}
    real = {"WXLOGIN_SERVER_SECRET_KEYS": "0123456789abcdef0123456789abcdef-real"}
    assert settings_from_mapping(data, env=real).wechat.more.miniprogram["shop"].appid == SHOP["appid"]
    web_appid = BASE["wechat"]["web"]["appid"]
    with pytest.raises(ConfigError, match=r"is \[wechat\.web\]'s already"):
        settings_from_mapping(data, env={**real, "WXLOGIN_WECHAT_MORE_MINIPROGRAM_SHOP_APPID": web_appid})
