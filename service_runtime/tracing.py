"""Traces of every service: OpenTelemetry spans exported over OTLP/HTTP, on only when configured.

Tracing is on when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(and ``OTEL_SDK_DISABLED`` is not true, ``OTEL_TRACES_EXPORTER`` not ``none``). Off, nothing of
OpenTelemetry's SDK is loaded and no instrumentation is installed: the services run exactly the code
they run without it. The standard ``OTEL_*`` variables keep their meaning (the SDK reads them):
``OTEL_SERVICE_NAME`` (each service has its own default), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` (default: follow the caller's sampled flag,
which nginx sets for the traces it starts), ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_*``.

Two refusals, each a configuration problem that stops the service at start-up:

- a protocol other than ``http/protobuf``: the gRPC exporter is not installed, and an exporter that
  silently exports nothing is worse than one that says so;
- ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``: the instrumentations would copy the named request
  headers into spans, and the requests here carry session cookies, bearer tokens and the identity
  headers. Traces never hold a token, a cookie or a secret.

Only W3C ``traceparent``/``tracestate`` is read from a request (never ``baggage``: entries a caller
makes up would ride along into every service).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

#: The only OTLP protocol whose exporter is installed.
OTLP_PROTOCOL = "http/protobuf"

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_HEADER_CAPTURE = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE",
)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Whether this service exports spans, and under which service name."""

    enabled: bool
    service_name: str


def _set(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def tracing_settings(env: Mapping[str, str], default_service_name: str) -> tuple[TracingSettings, list[str]]:
    """The tracing settings in ``env`` and the problems found (empty when usable)."""
    problems: list[str] = []
    disabled = _set(env, "OTEL_SDK_DISABLED").lower() == "true"
    exporter = _set(env, "OTEL_TRACES_EXPORTER").lower() or "otlp"
    enabled = not disabled and exporter != "none" and any(_set(env, name) for name in _ENDPOINTS)
    service_name = _set(env, "OTEL_SERVICE_NAME") or default_service_name
    if enabled:
        if exporter != "otlp":
            problems.append(f"OTEL_TRACES_EXPORTER={exporter[:20]!r}: expected otlp (or none)")
        for name in _PROTOCOLS:
            protocol = _set(env, name)
            if protocol and protocol != OTLP_PROTOCOL:
                problems.append(
                    f"{name}={protocol[:20]!r}: expected {OTLP_PROTOCOL} (the exporter installed here)"
                )
        for name in _HEADER_CAPTURE:
            if _set(env, name):
                problems.append(
                    f"{name} is set: spans never copy request or response headers here (they carry "
                    "cookies, tokens and the identity headers); unset it"
                )
    return TracingSettings(enabled=enabled, service_name=service_name), problems


def start_tracing(settings: TracingSettings) -> TracerProvider | None:
    """Install the global tracer provider with the OTLP/HTTP exporter when ``settings.enabled``;
    None (and nothing installed) when off. Call :func:`stop_tracing` with the result on exit."""
    if not settings.enabled:
        return None
    # Imported here: a service with tracing off never loads the SDK or the exporter.
    from opentelemetry import propagate, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and the SDK's own attributes.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(TraceContextTextMapPropagator())
    return provider


def stop_tracing(provider: TracerProvider | None) -> None:
    """Export what is still queued and stop the exporter (a no-op when tracing is off)."""
    if provider is not None:
        provider.shutdown()
