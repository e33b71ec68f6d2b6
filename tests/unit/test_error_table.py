"""The one error table (handlers/errors.py): complete, the only source for pages, API, OpenAPI and README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wxlogin import errors as e
from wxlogin.handlers import api
from wxlogin.handlers.catalog_en import EN
from wxlogin.handlers.errors import ERRORS, STATUSES, api_codes, api_error, error_page, row_for
from wxlogin.handlers.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]

API_PATHS = {spec.name: spec.reverse() for spec in api.routes if spec.name}


def domain_errors() -> list[type[e.WxLoginError]]:
    """Every subclass of WxLoginError the site defines, found by walking ``__subclasses__`` with every module loaded."""
    import wxlogin.app  # noqa: F401  (imports every handler, service, store and wechat module)

    found, todo = [], list(e.WxLoginError.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("wxlogin.") and cls not in found:
            found.append(cls)
    return found


def readme_api_table() -> list[tuple[int, list[str]]]:
    """(status, codes) for each row of the README's API error table (the one headed status | error | when)."""
    lines = (ROOT / "README.md").read_text("utf-8").splitlines()
    start = lines.index("| status | error | when |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        status, codes = [cell.strip() for cell in line.strip("|").split("|")][:2]
        rows.append((int(status), re.findall(r"`([a-z_]+)`", codes)))
    return rows


def test_every_domain_error_has_exactly_one_row():
    found = domain_errors()
    assert len(found) >= 27  # the walk really saw the module
    assert [c.__name__ for c in found if c.__module__ != e.__name__] == [], "domain errors live in wxlogin.errors"
    listed = [row.cls for row in ERRORS]
    assert sorted(c.__name__ for c in found) == sorted(c.__name__ for c in listed)
    assert len(listed) == len(set(listed)), "a class has two rows"
    for cls in found:
        assert cls.code != e.WxLoginError.code, f"{cls.__name__} has no code of its own"


@pytest.mark.parametrize("row", ERRORS, ids=lambda row: row.code)
def test_each_row_answers_both_dialects(row):
    assert 200 <= row.page_status < 600 and 400 <= row.api_status < 600
    assert row.title and row.message and row.api_message and row.doc
    assert row.page_status != 401, "a page has no WWW-Authenticate challenge to offer"
    assert (row.challenge is not None) == (row.api_status == 401), "every API 401, and only a 401, has a challenge"
    assert row.title in EN and row.message in EN, "the page needs its English"


def test_bare_status_rows_cover_what_handlers_and_tornado_raise():
    assert sorted(row.status for row in STATUSES) == [400, 403, 404, 405, 413, 415, 429, 500, 503]
    for row in STATUSES:
        assert row.title in EN and row.message in EN
        assert api_error(None, row.status).code == row.api_code
        assert error_page(None, row.status).status == row.status


def test_api_codes_are_exactly_the_openapi_enum():
    schemas = openapi_document("http://x", API_PATHS.__getitem__)["components"]["schemas"]
    enum = schemas["Error"]["properties"]["error"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == {row.code for row in ERRORS} | {row.api_code for row in STATUSES}
    assert set(enum) == set(api_codes())


def test_openapi_operations_list_the_table_statuses_and_codes():
    doc = openapi_document("http://x", API_PATHS.__getitem__)
    statuses_of = {}
    for row in ERRORS:
        statuses_of.setdefault(row.code, set()).add(row.api_status)
    for row in STATUSES:
        statuses_of.setdefault(row.api_code, set()).add(row.status)
    seen = set()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                codes = re.findall(r"`([a-z_]+)`", response["description"])
                assert codes, (path, method, status)
                for code in codes:
                    assert int(status) in statuses_of[code], (path, method, status, code)
                seen.update(codes)
    assert "code_invalid" in seen and "invalid_token" in seen and "wechat_timeout" in seen


def test_readme_api_table_lists_every_api_code_with_its_status():
    statuses_of = {}
    for row in ERRORS:
        statuses_of.setdefault(row.code, set()).add(row.api_status)
    for row in STATUSES:
        statuses_of.setdefault(row.api_code, set()).add(row.status)
    listed = set()
    for status, codes in readme_api_table():
        assert codes, f"README row {status} names no code"
        for code in codes:
            assert code in statuses_of, f"README lists {code}, which the API never answers"
            assert status in statuses_of[code], f"README says {code} is {status}; the table says {statuses_of[code]}"
            listed.add(code)
    assert sorted(set(api_codes()) - listed) == [], "README's API error table misses these codes"


def test_wechat_timeout_is_504_in_both_dialects():
    assert error_page(e.WeChatTimeout(), 500).status == 504
    assert api_error(e.WeChatTimeout(), 500).status == 504
    assert (error_page(e.WeChatUnavailable(), 500).status, api_error(e.WeChatUnavailable(), 500).status) == (502, 502)


def test_bad_code_is_a_400_page_and_a_401_with_a_challenge_in_the_api():
    page, api = error_page(e.CodeInvalid(40029), 500), api_error(e.CodeInvalid(40029), 500)
    assert (page.status, page.code, page.headers) == (400, "code_invalid", ())
    assert (api.status, api.code) == (401, "code_invalid")
    assert dict(api.headers) == {"WWW-Authenticate": 'Bearer realm="wxlogin"'}  # a code is not a token
    token = api_error(e.InvalidToken(), 500)
    assert dict(token.headers) == {"WWW-Authenticate": 'Bearer realm="wxlogin", error="invalid_token"'}


@pytest.mark.parametrize("exc, seconds", [
    (e.RateLimited(7), "7"), (e.WeChatRateLimited(45011), "60"), (e.Overloaded(3), "3"), (e.Overloaded(), "1"),
])
def test_retry_after_comes_from_the_error_in_both_dialects(exc, seconds):
    assert dict(api_error(exc, 500).headers)["Retry-After"] == seconds
    assert dict(error_page(exc, 500).headers)["Retry-After"] == seconds


def test_overloaded_is_one_row():
    page, api = error_page(e.Overloaded(2), 500), api_error(e.Overloaded(2), 500)
    assert (page.status, api.status, api.code) == (503, 503, "overloaded")


def test_encrypted_data_invalid_is_a_domain_error():
    from wxlogin.wechat import crypto

    assert e.EncryptedDataInvalid.__module__ == "wxlogin.errors"
    assert crypto.EncryptedDataInvalid is e.EncryptedDataInvalid  # crypto raises the very same class
    assert api_error(e.EncryptedDataInvalid(), 500).status == 400


def test_most_specific_row_wins_and_unlisted_subclasses_keep_a_documented_code():
    assert row_for(e.StateExpired()).cls is e.StateExpired  # not its parent StateInvalid's row
    assert row_for(e.WeChatTimeout()).cls is e.WeChatTimeout  # not WeChatUnavailable's

    class Stranger(e.CodeInvalid):
        code = "stranger"

    answer = api_error(Stranger(), 500)
    assert (answer.status, answer.code) == (401, "code_invalid")  # never a code the OpenAPI enum lacks


def test_unknown_errors_and_statuses_are_500_in_the_api_and_keep_their_number_on_pages():
    assert api_error(ValueError("bug"), 500).body() == {"error": "internal_error", "message": "服务器内部错误。"}
    assert api_error(None, 418).status == 500
    assert api_error(e.WxLoginError("bare"), 500).code == "internal_error"
    page = error_page(None, 418)
    assert (page.status, page.code, page.title) == (418, "http_418", "出错了，请稍后再试")
    assert not error_page(None, 404).retry and error_page(None, 503).retry
    assert not error_page(e.AccountDisabled(), 500).retry
