"""What the launcher tells each component about tracing: nothing when it is off; with an OTLP endpoint,
the OpenTelemetry SDK settings for the verifier and the API, the verifier's span relay and nginx's
syslog target for its spans, all from the one Topology."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from stack import render
from stack.__main__ import _parser, stack_from_args
from stack.jaeger import Jaeger
from stack.launcher import COMPONENTS, Stack
from stack.processes import StackError
from stack.scaleout import SHARED_COMPONENTS, ScaleOutStack
from stack.topology import Topology, free_port_topology

SECRETS = render.Secrets(identity_signing_key="k" * 43, cookie_secret="c" * 43)
ENDPOINT = "http://127.0.0.1:14318"


def _service_envs(topo: Topology, tmp_path: Path) -> dict[str, dict[str, str]]:
    ca = tmp_path / "ca.pem"
    return {
        "verifier": render.verifier_env(topo, ca, SECRETS),
        "api": render.api_env(topo, ca, SECRETS),
    }


def test_without_an_otlp_endpoint_no_component_is_told_about_tracing(tmp_path: Path) -> None:
    topo = Topology(run_dir=tmp_path)
    assert topo.otlp_endpoint is None and not topo.tracing
    for name, env in _service_envs(topo, tmp_path).items():
        assert [key for key in env if key.startswith("OTEL_")] == [], name
        assert "VERIFIER_EDGE_SPANS_LISTEN" not in env, name
    assert render.edge_values(topo)["EDGE_SPAN_LOG"] == "/dev/null"
    assert render.tracing_env(topo) == {}
    assert "verifier edge spans (UDP)" not in topo.ports()


def test_with_an_otlp_endpoint_the_services_export_there_over_http_protobuf_every_200_ms(
    tmp_path: Path,
) -> None:
    topo = Topology(run_dir=tmp_path, otlp_endpoint=ENDPOINT, span_relay_port=19200)
    sdk = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    envs = _service_envs(topo, tmp_path)
    assert {k: v for k, v in envs["api"].items() if k.startswith("OTEL_")} == sdk
    assert {k: v for k, v in envs["verifier"].items() if k.startswith("OTEL_")} == sdk
    assert envs["verifier"]["VERIFIER_EDGE_SPANS_LISTEN"] == "127.0.0.1:19200"
    assert "VERIFIER_EDGE_SPANS_LISTEN" not in envs["api"]


def test_with_tracing_on_nginx_sends_its_spans_to_the_verifiers_relay_as_syslog(tmp_path: Path) -> None:
    topo = Topology(run_dir=tmp_path, otlp_endpoint=ENDPOINT, span_relay_port=19200)
    assert (
        render.edge_values(topo)["EDGE_SPAN_LOG"] == "syslog:server=127.0.0.1:19200,nohostname,tag=edge_span"
    )
    assert topo.ports()["verifier edge spans (UDP)"] == 19200


def test_a_free_port_topology_gives_the_span_relay_a_port_of_its_own(tmp_path: Path) -> None:
    topo = free_port_topology(tmp_path, otlp_endpoint=ENDPOINT)
    others = set(replace(topo, otlp_endpoint=None).ports().values())
    assert topo.span_relay_port not in others
    assert len(others) == 7


def test_every_task_of_the_multi_task_stack_has_its_own_span_relay_and_one_jaeger(tmp_path: Path) -> None:
    jaeger = Jaeger(tmp_path / "jaeger", otlp_port=14318, query_port=16687)
    base = free_port_topology(tmp_path, otlp_endpoint=jaeger.otlp_endpoint)
    stack = ScaleOutStack(base, 3, jaeger=jaeger)
    relays = [task.topology.span_relay_port for task in stack.tasks]
    assert len(set(relays)) == 3 and base.span_relay_port not in relays
    assert {task.topology.otlp_endpoint for task in stack.tasks} == {jaeger.otlp_endpoint}
    assert stack.shared.jaeger is jaeger
    assert SHARED_COMPONENTS[0] == "jaeger"


def test_jaeger_starts_first_and_stops_last() -> None:
    assert COMPONENTS[0] == "jaeger"


def test_a_stack_refuses_a_jaeger_its_topology_does_not_send_traces_to(tmp_path: Path) -> None:
    jaeger = Jaeger(tmp_path / "jaeger", otlp_port=14318, query_port=16687)
    stack = Stack(Topology(run_dir=tmp_path), jaeger=jaeger)
    with pytest.raises(StackError, match=r"given a Jaeger at http://127.0.0.1:14318 but its topology"):
        stack.prepare()
    assert stack.processes == {}
    assert not (tmp_path / "tls").exists(), "refused before any file was written"


def test_make_run_has_no_jaeger_and_no_otlp_endpoint(tmp_path: Path) -> None:
    stack = stack_from_args(_parser().parse_args(["up", "--run-dir", str(tmp_path)]))
    assert isinstance(stack, Stack)
    assert stack.jaeger is None and stack.topology.otlp_endpoint is None


def test_tracing_on_the_command_line_starts_jaeger_on_its_usual_ports_bound_to_127_0_0_1(
    tmp_path: Path,
) -> None:
    stack = stack_from_args(_parser().parse_args(["up", "--run-dir", str(tmp_path), "--tracing"]))
    assert isinstance(stack, Stack) and stack.jaeger is not None
    assert (stack.jaeger.host, stack.jaeger.otlp_port, stack.jaeger.query_port) == ("127.0.0.1", 4318, 16686)
    assert stack.topology.otlp_endpoint == stack.jaeger.otlp_endpoint == "http://127.0.0.1:4318"
    assert stack.topology.span_relay_port == 9200
    assert stack.jaeger.log_path == tmp_path / "logs" / "jaeger.log"


def test_tracing_with_a_base_port_counts_its_ports_on_after_postgres(tmp_path: Path) -> None:
    args = ["up", "--run-dir", str(tmp_path), "--tracing", "--base-port", "18000"]
    stack = stack_from_args(_parser().parse_args(args))
    assert isinstance(stack, Stack) and stack.jaeger is not None
    t = stack.topology
    assert (t.postgres_port, t.span_relay_port) == (18007, 18008)
    assert (stack.jaeger.otlp_port, stack.jaeger.query_port) == (18009, 18010)
    assert t.otlp_endpoint == "http://127.0.0.1:18009"
