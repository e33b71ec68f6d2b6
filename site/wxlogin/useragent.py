"""Where the visitor is, from the User-Agent, in the documented order (protocol reference, section 9)."""

from __future__ import annotations

import enum
import re


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
