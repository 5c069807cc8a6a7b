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


def test_cookie_post_without_token_is_403(bob, origin):
    r = _create(bob, origin, {}, "no token")
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "forbidden"
    assert r.json()["reason"].startswith("csrf")


def test_cookie_post_with_a_fresh_token_succeeds_and_hands_out_the_next(bob, origin):
    token = _fresh_token(bob, origin)
    r = _create(bob, origin, {"X-CSRF-Token": token, "Origin": origin}, "with token")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "with token"
    assert r.headers["x-csrf-token"] != token


def test_spent_token_is_403(bob, origin):
    token = _fresh_token(bob, origin)
    assert _create(bob, origin, {"X-CSRF-Token": token}, "first use").status_code == 201
    r = _create(bob, origin, {"X-CSRF-Token": token}, "second use")
    assert r.status_code == 403, r.text
    assert r.json()["reason"].startswith("csrf")


def test_cross_site_origin_is_403_even_with_a_fresh_token(bob, origin):
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        token = _fresh_token(bob, origin)
        r = _create(bob, origin, {"X-CSRF-Token": token, **headers}, "cross site")
        assert r.status_code == 403, (headers, r.text)
        assert r.json()["reason"].startswith("csrf")


def test_token_from_another_session_is_403(bob, alice, origin):
    alices = _fresh_token(alice, origin)
    r = _create(bob, origin, {"X-CSRF-Token": alices}, "borrowed token")
    assert r.status_code == 403, r.text
