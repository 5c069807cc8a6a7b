"""A real Prometheus (Debian's package) scrapes the running stack's verifier and oauth2-proxy with
deploy/prometheus/prometheus.yml and its rules; after real traffic through nginx (bearer tokens,
refusals, a browser session), every expression of the rules and of the Grafana dashboard returns data.

Only the scrape targets and the intervals of the configuration are changed for the test: the
targets are the stack's free ports, and one-second intervals let the rules see rates within seconds.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stack.launcher import Stack
from stack.topology import free_port
from tests import prometheus_files as files
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

#: Generous: Prometheus needs a few scrapes and rule evaluations after the first traffic, on a
#: machine shared with other test runs.
DEADLINE_SECONDS = 90.0


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10.0)
        return response.json()

    def api(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/{path}", timeout=10.0)
        assert response.status_code == 200, response.text
        return response.json()["data"]


def prometheus_configuration(stack: Stack, storage: Path) -> Path:
    """deploy/prometheus/prometheus.yml with the stack's targets, 1 s intervals, absolute rule paths."""
    config = files.scrape_config()
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(path) for path in files.rule_files()]
    topology = stack.topology
    assert topology.oauth2_proxy_metrics_port is not None, "the e2e stack exports oauth2-proxy's metrics"
    targets = {
        files.VERIFIER_JOB: f"{topology.bind_host}:{topology.verifier_metrics_port}",
        files.OAUTH2_PROXY_JOB: f"{topology.bind_host}:{topology.oauth2_proxy_metrics_port}",
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = storage / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    storage = tmp_path_factory.mktemp("prometheus")
    config = prometheus_configuration(stack, storage)
    address = f"127.0.0.1:{free_port()}"
    log = storage / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                files.prometheus_binary(),
                f"--config.file={config}",
                f"--storage.tsdb.path={storage / 'data'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://{address}", process, log)

    def ready() -> bool:
        assert process.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        assert edge_client.wait_until(ready, timeout=DEADLINE_SECONDS), log.read_text()[-2000:]
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def forged(token: str) -> str:
    """``token`` with one character in the middle of its signature changed: still well formed."""
    signed, signature = token.rsplit(".", 1)
    middle = len(signature) // 2
    changed = "B" if signature[middle] != "B" else "C"
    return f"{signed}.{signature[:middle]}{changed}{signature[middle + 1 :]}"


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
            self.origin + "/api/me", headers={"Authorization": f"Bearer {forged(token)}"}
        )
        assert refused.status_code == 401 and refused.json()["reason"] == "bad_signature", refused.text
        anonymous = self.anonymous.get(self.origin + "/api/me")
        assert anonymous.status_code == 401 and anonymous.json()["reason"] == "missing_token", anonymous.text
        session = self.alice.client.get(self.origin + "/api/me")
        assert session.status_code == 200 and session.json()["auth_source"] == "session", session.text

    def close(self) -> None:
        self.anonymous.close()
        self.alice.client.close()


@dataclass(frozen=True)
class Expression:
    where: str
    promql: str


def expressions() -> list[Expression]:
    found = [Expression(f"recording rule {r['record']}", r["expr"]) for r in files.recording_rules()]
    found += [Expression(f"recorded series {r['record']}", r["record"]) for r in files.recording_rules()]
    found += [
        Expression(f"alert {r['alert']} (comparisons as bool)", files.with_bool_comparisons(r["expr"]))
        for r in files.alert_rules()
    ]
    found += [Expression(f"dashboard: {q.panel}", q.promql) for q in files.dashboard_queries()]
    return found


def problem(answer: dict[str, Any]) -> str | None:
    """None when the query succeeded with at least one finite sample; else what is wrong."""
    if answer.get("status") != "success":
        return f"error {answer.get('errorType')}: {answer.get('error')}"
    samples = answer["data"]["result"]
    if not samples:
        return "no data"
    if not any(math.isfinite(float(sample["value"][1])) for sample in samples):
        return f"only NaN or infinite values: {samples}"
    return None


def wait_with_traffic(traffic: Traffic, condition: Callable[[], bool]) -> bool:
    def with_burst() -> bool:
        traffic.burst()
        return condition()

    return edge_client.wait_until(with_burst, timeout=DEADLINE_SECONDS, interval=0.5)


def test_prometheus_scrapes_the_verifier_and_oauth2_proxy(prometheus: Prometheus):
    def both_up() -> bool:
        targets = prometheus.api("targets")["activeTargets"]
        return sorted((t["labels"]["job"], t["health"]) for t in targets) == [
            (files.OAUTH2_PROXY_JOB, "up"),
            (files.VERIFIER_JOB, "up"),
        ]

    assert edge_client.wait_until(both_up, timeout=DEADLINE_SECONDS), prometheus.api("targets")
    assert problem(prometheus.query('verifier_ready{job="verifier"} == 1')) is None
    assert problem(prometheus.query('process_start_time_seconds{job="verifier"}')) is None
    assert problem(prometheus.query('verifier_jwks_keys{job="verifier"} > 0')) is None
    assert prometheus.query('{job="verifier",__name__=~".+_created"}')["data"]["result"] == []


def test_every_rule_and_dashboard_expression_returns_data_after_traffic(stack: Stack, prometheus: Prometheus):
    wanted = expressions()
    last: dict[str, str | None] = {}

    def all_answer() -> bool:
        for expression in wanted:
            last[expression.where + ": " + expression.promql] = problem(prometheus.query(expression.promql))
        return not any(last.values())

    traffic = Traffic(stack)
    try:
        answered = wait_with_traffic(traffic, all_answer)
    finally:
        traffic.close()
    failing = {where: why for where, why in last.items() if why}
    assert answered and not failing, failing


def test_every_rule_evaluates_without_error_and_alert_expressions_run_as_written(prometheus: Prometheus):
    for rule in files.alert_rules():
        answer = prometheus.query(rule["expr"])
        assert answer["status"] == "success", (rule["alert"], answer)

    def all_evaluated() -> bool:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return len(rules) == len(files.recording_rules()) + len(files.alert_rules()) and all(
            rule["health"] == "ok" for rule in rules
        )

    assert edge_client.wait_until(all_evaluated, timeout=DEADLINE_SECONDS), prometheus.api("rules")
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert all(not rule.get("lastError") for rule in rules), rules
