"""A real Prometheus (Debian's package) for the end-to-end tests, and what they ask it.

It runs deploy/prometheus/prometheus.yml with one-second intervals (so the rules see rates within
seconds) and absolute rule paths; the caller may change the targets and may start it inside another
network namespace (``prefix``: e.g. ``nsenter --net=...`` to scrape a container task's localhost).
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests import prometheus_files as files
from tests.e2e import edge_client

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


def configuration(storage: Path, targets: Mapping[str, str] | None = None) -> Path:
    """deploy/prometheus/prometheus.yml with 1 s intervals, absolute rule paths and, if given, other
    targets (job name -> host:port)."""
    config = files.scrape_config()
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(path) for path in files.rule_files()]
    for job in config["scrape_configs"]:
        if targets is not None:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = storage / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@contextmanager
def running(
    config: Path, storage: Path, listen: str, url: str, prefix: Sequence[str] = ()
) -> Iterator[Prometheus]:
    """Prometheus listening on ``listen``, reached by the tests at ``url``; stopped afterwards."""
    log = storage / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *prefix,
                files.prometheus_binary(),
                f"--config.file={config}",
                f"--storage.tsdb.path={storage / 'data'}",
                f"--web.listen-address={listen}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(url, process, log)

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


@dataclass(frozen=True)
class Expression:
    where: str
    promql: str


def expressions() -> list[Expression]:
    """Every recording rule (and its recorded series), alert and dashboard query of deploy/."""
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


def every_expression_answers(prometheus: Prometheus, burst: Callable[[], None]) -> dict[str, str]:
    """Traffic bursts until every expression returns data (or the deadline); what still fails."""
    wanted = expressions()
    last: dict[str, str | None] = {}

    def with_burst() -> bool:
        burst()
        for expression in wanted:
            last[expression.where + ": " + expression.promql] = problem(prometheus.query(expression.promql))
        return not any(last.values())

    edge_client.wait_until(with_burst, timeout=DEADLINE_SECONDS, interval=0.5)
    return {where: why for where, why in last.items() if why}


def both_jobs_up(prometheus: Prometheus) -> bool:
    targets = prometheus.api("targets")["activeTargets"]
    return sorted((t["labels"]["job"], t["health"]) for t in targets) == [
        (files.OAUTH2_PROXY_JOB, "up"),
        (files.VERIFIER_JOB, "up"),
    ]
