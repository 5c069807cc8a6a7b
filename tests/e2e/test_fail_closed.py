"""Fail closed: a stopped verifier, Redis or oauth2-proxy is an error for the requests that need it,
never a pass and never a lost session; everything recovers when they come back, without touching
nginx."""

from __future__ import annotations

import pytest

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

UPSTREAM_UNAVAILABLE = {"error": "unavailable", "reason": "upstream_unavailable"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_unavailable_page(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "text/html"
    assert response.headers["retry-after"] == "5"
    assert "<h1>Temporarily unavailable</h1>" in response.text
    assert "nginx" not in response.text.lower()


def test_verifier_stopped_api_and_pages_fail_closed_then_recover(stack: Stack, alice, client, origin):
    nginx_pid = stack.processes["nginx"].pid
    token = edge_client.client_credentials_token(stack)
    assert client.get(origin + "/api/me", headers=_bearer(token)).status_code == 200
    stack.stop_component("verifier")
    try:
        for headers in (_bearer(token), {}):
            r = client.get(origin + "/api/me", headers=headers)
            assert (r.status_code, r.json()) == (503, UPSTREAM_UNAVAILABLE), r.text
            assert r.headers["retry-after"] == "5"
        r = alice.client.get(origin + "/api/me")
        assert (r.status_code, r.json()) == (503, UPSTREAM_UNAVAILABLE)
        r = alice.client.post(origin + "/api/projects", json={"name": "while down"})
        assert (r.status_code, r.json()) == (503, UPSTREAM_UNAVAILABLE)
        # A page gets a page, not JSON.
        _assert_unavailable_page(client.get(origin + "/", headers=_bearer(token)))
        _assert_unavailable_page(alice.client.get(origin + "/projects"))
    finally:
        stack.start_component("verifier")
    # A new token: the restart may take longer than the first token's 20-second lifetime.
    fresh = edge_client.client_credentials_token(stack)
    assert client.get(origin + "/api/me", headers=_bearer(fresh)).status_code == 200
    assert alice.client.get(origin + "/api/me").status_code == 200
    assert stack.processes["nginx"].pid == nginx_pid


def test_sign_out_with_the_verifier_stopped_still_ends_the_session(stack: Stack, origin):
    # nginx asks the verifier first (so no task answers for the session from memory); when it cannot,
    # the sign-out still reaches oauth2-proxy.
    name = stack.topology.session_cookie_name
    with edge_client.sign_in(stack, "bob@contoso-dev.example", "bob-password") as bob:
        cookie = bob.client.cookies.get(name)
        assert cookie and bob.client.get(origin + "/api/me").status_code == 200
        stack.stop_component("verifier")
        try:
            r = edge_client.sign_out(bob.client, origin)
            assert r.status_code == 302, r.text
            assert r.headers["location"].endswith("/oauth2/signed_out")
        finally:
            stack.start_component("verifier")
    with edge_client.new_client(stack) as replay:
        r = replay.get(origin + "/api/me", headers={"Cookie": f"{name}={cookie}"})
        assert (r.status_code, r.json()["reason"]) == (401, "no_session"), r.text


def test_redis_stopped_an_open_browser_session_gets_503_keeps_its_cookie_and_works_after(
    stack: Stack, alice, client, origin
):
    name = stack.topology.session_cookie_name
    nginx_pid = stack.processes["nginx"].pid
    browser = alice.client
    assert browser.get(origin + "/api/me").status_code == 200
    cookie = browser.cookies.get(name)
    assert cookie
    token = edge_client.client_credentials_token(stack)
    stack.stop_component("redis")
    try:
        r = browser.get(origin + "/api/me")
        assert (r.status_code, r.json()) == (
            503,
            {"error": "unavailable", "reason": "session_backend_unavailable"},
        )
        assert r.headers["retry-after"] == "5"
        # oauth2-proxy would have deleted the cookie; the edge does not pass that on.
        assert "set-cookie" not in r.headers
        page = browser.get(origin + "/projects")
        _assert_unavailable_page(page)
        assert "set-cookie" not in page.headers
        assert browser.cookies.get(name) == cookie
        # Bearer callers do not need Redis at all.
        r = client.get(origin + "/api/me", headers=_bearer(token))
        assert r.status_code == 200, r.text
        assert r.json()["auth_source"] == "bearer"
    finally:
        stack.start_component("redis")
    # Redis wrote its snapshot on the way down: the same browser, with the same cookie, is signed in.
    r = browser.get(origin + "/api/me")
    assert r.status_code == 200, r.text
    assert r.json()["auth_source"] == "session"
    assert browser.cookies.get(name) is not None
    # New sign-ins work too.
    with edge_client.sign_in(stack, "erin@contoso-dev.example", "erin-password") as erin:
        assert erin.client.get(origin + "/api/me").status_code == 200
    assert stack.processes["nginx"].pid == nginx_pid


def test_oauth2_proxy_stopped_sign_in_is_a_json_503_not_nginxs_page(stack: Stack, client, origin):
    stack.stop_component("oauth2-proxy")
    try:
        for path in ("/oauth2/start?rd=/", "/oauth2/callback?code=x&state=y"):
            r = client.get(origin + path)
            assert (r.status_code, r.json()) == (503, UPSTREAM_UNAVAILABLE), path
            assert r.headers["retry-after"] == "5"
        r = edge_client.sign_out(client, origin)
        assert (r.status_code, r.json()) == (503, UPSTREAM_UNAVAILABLE)
        assert r.headers["retry-after"] == "5"
    finally:
        stack.start_component("oauth2-proxy")
    assert client.get(origin + "/oauth2/start?rd=/").status_code == 302
