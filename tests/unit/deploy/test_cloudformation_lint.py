"""cfn-lint over the rendered CloudFormation template: every resource type and property against the
CloudFormation resource schemas cfn-lint ships (per region), intrinsic functions, references and
CloudFormation's own rules (both sides of the Tracing condition), offline. Errors and warnings both
fail; informational notes do not."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

# Imported, not skipped when missing: the test extras install it, and a missing linter must fail.
import cfnlint.api as cfnlint_api

DEPLOY_AWS = Path(__file__).resolve().parents[3] / "deploy" / "aws"
#: Regions whose resource schemas the template is checked against (one per continent the project
#: expects to run in; any region with Fargate Spot, ElastiCache RBAC and RDS gp3 would do).
REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"]


def findings(stack_renderer: ModuleType, template: dict[str, Any]) -> list[tuple[str, str]]:
    """(rule id, message) of every error and warning, from the YAML text exactly as deployed."""
    matches = cfnlint_api.lint(stack_renderer.dump(template), config=cfnlint_api.ManualArgs(regions=REGIONS))
    return [(m.rule.id, f"{m.message} (line {m.linenumber})") for m in matches if m.rule.id[0] in "EW"]


def test_cfn_lint_finds_no_error_or_warning_in_the_rendered_template(stack_renderer, stack):
    assert findings(stack_renderer, stack) == []


def test_cfn_lint_refuses_misspelt_properties_wrong_types_and_values_and_unknown_resource_types(
    stack_renderer, stack
):
    broken = copy.deepcopy(stack)
    nginx = broken["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    nginx["PortMapping"] = nginx.pop("PortMappings")
    broken["Resources"]["TargetGroup"]["Properties"]["HealthCheckIntervalSeconds"] = "often"
    broken["Resources"]["Cluster"]["Type"] = "AWS::ECS::Clusters"
    broken["Resources"]["RedisAppUser"]["Properties"]["AuthenticationMode"]["Type"] = "none"
    broken["Resources"]["TaskDefinition"]["Properties"]["Cpu"] = "1000"
    found = findings(stack_renderer, broken)
    rules = {rule for rule, _ in found}
    # unknown property, wrong type, unknown type, value outside an enum, Fargate CPU/memory pairs
    assert {"E3002", "E3012", "E3006", "E3030", "E3047"} <= rules, found
    messages = "\n".join(message for _, message in found)
    assert "'PortMapping'" in messages
    assert "'AWS::ECS::Clusters'" in messages


def test_cfn_lint_refuses_a_reference_to_a_resource_that_does_not_exist(stack_renderer, stack):
    broken = copy.deepcopy(stack)
    broken["Resources"]["Service"]["Properties"]["TaskDefinition"] = {"Ref": "TaskDefinitions"}
    found = findings(stack_renderer, broken)
    assert [rule for rule, message in found if "TaskDefinitions" in message] == ["E1020"], found


def test_cfn_lint_refuses_the_collectors_log_group_named_without_the_tracing_condition(stack_renderer, stack):
    # The group exists only with Tracing=xray: naming it anywhere else must go through Fn::If.
    broken = copy.deepcopy(stack)
    statements = broken["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    (write,) = [s for s in statements if s["Sid"] == "WriteTheLogs"]
    write["Resource"] = [{"Fn::GetAtt": ["LogGroup", "Arn"]}, {"Fn::GetAtt": ["CollectorLogGroup", "Arn"]}]
    found = findings(stack_renderer, broken)
    assert [rule for rule, message in found if "CollectorLogGroup" in message] == ["W1001"], found
