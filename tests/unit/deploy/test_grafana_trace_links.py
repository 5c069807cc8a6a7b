"""deploy/grafana/verifier-dashboard.json and the traces: the verifier exports no Prometheus exemplars,
so no point of a latency graph names a trace; the latency panel links instead to the trace backend's
search for the verifier's traces slower than its objective, in Jaeger (compose.yaml's tracing
profile, or any Jaeger at $traces_url) and in X-Ray (the CloudFormation parameter Tracing=xray)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests import prometheus_files as files
from tests.unit.deploy.conftest import REPO

LATENCY_PANEL = "Verify latency p50 / p99 by source"


@pytest.fixture(scope="module")
def board() -> dict:
    return files.dashboard()


@pytest.fixture(scope="module")
def panel(board) -> dict:
    (found,) = [p for p in board["panels"] if p["title"] == LATENCY_PANEL]
    return found


@pytest.fixture(scope="module")
def variables(board) -> dict[str, dict]:
    return {v["name"]: v for v in board["templating"]["list"]}


def link(panel: dict, backend: str) -> str:
    (url,) = [entry["url"] for entry in panel["links"] if backend in entry["title"]]
    return url


def objective_seconds(panel: dict) -> float:
    match = re.search(r"Objective: p99 under (\d+) ms", panel["description"])
    assert match, "the panel states its objective"
    return int(match.group(1)) / 1000


def test_the_verifier_exports_no_exemplars_so_the_panel_links_to_a_search_instead(panel):
    # A histogram observed with exemplars would let Grafana link a point to its trace; the verifier
    # observes none (and exemplars are only served in the OpenMetrics format anyway).
    observing = [path for path in (REPO / "verifier").rglob("*.py") if "exemplar" in path.read_text()]
    assert observing == []
    assert "no Prometheus exemplars" in panel["description"]
    assert all(entry["targetBlank"] for entry in panel["links"])


def test_jaeger_link_searches_the_verifiers_traces_slower_than_the_objective_in_the_time_range(panel):
    url = link(panel, "Jaeger")
    base, _, query = url.partition("?")
    assert base == "${traces_url}"
    params = {name: values[0] for name, values in parse_qs(query).items()}
    assert params["service"] == "verifier"
    minimum = re.fullmatch(r"(\d+)ms", params["minDuration"])
    assert minimum and int(minimum.group(1)) / 1000 == objective_seconds(panel)
    # Jaeger counts microseconds; Grafana's ${__from} and ${__to} are milliseconds.
    assert (params["start"], params["end"]) == ("${__from}000", "${__to}000")


def test_traces_url_defaults_to_the_query_api_of_composes_jaeger(variables):
    traces = variables["traces_url"]
    assert traces["type"] == "textbox"
    default = traces["query"]
    assert traces["current"]["value"] == default
    config = yaml.safe_load((REPO / "deploy" / "docker" / "jaeger.yaml").read_text(encoding="utf-8"))
    port = config["extensions"]["jaeger_query"]["http"]["endpoint"].rsplit(":", 1)[1]
    # compose publishes Jaeger's query port on this machine's loopback (JAEGER_PORT's default).
    compose = (REPO / "compose.yaml").read_text(encoding="utf-8")
    assert f'"127.0.0.1:${{JAEGER_PORT:-{port}}}:{port}"' in compose
    assert default == f"http://127.0.0.1:{port}/api/traces"


def test_xray_link_opens_the_trace_map_of_the_chosen_region(panel, variables, example_values):
    url = urlsplit(link(panel, "X-Ray"))
    assert (url.scheme, url.netloc, url.path) == ("https", "console.aws.amazon.com", "/cloudwatch/home")
    assert parse_qs(url.query) == {"region": ["${aws_region}"]}
    assert url.fragment == "xray:service-map/map"
    region = variables["aws_region"]
    assert region["type"] == "textbox" and region["query"] == example_values["REGION"]
    # The map gives no latency filter: the description says how to find the slow traces there.
    assert 'service("verifier") { responsetime > 0.05 }' in panel["description"]
    assert objective_seconds(panel) == 0.05


def test_every_variable_a_link_uses_is_defined(panel, variables):
    builtin = {"__from", "__to"}
    for entry in panel["links"]:
        used = set(re.findall(r"\$\{(\w+)\}", entry["url"]))
        assert used - builtin <= set(variables), entry["title"]
