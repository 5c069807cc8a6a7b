"""Origin and Sec-Fetch-Site decisions for cookie-authenticated unsafe requests."""

from __future__ import annotations

import pytest

from verifier.core.reasons import Reason
from verifier.sources.csrf import CsrfRejected, check_request_origin, is_unsafe_method, normalize_origin

PUBLIC = "https://localhost:8443"


@pytest.mark.parametrize(
    ("configured", "normalised"),
    [
        ("https://localhost:8443", "https://localhost:8443"),
        ("https://localhost:8443/", "https://localhost:8443"),
        ("HTTPS://LocalHost:8443", "https://localhost:8443"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80/", "http://app.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("  https://app.example.com  ", "https://app.example.com"),
    ],
)
def test_origin_setting_is_normalised_as_browsers_serialise_it(configured: str, normalised: str) -> None:
    assert normalize_origin(configured) == normalised


@pytest.mark.parametrize(
    "bad",
    [
        "localhost:8443",
        "ftp://example.com",
        "https://",
        "https://example.com/app",
        "https://example.com/?a=1",
        "https://user:pw@example.com",
        "https://example.com#x",
        "",
    ],
)
def test_origin_setting_that_is_not_an_origin_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        normalize_origin(bad)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get", "head"])
def test_safe_methods_need_no_csrf_check(method: str) -> None:
    assert is_unsafe_method(method) is False


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "post", "PROPFIND", "TRACE", "X-NEW"])
def test_state_changing_and_unknown_methods_are_unsafe(method: str) -> None:
    assert is_unsafe_method(method) is True


def origin_reason(origin: str | None, sec_fetch_site: str | None) -> str:
    with pytest.raises(CsrfRejected) as caught:
        check_request_origin(origin=origin, sec_fetch_site=sec_fetch_site, public_origin=PUBLIC)
    return caught.value.reason


@pytest.mark.parametrize(
    ("origin", "sec_fetch_site"),
    [
        (PUBLIC, "same-origin"),
        (PUBLIC, None),
        (None, "same-origin"),
        (None, None),
        ("https://LOCALHOST:8443", "Same-Origin"),
    ],
)
def test_same_origin_or_absent_browser_headers_pass_the_origin_check(
    origin: str | None, sec_fetch_site: str | None
) -> None:
    check_request_origin(origin=origin, sec_fetch_site=sec_fetch_site, public_origin=PUBLIC)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://localhost:8444",
        "http://localhost:8443",
        "https://localhost",
        "https://localhost:8443.evil.example",
        "https://sub.localhost:8443",
        "null",
        "",
        "https://localhost:8443/",
    ],
)
def test_foreign_origin_is_rejected_with_reason_origin_mismatch(origin: str) -> None:
    assert origin_reason(origin, "same-origin") == Reason.CSRF_ORIGIN_MISMATCH


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none", "", "bogus"])
def test_sec_fetch_site_other_than_same_origin_is_rejected_with_reason_cross_site(site: str) -> None:
    assert origin_reason(None, site) == Reason.CSRF_CROSS_SITE
    assert origin_reason(PUBLIC, site) == Reason.CSRF_CROSS_SITE


def test_origin_mismatch_is_reported_before_sec_fetch_site() -> None:
    assert origin_reason("https://evil.example", "cross-site") == Reason.CSRF_ORIGIN_MISMATCH
