"""A throw-away Jaeger on 127.0.0.1: where the stack's and the tests' traces go.

The binary is Jaeger v2 (scripts/setup.sh builds it into ``.cache/bin/jaeger``): an OpenTelemetry
Collector with Jaeger's storage and query extensions. ``Jaeger(folder, otlp_port=..., query_port=...)``
writes its configuration (:func:`jaeger_config`) into ``folder`` and runs it as a
:class:`~stack.processes.ManagedProcess`, so the launcher starts, probes and stops it like every other
component (``python -m stack up --tracing``), and a test can run one on its own::

    with Jaeger(tmp_path, otlp_port=free_port(), query_port=free_port()) as jaeger:
        topology = free_port_topology(tmp_path, otlp_endpoint=jaeger.otlp_endpoint)
        ...
        spans = jaeger.trace(trace_id, services=("verifier", "api"))

What it runs, and why nothing more: one OTLP/HTTP receiver (the services export OTLP over
HTTP/protobuf, ``<otlp_endpoint>/v1/traces``); traces kept in memory, at most ``max_traces`` of them,
gone when it stops; the query extension's HTTP API, which the tests and the banner use. Its web UI's
built assets are not part of the Go module, so its pages are a placeholder unless ``ui_assets`` names a
folder of Jaeger UI's build (``index.html`` and ``static/``, from jaeger-ui's ``npm run build``): then
Jaeger serves the real UI, its search and trace pages, from that folder. Without ``ui_assets``,
``Jaeger`` reads the folder from the ``JAEGER_UI_ASSETS`` environment variable, so
``JAEGER_UI_ASSETS=<folder> python -m stack up --tracing`` gives the stack the real UI; unset or empty,
the placeholder. Every socket is on 127.0.0.1:
the collector's own metrics are off, no other receiver is configured, and the query extension's gRPC
API, which it always starts and nothing here uses, takes a free port. Spans may carry user and
tenant ids in their attributes, and Jaeger asks no one who they are: none of it may be reachable from
another machine.

:meth:`Jaeger.trace` reads one trace back through ``GET /api/traces/<trace id>`` as plain
:class:`Span` dicts, waiting until every named service's spans have arrived (each service exports in
batches, a fraction of a second after its spans end).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import httpx
import yaml

from stack.processes import ManagedProcess, Running, StackError, find_program, http_probe
from stack.topology import REPO_ROOT, free_port

#: The binary scripts/setup.sh builds.
JAEGER_BINARY = REPO_ROOT / ".cache" / "bin" / "jaeger"
SETUP_HINT = "Run `make setup` (scripts/setup.sh builds it from Jaeger's Go module)."
#: Jaeger's own defaults, which ``python -m stack up --tracing`` keeps (on 127.0.0.1 only).
OTLP_HTTP_PORT = 4318
QUERY_PORT = 16686
#: Enough for a long session; when it is full, each new trace replaces the oldest.
MAX_TRACES = 10_000
#: The name the configuration gives its one storage backend.
_STORE = "memstore"
#: A folder of Jaeger UI's built assets, read when ``Jaeger`` is given none.
UI_ASSETS_ENV = "JAEGER_UI_ASSETS"
#: A W3C trace id: 32 lowercase hex digits (the access log's ``trace_id``).
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


class Span(TypedDict):
    """One span as Jaeger's query API returns it, reduced to what a test asserts on."""

    span_id: str
    #: The span's CHILD_OF parent, which may lie outside the trace Jaeger holds (a caller's span that
    #: was never exported); "" for a span without one.
    parent_id: str
    #: The exporting process's ``service.name``.
    service: str
    #: The span's name (Jaeger's ``operationName``).
    name: str
    #: ``server``, ``client``, ``internal``, ... (the ``span.kind`` tag); "" when Jaeger gives none.
    kind: str
    start_us: int
    duration_us: int
    #: The span's attributes (Jaeger's tags), by key.
    attributes: dict[str, Any]


class TraceIncomplete(AssertionError):
    """The trace did not reach Jaeger, or not with spans from every service asked for, in time.

    An AssertionError, so a test that waits for a trace fails (rather than errors) when it is missing.
    """


def jaeger_config(
    *,
    host: str,
    otlp_port: int,
    query_port: int,
    query_grpc_port: int,
    max_traces: int = MAX_TRACES,
    ui_assets: Path | None = None,
) -> dict[str, Any]:
    """Jaeger v2's configuration: OTLP/HTTP in, memory storage, the query API, all on ``host``.

    The schema is the OpenTelemetry Collector's (``service``, ``receivers``, ``exporters``,
    ``extensions``) with Jaeger's components: ``jaeger_storage`` holds the backends,
    ``jaeger_storage_exporter`` writes the pipeline's spans into one, ``jaeger_query`` reads it.
    ``ui_assets``, a folder of Jaeger UI's built assets, becomes the query extension's
    ``ui.assets_path``; without it the UI's pages are Jaeger's placeholder.
    """
    config: dict[str, Any] = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                # No batch processor: spans are stored as they arrive, so a test polls less.
                "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["jaeger_storage_exporter"]},
            },
            "telemetry": {
                # Off: otherwise the collector serves its own Prometheus metrics on port 8888.
                "metrics": {"level": "none"},
                "logs": {"level": "info"},
            },
        },
        "extensions": {
            "jaeger_storage": {"backends": {_STORE: {"memory": {"max_traces": max_traces}}}},
            "jaeger_query": {
                "storage": {"traces": _STORE},
                # Its own spans for every query would land in the same store, beside the stack's.
                "enable_tracing": False,
                "http": {"endpoint": f"{host}:{query_port}"},
                "grpc": {"endpoint": f"{host}:{query_grpc_port}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"{host}:{otlp_port}"}}}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": _STORE}},
    }
    if ui_assets is not None:
        config["extensions"]["jaeger_query"]["ui"] = {"assets_path": str(ui_assets)}
    return config


def spans_of(payload: Mapping[str, Any]) -> list[Span]:
    """The spans of a ``GET /api/traces/<id>`` answer, in start order."""
    spans: list[Span] = []
    for trace in payload.get("data") or []:
        services = {pid: p.get("serviceName", "") for pid, p in (trace.get("processes") or {}).items()}
        for raw in trace.get("spans") or []:
            tags = {tag["key"]: tag.get("value") for tag in raw.get("tags") or []}
            parent = next(
                (ref["spanID"] for ref in raw.get("references") or [] if ref.get("refType") == "CHILD_OF"), ""
            )
            spans.append(
                Span(
                    span_id=raw["spanID"],
                    parent_id=parent,
                    service=services.get(raw.get("processID", ""), ""),
                    name=raw.get("operationName", ""),
                    kind=str(tags.get("span.kind", "")),
                    start_us=int(raw.get("startTime", 0)),
                    duration_us=int(raw.get("duration", 0)),
                    attributes=tags,
                )
            )
    spans.sort(key=lambda s: (s["start_us"], s["span_id"]))
    return spans


def describe(spans: Iterable[Span]) -> str:
    """One line a span, for a failure message: ``service: name (kind) span_id <- parent_id``."""
    lines = [
        f"    {s['service']}: {s['name']} ({s['kind'] or 'no kind'}) "
        f"{s['span_id']} <- {s['parent_id'] or 'root'}"
        for s in spans
    ]
    return "\n".join(lines) or "    (no spans)"


@dataclass
class Jaeger(Running):
    """One Jaeger process: its configuration and log in ``folder`` (the log where ``log_path`` says).

    ``ui_assets``: a folder of Jaeger UI's built assets for the query extension to serve; when not
    given, the ``JAEGER_UI_ASSETS`` environment variable's, if it is set and not empty; otherwise
    none, and the UI's pages are Jaeger's placeholder.
    """

    folder: Path
    otlp_port: int = OTLP_HTTP_PORT
    query_port: int = QUERY_PORT
    host: str = "127.0.0.1"
    #: The query extension's gRPC API, unused but always started: a free port unless given.
    query_grpc_port: int | None = None
    max_traces: int = MAX_TRACES
    binary: Path = JAEGER_BINARY
    log_path: Path | None = None
    ui_assets: Path | None = None
    process: ManagedProcess | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.ui_assets is None and os.environ.get(UI_ASSETS_ENV):
            self.ui_assets = Path(os.environ[UI_ASSETS_ENV])

    @property
    def otlp_endpoint(self) -> str:
        """What the services' ``OTEL_EXPORTER_OTLP_ENDPOINT`` says (they add ``/v1/traces``)."""
        return f"http://{self.host}:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://{self.host}:{self.query_port}"

    @property
    def config_path(self) -> Path:
        return self.folder / "jaeger.yaml"

    def trace_url(self, trace_id: str) -> str:
        return f"{self.query_url}/api/traces/{trace_id}"

    def prepare(self) -> Jaeger:
        """Write the configuration and make :attr:`process` (not started yet)."""
        binary = find_program("jaeger", SETUP_HINT, explicit=self.binary)
        ui_assets = self.ui_assets.resolve() if self.ui_assets is not None else None
        if ui_assets is not None and not (ui_assets / "index.html").is_file():
            # Jaeger itself would stop at startup with a panic's stack trace.
            raise StackError(
                f"Jaeger's UI assets folder {ui_assets} has no index.html: give the build folder of "
                f"Jaeger UI (packages/jaeger-ui/build after jaeger-ui's `npm run build`), or unset "
                f"{UI_ASSETS_ENV} for the placeholder UI"
            )
        if self.query_grpc_port is None:
            self.query_grpc_port = free_port(self.host)
        config = jaeger_config(
            host=self.host,
            otlp_port=self.otlp_port,
            query_port=self.query_port,
            query_grpc_port=self.query_grpc_port,
            max_traces=self.max_traces,
            ui_assets=ui_assets,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.process = ManagedProcess(
            "Jaeger",
            [str(binary), "--config", str(self.config_path)],
            self.query_port,
            http_probe(f"{self.query_url}/api/services"),
            self.log_path or self.folder / "jaeger.log",
            extra_ports={
                "Jaeger's OTLP/HTTP receiver": self.otlp_port,
                "Jaeger's query gRPC API": self.query_grpc_port,
            },
            cwd=self.folder,
        )
        return self

    def start(self) -> Jaeger:
        if self.process is None:
            self.prepare()
        assert self.process is not None
        self.process.start(self.host)
        self.process.wait_ready()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def trace(self, trace_id: str, *, services: Iterable[str] = (), timeout: float = 15.0) -> list[Span]:
        """The spans of trace ``trace_id`` once it holds spans from every one of ``services``.

        Polls the query API until then; raises :class:`TraceIncomplete`, listing the spans found,
        when ``timeout`` seconds pass first.
        """
        if not _TRACE_ID.fullmatch(trace_id):
            raise ValueError(f"a trace id is 32 lowercase hex digits, not {trace_id!r}")
        wanted = set(services)
        url = self.trace_url(trace_id)
        deadline = time.monotonic() + timeout
        spans: list[Span] = []
        last_answer = "no answer yet"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                try:
                    response = client.get(url)
                except httpx.HTTPError as exc:
                    if self.process is not None and not self.process.running:
                        raise StackError(f"Jaeger has stopped; see {self.process.log_path}") from None
                    last_answer = f"{type(exc).__name__}: {exc}"
                else:
                    last_answer = f"HTTP {response.status_code}"
                    if response.status_code == 200:
                        spans = spans_of(response.json())
                        if spans and wanted <= {s["service"] for s in spans}:
                            return spans
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
        found = sorted({s["service"] for s in spans})
        missing = sorted(wanted - set(found))
        raise TraceIncomplete(
            f"trace {trace_id} is not complete in Jaeger after {timeout:g}s ({url}, last answer "
            f"{last_answer}): "
            + (f"no spans from {', '.join(missing)}" if missing else "no spans at all")
            + f"; found {len(spans)} span(s) from {', '.join(found) or 'no service'}:\n{describe(spans)}"
        )
