"""One trace per request, in a real tracing backend: a stack with tracing on exports to Jaeger (built
by scripts/setup.sh), and a request sent through nginx with a known ``traceparent`` comes back as one
trace with nginx's, the verifier's and FastAPI's spans in their parent-child order, for a bearer
token and for a browser session, with the decision (source, outcome, reason, cache hit or miss) in
the verifier's span and no token or cookie anywhere."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from stack.jaeger import Jaeger, Span, TraceIncomplete
from stack.launcher import Stack
from stack.topology import free_port, free_port_topology
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

SERVICES = ("nginx", "verifier", "api")


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with Jaeger(tmp_path_factory.mktemp("jaeger"), otlp_port=free_port(), query_port=free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, jaeger: Jaeger) -> Iterator[Stack]:
    topology = free_port_topology(tmp_path_factory.mktemp("traced-stack"), otlp_endpoint=jaeger.otlp_endpoint)
    with Stack(topology) as running:
        yield running


@pytest.fixture
def edge(traced: Stack) -> Iterator[httpx.Client]:
    with edge_client.new_client(traced) as client:
        yield client


def _ids() -> tuple[str, str]:
    """A new trace id and the caller's span id (the parent of nginx's span)."""
    return uuid.uuid4().hex, uuid.uuid4().hex[:16]


def _trace(jaeger: Jaeger, trace_id: str, complete: Callable[[list[Span]], bool]) -> list[Span]:
    """The trace once ``complete`` holds for it: each service exports in its own batches."""
    found: list[Span] = []

    def arrived() -> bool:
        try:
            found[:] = jaeger.trace(trace_id, services=SERVICES[:2], timeout=1.0)
        except TraceIncomplete:
            return False
        return complete(found)

    edge_client.wait_until(arrived, timeout=20)
    assert complete(found), f"trace {trace_id} incomplete:\n" + "\n".join(map(str, found))
    return found


def _one(spans: list[Span], service: str, name: str) -> Span:
    matching = [s for s in spans if s["service"] == service and s["name"] == name]
    assert len(matching) == 1, (service, name, [(s["service"], s["name"]) for s in spans])
    return matching[0]


def _below(spans: list[Span], parent: Span) -> list[Span]:
    """Every span under ``parent``, at any depth."""
    below: list[Span] = []
    frontier = {parent["span_id"]}
    while frontier:
        found = [s for s in spans if s["parent_id"] in frontier]
        below.extend(found)
        frontier = {s["span_id"] for s in found}
    return below


def _has(service: str, name: str) -> Callable[[list[Span]], bool]:
    return lambda spans: any(s["service"] == service and s["name"] == name for s in spans)


def _all(*checks: Callable[[list[Span]], bool]) -> Callable[[list[Span]], bool]:
    return lambda spans: all(check(spans) for check in checks)


def test_a_bearer_request_is_one_trace_from_nginx_through_the_verifier_to_fastapi(
    traced: Stack, jaeger: Jaeger, edge: httpx.Client
) -> None:
    token = edge_client.password_token(traced, "alice@contoso-dev.example", "alice-password")
    trace_id, caller = _ids()
    response = edge.get(
        traced.topology.public_origin + "/api/me",
        headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{caller}-01"},
    )
    assert response.status_code == 200, response.text
    spans = _trace(
        jaeger,
        trace_id,
        _all(
            _has("nginx", "GET /api/"),
            _has("nginx", "auth_request /_verify"),
            _has("verifier", "GET /verify"),
            _has("api", "GET /api/me"),
        ),
    )
    nginx = _one(spans, "nginx", "GET /api/")
    auth = _one(spans, "nginx", "auth_request /_verify")
    verify = _one(spans, "verifier", "GET /verify")
    api = _one(spans, "api", "GET /api/me")
    # The caller's span -> nginx -> its auth_request -> the verifier; nginx -> FastAPI.
    assert nginx["parent_id"] == caller and nginx["kind"] == "server"
    assert auth["parent_id"] == nginx["span_id"] and auth["kind"] == "client"
    assert verify["parent_id"] == auth["span_id"] and verify["kind"] == "server"
    assert api["parent_id"] == nginx["span_id"] and api["kind"] == "server"
    # The subrequest lies within nginx's request. nginx's times are whole milliseconds of its cached
    # clock ($msec, $request_time, $upstream_response_time), so an edge may be off by up to three.
    assert nginx["start_us"] <= auth["start_us"] + 3000
    assert auth["start_us"] + auth["duration_us"] <= nginx["start_us"] + nginx["duration_us"] + 3000
    assert verify["attributes"]["edge.auth.source"] == "bearer"
    assert verify["attributes"]["edge.auth.outcome"] == "allow"
    assert verify["attributes"]["edge.token_cache"] in ("hit", "miss")
    assert nginx["attributes"]["http.response.status_code"] == 200
    assert api["attributes"]["edge.auth.principal_type"] == "user"
    # No credential anywhere in the trace.
    dumped = json.dumps(spans)
    assert token not in dumped and token.split(".")[2] not in dumped


def test_the_same_token_again_is_answered_from_the_cache_and_the_trace_says_so(
    traced: Stack, jaeger: Jaeger, edge: httpx.Client
) -> None:
    token = edge_client.password_token(traced, "bob@contoso-dev.example", "bob-password")
    decisions = []
    for _ in range(2):
        trace_id, caller = _ids()
        headers = {"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{caller}-01"}
        assert edge.get(traced.topology.public_origin + "/api/me", headers=headers).status_code == 200
        spans = _trace(jaeger, trace_id, _has("verifier", "GET /verify"))
        decisions.append(_one(spans, "verifier", "GET /verify")["attributes"]["edge.token_cache"])
    assert decisions == ["miss", "hit"]


def test_a_browser_session_request_is_one_trace_with_the_session_lookup_in_it(
    traced: Stack, jaeger: Jaeger
) -> None:
    signed_in = edge_client.sign_in(traced, "alice@contoso-dev.example", "alice-password")
    trace_id, caller = _ids()
    response = signed_in.client.get(
        traced.topology.public_origin + "/api/me", headers={"traceparent": f"00-{trace_id}-{caller}-01"}
    )
    assert response.status_code == 200, response.text
    spans = _trace(jaeger, trace_id, _all(_has("verifier", "GET /verify"), _has("api", "GET /api/me")))
    nginx = _one(spans, "nginx", "GET /api/")
    verify = _one(spans, "verifier", "GET /verify")
    api = _one(spans, "api", "GET /api/me")
    assert verify["parent_id"] == _one(spans, "nginx", "auth_request /_verify")["span_id"]
    assert api["parent_id"] == nginx["span_id"]
    assert verify["attributes"]["edge.auth.source"] == "session"
    assert verify["attributes"]["edge.session_cache"] in ("hit", "miss")
    if verify["attributes"]["edge.session_cache"] == "miss":
        # What the decision waited for: oauth2-proxy's answer (aiohttp's client span).
        assert any(s["kind"] == "client" for s in _below(spans, verify)), spans
    dumped = json.dumps(spans)
    for cookie in signed_in.client.cookies.values():
        assert cookie not in dumped


def test_a_refused_request_has_its_reason_in_the_trace_and_no_api_span(
    traced: Stack, jaeger: Jaeger, edge: httpx.Client
) -> None:
    token = edge_client.password_token(traced, "alice@contoso-dev.example", "alice-password")
    trace_id, caller = _ids()
    response = edge.get(
        traced.topology.public_origin + "/api/me",
        headers={
            "Authorization": f"Bearer {edge_client.forged(token)}",
            "traceparent": f"00-{trace_id}-{caller}-01",
        },
    )
    assert response.status_code == 401
    reason = response.json()["reason"]
    spans = _trace(jaeger, trace_id, _all(_has("nginx", "GET /api/"), _has("verifier", "GET /verify")))
    verify = _one(spans, "verifier", "GET /verify")
    assert verify["attributes"]["edge.auth.outcome"] == "deny"
    assert verify["attributes"]["edge.auth.reason"] == reason
    nginx = _one(spans, "nginx", "GET /api/")
    assert nginx["attributes"]["http.response.status_code"] == 401
    assert nginx["attributes"]["edge.auth.reason"] == reason
    assert not any(s["service"] == "api" for s in spans)


def test_with_the_collector_gone_every_request_still_gets_its_answer(
    traced: Stack, jaeger: Jaeger, edge: httpx.Client
) -> None:
    # Last in this module: the collector does not come back.
    token = edge_client.password_token(traced, "alice@contoso-dev.example", "alice-password")
    signed_in = edge_client.sign_in(traced, "bob@contoso-dev.example", "bob-password")
    jaeger.stop()
    origin = traced.topology.public_origin
    for _ in range(20):
        trace_id, caller = _ids()
        traceparent = {"traceparent": f"00-{trace_id}-{caller}-01"}
        bearer = edge.get(origin + "/api/me", headers={"Authorization": f"Bearer {token}", **traceparent})
        assert bearer.status_code == 200, bearer.text
        assert signed_in.client.get(origin + "/api/me", headers=traceparent).status_code == 200
        forged = edge.get(
            origin + "/api/me", headers={"Authorization": f"Bearer {edge_client.forged(token)}"}
        )
        assert forged.status_code == 401
    # Each service says, in its own JSON log, that a batch could not be exported.
    logs = traced.topology.logs_dir

    def export_failure_logged() -> bool:
        return all(
            any(
                '"level":"warning"' in line or '"level":"error"' in line
                for line in (logs / f"{service}.log").read_text(errors="replace").splitlines()
                if '"logger":"opentelemetry' in line
            )
            for service in ("verifier", "api")
        )

    assert edge_client.wait_until(export_failure_logged, timeout=30)
