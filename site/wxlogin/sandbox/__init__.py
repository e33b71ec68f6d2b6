"""The WeChat emulator, mounted under /_sandbox only when ``[wechat] sandbox = true``.

It plays WeChat's servers over real HTTP so that a newcomer can run the whole product and tests can
reach "WeChat" without the internet. It never imports the client, services or store: the client and
the emulator must not be able to share a mistake.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import jinja2
import tornado.routing
import tornado.web

from wxlogin.config import SANDBOX_PREFIX, Settings, WeChatPushApp
from wxlogin.sandbox import cgi, dev, follow, oa, pages, push, sns, wxa, wxa_content, wxacode
from wxlogin.sandbox.base import RegisteredApp, Sandbox
from wxlogin.sandbox.state import SandboxState


def build_sandbox(settings: Settings, jinja_env: jinja2.Environment) -> Sandbox:
    """Register the configured apps with the emulator, as if they were approved on WeChat's platforms."""
    apps: dict[str, RegisteredApp] = {}
    for found in settings.wechat.all_apps():  # the default apps and every [wechat.more.<kind>.<name>]
        a = found.app
        apps[a.appid] = RegisteredApp(appid=a.appid, secret=a.secret.value, kind=found.kind, name=found.name,
                                      push_token=a.push_token.value if isinstance(a, WeChatPushApp) else "",
                                      push_aes_key=a.push_aes_key.value if isinstance(a, WeChatPushApp) else "")
    public = settings.server.public_url
    return Sandbox(
        base_url=public + SANDBOX_PREFIX, callback_host=urlsplit(public).netloc, apps=apps, jinja_env=jinja_env,
        path_prefix=SANDBOX_PREFIX, state=SandboxState(qr_ttl=settings.wechat.qr_max_age),
    )


def routes(sandbox: Sandbox) -> list[tornado.routing.URLSpec]:
    """Every sandbox route under /_sandbox."""
    init = {"sandbox": sandbox}
    return (pages.routes(SANDBOX_PREFIX, init) + oa.routes(SANDBOX_PREFIX, init) + sns.routes(SANDBOX_PREFIX, init)
            + dev.routes(SANDBOX_PREFIX, init) + push.routes(SANDBOX_PREFIX, init) + cgi.routes(SANDBOX_PREFIX, init)
            + wxa.routes(SANDBOX_PREFIX, init) + wxa_content.routes(SANDBOX_PREFIX, init)
            + follow.routes(SANDBOX_PREFIX, init)
            + wxacode.routes(SANDBOX_PREFIX, init))  # issue 14: mini-program codes and the mini-program page
