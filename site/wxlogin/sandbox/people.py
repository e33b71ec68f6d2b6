"""The sandbox's test people and how WeChat would identify them under each appid."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

PERSON_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
GREY_AVATAR = (
    "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1"
    "icwxaQX6grC9VemZoJ8rg/132"
)


@dataclass(frozen=True)
class Person:
    key: str
    nickname: str
    description: str
    has_unionid: bool = True
    placeholder: bool = False
    snapshot: bool = False


PRESETS: tuple[Person, ...] = (
    Person("zhangsan", "张三", "普通用户，公众号与网站绑定同一开放平台（有 unionid）"),
    Person("panda", "🐼熊猫🎉 Panda", "昵称带 emoji 的用户（有 unionid）"),
    Person("lisi", "李四", "应用未绑定开放平台：没有 unionid", has_unionid=False),
    Person("anon", "微信用户", "微信只给匿名占位资料（灰色头像）", placeholder=True),
    Person("snapshot", "快照用户", "公众号快照页中的虚拟用户（is_snapshotuser=1）", snapshot=True),
)
# The operator console's demo (issue 16), also in the QR's picker: the operator, whose account (by this unionid)
# a sandbox server seeds at start-up and makes an operator (server.py seed_sandbox_operator), and a person whose
# code WeChat refuses (40226, with a rid) so that a failed login shows up in the console.
OPERATOR = Person("operator", "运营小王", "运营后台的测试运营者：沙盒模式下服务器启动时建好他的账号，并让他成为运营者")
BLOCKED = Person("blocked", "登录被拦截", "微信拒绝他的登录码（errcode 40226，带 rid）：运营后台的“登录失败”能看到")
CONSOLE_DEMO = (OPERATOR, BLOCKED)
PRESETS = PRESETS + CONSOLE_DEMO
_BY_KEY = {p.key: p for p in PRESETS}


# Ad-hoc people whose key starts with one of these make "WeChat" answer with that errcode, so that
# every documented failure can be played end to end ("busyonce" fails once, then works).
SCRIPTED_ERRORS: dict[str, tuple[int, str]] = {
    "blocked": (40226, "code blocked"),
    "quota": (45011, "api minute-quota reach limit, must slower, retry next minute"),
    "busyonce": (-1, "system error"),
    "busy": (-1, "system error"),
}


def scripted_error(key: str, attempt: int) -> tuple[int, str] | None:
    """The errcode WeChat should answer for this person on this attempt, if any."""
    for prefix, error in SCRIPTED_ERRORS.items():
        if key.startswith(prefix):
            return None if prefix == "busyonce" and attempt > 1 else error
    return None


# Phone numbers (getuserphonenumber): (country code, national number). 张三 and 李四 share one (a family
# phone) to show phone_in_use; the panda's is from Hong Kong (+852). Ad-hoc people get their own number,
# except those whose key starts with SHARED_PHONE_PREFIX: they all share one.
PHONES: dict[str, tuple[str, str]] = {
    "zhangsan": ("86", "13800138000"),
    "lisi": ("86", "13800138000"),
    "panda": ("852", "61234567"),
    "anon": ("86", "13900000000"),
}
SHARED_PHONE_PREFIX = "sharedphone"
SHARED_PHONE = ("86", "13700000000")

# Ad-hoc people whose key starts with one of these make an app-token API answer as if the site's app token
# had just died (on the first call with their code only): "revoked" revokes the app's tokens (40001),
# "tokenexpired" ages the current one past its expiry (42001). The site must recover with a fresh token.
APP_TOKEN_FAULTS = ("revoked", "tokenexpired")


def phone_for(p: Person) -> tuple[str, str]:
    """The person's phone number as WeChat would hand it out: (country code, national number)."""
    if p.key in PHONES:
        return PHONES[p.key]
    if p.key.startswith(SHARED_PHONE_PREFIX):
        return SHARED_PHONE
    digits = str(int.from_bytes(hashlib.sha256(f"phone:{p.key}".encode()).digest()[:8], "big"))[-9:]
    return "86", "15" + digits.rjust(9, "0")


def app_token_fault(key: str) -> str | None:
    """"revoked" or "tokenexpired" when this person's key asks for that fault, else None."""
    return next((fault for fault in APP_TOKEN_FAULTS if key.startswith(fault)), None)


def person(key: str) -> Person | None:
    """Return a preset, or an ad-hoc person for any other valid key (tests use many)."""
    if not PERSON_RE.match(key or ""):
        return None
    if key in _BY_KEY:
        return _BY_KEY[key]
    return Person(key, f"测试用户 {key}", "临时测试用户", has_unionid=not key.startswith("nounion"))


def _digest(*parts: str) -> str:
    raw = hashlib.sha256(":".join(parts).encode()).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def openid_for(appid: str, p: Person) -> str:
    """openid is per (person, appid), like WeChat's."""
    return "o" + _digest("openid", appid, p.key)[:27]


def unionid_for(p: Person) -> str | None:
    """unionid is per person across every app of one open-platform account."""
    return ("u" + _digest("unionid", p.key)[:27]) if p.has_unionid else None


def avatar_for(p: Person, base_url: str) -> str:
    return GREY_AVATAR if p.placeholder else f"{base_url}/avatar/{p.key}.svg"
