"""Where the visitor is, from the User-Agent, in the documented order (protocol reference, section 9)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Surface(enum.StrEnum):
    """Where the page is shown; each gets its own way to log in (README, "Inside WeChat")."""

    WECOM = "wecom"  # 企业微信: its own OAuth; our official-account flow does not apply
    MINIPROGRAM_WEBVIEW = "miniprogram_webview"
    DESKTOP_WECHAT_MAC = "desktop_wechat_mac"
    DESKTOP_WECHAT_WINDOWS = "desktop_wechat_windows"
    WECHAT = "wechat"  # the WeChat in-app browser on a phone
    DESKTOP = "desktop"
    MOBILE = "mobile"  # a phone browser outside WeChat


_RULES: tuple[tuple[re.Pattern[str], Surface], ...] = (
    (re.compile(r"wxwork", re.I), Surface.WECOM),
    (re.compile(r"miniProgram", re.I), Surface.MINIPROGRAM_WEBVIEW),
    (re.compile(r"MacWechat", re.I), Surface.DESKTOP_WECHAT_MAC),
    (re.compile(r"WindowsWechat", re.I), Surface.DESKTOP_WECHAT_WINDOWS),
    (re.compile(r"MicroMessenger", re.I), Surface.WECHAT),
)
_MOBILE = re.compile(r"Mobile|Android|iPhone|iPad|iPod|HarmonyOS|OpenHarmony", re.I)


def classify(user_agent: str | None) -> Surface:
    """Classify a User-Agent; first match wins, an empty one counts as a desktop browser."""
    ua = (user_agent or "")[:1024]
    for pattern, surface in _RULES:
        if pattern.search(ua):
            return surface
    return Surface.MOBILE if _MOBILE.search(ua) else Surface.DESKTOP


def in_wechat(surface: Surface) -> bool:
    """True where the official account's web authorisation works (WeChat's own browsers)."""
    return surface in (Surface.WECHAT, Surface.DESKTOP_WECHAT_MAC, Surface.DESKTOP_WECHAT_WINDOWS)


# --- a short name for the device a sign-in came from (the account page's history) -------------------

@dataclass(frozen=True)
class Device:
    """``platform`` is a brand name (iPhone, Windows, ...) or ""; ``app`` is Chinese or a brand (catalog_en.py)."""

    platform: str
    app: str

    @property
    def known(self) -> bool:
        return bool(self.platform or self.app)


# First match wins: iPhones and iPads also say "like Mac OS X", HarmonyOS phones also say Android.
_PLATFORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"iPhone|iPod", re.I), "iPhone"),
    (re.compile(r"iPad", re.I), "iPad"),
    (re.compile(r"HarmonyOS|OpenHarmony", re.I), "HarmonyOS"),
    (re.compile(r"Android", re.I), "Android"),
    (re.compile(r"Macintosh|Mac OS X|MacWechat", re.I), "Mac"),  # before Windows: old Mac WeChat says WindowsWechat
    (re.compile(r"Windows", re.I), "Windows"),
    (re.compile(r"CrOS", re.I), "ChromeOS"),
    (re.compile(r"Linux|X11", re.I), "Linux"),
)
# WeChat's own containers before browsers (their UAs also name Chrome or Safari); Edge and the Chinese
# browsers before Chrome (they say Chrome too); Chrome before Safari (Chrome says Safari).
_APPS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"wxwork", re.I), "企业微信"),
    (re.compile(r"miniProgram", re.I), "小程序"),
    (re.compile(r"MicroMessenger|MacWechat|WindowsWechat", re.I), "微信"),
    (re.compile(r"\bEdg(e|A|iOS)?/", re.I), "Edge"),
    (re.compile(r"MQQBrowser|QQBrowser", re.I), "QQ浏览器"),
    (re.compile(r"UCBrowser|UCWEB", re.I), "UC浏览器"),
    (re.compile(r"Firefox/|FxiOS/", re.I), "Firefox"),
    (re.compile(r"Chrome/|CriOS/", re.I), "Chrome"),
    (re.compile(r"Safari/", re.I), "Safari"),
)
# Every Chinese app name above has English in handlers/catalog_en.py (a test checks).
APP_NAMES: tuple[str, ...] = tuple(name for _, name in _APPS)


def describe_device(user_agent: str | None) -> Device:
    """A short, coarse name for where a sign-in came from: ("iPhone", "微信"), ("Windows", "Chrome"), ...

    Only the platform and the app, never a version or a build: enough for a person to recognise their
    own devices, and nothing that fingerprints them further on the page.
    """
    ua = (user_agent or "")[:1024]
    platform = next((name for pattern, name in _PLATFORMS if pattern.search(ua)), "")
    app = next((name for pattern, name in _APPS if pattern.search(ua)), "")
    return Device(platform=platform, app=app)
