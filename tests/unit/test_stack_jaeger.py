"""stack.jaeger against the real Jaeger binary: a trace sent over OTLP/HTTP comes back through the query
API, parent links and services intact, and nothing it opens listens beyond 127.0.0.1; a folder of UI
assets, given or from JAEGER_UI_ASSETS, is what Jaeger serves as its web UI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from stack.jaeger import JAEGER_BINARY, UI_ASSETS_ENV, Jaeger, TraceIncomplete, jaeger_config
from stack.processes import StackError
from stack.topology import free_port
from tests.prerequisites import require_file


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    require_file(JAEGER_BINARY, "scripts/setup.sh builds it")
    with Jaeger(tmp_path_factory.mktemp("jaeger"), otlp_port=free_port(), query_port=free_port()) as running:
        yield running


def _provider(jaeger: Jaeger, service: str) -> TracerProvider:
    """A service's tracer provider that exports each span as it ends, as the services do (in batches)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_endpoint}/v1/traces", timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_a_trace_from_two_services_comes_back_with_its_parent_link_services_and_attributes(
    jaeger: Jaeger,
) -> None:
    edge, api = _provider(jaeger, "test-edge"), _provider(jaeger, "test-api")
    try:
        with edge.get_tracer("test").start_as_current_span("GET /api/me", kind=SpanKind.SERVER) as root:
            with api.get_tracer("test").start_as_current_span(
                "read profile", kind=SpanKind.CLIENT, attributes={"enduser.id": "user-1", "db.rows": 3}
            ) as child:
                pass
    finally:
        edge.shutdown()
        api.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")
    child_id = format(child.get_span_context().span_id, "016x")

    spans = jaeger.trace(trace_id, services=("test-edge", "test-api"), timeout=10)

    assert [(s["service"], s["name"], s["kind"]) for s in spans] == [
        ("test-edge", "GET /api/me", "server"),
        ("test-api", "read profile", "client"),
    ]
    parent, sub = spans
    assert (parent["span_id"], parent["parent_id"]) == (root_id, "")
    assert (sub["span_id"], sub["parent_id"]) == (child_id, root_id)
    assert sub["attributes"]["enduser.id"] == "user-1"
    assert sub["attributes"]["db.rows"] == 3
    assert parent["start_us"] <= sub["start_us"]
    assert sub["start_us"] + sub["duration_us"] <= parent["start_us"] + parent["duration_us"]


def test_a_missing_service_fails_the_wait_naming_what_was_found(jaeger: Jaeger) -> None:
    edge = _provider(jaeger, "test-edge")
    try:
        with edge.get_tracer("test").start_as_current_span("GET /readyz") as root:
            pass
    finally:
        edge.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")

    with pytest.raises(TraceIncomplete) as failure:
        jaeger.trace(trace_id, services=("test-edge", "verifier"), timeout=1)

    message = str(failure.value)
    assert f"trace {trace_id} is not complete" in message
    assert "no spans from verifier" in message
    assert "found 1 span(s) from test-edge" in message
    assert "test-edge: GET /readyz" in message


def test_a_trace_that_never_arrives_fails_and_a_malformed_id_is_refused(jaeger: Jaeger) -> None:
    with pytest.raises(TraceIncomplete, match=r"no spans at all; found 0 span\(s\)"):
        jaeger.trace("0af7651916cd43dd8448eb211c80319c", timeout=0.5)
    with pytest.raises(ValueError, match="32 lowercase hex digits"):
        jaeger.trace("not-a-trace-id")


def _listening(pid: int) -> list[str]:
    """``address:port`` of every TCP socket ``pid`` listens on and every UDP socket it holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and (table.startswith("udp") or state == "0A"):  # 0A: LISTEN
                address, port = local.split(":")
                found.append(f"{_address(address)}:{int(port, 16)}")
    return sorted(found)


def _address(hex_address: str) -> str:
    if len(hex_address) == 8:  # IPv4, little-endian
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return "[ipv6 " + hex_address + "]"


def test_every_socket_jaeger_opens_is_on_127_0_0_1_and_its_ports_are_the_ones_given(jaeger: Jaeger) -> None:
    assert jaeger.process is not None and jaeger.process.pid is not None
    assert _listening(jaeger.process.pid) == sorted(
        f"127.0.0.1:{port}" for port in (jaeger.otlp_port, jaeger.query_port, jaeger.query_grpc_port)
    )


_PORTS = {"host": "127.0.0.1", "otlp_port": 14318, "query_port": 16687, "query_grpc_port": 16688}


def test_the_configuration_names_a_ui_assets_folder_only_when_given_one(tmp_path: Path) -> None:
    assert "ui" not in jaeger_config(**_PORTS)["extensions"]["jaeger_query"]
    assert "ui" not in jaeger_config(**_PORTS, ui_assets=None)["extensions"]["jaeger_query"]
    query = jaeger_config(**_PORTS, ui_assets=tmp_path / "build")["extensions"]["jaeger_query"]
    assert query["ui"] == {"assets_path": str(tmp_path / "build")}


def _fake_ui(folder: Path) -> Path:
    """A stand-in for Jaeger UI's build: an index.html with the line Jaeger fills in, and one asset."""
    (folder / "static").mkdir(parents=True)
    (folder / "index.html").write_text(
        "<!doctype html><title>edge test UI</title><script>JAEGER_VERSION = DEFAULT_VERSION;</script>\n",
        encoding="utf-8",
    )
    (folder / "static" / "app.js").write_text("console.log('edge test UI');\n", encoding="utf-8")
    return folder


def _written_query_extension(jaeger: Jaeger) -> dict[str, object]:
    return yaml.safe_load(jaeger.config_path.read_text(encoding="utf-8"))["extensions"]["jaeger_query"]


def _any_executable(tmp_path: Path) -> Path:
    """prepare() only checks that the binary is an executable file; it does not run it."""
    binary = tmp_path / "jaeger-binary"
    binary.write_text("#!/bin/sh\n", encoding="utf-8")
    binary.chmod(0o755)
    return binary


def test_the_ui_assets_folder_comes_from_jaeger_ui_assets_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env, given = _fake_ui(tmp_path / "from-env"), _fake_ui(tmp_path / "given")
    binary = _any_executable(tmp_path)
    monkeypatch.setenv(UI_ASSETS_ENV, str(from_env))

    jaeger = Jaeger(tmp_path / "a", query_grpc_port=16688, binary=binary).prepare()
    assert jaeger.ui_assets == from_env
    assert _written_query_extension(jaeger)["ui"] == {"assets_path": str(from_env)}

    jaeger = Jaeger(tmp_path / "b", query_grpc_port=16688, binary=binary, ui_assets=given).prepare()
    assert _written_query_extension(jaeger)["ui"] == {"assets_path": str(given)}


@pytest.mark.parametrize("value", [None, ""])
def test_without_a_folder_or_jaeger_ui_assets_the_configuration_has_no_ui_assets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(UI_ASSETS_ENV, raising=False)
    else:
        monkeypatch.setenv(UI_ASSETS_ENV, value)
    jaeger = Jaeger(tmp_path, query_grpc_port=16688, binary=_any_executable(tmp_path)).prepare()
    assert jaeger.ui_assets is None
    assert "ui" not in _written_query_extension(jaeger)


def test_a_ui_assets_folder_without_index_html_is_refused_before_jaeger_starts(tmp_path: Path) -> None:
    jaeger = Jaeger(tmp_path / "jaeger", binary=_any_executable(tmp_path), ui_assets=tmp_path / "empty")
    with pytest.raises(StackError, match=r"has no index\.html.*or unset JAEGER_UI_ASSETS"):
        jaeger.prepare()
    assert jaeger.process is None and not jaeger.config_path.exists()


def test_jaeger_serves_its_ui_pages_and_assets_from_the_folder_given(tmp_path: Path) -> None:
    require_file(JAEGER_BINARY, "scripts/setup.sh builds it")
    assets = _fake_ui(tmp_path / "build")
    with Jaeger(
        tmp_path / "jaeger", otlp_port=free_port(), query_port=free_port(), ui_assets=assets
    ) as jaeger:
        with httpx.Client(base_url=jaeger.query_url, timeout=5, trust_env=False) as client:
            page = client.get("/trace/0af7651916cd43dd8448eb211c80319c")
            asset = client.get("/static/app.js")
            api = client.get("/api/services")
    # Every UI route is index.html, with Jaeger's version filled in where the build leaves a default.
    assert page.status_code == 200 and "<title>edge test UI</title>" in page.text
    assert "DEFAULT_VERSION" not in page.text and "JAEGER_VERSION = {" in page.text
    assert asset.status_code == 200 and asset.text == "console.log('edge test UI');\n"
    assert api.status_code == 200 and "data" in api.json()
