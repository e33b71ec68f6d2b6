"""User-agent classification in the documented order, with real UA strings (protocol reference, section 9)."""

from __future__ import annotations

import pytest

from wxlogin.useragent import Surface, classify, describe_device, in_wechat

ANDROID_WECHAT = ("Mozilla/5.0 (Linux; Android 9; MI 8 Build/PKQ1.180729.001; wv) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.126 MQQBrowser/6.2 TBS/044904 Mobile "
                  "Safari/537.36 MMWEBID/4326 "
                  "MicroMessenger/7.0.6.1500(0x2700063D) Process/tools NetType/4G Language/zh_CN")
IOS_WECHAT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 12_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Mobile/15E148 MicroMessenger/7.0.5(0x17000523) NetType/4G Language/zh_CN")
WECOM = ("Mozilla/5.0 (iPhone; CPU iPhone OS 14_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Mobile/15E148 wxwork/3.1.16 MicroMessenger/7.0.1 Language/zh")
MINIPROGRAM = ("Mozilla/5.0 (Linux; Android 10; SM-G9750) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.99 "
               "XWEB/4313 MMWEBSDK/20220805 Mobile Safari/537.36 MMWEBID/6170 MicroMessenger/8.0.27.2220(0x28001B53) "
               "WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64 miniProgram/wx1234567890abcdef")
WINDOWS_WECHAT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
                  "Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) WindowsWechat(0x63090c37) "
                  "XWEB/14315")
MAC_WECHAT_OLD = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "MicroMessenger/6.8.0(0x16080000) MacWechat/3.3(0x13030013) NetType/WIFI WindowsWechat")
DESKTOP_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Safari/537.36")
IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.5 Mobile/15E148 Safari/604.1")
ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Mobile Safari/537.36")


@pytest.mark.parametrize("ua, surface", [
    (WECOM, Surface.WECOM),  # also says MicroMessenger: wxwork must win
    (MINIPROGRAM, Surface.MINIPROGRAM_WEBVIEW),
    (MAC_WECHAT_OLD, Surface.DESKTOP_WECHAT_MAC),  # older Mac builds also end with WindowsWechat
    (WINDOWS_WECHAT, Surface.DESKTOP_WECHAT_WINDOWS),
    (ANDROID_WECHAT, Surface.WECHAT),
    (IOS_WECHAT, Surface.WECHAT),
    (DESKTOP_CHROME, Surface.DESKTOP),
    (IPHONE_SAFARI, Surface.MOBILE),
    (ANDROID_CHROME, Surface.MOBILE),
    ("", Surface.DESKTOP),
    (None, Surface.DESKTOP),
    (IOS_WECHAT.lower(), Surface.WECHAT),  # case-insensitive
])
def test_classification(ua, surface):
    assert classify(ua) is surface


def test_where_the_official_account_flow_works():
    assert in_wechat(Surface.WECHAT) and in_wechat(Surface.DESKTOP_WECHAT_WINDOWS)
    assert not in_wechat(Surface.WECOM) and not in_wechat(Surface.MOBILE) and not in_wechat(Surface.DESKTOP)


# --- the account page's short device names (issue 15) ---------------------------------------------------

@pytest.mark.parametrize("ua, platform, app", [
    (IOS_WECHAT, "iPhone", "微信"),
    (ANDROID_WECHAT, "Android", "微信"),  # says MQQBrowser too: WeChat's own browser wins
    (WECOM, "iPhone", "企业微信"),
    (MINIPROGRAM, "Android", "小程序"),
    (WINDOWS_WECHAT, "Windows", "微信"),
    (MAC_WECHAT_OLD, "Mac", "微信"),  # ends with WindowsWechat but is a Mac
    (DESKTOP_CHROME, "Windows", "Chrome"),
    (IPHONE_SAFARI, "iPhone", "Safari"),
    (ANDROID_CHROME, "Android", "Chrome"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36 Edg/126.0.0.0", "Windows", "Edge"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0", "Mac", "Firefox"),
    ("python-httpx/0.27.0", "", ""),
    ("", "", ""),
    (None, "", ""),
])
def test_device_names(ua, platform, app):
    device = describe_device(ua)
    assert (device.platform, device.app) == (platform, app)
    assert device.known == bool(platform or app)
