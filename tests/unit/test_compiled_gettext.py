"""Fixed template text is translated while compiling, and renders exactly as the runtime ``_()`` would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wxlogin.app import make_jinja_env
from wxlogin.handlers.i18n import Translator

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SOURCE = '{{ _("登录") }}|{{ _("你好，{name}", name=who) }}|{{ obj._("登录") }}|{{ _(title) }}|{{ _("<b>") }}'


class Holder:
    def _(self, text: str) -> str:
        return "method:" + text


@pytest.mark.parametrize("locale, expected", [
    ("zh", "登录|你好，&lt;i&gt;|method:登录|登录|&lt;b&gt;"),
    ("en", "Sign in|Hello, &lt;i&gt;|method:登录|Sign in|&lt;b&gt;"),
])
def test_fixed_text_is_a_constant_and_the_rest_still_calls_gettext(locale, expected):
    env = make_jinja_env(False, locale, templates=TEMPLATES)
    calls = []

    def gettext(text: str, **values: object) -> str:
        calls.append(text)
        return Translator(locale).gettext(text, **values)

    out = env.from_string(SOURCE).render(_=gettext, who="<i>", obj=Holder(), title="登录")

    assert out == expected
    assert calls == ["你好，{name}", "登录"]  # only the call with values and the call on a variable


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_every_template_renders_the_same_text_as_runtime_gettext(locale):
    """Compile each page both ways (constants, and plain runtime calls) and compare the generated text."""
    compiled = make_jinja_env(False, locale, templates=TEMPLATES)
    plain = make_jinja_env(False, locale, templates=TEMPLATES)
    plain.extensions.clear()  # no compile-time translation: every _() is a call
    checked = 0
    for path in TEMPLATES.glob("*.html"):
        source = path.read_text()
        for fixed in _fixed_calls(source):
            as_constant = compiled.from_string("{{ " + fixed + " }}").render()
            as_call = plain.from_string("{{ " + fixed + " }}").render(_=Translator(locale).gettext)
            assert as_constant == as_call, (path.name, fixed)
            checked += 1
    assert checked > 20


def _fixed_calls(source: str) -> list[str]:
    return re.findall(r'_\("[^"]*"\)|_\(\'[^\']*\'\)', source)
