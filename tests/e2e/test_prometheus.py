"""A real Prometheus (Debian's package) scrapes the running stack's verifier and oauth2-proxy with
deploy/prometheus/prometheus.yml and its rules; after real traffic through nginx (bearer tokens,
refusals, a browser session), every expression of the rules and of the Grafana dashboard returns data.

Only the scrape targets and the intervals of the configuration are changed for the test: the
targets are the stack's free ports, and one-second intervals let the rules see rates within seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stack.launcher import Stack
from stack.topology import free_port
from tests import prometheus_files as files
from tests.e2e import edge_client
from tests.support import prometheus
from tests.support.prometheus import Prometheus

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def prometheus_server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    storage = tmp_path_factory.mktemp("prometheus")
    topology = stack.topology
    assert topology.oauth2_proxy_metrics_port is not None, "the e2e stack exports oauth2-proxy's metrics"
    config = prometheus.configuration(storage, {
        files.VERIFIER_JOB: f"{topology.bind_host}:{topology.verifier_metrics_port}",
        files.OAUTH2_PROXY_JOB: f"{topology.bind_host}:{topology.oauth2_proxy_metrics_port}",
    })  # fmt: skip
    address = f"127.0.0.1:{free_port()}"
    with prometheus.running(config, storage, address, f"http://{address}") as server:
        yield server


@dataclass
class Traffic:
    """Requests through nginx, as real callers make them: every kind the rules and panels count."""

    stack: Stack

    def __post_init__(self) -> None:
        self.anonymous = edge_client.new_client(self.stack)
        self.alice = edge_client.sign_in(self.stack, "alice@contoso-dev.example", "alice-password")
        self.origin = self.stack.topology.public_origin

    def burst(self) -> None:
        # A fresh token each burst: the stack's tokens live 20 s. The first use is a cache miss,
        # the following ones hits.
        token = edge_client.client_credentials_token(self.stack)
        for _ in range(3):
            response = self.anonymous.get(
                self.origin + "/api/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
        refused = self.anonymous.get(
            self.origin + "/api/me", headers={"Authorization": f"Bearer {edge_client.forged(token)}"}
        )
        assert refused.status_code == 401 and refused.json()["reason"] == "bad_signature", refused.text
        anonymous = self.anonymous.get(self.origin + "/api/me")
        assert anonymous.status_code == 401 and anonymous.json()["reason"] == "missing_token", anonymous.text
        session = self.alice.client.get(self.origin + "/api/me")
        assert session.status_code == 200 and session.json()["auth_source"] == "session", session.text

    def close(self) -> None:
        self.anonymous.close()
        self.alice.client.close()


def test_prometheus_scrapes_the_verifier_and_oauth2_proxy(prometheus_server: Prometheus):
    server = prometheus_server
    up = edge_client.wait_until(lambda: prometheus.both_jobs_up(server), timeout=prometheus.DEADLINE_SECONDS)
    assert up, server.api("targets")
    assert prometheus.problem(server.query('verifier_ready{job="verifier"} == 1')) is None
    assert prometheus.problem(server.query('process_start_time_seconds{job="verifier"}')) is None
    assert prometheus.problem(server.query('verifier_jwks_keys{job="verifier"} > 0')) is None
    assert server.query('{job="verifier",__name__=~".+_created"}')["data"]["result"] == []


def test_every_rule_and_dashboard_expression_returns_data_after_traffic(
    stack: Stack, prometheus_server: Prometheus
):
    traffic = Traffic(stack)
    try:
        failing = prometheus.every_expression_answers(prometheus_server, traffic.burst)
    finally:
        traffic.close()
    assert not failing, failing


def test_every_rule_evaluates_without_error_and_alert_expressions_run_as_written(
    prometheus_server: Prometheus,
):
    server = prometheus_server
    for rule in files.alert_rules():
        answer = server.query(rule["expr"])
        assert answer["status"] == "success", (rule["alert"], answer)

    def all_evaluated() -> bool:
        rules = [rule for group in server.api("rules")["groups"] for rule in group["rules"]]
        return len(rules) == len(files.recording_rules()) + len(files.alert_rules()) and all(
            rule["health"] == "ok" for rule in rules
        )

    assert edge_client.wait_until(all_evaluated, timeout=prometheus.DEADLINE_SECONDS), server.api("rules")
    rules = [rule for group in server.api("rules")["groups"] for rule in group["rules"]]
    assert all(not rule.get("lastError") for rule in rules), rules
