"""Single use of CSRF tokens against a real redis-server, and the whole guard in order."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from redis.asyncio import Redis

from verifier.core.reasons import Reason
from verifier.sources.csrf import (
    CsrfGuard,
    CsrfRejected,
    CsrfSettings,
    CsrfToken,
    SpentTokenStore,
    mint_token,
    redis_client,
    spent_key,
)

from .conftest import RedisServer, free_port, start_redis

KEY = b"k" * 32
BINDING = hashlib.sha256(b"session-a").digest()
NOW = 1_800_000_000
PUBLIC = "https://localhost:8443"


def guard_for(redis: Redis, ttl: int = 600) -> CsrfGuard:
    return CsrfGuard(CsrfSettings(key=KEY, public_origin=PUBLIC, ttl_seconds=ttl), SpentTokenStore(redis))


def browser_post(token: str | None, **extra: str) -> dict[str, str]:
    headers = {"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin", **extra}
    if token is not None:
        headers["X-CSRF-Token"] = token
    return headers


async def test_first_spend_succeeds_and_second_is_rejected_with_reason_spent(redis: Redis) -> None:
    store = SpentTokenStore(redis)
    token = CsrfToken(nonce="bm9uY2Utb25lLXRlc3Qx", expires_at=NOW + 600)
    await store.spend(token, now=NOW)
    with pytest.raises(CsrfRejected) as caught:
        await store.spend(token, now=NOW + 1)
    assert caught.value.reason == Reason.CSRF_TOKEN_SPENT


async def test_spent_marker_expires_when_the_token_would_have(redis: Redis) -> None:
    store = SpentTokenStore(redis)
    token = CsrfToken(nonce="bm9uY2UtdHRs", expires_at=NOW + 600)
    await store.spend(token, now=NOW + 100)
    ttl = await redis.ttl(spent_key(token.nonce))
    assert 498 <= ttl <= 500


async def test_spent_key_is_a_hash_of_the_nonce_and_holds_no_token_material(redis: Redis) -> None:
    store = SpentTokenStore(redis)
    token = CsrfToken(nonce="c2VjcmV0LW5vbmNl", expires_at=NOW + 60)
    await store.spend(token, now=NOW)
    keys = [k.decode() for k in await redis.keys("*")]
    assert keys == ["csrf:spent:" + hashlib.sha256(b"c2VjcmV0LW5vbmNl").hexdigest()]
    assert await redis.get(keys[0]) == b"1"


async def test_concurrent_replays_of_one_token_let_exactly_one_through(redis: Redis) -> None:
    store = SpentTokenStore(redis)
    token = CsrfToken(nonce="cmFjZS1ub25jZQ", expires_at=NOW + 600)
    results = await asyncio.gather(*(store.spend(token, now=NOW) for _ in range(25)), return_exceptions=True)
    assert results.count(None) == 1
    assert all(isinstance(r, CsrfRejected) and r.reason == Reason.CSRF_TOKEN_SPENT for r in results if r)


async def test_unreachable_store_is_rejected_with_reason_store_unavailable() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.5)
    store = SpentTokenStore(client)
    try:
        with pytest.raises(CsrfRejected) as caught:
            await store.spend(CsrfToken(nonce="bm8tc3RvcmU", expires_at=NOW + 60), now=NOW)
        assert caught.value.reason == Reason.CSRF_STORE_UNAVAILABLE
    finally:
        await store.close()


async def test_store_that_dies_after_working_fails_closed(tmp_path) -> None:
    server: RedisServer = start_redis(tmp_path)
    store = SpentTokenStore(redis_client(server.url, timeout_seconds=0.5))
    try:
        await store.spend(CsrfToken(nonce="YmVmb3JlLWRlYXRo", expires_at=NOW + 60), now=NOW)
        server.stop()
        with pytest.raises(CsrfRejected) as caught:
            await store.spend(CsrfToken(nonce="YWZ0ZXItZGVhdGg", expires_at=NOW + 60), now=NOW)
        assert caught.value.reason == Reason.CSRF_STORE_UNAVAILABLE
    finally:
        server.stop()
        await store.close()


async def test_guard_lets_safe_methods_through_without_token_or_store() -> None:
    # The store points at nothing: a GET must not need it.
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    guard = guard_for(client)
    try:
        for method in ("GET", "HEAD", "OPTIONS"):
            await guard.check(method, {"Origin": "https://evil.example"}, BINDING, now=NOW)
    finally:
        await client.aclose()


async def test_guard_accepts_a_fresh_token_once_then_rejects_the_replay_as_spent(redis: Redis) -> None:
    guard = guard_for(redis)
    token = guard.mint(BINDING, now=NOW)
    await guard.check("POST", browser_post(token), BINDING, now=NOW + 5)
    with pytest.raises(CsrfRejected) as caught:
        await guard.check("DELETE", browser_post(token), BINDING, now=NOW + 6)
    assert caught.value.reason == Reason.CSRF_TOKEN_SPENT


async def test_guard_accepts_a_token_from_a_client_that_sends_no_browser_headers(redis: Redis) -> None:
    guard = guard_for(redis)
    await guard.check("PUT", {"X-CSRF-Token": guard.mint(BINDING, now=NOW)}, BINDING, now=NOW)


async def test_guard_rejects_unsafe_request_without_token_as_missing(redis: Redis) -> None:
    with pytest.raises(CsrfRejected) as caught:
        await guard_for(redis).check("PATCH", browser_post(None), BINDING, now=NOW)
    assert caught.value.reason == Reason.CSRF_TOKEN_MISSING


async def test_cross_site_request_is_refused_before_its_token_is_spent(redis: Redis) -> None:
    guard = guard_for(redis)
    token = guard.mint(BINDING, now=NOW)
    with pytest.raises(CsrfRejected) as caught:
        await guard.check("POST", browser_post(token, Origin="https://evil.example"), BINDING, now=NOW)
    assert caught.value.reason == Reason.CSRF_ORIGIN_MISMATCH
    with pytest.raises(CsrfRejected) as caught:
        await guard.check("POST", browser_post(token, **{"Sec-Fetch-Site": "cross-site"}), BINDING, now=NOW)
    assert caught.value.reason == Reason.CSRF_CROSS_SITE
    assert await redis.keys("*") == []
    await guard.check("POST", browser_post(token), BINDING, now=NOW)


async def test_token_bound_to_another_session_is_refused_and_not_spent(redis: Redis) -> None:
    guard = guard_for(redis)
    token = guard.mint(hashlib.sha256(b"session-b").digest(), now=NOW)
    with pytest.raises(CsrfRejected) as caught:
        await guard.check("POST", browser_post(token), BINDING, now=NOW)
    assert caught.value.reason == Reason.CSRF_TOKEN_BAD_MAC
    assert await redis.keys("*") == []


async def test_expired_token_is_refused_with_reason_expired_and_not_spent(redis: Redis) -> None:
    guard = guard_for(redis, ttl=60)
    token = guard.mint(BINDING, now=NOW)
    with pytest.raises(CsrfRejected) as caught:
        await guard.check("POST", browser_post(token), BINDING, now=NOW + 60)
    assert caught.value.reason == Reason.CSRF_TOKEN_EXPIRED
    assert await redis.keys("*") == []


async def test_guard_with_store_down_refuses_a_valid_token_with_reason_store_unavailable() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    guard = guard_for(client)
    try:
        token = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=600)
        with pytest.raises(CsrfRejected) as caught:
            await guard.check("POST", browser_post(token), BINDING, now=NOW)
        assert caught.value.reason == Reason.CSRF_STORE_UNAVAILABLE
    finally:
        await client.aclose()
