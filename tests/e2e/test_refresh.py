"""A session outlives its access token through oauth2-proxy's refresh; sign-out ends it for good;
an expired bearer token is refused."""

from __future__ import annotations

import html
import re
import time

import pytest
import redis

from stack.launcher import Stack
from tests.e2e import edge_client
from tests.e2e.conftest import ACCESS_TOKEN_SECONDS, COOKIE_REFRESH_SECONDS, LEEWAY_SECONDS

pytestmark = pytest.mark.e2e


def _cookie_value(set_cookie: str) -> str:
    return str(edge_client.session_cookie_attributes(set_cookie)["value"])


def test_session_keeps_working_past_access_token_expiry_with_a_refreshed_cookie(stack: Stack):
    name = stack.topology.session_cookie_name
    origin = stack.topology.public_origin
    signed_in_at = time.time()
    with edge_client.sign_in(stack, "carol@contoso-dev.example", "carol-password") as carol:
        first_cookie = _cookie_value(carol.session_set_cookie(name))
        r = carol.client.get(origin + "/api/me")
        assert r.status_code == 200, r.text
        # Past the first access token's lifetime (and the verifier's leeway): only a refreshed token
        # can be accepted now.
        time.sleep(max(0.0, signed_in_at + ACCESS_TOKEN_SECONDS + LEEWAY_SECONDS + 2 - time.time()))
        r = carol.client.get(origin + "/api/me")
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Carol Admin"
        refreshed = [c for c in r.headers.get_list("set-cookie") if c.startswith(name + "=")]
        assert refreshed, "the refreshed session cookie must reach the client through nginx"
        attrs = edge_client.session_cookie_attributes(refreshed[0])
        assert attrs["secure"] is True and attrs["httponly"] is True
        assert attrs["value"] != first_cookie
        assert carol.client.cookies.get(name) == attrs["value"]
        # And the session keeps working with the cookie the client now holds.
        assert carol.client.get(origin + "/api/me").status_code == 200


def test_after_sign_out_the_old_cookie_gets_401(stack: Stack):
    name = stack.topology.session_cookie_name
    origin = stack.topology.public_origin
    with edge_client.sign_in(stack, "dave@contoso-dev.example", "dave-password") as dave:
        old = dave.client.cookies.get(name)
        assert old
        assert dave.client.get(origin + "/api/me").status_code == 200
        sessions_before = _session_keys(stack)
        r = edge_client.sign_out(dave.client, origin)
        assert r.status_code == 302
        assert edge_client.clears_session_cookie(r, name), r.headers.get_list("set-cookie")
        # The session is gone from Redis, not just from the browser.
        assert len(sessions_before - _session_keys(stack)) == 1
        with edge_client.new_client(stack) as replay:
            r = replay.get(origin + "/api/me", headers={"Cookie": f"{name}={old}"})
            assert r.status_code == 401, r.text
            assert r.json()["error"] == "unauthorized"
            r = replay.get(origin + "/", headers={"Cookie": f"{name}={old}"})
            assert r.status_code == 302
            assert r.headers["location"].startswith("/oauth2/start")


def _session_keys(stack: Stack) -> set[bytes]:
    r = redis.Redis(host=stack.topology.bind_host, port=stack.topology.redis_port)
    try:
        return set(r.keys(stack.topology.session_cookie_name + "*"))
    finally:
        r.close()


def test_page_load_passes_a_refreshed_session_cookie_to_the_browser(stack: Stack):
    # SPA pages go through the same auth_request as the API; a refresh that happens on a page load
    # must reach the browser too, or its next request presents a cookie oauth2-proxy has replaced.
    name = stack.topology.session_cookie_name
    origin = stack.topology.public_origin
    with edge_client.sign_in(stack, "erin@contoso-dev.example", "erin-password") as erin:
        before = erin.client.cookies.get(name)
        time.sleep(COOKIE_REFRESH_SECONDS + 1.5)
        r = erin.client.get(origin + "/some/client/route")
        assert r.status_code == 200, r.text
        refreshed = [c for c in r.headers.get_list("set-cookie") if c.startswith(name + "=")]
        assert refreshed, "a refresh on a page load must reach the browser"
        assert erin.client.cookies.get(name) != before


def test_expired_token_is_rejected_with_reason_expired(stack: Stack, early_daemon_token, client, origin):
    # Minted when the session started; placed after the refresh tests, which outlast its lifetime.
    time.sleep(max(0.0, early_daemon_token.expires_at + LEEWAY_SECONDS + 1.5 - time.time()))
    r = client.get(origin + "/api/me", headers={"Authorization": f"Bearer {early_daemon_token.token}"})
    assert r.status_code == 401
    assert r.json()["reason"] == "expired"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_sign_out_ends_the_provider_session_too_so_the_next_visit_asks_for_a_password(stack: Stack):
    origin = stack.topology.public_origin
    with edge_client.sign_in(stack, "bob@contoso-dev.example", "bob-password") as bob:
        # The client's own rd is ignored: sign-out always continues to the provider's logout.
        sign_out = origin + "/oauth2/sign_out?rd=https%3A%2F%2Fevil.example%2F"
        proof = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        hops = edge_client.follow(bob.client, "POST", sign_out, headers=proof)
        urls = [h.url for h in hops]
        assert urls[1] == origin + "/oauth2/signed_out", urls
        assert urls[2].startswith(stack.topology.authority + "/oauth2/v2.0/logout?"), urls
        assert not any("evil.example" in u for u in urls[1:])
        # The provider's logout page calls our front-channel logout for this sign-in (a browser
        # loads it in a hidden iframe; the session here is already gone, so it ends nothing more).
        logout_page = hops[-1].body  # type: ignore[attr-defined]
        (frame,) = re.findall(r'<iframe[^>]*data-front-channel-logout[^>]*src="([^"]+)"', logout_page)
        frame = html.unescape(frame)
        assert frame.startswith(origin + "/oauth2/front_channel_logout?sid="), frame
        assert bob.client.get(frame).status_code == 200
        # Back on our site, signed out everywhere: devidp shows its password form again.
        hops = edge_client.follow(bob.client, "GET", origin + "/")
        final = hops[-1]
        assert final.status == 200 and final.url.startswith(stack.topology.devidp_origin), urls
        edge_client.password_form(final.body)  # type: ignore[attr-defined]
