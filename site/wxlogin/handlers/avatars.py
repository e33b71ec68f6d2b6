"""GET /avatars/<sha256>.jpg: avatars people uploaded, from MySQL, at a content-addressed URL.

The bytes at one URL never change (the name is their SHA-256), so a checked avatar is cached for a year
(``immutable``). While WeChat's check is pending the image answers only the ``check`` key WeChat was
given, uncached; refused or unreviewed images are 404. Always ``image/jpeg`` (we re-encoded it) with
``nosniff`` and a CSP that lets nothing in the file run.
"""

from __future__ import annotations

import tornado.web

from wxlogin.handlers.base import BaseHandler, public

LONG_CACHE = "public, max-age=31536000, immutable"


class AvatarHandler(BaseHandler):
    """One avatar image; no cookies read, no session resolved."""

    async def prepare(self) -> None:
        # Deliberately not BaseHandler.prepare: an image needs no session (and no MySQL lookup for one).
        self.open_db_budget()

    @public
    async def get(self, sha256: str) -> None:
        await self._answer(sha256, include_body=True)

    @public
    async def head(self, sha256: str) -> None:
        await self._answer(sha256, include_body=False)

    async def _answer(self, sha256: str, include_body: bool) -> None:
        checks = self.get_query_arguments("check")
        served = await self.services.profile.avatar_image(sha256, checks[0] if len(checks) == 1 else "")
        if served is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        # Pending: only WeChat's fetcher has the key, and no cache may keep an image WeChat has not passed.
        self.set_header("Cache-Control", LONG_CACHE if served.public else "no-store")
        # The name is the bytes' SHA-256: the ETag too (Tornado's own would hash an empty HEAD body).
        self.set_header("Etag", f'"{sha256}"')
        if self.check_etag_header():  # Tornado checks only the ETags it computes itself
            self.set_status(304)
            self.finish()
        elif include_body:
            self.finish(served.jpeg)
        else:
            self.set_header("Content-Length", str(len(served.jpeg)))
            self.finish()


routes = [
    tornado.web.url(r"/avatars/([0-9a-f]{64})\.jpg", AvatarHandler, name="avatar"),
]
