"""Static checks from the security checklist: the route table, dependency floors, constant-time compares."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from wxlogin.app import Assets, make_app
from wxlogin.config import settings_from_mapping
from wxlogin.services import build_services

SITE = Path(__file__).resolve().parents[2] / "site" / "wxlogin"

# Every route the site serves. A new route is a deliberate change to this list (item 50: no hidden
# login routes); the /_sandbox routes exist only with [wechat] sandbox = true.
ROUTES = [
    r"/(robots\.txt)$", r"/(favicon\.ico)$", r"/static/(.*)$", r"/$", r"/login$",
    r"/login/qr$",  # the website QR card's renewal (issue 15): a fresh embedded QR and binding, XSRF-checked
    r"/account$",
    r"/account/unlink$", r"/account/merge$", r"/account/phone/unbind$", r"/account/refresh$", r"/logout$",
    r"/healthz$", r"/auth/wechat/web$", r"/auth/wechat/mp$", r"/auth/wechat/mp/([a-z0-9_]{1,32})$",
    r"/account/link/(web|mp)$", r"/auth/wechat/callback/([a-z0-9_.-]{2,48})$", r"/api/miniprogram/login$",
    r"/api/miniprogram/profile$", r"/api/miniprogram/nickname$", r"/api/miniprogram/avatar$",
    r"/api/app/login$",
    # Phone numbers (issue 13): bind from the mini-program's getPhoneNumber code, unbind (both bearer).
    r"/api/miniprogram/phone$",
    # Desktop login by mini-program code (issue 14): the mini-program's steps on a scene (bearer).
    r"/api/miniprogram/qr-login/scan$", r"/api/miniprogram/qr-login/confirm$", r"/api/miniprogram/qr-login/refuse$",
    r"/api/me$", r"/api/me/phone$",
    # Closing an account and the data export (issue 16): restore and export, both bearer (DELETE is /api/me's).
    r"/api/me/restore$", r"/api/me/export$",
    r"/api/logout$", r"/api/openapi\.json$", r"/api/.*$",
    # Called by WeChat's servers (issue 13): signed pushes, no cookies, 404 for an app without push_token.
    r"/wechat/push/(mp|miniprogram)$", r"/wechat/push/(mp|miniprogram)/([A-Za-z0-9_-]{1,32})$",
    # Forwarding mode (issue 14): scan events another system received, signed with [wechat.mp] forward_secret.
    r"/wechat/forward/mp$",
    # Uploaded avatars (issue 13): public once WeChat's check passed them, content-addressed.
    r"/avatars/([0-9a-f]{64})\.jpg$",
    # The desktop scan-login waiting page (issue 14): its events (SSE), long-poll, completion and QR image;
    # each needs the scene's binding cookie.
    r"/login/scene/([A-Za-z0-9]{32})/events$", r"/login/scene/([A-Za-z0-9]{32})/wait$",
    r"/login/scene/([A-Za-z0-9]{32})/complete$", r"/login/scene/([A-Za-z0-9]{32})/qr$",
    # The brand (issue 15): the [brand] primary colour as CSS, and the legal documents (a redirect to the
    # configured address, or a page that says it is a placeholder). Public, no writes.
    r"/brand\.css$", r"/legal/(terms|privacy)$",
    # Closing an account (issue 16): the close page (GET; POST closes, XSRF, recent sign-in), re-confirming with
    # WeChat, cancelling (both POST, XSRF) and the JSON download of my data.
    r"/account/close$", r"/account/reauth$", r"/account/restore$", r"/account/export$",
    # The operator console (issue 16): 404 to anyone not in [admin] user_ids; actions need XSRF and a recent
    # sign-in (tests/handlers/test_admin_console.py, and the route walk in test_pages.py).
    r"/admin$", r"/admin/users$", r"/admin/users/([0-9]{1,19})$", r"/admin/failures$", r"/admin/log$",
    r"/admin/users/([0-9]{1,19})/disable$", r"/admin/users/([0-9]{1,19})/enable$",
    r"/admin/users/([0-9]{1,19})/sign_out_everywhere$", r"/admin/users/([0-9]{1,19})/unlink$",
    r"/admin/users/([0-9]{1,19})/cancel_deletion$", r"/admin/users/([0-9]{1,19})/hasten_deletion$",
]


def _routes(sandbox: bool) -> list[str]:
    with open(SITE.parents[1] / "settings.toml", "rb") as handle:
        data = tomllib.load(handle)
    data["wechat"]["sandbox"] = sandbox
    if not sandbox:
        data["server"]["secret_keys"] = ["static-check-key-00000000000000000000000001"]
    settings = settings_from_mapping(data, {})
    app = make_app(settings, build_services(settings), Assets.beside(SITE.parents[1]))
    return [rule.matcher.regex.pattern for rule in app.wildcard_router.rules]


def test_route_table_matches_the_allow_list():
    assert _routes(sandbox=False) == ROUTES
    with_sandbox = _routes(sandbox=True)
    assert with_sandbox[:len(ROUTES)] == ROUTES
    assert all(pattern.startswith("/_sandbox") for pattern in with_sandbox[len(ROUTES):])


def _tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_dependency_floors_of_the_checklist():
    assert _tuple(version("tornado")) >= (6, 5, 2)
    assert _tuple(version("PyMySQL")) >= (1, 1, 1)  # CVE-2024-36039
    assert _tuple(version("aiomysql")) >= (0, 3, 0)  # GHSA-r397-ff8c-wv2g
    assert _tuple(version("itsdangerous")) >= (2, 0, 0)  # future timestamps rejected
    assert _tuple(version("pillow")) >= (10, 3, 0)  # CVE-2024-28219; 10.0.1: libwebp CVE-2023-4863


def test_secrets_are_never_compared_with_equality():
    """Item 34: signatures, tokens, nonces and secrets go through hmac.compare_digest."""
    names = r"(sig|signature|token|nonce|secret|mac)"
    pattern = re.compile(rf"\b\w*{names}\w*\s*(==|!=)|(==|!=)\s*\w*{names}\b")
    offenders = []
    for path in SITE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if '"""' in line or code.strip().startswith(("'", '"')):
                continue
            if pattern.search(code):
                offenders.append(f"{path.relative_to(SITE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
