"""The absolute session lifetime end to end: nginx, oauth2-proxy, the verifier and Redis.

The verifier keeps when each sign-in began under ``eba:session-start:<binding>`` in Redis and ends
the session once ``VERIFIER_SESSION_MAX_AGE_SECONDS`` (at least a minute) have passed. Rather than wait
an hour, or a minute, these tests move the stored start back: everything after that is the real path
(the verifier reading the start, signing the session out at oauth2-proxy, nginx passing its 401 and
the deleting cookie on). The clock arithmetic itself is unit-tested with a manual clock
(tests/unit/verifier_session).
"""

from __future__ import annotations

import time

import pytest
import redis

from stack.launcher import Stack
from tests.e2e import edge_client
from tests.e2e.conftest import COOKIE_REFRESH_SECONDS
from verifier.core.session_cookies import session_binding, session_ticket_id
from verifier.sources.session.settings import DEFAULT_SESSION_MAX_AGE_SECONDS
from verifier.sources.session.store import SESSION_START_KEEP_SECONDS, SESSION_START_KEY_PREFIX
from verifier.sources.session_cache import DEFAULT_SESSION_CACHE_SECONDS

pytestmark = pytest.mark.e2e


def _redis(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.topology.redis_client_url)


def _start_key(cookie: str) -> str:
    return SESSION_START_KEY_PREFIX + session_binding(cookie).hex()


def _age_the_sign_in(store: redis.Redis, cookie: str, seconds: int) -> None:
    """Move the stored start ``seconds`` back, keeping its TTL, and wait until no verifier task can
    still answer from its few seconds' memory of the session."""
    key = _start_key(cookie)
    started = int(store.get(key) or 0)
    assert started, "the first request after sign-in stores when the sign-in began"
    store.set(key, started - seconds, keepttl=True)
    time.sleep(DEFAULT_SESSION_CACHE_SECONDS + 0.5)


def _assert_expired_through_nginx(stack: Stack, client: object, cookie: str, store: redis.Redis) -> None:
    name = stack.topology.session_cookie_name
    origin = stack.topology.public_origin
    r = client.get(origin + "/api/me")  # type: ignore[attr-defined]
    assert (r.status_code, r.json()["reason"]) == (401, "session_expired"), r.text
    assert edge_client.clears_session_cookie(r, name), r.headers.get_list("set-cookie")
    # Signed out at oauth2-proxy: the session (and its refresh token) is gone from Redis.
    ticket = session_ticket_id(cookie, name)
    assert ticket is not None
    assert store.exists(ticket) == 0
    # The browser holds no session cookie any more; the page sends it to sign in.
    assert client.cookies.get(name) is None  # type: ignore[attr-defined]
    page = client.get(origin + "/")  # type: ignore[attr-defined]
    assert page.status_code == 302 and page.headers["location"].startswith("/oauth2/start")
    # And the old cookie, replayed, is refused as no session at all.
    with edge_client.new_client(stack) as replay:
        again = replay.get(origin + "/api/me", headers={"Cookie": f"{name}={cookie}"})
        assert (again.status_code, again.json()["reason"]) == (401, "no_session"), again.text


def test_a_session_past_its_absolute_lifetime_is_signed_out_through_nginx_and_gone_from_redis(stack: Stack):
    name = stack.topology.session_cookie_name
    store = _redis(stack)
    with store, edge_client.sign_in(stack, "alice@contoso-dev.example", "alice-password") as alice:
        cookie = alice.client.cookies.get(name)
        assert alice.client.get(stack.topology.public_origin + "/api/me").status_code == 200
        # Kept past the lifetime (a day more), so a session whose sign-out failed is never taken
        # for a new one; not for ever.
        ttl = store.ttl(_start_key(cookie))
        keep = DEFAULT_SESSION_MAX_AGE_SECONDS + SESSION_START_KEEP_SECONDS
        assert keep - 60 < ttl <= keep, ttl
        # Half a minute short of the lifetime: still signed in.
        _age_the_sign_in(store, cookie, DEFAULT_SESSION_MAX_AGE_SECONDS - 30)
        assert alice.client.get(stack.topology.public_origin + "/api/me").status_code == 200
        _age_the_sign_in(store, cookie, 31)
        _assert_expired_through_nginx(stack, alice.client, cookie, store)


def test_a_refreshed_session_still_ends_at_the_lifetime_of_its_sign_in(stack: Stack):
    name = stack.topology.session_cookie_name
    origin = stack.topology.public_origin
    store = _redis(stack)
    with store, edge_client.sign_in(stack, "carol@contoso-dev.example", "carol-password") as carol:
        first = carol.client.cookies.get(name)
        assert carol.client.get(origin + "/api/me").status_code == 200
        started = int(store.get(_start_key(first)) or 0)
        # oauth2-proxy refreshes the session on the next request: a new cookie value, the same sign-in.
        time.sleep(COOKIE_REFRESH_SECONDS + 1.5)
        r = carol.client.get(origin + "/api/me")
        assert r.status_code == 200, r.text
        refreshed = carol.client.cookies.get(name)
        assert refreshed != first
        assert _start_key(refreshed) == _start_key(first)
        assert int(store.get(_start_key(refreshed)) or 0) == started  # the refresh did not restart the clock
        _age_the_sign_in(store, refreshed, DEFAULT_SESSION_MAX_AGE_SECONDS)
        _assert_expired_through_nginx(stack, carol.client, refreshed, store)
