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

from wxlogin.config import SANDBOX_PREFIX, Settings
from wxlogin.sandbox import cgi, dev, oa, pages, push, sns, wxa
from wxlogin.sandbox.base import RegisteredApp, Sandbox


def build_sandbox(settings: Settings, jinja_env: jinja2.Environment) -> Sandbox:
    """Register the configured apps with the emulator, as if they were approved on WeChat's platforms."""
    wx = settings.wechat
    apps = {
        a.appid: RegisteredApp(appid=a.appid, secret=a.secret.value, kind=kind)
        for kind, a in (("web", wx.web), ("app", wx.app))
    }
    for kind, pushing in (("mp", wx.mp), ("miniprogram", wx.miniprogram)):
        apps[pushing.appid] = RegisteredApp(appid=pushing.appid, secret=pushing.secret.value, kind=kind,
                                            push_token=pushing.push_token.value,
                                            push_aes_key=pushing.push_aes_key.value)
    public = settings.server.public_url
    return Sandbox(
        base_url=public + SANDBOX_PREFIX, callback_host=urlsplit(public).netloc, apps=apps, jinja_env=jinja_env,
        path_prefix=SANDBOX_PREFIX,
    )


def routes(sandbox: Sandbox) -> list[tornado.routing.URLSpec]:
    """Every sandbox route under /_sandbox."""
    init = {"sandbox": sandbox}
    return (pages.routes(SANDBOX_PREFIX, init) + oa.routes(SANDBOX_PREFIX, init) + sns.routes(SANDBOX_PREFIX, init)
            + dev.routes(SANDBOX_PREFIX, init) + push.routes(SANDBOX_PREFIX, init) + cgi.routes(SANDBOX_PREFIX, init)
            + wxa.routes(SANDBOX_PREFIX, init))
