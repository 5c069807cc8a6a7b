"""Prometheus metrics, one registry per app so tests (and benchmarks) can build several apps.

Label values are bounded: ``source`` is a credential source name, ``outcome`` one of
:data:`OUTCOMES`, ``reason`` ``ok`` (``verifier.core.decision.OK``) or a
:class:`~verifier.core.reasons.Reason`,
``tenant`` a configured tenant id; no label ever carries a user-controlled string.

The metric names, labels and buckets are a contract with ``deploy/prometheus/`` (recording and
alert rules) and ``deploy/grafana/`` (the dashboard); the README's metrics section lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# Every counter and histogram would otherwise export a ``*_created`` series, one more time series
# per label set that no rule or dashboard reads. The library offers this switch process-wide only
# (there is no per-registry setting); the verifier process exports nothing else.
prometheus_client.disable_created_metrics()

OUTCOMES = ("allow", "deny", "forbidden", "error")

#: From 10 µs, where a token cache hit is answered (tens of microseconds in-process), to 30 s, past
#: the longest a /verify can wait: an unknown ``kid`` refetches discovery and JWKS (10 s timeout
#: each, ``verifier.keys.jwks.FETCH_TIMEOUT_SECONDS``) and a session adds oauth2-proxy (2 s) and Redis
#: (1 s) round trips. Anything slower lands in ``+Inf``, where it is still counted.
DURATION_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def outcome_for_status(status: int) -> str:
    if status == 200:
        return "allow"
    if status == 401:
        return "deny"
    if status == 403:
        return "forbidden"
    return "error"


def _register_process_collectors(registry: CollectorRegistry) -> None:
    """``process_*`` (CPU, memory, file descriptors, start time), ``python_info`` and
    ``python_gc_*``, as the library's default registry has them, in this app's own registry."""
    if registry is prometheus_client.REGISTRY:
        return  # the library registered them there already
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class VerifierMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        _register_process_collectors(self.registry)
        self.verify_duration = Histogram(
            "verifier_verify_duration_seconds",
            "Time to answer one /verify request, by credential source and outcome.",
            ("source", "outcome"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "verifier_decisions_total",
            "Decisions made, by credential source, outcome and reason code (ok when allowed).",
            ("source", "outcome", "reason"),
            registry=self.registry,
        )
        self.jwks_fetch = Counter(
            "verifier_jwks_fetch_total",
            "Fetches of a tenant's OpenID configuration and JWKS, by result.",
            ("result",),
            registry=self.registry,
        )
        self.jwks_keys = Gauge(
            "verifier_jwks_keys",
            "Signing keys held for a tenant (kept through failed refreshes).",
            ("tenant",),
            registry=self.registry,
        )
        self.jwks_last_success = Gauge(
            "verifier_jwks_last_success_timestamp_seconds",
            "Unix time of the last successful JWKS fetch for a tenant.",
            ("tenant",),
            registry=self.registry,
        )
        self.jwks_consecutive_failures = Gauge(
            "verifier_jwks_consecutive_failures",
            "JWKS fetches for a tenant that failed since its last success (0 when the last one worked).",
            ("tenant",),
            registry=self.registry,
        )
        self.ready = Gauge(
            "verifier_ready",
            "1 when every configured tenant's signing keys are loaded (/readyz answers 200), else 0.",
            registry=self.registry,
        )
        self.token_cache = Counter(
            "verifier_token_cache_total",
            "Verified-token cache lookups, by result.",
            ("result",),
            registry=self.registry,
        )
        self.session_cache = Counter(
            "verifier_session_cache_total",
            "Remembered-session lookups of cookie requests, by result (miss: oauth2-proxy was asked).",
            ("result",),
            registry=self.registry,
        )
        self.upstream_duration = Histogram(
            "verifier_upstream_duration_seconds",
            "Time waiting on the session source's upstreams (oauth2_proxy, redis), by result.",
            ("upstream", "result"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        # Pre-bound children for the hot path: labels() costs a dict lookup and a lock each call.
        self.cache_hit = self.token_cache.labels(result="hit")
        self.cache_miss = self.token_cache.labels(result="miss")
        self.session_cache_hit = self.session_cache.labels(result="hit")
        self.session_cache_miss = self.session_cache.labels(result="miss")
        self.jwks_success = self.jwks_fetch.labels(result="success")
        self.jwks_failure = self.jwks_fetch.labels(result="failure")
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._decisions: dict[tuple[str, str, str], Counter] = {}
        self._upstreams: dict[tuple[str, str], Histogram] = {}

    def track_readiness(self, is_ready: Callable[[], bool]) -> None:
        """Make ``verifier_ready`` read ``is_ready`` at each scrape: the same answer /readyz gives."""
        self.ready.set_function(lambda: 1.0 if is_ready() else 0.0)

    def track_tenants(self, tenant_ids: Iterable[str]) -> None:
        """Export every configured tenant from the start, with no keys, so a tenant whose keys never
        arrive shows as 0 instead of being absent."""
        for tenant_id in sorted(tenant_ids):
            self.jwks_keys.labels(tenant=tenant_id).set(0)
            self.jwks_consecutive_failures.labels(tenant=tenant_id).set(0)

    def record_jwks_fetch(self, tenant_id: str, *, success: bool, keys_held: int) -> None:
        """One fetch of ``tenant_id``'s keys finished; ``keys_held`` is what the cache holds now."""
        self.jwks_keys.labels(tenant=tenant_id).set(keys_held)
        if success:
            self.jwks_success.inc()
            self.jwks_last_success.labels(tenant=tenant_id).set_to_current_time()
            self.jwks_consecutive_failures.labels(tenant=tenant_id).set(0)
        else:
            self.jwks_failure.inc()
            self.jwks_consecutive_failures.labels(tenant=tenant_id).inc()

    def record_upstream(self, upstream: str, result: str, seconds: float) -> None:
        """``upstream`` is ``oauth2_proxy``, ``redis`` or ``alb_keys``; ``result`` is ``ok``, ``refused``
        (an answer that says no: no session, a spent token) or ``error`` (unreachable, timeout,
        unexpected)."""
        key = (upstream, result)
        histogram = self._upstreams.get(key)
        if histogram is None:
            histogram = self._upstreams[key] = self.upstream_duration.labels(upstream=upstream, result=result)
        histogram.observe(seconds)

    def record_decision(self, source: str, status: int, reason: str, seconds: float) -> None:
        outcome = outcome_for_status(status)
        key = (source, outcome)
        duration = self._durations.get(key)
        if duration is None:
            duration = self._durations[key] = self.verify_duration.labels(source=source, outcome=outcome)
        duration.observe(seconds)
        dkey = (source, outcome, reason)
        counter = self._decisions.get(dkey)
        if counter is None:
            counter = self._decisions[dkey] = self.decisions.labels(
                source=source, outcome=outcome, reason=reason
            )
        counter.inc()
