"""The site's own brand as templates see it ([brand] settings): name, logo, colours, legal links, footer lines."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from wxlogin.config import DEFAULT_PRIMARY, BrandSettings, hex_rgb

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{4,}[0-9]$")
ICP_URL = "https://beian.miit.gov.cn/"  # MIIT's rule: the filing number in the footer links to its register


def _mix(colour: str, other: tuple[int, int, int], amount: float) -> str:
    """``colour`` moved ``amount`` (0..1) of the way towards ``other``, as #rrggbb."""
    rgb = hex_rgb(colour)
    return "#" + "".join(f"{round(c + (o - c) * amount):02x}" for c, o in zip(rgb, other, strict=True))


def brand_palette(primary: str) -> dict[str, str]:
    """The CSS variables derived from the primary colour: hover (darker, so contrast only grows) and tint."""
    return {"--brand": primary.lower(), "--brand-dark": _mix(primary, (0, 0, 0), 0.15),
            "--brand-soft": _mix(primary, (255, 255, 255), 0.9)}


def brand_css(primary: str) -> str:
    """The stylesheet that overrides site.css's default brand colours."""
    declarations = "; ".join(f"{name}: {value}" for name, value in brand_palette(primary).items())
    return f":root {{ {declarations}; }}\n"


def support_href(support: str) -> str | None:
    """A link for the customer-service contact: https URL, mailto: or tel:; None for plain text (a WeChat ID)."""
    if support.startswith("https://") or support.startswith("http://"):
        return support
    if _EMAIL_RE.match(support):
        return "mailto:" + support
    if _PHONE_RE.match(support):
        return "tel:" + support.replace(" ", "").replace("-", "")
    return None


@dataclass(frozen=True)
class BrandView:
    """What templates read as ``brand``: built once per application from [brand]."""

    name: str
    logo_url: str
    description: str  # empty: the template's built-in sentence
    terms_url: str
    privacy_url: str
    terms_placeholder: bool
    privacy_placeholder: bool
    icp: str
    icp_url: str
    support: str
    support_href: str | None
    css_url: str | None  # the colour stylesheet, only when [brand] primary is not the default

    @classmethod
    def build(cls, brand: BrandSettings, static_url: Callable[[str], str],
              reverse_url: Callable[..., str]) -> BrandView:
        logo = brand.logo if brand.logo.startswith("https://") else static_url(brand.logo)
        css = None
        if brand.primary != DEFAULT_PRIMARY:
            version = hashlib.sha256(brand.primary.encode("ascii")).hexdigest()[:12]
            css = reverse_url("brand_css") + "?v=" + version
        return cls(
            name=brand.name, logo_url=logo, description=brand.description,
            terms_url=brand.terms_url or reverse_url("legal", "terms"),
            privacy_url=brand.privacy_url or reverse_url("legal", "privacy"),
            terms_placeholder=not brand.terms_url, privacy_placeholder=not brand.privacy_url,
            icp=brand.icp, icp_url=ICP_URL, support=brand.support, support_href=support_href(brand.support),
            css_url=css,
        )
