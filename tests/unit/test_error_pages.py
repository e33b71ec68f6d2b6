"""Issue 15 in pure code: every error row's page (icon, plain title, English, next step), the [brand] settings and
the brand's assets (a neutral logo, site.css's default colours equal to the declared default)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unit.test_config import BASE, with_changes
from wxlogin import errors as e
from wxlogin.config import DEFAULT_PRIMARY, ConfigError, contrast_with_white, settings_from_mapping
from wxlogin.handlers.brand import brand_palette, support_href
from wxlogin.handlers.catalog_en import EN
from wxlogin.handlers.errors import ERRORS, STATUSES, Retry, error_page

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ROOT / "static" / "img" / "outcome"
ROWS = [*ERRORS, *STATUSES]
# What people should never have to decode: WeChat's and HTTP's words for things.
JARGON = ("凭证", "参数", "请求无效", "请求方式", "code", "state", "token", "HTTP", "授权范围", "不合规")


def row_id(row) -> str:
    return getattr(row, "code", None) or f"http_{row.status}"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_every_row_has_its_icon_a_plain_title_and_english(row):
    assert (OUTCOMES / f"{row.icon}.svg").is_file(), f"static/img/outcome/{row.icon}.svg is missing"
    titles = [row.title] + ([row.title_in_wechat] if getattr(row, "title_in_wechat", "") else [])
    for title in titles:
        assert not any(word in title for word in JARGON), title
        assert len(title) <= 20, f"{title!r} is long for a heading"
        assert title in EN and row.message in EN, "every Chinese string of the table has English"
    page_status = getattr(row, "page_status", getattr(row, "status", 0))
    if page_status >= 400:
        # A failure says what to do next, in the title or at least in the message.
        assert "请" in row.title or "请" in row.message, row.title


def test_outcomes_have_their_own_icons_and_every_icon_is_used():
    used = {row.icon for row in ROWS}
    assert len(used) >= 12, "one red dot for every outcome was the bug"
    assert used == {path.stem for path in OUTCOMES.glob("*.svg")}, "an icon file nobody uses, or a row without its file"
    kinds = {row.cls: row.icon for row in ERRORS}
    assert kinds[e.StateExpired] == kinds[e.CodeInvalid] == "expired"
    assert kinds[e.LoginCancelled] == "cancelled" and kinds[e.DatabaseUnavailable] == "offline"
    assert kinds[e.Overloaded] == kinds[e.RateLimited] == "wait" and kinds[e.AccountDisabled] == "locked"
    for path in OUTCOMES.glob("*.svg"):
        text = path.read_text("utf-8")
        assert text.startswith("<svg") and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "href" not in text and len(text) < 1500, f"{path.name}: small, self-contained"


def test_the_timeout_title_is_plain_and_fits_where_the_person_is():
    assert error_page(e.CodeInvalid(40029), 500).title == "登录超时，请重新扫码"
    assert error_page(e.CodeInvalid(40029), 500, in_wechat=True).title == "登录超时，请重新登录"
    assert error_page(e.StateExpired(), 500).title == "登录超时，请重新扫码"
    assert EN["登录超时，请重新扫码"] == "Sign-in timed out. Please scan again"
    assert error_page(e.BadRequest("x"), 500).title == "页面地址有误，请返回重试"


def test_busy_and_down_pages_offer_to_try_again_never_to_sign_in():
    for page in (error_page(e.DatabaseUnavailable("x"), 500), error_page(e.Overloaded(), 500),
                 error_page(None, 503), error_page(e.RateLimited(3), 500), error_page(None, 429)):
        assert page.retry and page.retry_by is Retry.RELOAD, page.code
    assert error_page(e.StateExpired(), 500).retry_by is Retry.LOGIN
    assert not error_page(e.AccountDisabled(), 500).retry and error_page(e.AccountDisabled(), 500).contact


# --- [brand] ---------------------------------------------------------------------------------------------------

def test_brand_defaults_are_neutral():
    brand = settings_from_mapping(BASE, env={}).brand
    assert (brand.name, brand.logo, brand.primary) == ("wxlogin", "img/logo.svg", DEFAULT_PRIMARY)
    assert (brand.terms_url, brand.privacy_url, brand.icp, brand.support) == ("", "", "", "")
    assert contrast_with_white(DEFAULT_PRIMARY) >= 4.5
    assert "微信" not in brand.name


@pytest.mark.parametrize("changes, message", [
    ([("brand.primary", "#07c160")],
     "[brand] primary #07c160 gives white text a contrast of 2.38:1; WCAG AA needs 4.5:1"),
    ([("brand.primary", "green")], "[brand] primary must be a colour like #2563eb"),
    ([("brand.logo", "../settings.toml")], "[brand] logo must be a path under static/"),
    ([("brand.logo", "/img/logo.svg")], "[brand] logo must be a path under static/"),
    ([("brand.logo", "http://cdn.example.com/logo.png")], "[brand] logo must be a path under static/"),
    ([("brand.terms_url", "javascript:alert(1)")], "[brand] terms_url must be a path on this site"),
    ([("brand.privacy_url", "//evil.example/privacy")], "[brand] privacy_url must be a path on this site"),
    ([("brand.name", "a\nb")], "[brand] name must be one line"),
    ([("brand.icp", "京" * 101)], "[brand] icp must be one line of at most 100 characters"),
])
def test_bad_brand_settings_name_the_key(changes, message):
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(with_changes(*changes), env={})
    assert message in str(error.value)


def test_brand_from_the_environment():
    brand = settings_from_mapping(BASE, env={"WXLOGIN_BRAND_NAME": "示例科技", "WXLOGIN_BRAND_PRIMARY": "#0B5D3B",
                                             "WXLOGIN_BRAND_LOGO": "https://cdn.example.com/logo.png"}).brand
    assert (brand.name, brand.primary, brand.logo) == ("示例科技", "#0b5d3b", "https://cdn.example.com/logo.png")


def test_site_css_holds_the_declared_default_colours():
    css = (ROOT / "static" / "css" / "site.css").read_text("utf-8")
    top = css[:css.index("--green")]  # the brand's own :root block, at the top of the file
    declared = dict(re.findall(r"(--brand(?:-[a-z]+)?): (#[0-9a-f]{6})", top))
    assert declared == brand_palette(DEFAULT_PRIMARY)
    assert contrast_with_white(brand_palette(DEFAULT_PRIMARY)["--brand-dark"]) >= 4.5


@pytest.mark.parametrize("contact, href", [
    ("help@example.com", "mailto:help@example.com"), ("400-123-4567", "tel:4001234567"),
    ("+86 10 1234 5678", "tel:+861012345678"), ("https://help.example.com/", "https://help.example.com/"),
    ("微信号 example_help", None),
])
def test_support_links(contact, href):
    assert support_href(contact) == href


def test_our_logo_is_not_wechats():
    logo = (ROOT / "static" / "img" / "logo.svg").read_text("utf-8")
    mark = (ROOT / "static" / "img" / "wechat.svg").read_text("utf-8")
    assert "#07c160" in mark.lower()  # WeChat's mark kept for its button
    assert "#07c160" not in logo.lower() and logo != mark
    assert DEFAULT_PRIMARY in logo  # drawn in the default brand colour
