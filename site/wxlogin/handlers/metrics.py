"""GET /metrics for Prometheus, on the metrics listener only (``[metrics] listen``), never in the public app.

``make_metrics_app`` (wxlogin/app.py) mounts this one route on its own Application, so the public port has
no /metrics at all (its 404 page answers there). The values are every worker's (wxlogin/metrics.py adds them
up); the pending deletions are counted in MySQL at scrape time, once per scrape, never per request.
"""

from __future__ import annotations

import tornado.routing
import tornado.web

from wxlogin import metrics
from wxlogin.errors import DatabaseUnavailable, Overloaded
from wxlogin.services import Services

PENDING_HELP = "Closed accounts waiting for the deletion job (users.deletion_scheduled_at set), read at scrape time."


class MetricsHandler(tornado.web.RequestHandler):
    """The exposition text; no cookies, no XSRF, nothing personal (labels are channels, codes and paths)."""

    def initialize(self, services: Services) -> None:
        self.services = services

    async def get(self) -> None:
        self.services.maintenance.sample_metrics()  # this process's pool gauges as of now; others' within a second
        scraped: dict[str, tuple[str, float]] = {}
        try:
            pending = await self.services.deletion.count_pending()
        except (DatabaseUnavailable, Overloaded):
            pass  # MySQL does not answer: this scrape has no such gauge, the others are still served
        else:
            scraped["wxlogin_pending_deletions"] = (PENDING_HELP, float(pending))
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(metrics.render(scraped))


def routes(services: Services) -> list[tornado.routing.Rule]:
    return [tornado.web.url(r"/metrics", MetricsHandler, {"services": services}, name="metrics")]
