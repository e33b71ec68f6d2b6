"""Forwarding mode: POST /wechat/forward/mp, where another system that owns the official account's server URL
forwards WeChat's scan events to us, signed with ``[wechat.mp] forward_secret`` (README "Scan to follow").

The request: the message as WeChat pushed it, opened (plain XML or JSON), as the body; headers
``X-WxLogin-Timestamp`` (Unix seconds, within 5 minutes of our clock) and ``X-WxLogin-Signature`` (hex
HMAC-SHA256 keyed with the secret over timestamp, a line feed, then the body). The timestamp is checked
before the body is kept, the signature once it is in; then the push is deduplicated and dispatched
exactly as a direct one. The answers are the push endpoint's (handlers/push.py): ``success`` or a plain
passive reply (XML the forwarder may relay to WeChat), an empty 4xx for bad input, 503 when MySQL or a
handler failed.
"""

from __future__ import annotations

import tornado.web

from wxlogin import dbbudget
from wxlogin.handlers.push import PUSH_DB_BUDGET, PushHandler
from wxlogin.services.pushes import MAX_PUSH_BODY, PushQuery, PushRejected, PushReply, PushTooLarge, PushUnauthentic

TIMESTAMP_HEADER = "X-WxLogin-Timestamp"
SIGNATURE_HEADER = "X-WxLogin-Signature"


@tornado.web.stream_request_body
class ForwardHandler(PushHandler):
    """POST only: a forwarded event, with the push endpoint's streaming, draining and answers."""

    SUPPORTED_METHODS = ("POST",)

    @property
    def label(self) -> str:
        return "mp (forwarded)"

    async def prepare(self) -> None:
        mysql = self.services.settings.mysql
        dbbudget.open_budget(min(mysql.acquire_timeout + mysql.query_timeout, PUSH_DB_BUDGET))
        self.push_app = self.services.pushes.forward_app
        if self.push_app is None:
            raise tornado.web.HTTPError(404)  # no forward_secret: forwarding is off
        self.query = PushQuery()
        try:
            for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
                if len(self.request.headers.get_list(name)) > 1:
                    raise PushUnauthentic(f"{name} repeated")
            self.services.pushes.authenticate_forward(self.request.headers.get(TIMESTAMP_HEADER, ""))
            declared = self.request.headers.get("Content-Length", "0")
            if not declared.isdigit() or int(declared) > MAX_PUSH_BODY:
                raise PushTooLarge(f"Content-Length {declared[:20]}")
        except PushRejected as exc:
            self.refusal = exc  # answered once the body is drained (see handlers/push.py)

    async def receive(self, body: bytes) -> PushReply:
        headers = self.request.headers
        return await self.services.pushes.receive_forwarded(
            headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, ""), body)


routes = [tornado.web.url(r"/wechat/forward/mp", ForwardHandler, name="wechat_forward")]
