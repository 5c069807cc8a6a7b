"""What /metrics exports beyond the decisions: buckets that fit the verifier's latencies, process
metrics, JWKS health, no ``_created`` series, and a reason vocabulary the README lists in full."""

from __future__ import annotations

import re
import time
from pathlib import Path

from prometheus_client import generate_latest

from tests.support.fake_sources import BrokenSource
from tests.support.token_forge import (
    TENANT_A,
    TENANT_B,
    validation_settings,
    verifier_settings,
)
from verifier.core.decision import OK
from verifier.core.reasons import Reason
from verifier.keys.jwks import FETCH_TIMEOUT_SECONDS, JwksCache
from verifier.service.app import STATE, create_app
from verifier.service.metrics import DURATION_BUCKETS, VerifierMetrics
from verifier.sources.csrf import redis_client
from verifier.sources.session.settings import SessionSettings

README = Path(__file__).resolve().parents[3] / "verifier" / "README.md"


def exposition(metrics: VerifierMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_buckets_resolve_a_cache_hit_and_reach_past_the_longest_wait_of_a_verify():
    redis_timeout = redis_client("redis://127.0.0.1:1").connection_pool.connection_kwargs["socket_timeout"]
    # An unknown kid refetches discovery and JWKS (one timeout each); a session adds oauth2-proxy's
    # lookup and a Redis command (connect and read, one timeout each).
    longest_wait = 2 * FETCH_TIMEOUT_SECONDS + SessionSettings(oauth2_proxy_url="http://x").timeout_seconds
    longest_wait += 2 * redis_timeout
    assert DURATION_BUCKETS[0] <= 0.00001
    assert DURATION_BUCKETS[1] <= 0.000025  # a cache hit (about 3 µs in-process) and its HTTP work
    assert DURATION_BUCKETS[-1] > longest_wait
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))


def test_verify_histogram_exports_every_bucket_and_no_created_series():
    metrics = VerifierMetrics()
    metrics.record_decision("bearer", 200, OK, 0.00002)
    text = exposition(metrics)
    assert 'verifier_verify_duration_seconds_bucket{le="1e-05",outcome="allow",source="bearer"} 0.0' in text
    assert 'verifier_verify_duration_seconds_bucket{le="2.5e-05",outcome="allow",source="bearer"} 1.0' in text
    assert 'verifier_verify_duration_seconds_bucket{le="30.0",outcome="allow",source="bearer"} 1.0' in text
    assert "_created" not in text


def test_process_metrics_are_exported_from_the_apps_own_registry():
    text = exposition(VerifierMetrics())
    for family in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert re.search(rf"^{family}(\{{.*\}})? ", text, re.MULTILINE), family


async def test_jwks_health_shows_keys_last_success_and_failures_per_tenant(jwks_server):
    metrics = VerifierMetrics()
    settings = validation_settings(jwks_server.base_url, tenants=(TENANT_A, TENANT_B))
    cache = JwksCache(settings, metrics=metrics)
    registry = metrics.registry
    try:
        # Before any fetch: every configured tenant is there, with no keys.
        for tenant in (TENANT_A, TENANT_B):
            assert registry.get_sample_value("verifier_jwks_keys", {"tenant": tenant}) == 0
        before = time.time()
        assert await cache.refresh(TENANT_A) is True
        after = time.time()
        assert registry.get_sample_value("verifier_jwks_keys", {"tenant": TENANT_A}) == 1
        last_success = "verifier_jwks_last_success_timestamp_seconds"
        stamp = registry.get_sample_value(last_success, {"tenant": TENANT_A})
        assert stamp is not None and before <= stamp <= after
        assert registry.get_sample_value("verifier_jwks_consecutive_failures", {"tenant": TENANT_A}) == 0

        # The issuer goes away: failures count up, the keys held stay, the last success stays.
        jwks_server.available = False
        assert await cache.refresh(TENANT_A) is False
        assert await cache.refresh(TENANT_A) is False
        assert registry.get_sample_value("verifier_jwks_consecutive_failures", {"tenant": TENANT_A}) == 2
        assert registry.get_sample_value("verifier_jwks_keys", {"tenant": TENANT_A}) == 1
        assert registry.get_sample_value(last_success, {"tenant": TENANT_A}) == stamp
        assert registry.get_sample_value("verifier_jwks_fetch_total", {"result": "failure"}) == 2
        # Tenant B never had keys: 0 keys, no last success at all, one failure.
        assert await cache.refresh(TENANT_B) is False
        assert registry.get_sample_value("verifier_jwks_keys", {"tenant": TENANT_B}) == 0
        assert registry.get_sample_value(last_success, {"tenant": TENANT_B}) is None
        assert registry.get_sample_value("verifier_jwks_consecutive_failures", {"tenant": TENANT_B}) == 1

        # Back again: the failure streak ends.
        jwks_server.available = True
        assert await cache.refresh(TENANT_A) is True
        assert registry.get_sample_value("verifier_jwks_consecutive_failures", {"tenant": TENANT_A}) == 0
    finally:
        await cache.close()


async def test_ready_gauge_follows_readyz(aiohttp_client, jwks_server):
    jwks_server.available = False
    client = await aiohttp_client(create_app(verifier_settings(jwks_server.base_url)))
    registry = client.app[STATE].metrics.registry  # type: ignore[attr-defined]
    async with client.get("/readyz") as response:
        assert response.status == 503
    assert registry.get_sample_value("verifier_ready") == 0
    jwks_server.available = True
    assert await client.app[STATE].jwks.refresh(TENANT_A) is True  # type: ignore[attr-defined,union-attr]
    async with client.get("/readyz") as response:
        assert response.status == 200
    assert registry.get_sample_value("verifier_ready") == 1


def _readme_reason_codes() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Reason codes", 1)[1].split("\n## ", 1)[0]
    listing = section.split("(`verifier.core.reasons.Reason`)", 1)[0]
    return re.findall(r"`([a-z0-9_]+)`", listing)


def test_readme_lists_every_reason_code_of_the_enum_and_no_other():
    listed = _readme_reason_codes()
    assert len(listed) == len(set(listed)), "a reason code is listed twice"
    assert set(listed) == {str(reason) for reason in Reason}


def test_allowed_reason_is_not_a_refusal_code():
    # ``ok`` shares the reason label with the refusal codes, so it must never become one.
    assert OK not in {str(reason) for reason in Reason}


async def test_a_failing_source_is_counted_with_the_listed_reason_internal_error(aiohttp_client, jwks_server):
    app = create_app(verifier_settings(jwks_server.base_url), sources=(BrokenSource(),))
    client = await aiohttp_client(app)
    original = {"X-Original-Method": "GET", "X-Original-URI": "/api/me"}
    async with client.get("/verify", headers={**original, "X-Broken": "1"}) as response:
        assert response.status == 500
    registry = app[STATE].metrics.registry
    labels = {"source": "session", "outcome": "error", "reason": str(Reason.INTERNAL_ERROR)}
    assert registry.get_sample_value("verifier_decisions_total", labels) == 1
