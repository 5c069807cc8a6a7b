"""The verifier's remembered sessions through the real stack: a burst of a browser's requests asks
oauth2-proxy once, and sign-out still ends the session at once."""

from __future__ import annotations

import pytest

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e


def test_a_burst_of_session_requests_asks_oauth2_proxy_once_and_sign_out_ends_it_at_once(stack: Stack):
    name = stack.topology.session_cookie_name
    origin = stack.topology.public_origin
    with edge_client.sign_in(stack, "dave@contoso-dev.example", "dave-password") as dave:
        cookie = dave.client.cookies.get(name)
        assert cookie
        hits, misses, lookups = edge_client.session_cache_counts(stack)
        for _ in range(6):
            r = dave.client.get(origin + "/api/me")
            assert r.status_code == 200, r.text
            assert r.json()["auth_source"] == "session"
        hits_after, misses_after, lookups_after = edge_client.session_cache_counts(stack)
        # Six requests within the cache's five seconds: at most one asked oauth2-proxy (none when the
        # sign-in's own first request is still remembered).
        assert lookups_after - lookups <= 1
        assert hits_after - hits >= 5
        assert (hits_after - hits) + (misses_after - misses) == 6
        assert edge_client.sign_out(dave.client, origin).status_code == 302
        with edge_client.new_client(stack) as replay:
            r = replay.get(origin + "/api/me", headers={"Cookie": f"{name}={cookie}"})
            assert r.status_code == 401, r.text
            assert r.json()["reason"] == "no_session"
