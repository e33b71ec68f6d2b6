"""Return-target validation for pure inputs (the handler tests replay the same list end to end)."""

from __future__ import annotations

import pytest

from helpers import BAD_RETURN_TARGETS
from wxlogin.redirects import safe_next


@pytest.mark.parametrize("target", [*BAD_RETURN_TARGETS, None, 12, "", "/login", "/_sandbox/phone/x", "/账户"])
def test_bad_targets_fall_back_home(target):
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/account", "/account?tab=1&x=%20y", "/a/b/c#frag", "/static/x.css"])
def test_same_site_paths_are_kept(target):
    assert safe_next(target) == target
