"""The API's spans (fastapi_app/tracing.py): the server span under the traceparent nginx sent, each
database statement inside it, a refusal's reason, and no span at all when tracing is off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fastapi_app import create_app
from fastapi_app.settings import ApiSettings
from fastapi_app.token_check import StaticKeys, VerifierRevalidator
from tests.unit.fastapi_app.conftest import BOB, Api, key_set_of, make_settings, validation_settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
NGINX_SPAN = "b7ad6b7169203331"
TRACEPARENT = {"traceparent": f"00-{TRACE}-{NGINX_SPAN}-01"}


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_api(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, exported: InMemorySpanExporter) -> Iterator[Api]:
    provider = TracerProvider(resource=Resource.create({"service.name": "api"}))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    settings: ApiSettings = make_settings(tmp_path)
    revalidator = VerifierRevalidator(validation_settings(), StaticKeys(key_set_of(rsa_key)))
    try:
        app = create_app(settings, revalidator=revalidator, tracer_provider=provider)
        with TestClient(app) as client:
            yield Api(client, settings, rsa_key)
    finally:
        # The instrumentations are process-wide: the other tests run uninstrumented.
        AioHttpClientInstrumentor().uninstrument()
        if SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry:
            SQLAlchemyInstrumentor().uninstrument()


def _server_spans(exported: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exported.get_finished_spans() if span.kind is SpanKind.SERVER]


def _children(exported: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    """Every span below ``parent``, at any depth."""
    spans = exported.get_finished_spans()
    below: list[ReadableSpan] = []
    frontier = {parent.context.span_id}
    while frontier:
        found = [s for s in spans if s.parent is not None and s.parent.span_id in frontier]
        below.extend(found)
        frontier = {s.context.span_id for s in found}
    return below


def test_a_request_is_a_server_span_under_nginx_with_its_handler_and_its_statements(
    traced_api: Api, exported: InMemorySpanExporter
) -> None:
    created = traced_api.create_project()
    exported.clear()
    response = traced_api.call("GET", f"/api/projects/{created['id']}", BOB, headers=TRACEPARENT)
    assert response.status_code == 200, response.text
    (server,) = _server_spans(exported)
    assert server.context.trace_id == int(TRACE, 16)
    assert server.parent is not None and server.parent.span_id == int(NGINX_SPAN, 16)
    assert server.attributes["http.route"] == "/api/projects/{project_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["edge.auth.principal_type"] == "user"
    below = _children(exported, server)
    names = {span.name for span in below}
    # FastAPI's operation spans stay off (fastapi_app/tracing.py): the statements hang under the request.
    assert not any(name.startswith("fastapi.") for name in names), names
    statements = [span for span in below if span.kind is SpanKind.CLIENT and "db.system" in span.attributes]
    assert any(span.name.startswith("SELECT") for span in statements), names
    # SQL with its placeholders, never the values bound to them.
    assert all(created["id"] not in json.dumps(dict(span.attributes)) for span in statements)


def test_a_refusal_names_its_reason_in_the_span(traced_api: Api, exported: InMemorySpanExporter) -> None:
    unsigned = traced_api.client.get("/api/me", headers=TRACEPARENT)
    assert unsigned.status_code == 401
    forbidden = traced_api.call(
        "PUT", "/api/admin/settings", BOB, json={"read_only": True}, headers=TRACEPARENT
    )
    assert forbidden.status_code == 403
    refused_unsigned, refused_role = _server_spans(exported)
    assert refused_unsigned.attributes["edge.api.reason"] == unsigned.json()["reason"]
    assert "edge.auth.principal_type" not in refused_unsigned.attributes
    assert refused_role.attributes["edge.api.reason"] == forbidden.json()["reason"]
    assert refused_role.attributes["edge.auth.principal_type"] == "user"


def test_the_health_check_makes_no_span_and_no_header_is_recorded(
    traced_api: Api, exported: InMemorySpanExporter
) -> None:
    assert traced_api.client.get("/api/healthz", headers=TRACEPARENT).status_code == 200
    assert _server_spans(exported) == []
    response = traced_api.call("GET", "/api/me?q=1", BOB, headers=TRACEPARENT)
    assert response.status_code == 200
    dumped = json.dumps([json.loads(span.to_json()) for span in exported.get_finished_spans()])
    for header in ("x-identity-signature", "x-user-oid", "authorization", "cookie"):
        assert header not in dumped.lower()


def test_without_a_provider_no_span_is_made(api: Api) -> None:
    # The default app: FastAPI's telemetry off, no instrumentation; a traceparent changes nothing.
    assert api.client.app.state.tracer_provider is None  # type: ignore[attr-defined]
    assert not AioHttpClientInstrumentor().is_instrumented_by_opentelemetry
    assert api.call("GET", "/api/me", BOB, headers=TRACEPARENT).status_code == 200
