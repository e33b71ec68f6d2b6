"""Simplified Chinese first; English for people who ask (``?lang=en``, the ``lang`` cookie, or a browser
whose first language is English). Templates write Chinese and call ``_()``; this catalogue maps it."""

from __future__ import annotations

from wxlogin.handlers.catalog_en import EN


def choose_locale(query: str | None, cookie: str | None, accept_language: str) -> str:
    """Pick 'zh' or 'en' from an explicit choice, then the cookie, then the browser's first language."""
    for choice in (query, cookie):
        if choice in ("zh", "en"):
            return choice
    first = accept_language.split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "zh"


class Translator:
    """Looks Chinese source strings up in the English catalogue when the locale is English."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def gettext(self, text: str, **values: object) -> str:
        if self.locale == "en":
            text = EN.get(text, text)
        return text.format(**values) if values else text
