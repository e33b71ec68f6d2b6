"""Choosing one of several apps of a kind by the name a client sends (issue 13, "several apps of a kind").

The registry itself is ``WeChatSettings.apps(kind)`` (config.py): the default app of ``[wechat.<kind>]`` under
the name "" and every ``[wechat.more.<kind>.<name>]``. Services that act for one app of a kind take its name
from the request (the API's optional ``"app"`` field, checked by the handler against ``APP_NAME_RE``) and
resolve it here, so an unknown name is one answer everywhere: 400 ``bad_request`` (a client built for an app
this site does not serve is a deployment mistake to fix, not a condition a client handles at run time).

How a service switches (e.g. the phone number or avatar/nickname services, whose mini-program app comes from
one private helper): ``def _app(self, name: str = "") -> WeChatApp: return choose_app(self.settings.wechat,
Channel.MINIPROGRAM, name)``, and the handler passes ``app_name(data)`` (handlers/api.py) from the body.
"""

from __future__ import annotations

import logging

from wxlogin.config import WeChatApp, WeChatSettings
from wxlogin.errors import BadRequest
from wxlogin.models import Channel

logger = logging.getLogger(__name__)


def choose_app(wechat: WeChatSettings, kind: Channel, name: str = "") -> WeChatApp:
    """The app of ``kind`` called ``name`` ("" = the default app); BadRequest when no app has that name."""
    found = wechat.apps(kind.value).get(name)
    if found is None:
        # The name matched APP_NAME_RE in the handler, so it is safe to log.
        logger.warning("API request for %s app %r, which is not configured", kind.value, name)
        raise BadRequest(f"no {kind.value} app named {name!r}")
    return found
