"""Tracing on beside tracing off: the edge exporting every request's spans to a collector.

The stack itself runs with tracing off (the default), so its rows (``edge_bearer``, ``edge_cookie``)
are the "off" figures. Beside them: a second verifier and a second API of the stack's own code and
configuration with tracing on (``OTEL_EXPORTER_OTLP_ENDPOINT``, the SDK's default batching, every
request sampled: nginx starts each trace with the sampled flag), an edge nginx from the real template
writing its span records to that verifier's relay (``EDGE_SPAN_LOG``), a third set keeping 5 % of the
traces (``OTEL_TRACES_SAMPLER=traceidratio``, as docs/tracing.md advises for a busy service), and
Jaeger as the collector of both,
standing where the task's ADOT collector stands on ECS. Jaeger is one of the measured processes, so
the collector's CPU counts in the rows' totals and is shown on its own in the component table.
"""

from __future__ import annotations

from pathlib import Path

from bench.edge.peers import edge_nginx, extra_api, extra_verifier
from stack.jaeger import Jaeger
from stack.launcher import Stack
from stack.processes import ManagedProcess
from stack.topology import free_port

#: The component name of the collector in the harness's CPU table.
COLLECTOR = "Jaeger (collector)"


def collector(folder: Path) -> Jaeger:
    """Jaeger on free ports, prepared (its process made, not started)."""
    jaeger = Jaeger(folder, otlp_port=free_port(), query_port=free_port())
    jaeger.prepare()
    assert jaeger.process is not None
    jaeger.process.name = COLLECTOR
    return jaeger


#: The share of traces the sampled variant keeps (docs/tracing.md's advice for a busy service; the
#: harness's row label says 5 %).
SAMPLED_RATIO = "0.05"


def _tracing_env(jaeger: Jaeger, sampled: bool) -> dict[str, str]:
    # The SDK's defaults otherwise (a batch every 5 s or every 512 spans), as in production.
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    if sampled:
        env |= {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": SAMPLED_RATIO}
    return env


def _label(sampled: bool) -> str:
    return f"tracing on, {float(SAMPLED_RATIO):.0%} kept" if sampled else "tracing on"


def traced_verifier(
    stack: Stack, folder: Path, jaeger: Jaeger, relay_port: int, *, sampled: bool = False
) -> ManagedProcess:
    """The stack's verifier, configured alike, with tracing on and nginx's span relay on ``relay_port``
    (every trace kept, or ``SAMPLED_RATIO`` of them by trace id when ``sampled``)."""
    env = {**_tracing_env(jaeger, sampled), "VERIFIER_EDGE_SPANS_LISTEN": f"127.0.0.1:{relay_port}"}
    return extra_verifier(stack, folder, f"verifier ({_label(sampled)})", env)


def traced_api(stack: Stack, folder: Path, jaeger: Jaeger, *, sampled: bool = False) -> ManagedProcess:
    """The stack's API, configured alike (its own SQLite file), with tracing on."""
    return extra_api(stack, folder, f"our API ({_label(sampled)})", _tracing_env(jaeger, sampled))


def traced_edge_nginx(
    stack: Stack,
    folder: Path,
    verifier: ManagedProcess,
    api: ManagedProcess,
    relay_port: int,
    *,
    sampled: bool = False,
) -> ManagedProcess:
    """The edge nginx in front of the traced verifier and API, writing its span records to the relay."""
    return edge_nginx(
        stack,
        folder,
        verifier_addr=f"127.0.0.1:{verifier.port}",
        api_addr=f"127.0.0.1:{api.port}",
        span_log=f"syslog:server=127.0.0.1:{relay_port},nohostname,tag=edge_span",
        name=f"edge nginx ({_label(sampled)})",
    )
