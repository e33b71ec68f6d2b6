"""Simplified Chinese first; English for people who ask (``?lang=en``, the ``lang`` cookie, or a browser
whose first language is English). Templates write Chinese and call ``_()``; this catalogue maps it."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2.ext
from jinja2.lexer import Token, TokenStream

from wxlogin.handlers.catalog_en import EN

LOCALES = ("zh", "en")


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


class CompiledGettext(jinja2.ext.Extension):
    """Translates ``_("fixed text")`` while a template compiles, in an environment built for one locale.

    A page then renders its fixed text as constants instead of one ``_()`` call each (Jinja's call
    path is the costliest part of a render). Calls with values, ``_("{n} 个", n=x)``, and calls on a
    variable stay runtime calls to ``Translator.gettext``, which gives the same text.
    """

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        locale = self.environment.wx_locale  # type: ignore[attr-defined]
        tokens = list(stream)
        i = 0
        while i < len(tokens):
            window = tokens[i:i + 4]
            if (
                len(window) == 4 and window[0].test("name:_") and window[1].type == "lparen"
                and window[2].type == "string" and window[3].type == "rparen"
                and not (i and tokens[i - 1].type == "dot")
            ):
                yield Token(window[2].lineno, "string", Translator(locale).gettext(window[2].value))
                i += 4
                continue
            yield tokens[i]
            i += 1
