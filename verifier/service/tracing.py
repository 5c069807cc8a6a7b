"""The verifier's spans (on only when tracing is configured, see :mod:`service_runtime.tracing`).

- One server span per request, a child of the ``traceparent`` nginx sent (nginx's ``auth_request``
  subrequest for ``/verify``), carrying the decision: ``edge.auth.source``, ``edge.auth.outcome``,
  ``edge.auth.reason``, and whether the verified-token cache (``edge.token_cache``) and the
  remembered-session cache (``edge.session_cache``) answered (``hit``) or not (``miss``). A key
  refetch during a request marks ``edge.jwks_fetch``.
- Client spans of what a decision waited for, from OpenTelemetry's instrumentations: oauth2-proxy and
  the JWKS endpoint (aiohttp's client) and Redis (commands only, their arguments replaced by ``?``).
- nginx's own spans, which Debian's nginx cannot make: :class:`EdgeSpanRelay` receives nginx's
  per-request span records (``access_log syslog:`` to a loopback UDP port, see nginx/edge.conf) and
  exports them under the service name ``nginx`` with the exact ids nginx put into the
  ``traceparent`` it sent upstream, so the verifier's and FastAPI's spans hang under them.

Nothing here reads a token, a cookie or an identity header: a span holds the request's method, path
(never its query), status and the decision's words, as the decision log line does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from verifier.service.metrics import VerifierMetrics, outcome_for_status

log = logging.getLogger("verifier.tracing")

#: The paths that get no span: the load balancer's and the container's health checks, every few
#: seconds, would bury the requests worth looking at.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def instrument_clients(provider: TracerProvider) -> None:
    """Client spans for every aiohttp client session and Redis client made from now on."""
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)


def server_span_middleware(provider: TracerProvider) -> Callable[..., Awaitable[web.StreamResponse]]:
    """One server span per request, under the caller's ``traceparent``.

    Written here rather than taken from OpenTelemetry's aiohttp-server instrumentation: that one
    records the full URL with its query (a sign-in's ``sid`` on ``/front-channel-logout``) and reads
    every header of every request; this one records the path only and costs one span.
    """
    tracer = provider.get_tracer("verifier")

    @web.middleware
    async def server_span(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in UNTRACED_PATHS:
            return await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": path, "http.route": route},
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as answer:
                _status(span, answer.status)
                raise
            _status(span, response.status)
            return response

    return server_span


def _status(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


class _MarkingCounter:
    """A cache counter that also marks the request's span with the lookup's result: the metrics are
    where the sources already report a hit or a miss, so the spans learn it without a line of
    tracing code in the sources."""

    __slots__ = ("_attribute", "_counter", "_value")

    def __init__(self, counter: Any, attribute: str, value: str) -> None:
        self._counter = counter
        self._attribute = attribute
        self._value = value

    def inc(self, amount: float = 1) -> None:
        self._counter.inc(amount)
        trace.get_current_span().set_attribute(self._attribute, self._value)


class TracedVerifierMetrics(VerifierMetrics):
    """:class:`VerifierMetrics` that also writes what it counts for a request into that request's
    span: the decision (source, outcome, reason) and each cache's hit or miss."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache_hit = _MarkingCounter(self.cache_hit, "edge.token_cache", "hit")
        self.cache_miss = _MarkingCounter(self.cache_miss, "edge.token_cache", "miss")
        self.session_cache_hit = _MarkingCounter(self.session_cache_hit, "edge.session_cache", "hit")
        self.session_cache_miss = _MarkingCounter(self.session_cache_miss, "edge.session_cache", "miss")

    def record_decision(self, source: str, status: int, reason: str, seconds: float) -> None:
        super().record_decision(source, status, reason, seconds)
        span = trace.get_current_span()
        outcome = outcome_for_status(status)
        span.set_attributes({"edge.auth.source": source, "edge.auth.outcome": outcome})
        if reason:
            span.set_attribute("edge.auth.reason", reason)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, reason))

    def record_jwks_fetch(self, tenant_id: str, *, success: bool, keys_held: int) -> None:
        super().record_jwks_fetch(tenant_id, success=success, keys_held=keys_held)
        trace.get_current_span().set_attribute("edge.jwks_fetch", "success" if success else "failure")

    def record_upstream(self, upstream: str, result: str, seconds: float) -> None:
        super().record_upstream(upstream, result, seconds)
        trace.get_current_span().add_event(
            "upstream", {"edge.upstream": upstream, "edge.upstream.result": result}
        )


# --- nginx's spans -----------------------------------------------------------------------------------

#: The most a span record may be; nginx's are a few hundred bytes.
MAX_RECORD_BYTES = 8192
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX2 = re.compile(r"[0-9a-f]{2}")
_METHOD = re.compile(r"[A-Z]{1,16}")
_SECONDS = re.compile(r"\d{1,10}(?:\.\d{1,6})?")
_SCOPE = InstrumentationScope("nginx.edge_span")
#: Without a sampler: keep what nginx marked sampled (a parent-based sampler whose root never asks).
_FOLLOW_THE_FLAG: Sampler = ParentBased(TraceIdRatioBased(0.0))


def _seconds(text: object) -> float | None:
    """nginx's seconds (``1733560000.123``, ``0.004``); a list of tries (``0.001, 0.003``) is summed;
    ``-`` or anything else is None."""
    if not isinstance(text, str) or not text:
        return None
    total = 0.0
    for part in text.replace(" : ", ", ").split(", "):
        if not _SECONDS.fullmatch(part):
            return None
        total += float(part)
    return total


def _text(record: dict[str, Any], name: str, limit: int = 256) -> str:
    value = record.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _span_name(method: str, path: str) -> str:
    """Low cardinality: the method and the path's first segment (``GET /api/``), as nginx's
    locations divide them, never an id."""
    first, _, rest = path.lstrip("/").partition("/")
    return f"{method} /{first}{'/' if rest or path.endswith('/') else ''}"[:64]


def edge_spans(
    record: dict[str, Any], resource: Resource, sampler: Sampler = _FOLLOW_THE_FLAG
) -> list[ReadableSpan]:
    """nginx's spans of one request from its span record (nginx/edge.conf ``edge_span``): the server
    span under the caller's span (when the caller sent a valid ``traceparent``), and, when the
    request needed a decision, the ``auth_request`` subrequest's client span under it; the verifier's
    own span is that one's child. An invalid record gives no span, and so does a trace ``sampler``
    (the services' own, ``OTEL_TRACES_SAMPLER``) leaves out: it decides as it does for the verifier
    and the API, which see nginx's span as their parent, so a trace is kept whole or not at all."""
    trace_hex, span_hex = _text(record, "trace"), _text(record, "span")
    flags = _text(record, "flags")
    if not (_HEX32.fullmatch(trace_hex) and _HEX16.fullmatch(span_hex) and _HEX2.fullmatch(flags)):
        return []
    trace_flags = TraceFlags(int(flags, 16) & TraceFlags.SAMPLED)
    end, duration = _seconds(record.get("end")), _seconds(record.get("duration"))
    method, path = _text(record, "method"), _text(record, "path", 1024)
    if end is None or duration is None or not _METHOD.fullmatch(method) or not path.startswith("/"):
        return []
    trace_id = int(trace_hex, 16)
    server = SpanContext(trace_id, int(span_hex, 16), is_remote=False, trace_flags=trace_flags)
    parent_hex = _text(record, "parent")
    parent = (
        SpanContext(trace_id, int(parent_hex, 16), is_remote=True, trace_flags=trace_flags)
        if _HEX16.fullmatch(parent_hex)
        else None
    )
    # What the services' sampler sees: nginx's span, with nginx's flags, as their remote parent.
    seen_by_services = trace.set_span_in_context(
        trace.NonRecordingSpan(SpanContext(trace_id, server.span_id, is_remote=True, trace_flags=trace_flags))
    )
    name = _span_name(method, path)
    if not sampler.should_sample(seen_by_services, trace_id, name, SpanKind.SERVER).decision.is_sampled():
        return []
    status = record.get("status")
    status_code = status if isinstance(status, int) and 100 <= status <= 999 else 0
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "http.response.status_code": status_code,
    }
    for field_name, attribute in (
        ("request_id", "edge.request_id"),
        ("upstream_status", "edge.upstream_status"),
        ("auth_status", "edge.auth.status"),
        ("reason", "edge.auth.reason"),
    ):
        value = _text(record, field_name, 128)
        if value and value != "-":
            attributes[attribute] = value
    end_ns = int(end * 1e9)
    spans = [
        ReadableSpan(
            name,
            context=server,
            parent=parent,
            resource=resource,
            attributes=attributes,
            kind=SpanKind.SERVER,
            status=Status(StatusCode.ERROR) if status_code >= 500 else Status(StatusCode.UNSET),
            start_time=end_ns - int(duration * 1e9),
            end_time=end_ns,
            instrumentation_scope=_SCOPE,
        )
    ]
    auth_hex = _text(record, "auth_span")
    auth_end, auth_time = _seconds(record.get("auth_end")), _seconds(record.get("auth_time"))
    if _HEX16.fullmatch(auth_hex) and auth_end is not None and auth_time is not None:
        auth_status = _text(record, "auth_status", 16)
        spans.append(
            ReadableSpan(
                "auth_request /_verify",
                context=SpanContext(trace_id, int(auth_hex, 16), is_remote=False, trace_flags=trace_flags),
                parent=server,
                resource=resource,
                attributes={"edge.auth.status": auth_status} if auth_status else {},
                kind=SpanKind.CLIENT,
                start_time=int((auth_end - auth_time) * 1e9),
                end_time=int(auth_end * 1e9),
                instrumentation_scope=_SCOPE,
            )
        )
    return spans


def parse_record(datagram: bytes) -> dict[str, Any] | None:
    """The JSON object of one syslog datagram from nginx (``<PRI>timestamp tag: {...}``), or None."""
    if len(datagram) > MAX_RECORD_BYTES:
        return None
    start = datagram.find(b"{")
    if start < 0:
        return None
    try:
        record = json.loads(datagram[start:])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class EdgeSpanRelay(asyncio.DatagramProtocol):
    """Receives nginx's span records on a loopback UDP port and exports nginx's spans.

    Its own exporter and batch, with the resource ``service.name=nginx``: the spans are nginx's, not
    the verifier's. A datagram that is not a record is dropped and counted, one whose fields are not
    nginx's gives no span; neither is logged (it holds a path, and whatever sent it is not nginx).
    """

    def __init__(
        self, processor: SpanProcessor, resource: Resource, sampler: Sampler = _FOLLOW_THE_FLAG
    ) -> None:
        self.processor = processor
        self.resource = resource
        self.sampler = sampler
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        record = parse_record(data)
        if record is None:
            self.dropped += 1
            return
        spans = edge_spans(record, self.resource, self.sampler)
        for span in spans:
            self.processor.on_end(span)


async def start_edge_span_relay(
    host: str, port: int, provider: TracerProvider
) -> tuple[asyncio.DatagramTransport, BatchSpanProcessor]:
    """Listen for nginx's span records on ``host:port`` (UDP), sampled by ``provider``'s sampler;
    stop with :func:`stop_edge_span_relay`."""
    resource = Resource.create({SERVICE_NAME: "nginx"})
    processor = BatchSpanProcessor(OTLPSpanExporter())
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: EdgeSpanRelay(processor, resource, provider.sampler), local_addr=(host, port)
    )
    log.info("receiving nginx's span records on %s:%d (udp)", host, port)
    return transport, processor


def stop_edge_span_relay(relay: tuple[asyncio.DatagramTransport, BatchSpanProcessor] | None) -> None:
    if relay is None:
        return
    transport, processor = relay
    transport.close()
    processor.shutdown()
