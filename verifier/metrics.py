"""Prometheus metrics, one registry per app so tests (and benchmarks) can build several apps.

Label values are bounded: ``source`` is a credential source name, ``outcome`` one of
:data:`OUTCOMES`, ``reason`` a reason code; no label ever carries a user-controlled string.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

OUTCOMES = ("allow", "deny", "forbidden", "error")
#: Sub-millisecond resolution where a cache hit lives, up to the upstream timeouts of the session source.
DURATION_BUCKETS = (
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
)


def outcome_for_status(status: int) -> str:
    if status == 200:
        return "allow"
    if status == 401:
        return "deny"
    if status == 403:
        return "forbidden"
    return "error"


class VerifierMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.verify_duration = Histogram(
            "verifier_verify_duration_seconds",
            "Time to answer one /verify request, by credential source and outcome.",
            ("source", "outcome"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "verifier_decisions_total",
            "Decisions made, by credential source, outcome and reason code.",
            ("source", "outcome", "reason"),
            registry=self.registry,
        )
        self.jwks_fetch = Counter(
            "verifier_jwks_fetch_total",
            "Fetches of a tenant's OpenID configuration and JWKS, by result.",
            ("result",),
            registry=self.registry,
        )
        self.token_cache = Counter(
            "verifier_token_cache_total",
            "Verified-token cache lookups, by result.",
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
        self.jwks_success = self.jwks_fetch.labels(result="success")
        self.jwks_failure = self.jwks_fetch.labels(result="failure")
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._decisions: dict[tuple[str, str, str], Counter] = {}
        self._upstreams: dict[tuple[str, str], Histogram] = {}

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
