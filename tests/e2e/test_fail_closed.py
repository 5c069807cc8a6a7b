"""Fail closed: a stopped verifier or Redis is an error for the requests that need it, never a pass,
and everything recovers when they come back, without touching nginx."""

from __future__ import annotations

import pytest

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_verifier_stopped_api_and_pages_fail_closed_then_recover(stack: Stack, alice, client, origin):
    nginx_pid = stack.processes["nginx"].pid
    token = edge_client.client_credentials_token(stack)
    assert client.get(origin + "/api/me", headers=_bearer(token)).status_code == 200
    stack.stop_component("verifier")
    try:
        for headers in (_bearer(token), {}):
            r = client.get(origin + "/api/me", headers=headers)
            assert r.status_code == 503, r.text
            assert r.json() == {"error": "unavailable", "reason": "upstream_unavailable"}
        r = alice.client.get(origin + "/api/me")
        assert r.status_code == 503
        r = alice.client.post(origin + "/api/projects", json={"name": "while down"})
        assert r.status_code == 503
        r = client.get(origin + "/", headers=_bearer(token))
        assert r.status_code == 503
    finally:
        stack.start_component("verifier")
    # A new token: the restart may take longer than the first token's 20-second lifetime.
    fresh = edge_client.client_credentials_token(stack)
    assert client.get(origin + "/api/me", headers=_bearer(fresh)).status_code == 200
    assert alice.client.get(origin + "/api/me").status_code == 200
    assert stack.processes["nginx"].pid == nginx_pid


def test_redis_stopped_sessions_fail_bearer_works_and_both_recover(stack: Stack, alice, client, origin):
    name = stack.topology.session_cookie_name
    nginx_pid = stack.processes["nginx"].pid
    cookie = alice.client.cookies.get(name)
    assert alice.client.get(origin + "/api/me").status_code == 200
    token = edge_client.client_credentials_token(stack)
    stack.stop_component("redis")
    try:
        with edge_client.new_client(stack) as browser:
            r = browser.get(origin + "/api/me", headers={"Cookie": f"{name}={cookie}"})
            assert r.status_code != 200
            assert r.status_code in (401, 503), r.text
        r = client.get(origin + "/api/me", headers=_bearer(token))
        assert r.status_code == 200, r.text
        assert r.json()["auth_source"] == "bearer"
    finally:
        stack.start_component("redis")
    # Redis wrote its snapshot on the way down, so the same session is valid again.
    with edge_client.new_client(stack) as browser:

        def session_works() -> bool:
            return browser.get(origin + "/api/me", headers={"Cookie": f"{name}={cookie}"}).status_code == 200

        ok = edge_client.wait_until(session_works, timeout=10)
    assert ok, "the session did not come back after Redis restarted"
    # New sign-ins work too.
    erin = edge_client.sign_in(stack, "erin@contoso-dev.example", "erin-password")
    try:
        assert erin.client.get(origin + "/api/me").status_code == 200
    finally:
        erin.client.close()
    assert stack.processes["nginx"].pid == nginx_pid
