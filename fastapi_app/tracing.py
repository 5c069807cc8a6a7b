"""The API's spans (on only when tracing is configured, see :mod:`service_runtime.tracing`).

- FastAPI's own OpenTelemetry support makes the server span, under the ``traceparent`` nginx sent
  (nginx's server span). Its operation spans (one per dependency, the endpoint, serialization) stay
  off: they made a traced request cost two thirds more.
- SQLAlchemy's instrumentation adds one span per database statement (the SQL with its placeholders,
  never the values), aiohttp's client instrumentation the calls the API makes (the verifier's
  ``/sessions/end``, the JWKS of re-validation).
- :class:`~fastapi_app.middleware.AccessLog` writes a refusal's ``reason`` code and the caller's
  kind into the server span, as it writes them into its log line.

FastAPI's request logs stay off (they would record validation failures with their input values), and
so do its metrics (Prometheus is where the metrics are); ``/api/healthz`` gets no span.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine

#: Called every few seconds by load balancers and container health checks.
UNTRACED_PATHS = frozenset({"/api/healthz"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def telemetry(provider: TracerProvider) -> dict[str, Any]:
    """``FastAPI(telemetry=...)`` with tracing on through ``provider``."""
    return {
        "tracer_provider": provider,
        "tracing": True,
        # Its operation spans (each dependency, the endpoint, serialization): a traced /api/me cost
        # 219 µs of CPU in-process without them and 365 with them (51 untraced; three interleaved
        # runs, encoding included). The server span, a refusal's reason in it and the SQL
        # statements under it say where a request went.
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "auto_configure": False,
        "exclude": _untraced,
    }


def instrument_clients(provider: TracerProvider) -> None:
    """Client spans for every aiohttp client session made from now on."""
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)


def instrument_database(engine: AsyncEngine, provider: TracerProvider) -> None:
    """One span per statement ``engine`` runs. The instrumentor instruments once per process; a second
    engine (an app built again in the same process) replaces the first one's.

    ``skip_dep_check``: the instrumentation declares SQLAlchemy below 2.1 and would instrument nothing
    on 2.1; it only listens to the engine's cursor events, which 2.1 keeps, and
    tests/unit/fastapi_app/test_tracing.py checks that the statements' spans arrive."""
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True)
