"""CSRF on cookie-authenticated requests: a fresh single-use token and a same-site origin, both."""

from __future__ import annotations

import pytest

from tests.e2e import edge_client

pytestmark = pytest.mark.e2e


def _fresh_token(signed_in: edge_client.SignIn, origin: str) -> str:
    r = signed_in.client.get(origin + "/api/me")
    assert r.status_code == 200, r.text
    return str(r.headers["x-csrf-token"])


def _create(signed_in: edge_client.SignIn, origin: str, headers: dict[str, str], name: str):
    return signed_in.client.post(origin + "/api/projects", headers=headers, json={"name": name})


def _assert_csrf_refusal(r, reason: str) -> None:
    # A CSRF refusal is 403 with the reason and no challenge: no bearer token would change it.
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert (r.json()["error"], r.json()["reason"]) == ("forbidden", reason)
    assert "www-authenticate" not in r.headers


def test_cookie_post_without_token_is_403_csrf_token_missing(bob, origin):
    _assert_csrf_refusal(_create(bob, origin, {}, "no token"), "csrf_token_missing")


def test_cookie_post_with_a_fresh_token_succeeds_and_hands_out_the_next(bob, origin):
    token = _fresh_token(bob, origin)
    r = _create(bob, origin, {"X-CSRF-Token": token, "Origin": origin}, "with token")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "with token"
    assert r.headers["x-csrf-token"] != token


def test_spent_token_is_403_csrf_token_spent(bob, origin):
    token = _fresh_token(bob, origin)
    assert _create(bob, origin, {"X-CSRF-Token": token}, "first use").status_code == 201
    _assert_csrf_refusal(_create(bob, origin, {"X-CSRF-Token": token}, "second use"), "csrf_token_spent")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": "https://evil.example"}, "csrf_origin_mismatch"),
        ({"Origin": "null"}, "csrf_origin_mismatch"),
        ({"Sec-Fetch-Site": "cross-site"}, "csrf_cross_site"),
        ({"Sec-Fetch-Site": "same-site"}, "csrf_cross_site"),
    ],
)
def test_cross_site_request_is_403_with_its_reason_even_with_a_fresh_token(bob, origin, headers, reason):
    token = _fresh_token(bob, origin)
    _assert_csrf_refusal(_create(bob, origin, {"X-CSRF-Token": token, **headers}, "cross site"), reason)


def test_token_from_another_session_is_403_csrf_token_bad_mac(bob, alice, origin):
    alices = _fresh_token(alice, origin)
    _assert_csrf_refusal(
        _create(bob, origin, {"X-CSRF-Token": alices}, "borrowed token"), "csrf_token_bad_mac"
    )
