"""The monitoring files of ``deploy/``, read the way Prometheus and Grafana read them: the scrape
configuration, the recording and alert rules, and every PromQL expression of the dashboard."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "verifier.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "verifier-dashboard.json"

VERIFIER_JOB = "verifier"
OAUTH2_PROXY_JOB = "oauth2-proxy"

#: A comparison with a number on its right: ``> 0.2``, ``== 0`` (not ``!="..."`` in a selector).
_THRESHOLD = re.compile(r"(==|!=|>=|<=|>|<)(\s*)(?=[0-9])")
#: Names of series: identifiers that are not functions, keywords, label names or durations.
_IDENTIFIER = re.compile(r"(?<![\w:\"$])([a-zA-Z_:][\w:]*)(?![\w:]*\s*\()")
_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make setup` installs Debian's prometheus package, which has it"
    return found


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "prometheus is missing: `make setup` installs Debian's prometheus package"
    return found


def scrape_config() -> dict[str, Any]:
    return yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))


def rule_files() -> list[Path]:
    return [PROMETHEUS_DIR / name for name in scrape_config()["rule_files"]]


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "record" in rule]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


@dataclass(frozen=True)
class DashboardQuery:
    panel: str
    promql: str


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_variables() -> dict[str, str]:
    """Each query variable's current value, as Grafana substitutes it."""
    return {
        variable["name"]: variable["current"]["value"]
        for variable in dashboard()["templating"]["list"]
        if variable["type"] == "query"
    }


def dashboard_queries(variables: Mapping[str, str] | None = None) -> list[DashboardQuery]:
    """Every panel's PromQL (and each query variable's metric), with ``$variables`` substituted."""
    values = dict(dashboard_variables() if variables is None else variables)
    board = dashboard()
    queries: list[DashboardQuery] = []
    for panel in board["panels"]:
        for target in panel.get("targets", ()):
            queries.append(DashboardQuery(panel["title"], _substitute(target["expr"], values)))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label) asks for the label values of a series: the series must exist.
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert match, f"variable {variable['name']}: expected label_values(<selector>, <label>)"
            queries.append(DashboardQuery(f"variable {variable['name']}", match.group(1)))
    return queries


def _substitute(promql: str, values: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"dashboard variable ${name} has no value"
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, promql)


def with_bool_comparisons(promql: str) -> str:
    """``x > 0.2 and on (job) y > 1`` -> ``x > bool 0.2 and on (job) y > bool 1``.

    An alert's expression returns nothing while all is well; with ``bool`` its comparisons answer 0
    or 1 for every series they watch instead, so a query shows whether those series exist.
    """
    return _THRESHOLD.sub(r"\1 bool ", promql)


def series_names(promql: str) -> set[str]:
    """The metric and recorded-series names an expression reads (not functions, labels or keywords)."""
    without_strings = re.sub(r'"[^"]*"', '""', promql)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels
    )
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groupings)
    names = set(_IDENTIFIER.findall(without_ranges))
    return {name for name in names if name not in _PROMQL_WORDS and not re.fullmatch(r"[0-9.e]+", name)}
