"""The verifier's spans (verifier/service/tracing.py) and the tracing settings every service reads
(service_runtime/tracing.py): the decision in the server span under nginx's traceparent, a cache hit
visible as one, nginx's span records turned into nginx's spans with nginx's own ids, and the
settings that turn it on, off or refuse to start."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service_runtime.config_error import ConfigError
from service_runtime.tracing import tracing_settings
from tests.support.fake_sources import BrokenSource
from tests.support.token_forge import JwksServer, SigningKey, TokenForge, verifier_settings
from tests.unit.verifier.test_app import ORIGINAL, start
from tests.unit.verifier.test_settings import env
from verifier.service.app import create_app
from verifier.service.settings import settings_from_env
from verifier.service.tracing import (
    EdgeSpanRelay,
    TracedVerifierMetrics,
    edge_spans,
    parse_record,
    server_span_middleware,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
NGINX_SPAN = "b7ad6b7169203331"
AUTH_SPAN = "a1b2c3d4e5f60718"


# --- settings -----------------------------------------------------------------------------------------


def test_tracing_is_off_unless_an_otlp_endpoint_is_set() -> None:
    assert tracing_settings({}, "verifier") == (tracing_settings({}, "verifier")[0], [])
    assert not tracing_settings({}, "verifier")[0].enabled
    assert not tracing_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, "api")[0].enabled
    on, problems = tracing_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "api")
    assert on.enabled and on.service_name == "api" and problems == []
    traces_only = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces", "OTEL_SERVICE_NAME": "x"}
    assert tracing_settings(traces_only, "api")[0] == type(on)(enabled=True, service_name="x")


@pytest.mark.parametrize(
    "switch", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_SDK_DISABLED": "TRUE"}, {"OTEL_TRACES_EXPORTER": "none"}]
)
def test_the_standard_switches_turn_it_off(switch: dict[str, str]) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **switch}
    assert tracing_settings(env, "verifier") == (tracing_settings({}, "verifier")[0], [])


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "expected http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "expected http/protobuf"),
        ("OTEL_TRACES_EXPORTER", "console", "expected otlp"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization", "never copy"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", "cookie", "never copy"),
    ],
)
def test_what_would_export_nothing_or_export_secrets_stops_the_start(
    name: str, value: str, says: str
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", name: value}
    _, problems = tracing_settings(env, "verifier")
    assert len(problems) == 1 and name in problems[0] and says in problems[0]


def test_the_verifier_refuses_a_span_relay_address_off_the_loopback() -> None:
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    listening = settings_from_env(env(**on, VERIFIER_EDGE_SPANS_LISTEN="127.0.0.1:9200"))
    assert listening.tracing.enabled and listening.edge_spans_listen == ("127.0.0.1", 9200)
    assert settings_from_env(env(**on, VERIFIER_EDGE_SPANS_LISTEN="[::1]:9200")).edge_spans_listen == (
        "::1",
        9200,
    )
    # Without tracing there is nothing to relay to: no listener.
    assert settings_from_env(env(VERIFIER_EDGE_SPANS_LISTEN="127.0.0.1:9200")).edge_spans_listen is None
    for bad in ("0.0.0.0:9200", "10.0.0.5:9200", "127.0.0.1", "127.0.0.1:99999", "localhost:x"):
        with pytest.raises(ConfigError) as refused:
            settings_from_env(env(**on, VERIFIER_EDGE_SPANS_LISTEN=bad))
        assert any("VERIFIER_EDGE_SPANS_LISTEN" in p for p in refused.value.problems), bad
    with pytest.raises(ConfigError) as refused:
        settings_from_env(
            env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
        )
    assert any("OTEL_EXPORTER_OTLP_PROTOCOL" in p for p in refused.value.problems)


# --- the server span and the decision in it -------------------------------------------------------------


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exported: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "verifier"}))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider


@pytest.fixture
async def traced_client(aiohttp_server, aiohttp_client, jwks_server: JwksServer, provider: TracerProvider):
    app = create_app(
        verifier_settings(jwks_server.base_url),
        sources=[BrokenSource()],
        metrics=TracedVerifierMetrics(),
        middlewares=[server_span_middleware(provider)],
    )
    return await start(aiohttp_server, aiohttp_client, app)


def _verify_spans(exported: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exported.get_finished_spans() if span.name == "GET /verify"]


async def test_a_decision_is_a_server_span_under_nginxs_auth_span_with_the_cache_visible(
    traced_client, exported: InMemorySpanExporter, jwks_server: JwksServer, signing_key: SigningKey
) -> None:
    token = TokenForge(signing_key, authority=jwks_server.base_url).mint()
    headers = {**ORIGINAL, "Authorization": f"Bearer {token}", "traceparent": f"00-{TRACE}-{AUTH_SPAN}-01"}
    for _ in range(2):
        async with traced_client.get("/verify", headers=headers) as response:
            assert response.status == 200
    first, second = _verify_spans(exported)
    for span in (first, second):
        assert span.kind is SpanKind.SERVER
        assert span.context.trace_id == int(TRACE, 16)
        assert span.parent is not None and span.parent.span_id == int(AUTH_SPAN, 16)
        assert span.attributes["edge.auth.source"] == "bearer"
        assert span.attributes["edge.auth.outcome"] == "allow"
        assert span.attributes["http.response.status_code"] == 200
    # The first decision validated the token, the second was answered from the verified-token cache.
    assert first.attributes["edge.token_cache"] == "miss"
    assert second.attributes["edge.token_cache"] == "hit"
    # The health checks make no spans.
    assert (await traced_client.get("/healthz")).status == 200
    assert all(span.name != "GET /healthz" for span in exported.get_finished_spans())
    # Nothing of the credentials or of the original request's query is in any span.
    dumped = json.dumps([json.loads(span.to_json()) for span in exported.get_finished_spans()])
    assert token not in dumped and token.split(".")[2] not in dumped
    assert "x=1" not in dumped


async def test_a_refusal_names_its_reason_and_an_outage_is_an_error(
    traced_client, exported: InMemorySpanExporter, jwks_server: JwksServer, signing_key: SigningKey
) -> None:
    forge = TokenForge(signing_key, authority=jwks_server.base_url)
    expired = forge.mint(forge.user_claims(exp=int(time.time()) - 3600))
    async with traced_client.get("/verify", headers={**ORIGINAL, "Authorization": f"Bearer {expired}"}) as r:
        assert r.status == 401
    async with traced_client.get("/verify", headers=ORIGINAL) as r:
        assert r.status == 401
    expired_span, missing_span = _verify_spans(exported)
    assert expired_span.attributes["edge.auth.reason"] == "expired"
    assert expired_span.attributes["edge.auth.outcome"] == "deny"
    assert missing_span.attributes["edge.auth.reason"] == "missing_token"
    # A refusal is an answer, not a failure of the verifier: no error status.
    assert expired_span.status.status_code is StatusCode.UNSET
    # No traceparent: the span starts its own trace.
    assert missing_span.parent is None
    async with traced_client.get("/verify", headers={**ORIGINAL, "X-Broken": "1"}) as r:
        assert r.status == 500
    failed = _verify_spans(exported)[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["edge.auth.reason"] == "internal_error"


# --- nginx's spans ----------------------------------------------------------------------------------------

RESOURCE = Resource.create({"service.name": "nginx"})


def _record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "trace": TRACE,
        "span": NGINX_SPAN,
        "parent": CALLER_SPAN,
        "flags": "01",
        "end": "1765090000.250",
        "duration": "0.050",
        "method": "GET",
        "path": "/api/projects/42",
        "status": 200,
        "upstream_status": "200",
        "request_id": "r-1",
        "auth_span": AUTH_SPAN,
        "auth_end": "1765090000.220",
        "auth_time": "0.004",
        "auth_status": "200",
        "reason": "",
    }
    record.update(changes)
    return record


def test_a_record_becomes_nginxs_server_span_and_its_auth_request_span_with_nginxs_ids() -> None:
    server, auth = edge_spans(_record(), RESOURCE)
    assert server.kind is SpanKind.SERVER and server.name == "GET /api/"
    assert (server.context.trace_id, server.context.span_id) == (int(TRACE, 16), int(NGINX_SPAN, 16))
    assert server.parent is not None and server.parent.span_id == int(CALLER_SPAN, 16)
    assert server.end_time - server.start_time == 50_000_000
    assert server.attributes["url.path"] == "/api/projects/42"
    assert server.attributes["http.response.status_code"] == 200
    assert auth.kind is SpanKind.CLIENT and auth.name == "auth_request /_verify"
    assert auth.context.span_id == int(AUTH_SPAN, 16) and auth.parent == server.context
    assert auth.end_time == 1_765_090_000_220_000_000 and auth.end_time - auth.start_time == 4_000_000
    assert server.resource.attributes["service.name"] == "nginx"


def test_a_record_without_a_caller_span_or_an_auth_request_gives_a_root_span_alone() -> None:
    (server,) = edge_spans(_record(parent="", auth_end="", auth_time="", auth_status=""), RESOURCE)
    assert server.parent is None
    refused, _ = edge_spans(_record(status=503, reason="session_backend_unavailable"), RESOURCE)
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes["edge.auth.reason"] == "session_backend_unavailable"


@pytest.mark.parametrize(
    "changes",
    [
        {"trace": TRACE.upper()},
        {"trace": "0" * 31},
        {"span": "xyz"},
        {"flags": "00"},  # not sampled: the caller asked for no trace
        {"flags": "1"},
        {"end": "-"},
        {"duration": "1e9"},
        {"method": "get"},
        {"method": 'GET","x":"'},
        {"path": "api/no-slash"},
        {"trace": None},
    ],
)
def test_a_record_that_is_not_nginxs_or_not_sampled_gives_no_span(changes: dict[str, object]) -> None:
    assert edge_spans(_record(**changes), RESOURCE) == []


def test_nginxs_spans_are_kept_exactly_when_the_services_sampler_keeps_their_trace() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    # The default (parent-based): nginx's flag decides, with or without a caller's span.
    follow = ParentBased(ALWAYS_ON)
    assert edge_spans(_record(flags="00", parent=""), RESOURCE, follow) == []
    assert len(edge_spans(_record(flags="01", parent=""), RESOURCE, follow)) == 2
    # A ratio sampler decides by the trace id alone, as it does in the verifier and the API.
    half = TraceIdRatioBased(0.5)
    kept, dropped = "0" * 16 + "0" * 15 + "1", "0" * 16 + "f" * 16
    assert len(edge_spans(_record(trace=kept), RESOURCE, half)) == 2
    assert edge_spans(_record(trace=dropped), RESOURCE, half) == []
    tracer_provider = TracerProvider(sampler=half)
    for trace_hex, expected in ((kept, True), (dropped, False)):
        decided = tracer_provider.sampler.should_sample(None, int(trace_hex, 16), "GET /verify")
        assert decided.decision.is_sampled() is expected


def test_retried_upstream_times_are_summed_and_odd_parent_ids_are_ignored() -> None:
    server, auth = edge_spans(_record(auth_time="0.001, 0.003", parent="not-an-id"), RESOURCE)
    assert auth.end_time - auth.start_time == 4_000_000
    assert server.parent is None


def test_syslog_framing_is_read_and_oversized_or_broken_datagrams_are_dropped() -> None:
    body = json.dumps(_record()).encode()
    assert parse_record(b"<190>Dec  7 08:00:00 edge_span: " + body) == _record()
    assert parse_record(b"<190>Dec  7 08:00:00 edge_span: {broken") is None
    assert parse_record(b"<190>no json here") is None
    assert parse_record(b"<190>x: [1, 2]") is None
    assert parse_record(b"<190>x: " + b'{"a":"' + b"a" * 9000 + b'"}') is None


async def test_the_relay_exports_what_nginx_sends_over_udp_and_counts_what_it_drops() -> None:
    exported = InMemorySpanExporter()
    relay = EdgeSpanRelay(SimpleSpanProcessor(exported), RESOURCE)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(
                b"<190>Dec  7 08:00:00 edge_span: " + json.dumps(_record()).encode(), ("127.0.0.1", port)
            )
            sender.sendto(b"<190>Dec  7 08:00:00 edge_span: not json", ("127.0.0.1", port))
        for _ in range(100):
            if len(exported.get_finished_spans()) == 2 and relay.dropped == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        transport.close()
    assert {span.name for span in exported.get_finished_spans()} == {"GET /api/", "auth_request /_verify"}
    assert relay.dropped == 1
