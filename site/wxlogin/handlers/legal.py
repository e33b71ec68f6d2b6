"""The brand's colour stylesheet and the legal documents' addresses (placeholder pages until configured)."""

from __future__ import annotations

import tornado.web

from wxlogin.handlers.base import BaseHandler, public
from wxlogin.handlers.brand import brand_css


class BrandCssHandler(tornado.web.RequestHandler):
    """GET /brand.css: the [brand] primary colour as CSS variables (pages allow no inline styles)."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.clear_header("Server")

    @public
    def get(self) -> None:
        primary = self.application.settings["services"].settings.brand.primary
        self.set_header("Content-Type", "text/css; charset=UTF-8")
        # The URL carries a hash of the colour (BrandView.css_url), so a changed colour is a new URL.
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.finish(brand_css(primary))


class LegalHandler(BaseHandler):
    """GET /legal/(terms|privacy): the configured document, or a page that says it is a placeholder."""

    @public
    def get(self, document: str) -> None:
        configured = getattr(self.services.settings.brand, f"{document}_url")
        if configured:
            self.redirect(configured)
            return
        self.render_template("legal_placeholder.html", document=document)


routes = [
    tornado.web.url(r"/brand\.css", BrandCssHandler, name="brand_css"),
    tornado.web.url(r"/legal/(terms|privacy)", LegalHandler, name="legal"),
]
