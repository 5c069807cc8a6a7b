"""deploy/prometheus and deploy/grafana: Prometheus's own checker and rule unit tests pass, and every
series the rules and the dashboard read is one the verifier exports or a rule records.

That the expressions also return data from a real Prometheus scraping the real stack is
tests/e2e/test_prometheus.py.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests import prometheus_files as files
from verifier.service.metrics import VerifierMetrics

#: Series from outside the verifier: Prometheus's own per-target series and oauth2-proxy's.
EXTERNAL_SERIES = {"up"}
EXTERNAL_PREFIXES = ("oauth2_proxy_",)


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [files.promtool(), *args],
        cwd=files.PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verifier_series_names() -> set[str]:
    """Every sample name the verifier's /metrics can carry, from its registry's families."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names: set[str] = set()
    for family in VerifierMetrics().registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_scrape_configuration_and_its_rule_files_pass_promtool_check_config():
    result = run_promtool("check", "config", files.SCRAPE_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(files.rule_files())} rule files found" in result.stdout


def test_rule_files_pass_promtool_check_rules():
    result = run_promtool("check", "rules", *(str(path) for path in files.rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


def test_recording_and_alert_rules_pass_their_promtool_unit_tests():
    result = run_promtool("test", "rules", str(files.RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_scrape_configuration_has_the_job_names_the_rules_expect():
    jobs = {job["job_name"] for job in files.scrape_config()["scrape_configs"]}
    assert jobs == {files.VERIFIER_JOB, files.OAUTH2_PROXY_JOB}


def test_every_alert_fires_in_a_rule_unit_test():
    tests = yaml.safe_load(files.RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", ())
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in files.alert_rules()} <= firing


@pytest.mark.parametrize("rule", files.alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_compares_its_signal_with_a_threshold_and_says_how_bad(rule):
    assert files.with_bool_comparisons(rule["expr"]) != rule["expr"]
    assert rule["labels"]["severity"] in {"page", "warning"}
    assert rule["annotations"]["summary"] and rule["for"]


def test_rules_read_only_series_the_verifier_exports_or_another_rule_records():
    known = verifier_series_names() | EXTERNAL_SERIES | {r["record"] for r in files.recording_rules()}
    for rule in files.recording_rules() + files.alert_rules():
        unknown = {name for name in files.series_names(rule["expr"]) if name not in known}
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads unknown series {unknown}"


def test_dashboard_reads_only_series_the_verifier_exports_rules_record_or_oauth2_proxy_has():
    known = verifier_series_names() | EXTERNAL_SERIES | {r["record"] for r in files.recording_rules()}
    queries = files.dashboard_queries()
    assert queries
    for query in queries:
        unknown = {
            name
            for name in files.series_names(query.promql)
            if name not in known and not name.startswith(EXTERNAL_PREFIXES)
        }
        assert not unknown, f"panel {query.panel!r} reads unknown series {unknown}"


def test_dashboard_panels_have_unique_ids_and_take_the_datasource_as_a_variable():
    board = files.dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        for target in panel.get("targets", ()):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_series_names_reads_names_not_functions_labels_or_keywords():
    promql = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{le="0.5",job!="x"}[5m])))'
        " / on (job) group_left b:rec and c > bool 1"
    )
    assert files.series_names(promql) == {"a_bucket", "b:rec", "c"}
