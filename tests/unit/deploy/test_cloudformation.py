"""The CloudFormation template (deploy/aws/): rendered from the one ECS task definition and its tracing
overlay, and holding the rules the design relies on: only the load balancer is open to the internet,
every secret comes from Secrets Manager, data stores are private and encrypted, the load balancer's
health check and draining agree with what nginx and the task definition do, and the Tracing parameter
deploys exactly what ecs-taskdefs/render.py renders with TRACING off or xray."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

from fastapi_app.routes.docs import OAUTH2_REDIRECT_PATH
from stack.launcher import nginx_templates
from stack.render import inline_includes
from verifier.sources.csrf import SPENT_KEY_PREFIX
from verifier.sources.session.store import (
    OID_ENDED_KEY_PREFIX,
    OID_INDEX_KEY_PREFIX,
    SESSION_START_KEY_PREFIX,
    SID_ENDED_KEY_PREFIX,
    SID_INDEX_KEY_PREFIX,
)

SESSION_REGISTRY_KEY_PREFIXES = (
    SESSION_START_KEY_PREFIX,
    SID_INDEX_KEY_PREFIX,
    OID_INDEX_KEY_PREFIX,
    SID_ENDED_KEY_PREFIX,
    OID_ENDED_KEY_PREFIX,
)

REPO = Path(__file__).resolve().parents[3]
DEPLOY_AWS = REPO / "deploy" / "aws"
TASKDEF_TEMPLATE = REPO / "ecs-taskdefs" / "edge-api.taskdef.json"
#: edge.conf with its parts inlined (unrendered): every line nginx reads.
EDGE_CONF = inline_includes(nginx_templates(REPO))
PARAMETERS_EXAMPLE = DEPLOY_AWS / "parameters.example.json"
OPEN_TO_THE_WORLD = {"0.0.0.0/0", "::/0"}


@pytest.fixture(scope="module")
def resources(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return stack["Resources"]


@pytest.fixture(scope="module")
def source_taskdef() -> dict[str, Any]:
    return json.loads(TASKDEF_TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tracing_policy(renderer) -> dict[str, Any]:
    return json.loads(renderer.TRACING_TASK_ROLE_POLICY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def render_stack(stack_renderer, tracing_overlay, tracing_policy):
    """``render_stack(source, taskdef)`` with the repository's tracing overlay and task role policy."""

    def render(source: Mapping[str, Any], taskdef: Mapping[str, Any]) -> dict[str, Any]:
        return stack_renderer.render_stack(source, taskdef, tracing_overlay, tracing_policy)

    return render


def of_type(resources: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == resource_type}


def props(resources: Mapping[str, Any], name: str) -> dict[str, Any]:
    return resources[name].get("Properties", {})


def ref_name(node: Any) -> str | None:
    """The logical id (or parameter) a ``Ref`` or a ``${X}``-only ``Fn::Sub`` points at."""
    if isinstance(node, dict) and set(node) == {"Ref"}:
        return node["Ref"]
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        match = re.fullmatch(r"\$\{([\w:]+)\}", node["Fn::Sub"])
        return match.group(1) if match else None
    return None


# --- Resolving intrinsics, and the ECS API shape, to compare with ecs-taskdefs/render.py ----------


_NO_VALUE = {"Ref": "AWS::NoValue"}


def decide(node: Any, conditions: Mapping[str, bool]) -> Any:
    """Evaluate every ``Fn::If`` by ``conditions`` and drop what becomes ``AWS::NoValue``, as
    CloudFormation does; everything else is left as it is."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        condition, when_true, when_false = node["Fn::If"]
        return decide(when_true if conditions[condition] else when_false, conditions)
    if isinstance(node, dict):
        decided = {k: decide(v, conditions) for k, v in node.items()}
        return {k: v for k, v in decided.items() if v != _NO_VALUE}
    if isinstance(node, list):
        return [item for item in (decide(v, conditions) for v in node) if item != _NO_VALUE]
    return node


def tracing_conditions(on: bool) -> dict[str, bool]:
    return {"TracingOn": on}


def resolve(node: Any, env: Mapping[str, str], conditions: Mapping[str, bool] | None = None) -> Any:
    """Evaluate Fn::If (by ``conditions``; tracing off unless given), then Ref / Fn::GetAtt / Fn::Sub
    against ``env`` (Sub variable name -> value)."""
    node = decide(node, conditions if conditions is not None else tracing_conditions(False))
    return _resolve(node, env)


def _resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref":
            return env[value]
        if key == "Fn::GetAtt":
            return env[".".join(value)]
        if key == "Fn::Sub":
            text, extra = (value, {}) if isinstance(value, str) else (value[0], value[1])
            scope = {**env, **{k: _resolve(v, env) for k, v in extra.items()}}
            return re.sub(r"\$\{(?!!)([\w:.]+)\}", lambda m: scope[m.group(1)], text).replace("${!", "${")
    if isinstance(node, dict):
        return {k: _resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, env) for v in node]
    return node


def task_definition_when(resources: Mapping[str, Any], tracing: bool) -> dict[str, Any]:
    """The TaskDefinition's properties as CloudFormation deploys them with tracing on or off."""
    return decide(props(resources, "TaskDefinition"), tracing_conditions(tracing))


def deployed_containers(resources: Mapping[str, Any], tracing: bool = False) -> list[dict[str, Any]]:
    return task_definition_when(resources, tracing)["ContainerDefinitions"]


def to_api_members(node: Any, shape: Any) -> Any:
    """CloudFormation property names back to the ECS API's, guided by botocore's shape (not by the
    renderer's own name mapping, so a wrong conversion there cannot pass unnoticed here)."""
    if shape.type_name == "structure":
        members = {name.lower(): name for name in shape.members}
        converted = {}
        for key, value in node.items():
            name = members.get(key.lower())
            assert name is not None, f"{key} is not a member of {shape.name}"
            converted[name] = to_api_members(value, shape.members[name])
        return converted
    if shape.type_name == "list":
        return [to_api_members(item, shape.member) for item in node]
    if shape.type_name == "map":
        return {key: to_api_members(value, shape.value) for key, value in node.items()}
    return node


@pytest.fixture(scope="module")
def sub_environment(resources: dict[str, Any], example_values: dict[str, str]) -> dict[str, str]:
    """Each Fn::Sub variable bound to the example value of the placeholder it stands for."""
    env: dict[str, str] = {}
    for name, target in resources["TaskDefinition"]["Metadata"]["Placeholders"].items():
        variable = target["Ref"] if "Ref" in target else ".".join(target["Fn::GetAtt"])
        env[variable] = example_values[name]
    return env


@pytest.mark.parametrize("tracing", ["off", "xray"])
def test_template_task_definition_equals_the_one_ecs_taskdefs_renders(
    resources, sub_environment, renderer, taskdef_template, example_values, tracing_overlay, tracing
):
    import botocore.session

    shape = (
        botocore.session.get_session()
        .get_service_model("ecs")
        .operation_model("RegisterTaskDefinition")
        .input_shape
    )
    conditions = tracing_conditions(tracing == "xray")
    from_stack = to_api_members(
        resolve(props(resources, "TaskDefinition"), sub_environment, conditions), shape
    )
    values = {**example_values, "TRACING": tracing}
    assert from_stack == renderer.render(taskdef_template, values, tracing_overlay)
    assert renderer.shape_problems(from_stack) == []


def test_tracing_changes_the_task_definition_only_where_the_overlay_does(resources):
    """Every Fn::If of the task definition sits on a tracing difference: the added container, the
    added variables, nginx's EDGE_SPAN_LOG; nothing else depends on the parameter."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, container: str) -> None:
        if isinstance(node, dict) and set(node) == {"Fn::If"}:
            condition, on, _off = node["Fn::If"]
            assert condition == "TracingOn", container
            found.append((container, on["Name"] if isinstance(on, dict) and "Name" in on else str(on)))
        elif isinstance(node, dict):
            for value in node.values():
                walk(value, container)
        elif isinstance(node, list):
            for value in node:
                walk(value, container)

    for container in props(resources, "TaskDefinition")["ContainerDefinitions"]:
        walk(container, container.get("Name", "(added)"))
    assert sorted(found) == [
        ("(added)", "aws-otel-collector"),
        ("api", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ("nginx", "syslog:server=127.0.0.1:9200,nohostname,tag=edge_span"),
        ("verifier", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ("verifier", "VERIFIER_EDGE_SPANS_LISTEN"),
    ]


def test_every_task_definition_placeholder_maps_to_a_parameter_or_a_resource_of_the_stack(
    stack, resources, renderer, taskdef_template
):
    placeholders = resources["TaskDefinition"]["Metadata"]["Placeholders"]
    assert set(placeholders) == renderer.placeholders(taskdef_template)
    known = set(stack["Parameters"]) | set(resources) | {"AWS::AccountId", "AWS::Region"}
    for name, target in placeholders.items():
        assert (target.get("Ref") or target["Fn::GetAtt"][0]) in known, name


def test_a_placeholder_without_a_stack_variable_is_refused_by_name(
    stack_renderer, render_stack, source_taskdef
):
    taskdef = copy.deepcopy(source_taskdef)
    taskdef["containerDefinitions"][0]["environment"].append({"name": "X", "value": "${AUDIT_SECRET_ARN}"})
    with pytest.raises(stack_renderer.StackRenderError) as raised:
        render_stack(stack_renderer.load_source(), taskdef)
    assert raised.value.problems == [
        "${AUDIT_SECRET_ARN} has no Fn::Sub variable: add it to "
        "Resources.TaskDefinition.Metadata.Placeholders"
    ]


def test_a_stack_variable_the_task_definition_no_longer_uses_is_refused(
    stack_renderer, render_stack, source_taskdef
):
    source = stack_renderer.load_source()
    source["Resources"]["TaskDefinition"]["Metadata"]["Placeholders"]["DATABASE_URL"] = {"Ref": "X"}
    with pytest.raises(stack_renderer.StackRenderError) as raised:
        render_stack(source, source_taskdef)
    assert raised.value.problems == [
        "Placeholders lists DATABASE_URL, which the task definition never uses (a typo?)"
    ]


def test_an_unknown_from_task_definition_name_is_refused(stack_renderer, render_stack, source_taskdef):
    source = stack_renderer.load_source()
    source["Resources"]["TargetGroup"]["Properties"]["Port"] = stack_renderer.FromTaskDefinition("entry-prot")
    with pytest.raises(stack_renderer.StackRenderError) as raised:
        render_stack(source, source_taskdef)
    assert raised.value.problems[0].startswith("!FromTaskDefinition entry-prot: unknown name")


def test_a_task_definition_whose_entry_health_check_names_no_path_cannot_be_rendered(
    stack_renderer, render_stack, source_taskdef
):
    taskdef = copy.deepcopy(source_taskdef)
    nginx = next(c for c in taskdef["containerDefinitions"] if c["name"] == "nginx")
    nginx["healthCheck"]["command"] = ["CMD", "true"]
    with pytest.raises(stack_renderer.StackRenderError) as raised:
        render_stack(stack_renderer.load_source(), taskdef)
    assert "the target group's health check path is unknown" in raised.value.problems[0]


def test_no_from_task_definition_marker_is_left_in_the_rendered_template(stack, stack_renderer):
    def walk(node: Any) -> Iterator[Any]:
        yield node
        if isinstance(node, dict):
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    assert not [n for n in walk(stack) if isinstance(n, stack_renderer.FromTaskDefinition)]
    assert "FromTaskDefinition" not in stack_renderer.dump(stack)


def test_command_line_writes_the_template_that_reloads_to_the_same_document(stack, stack_renderer, tmp_path):
    import yaml

    out = tmp_path / "edge-stack.yaml"
    assert stack_renderer.main(["--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Rendered by deploy/aws/render.py")
    assert yaml.safe_load(text) == stack


# --- Values the load balancer must share with nginx and the task definition ----------------------


def nginx_container(taskdef: Mapping[str, Any]) -> dict[str, Any]:
    return next(c for c in taskdef["containerDefinitions"] if c["name"] == "nginx")


def test_target_group_health_check_path_is_the_one_nginx_health_check_requests(resources, source_taskdef):
    nginx = nginx_container(source_taskdef)
    urls = [urlsplit(arg) for arg in nginx["healthCheck"]["command"] if arg.startswith("http://")]
    assert len(urls) == 1
    tg = props(resources, "TargetGroup")
    assert tg["HealthCheckPath"] == urls[0].path == "/readyz"
    assert tg["Matcher"] == {"HttpCode": "200"}
    # nginx answers it from the task's own sidecars (the verifier's readiness, oauth2-proxy's ping),
    # never from the caller's credentials: the load balancer has none.
    conf = EDGE_CONF
    block = re.search(r"location = /readyz \{(?P<body>[^}]*)\}", conf)
    assert block is not None
    assert "proxy_pass http://edge_verifier/readyz;" in block.group("body")
    assert "proxy_pass_request_headers off;" in block.group("body")


def test_target_group_and_service_send_traffic_to_nginx_port_only(resources, source_taskdef):
    nginx = nginx_container(source_taskdef)
    port = nginx["portMappings"][0]["containerPort"]
    env = {e["name"]: e["value"] for e in nginx["environment"]}
    assert str(port) == env["EDGE_LISTEN"]
    tg = props(resources, "TargetGroup")
    assert (tg["Port"], tg["Protocol"], tg["TargetType"]) == (port, "HTTP", "ip")
    assert props(resources, "Service")["LoadBalancers"] == [
        {"ContainerName": "nginx", "ContainerPort": port, "TargetGroupArn": {"Ref": "TargetGroup"}}
    ]


def test_deregistration_delay_is_nginx_stop_timeout_and_outlasts_nginx_longest_proxied_request(
    resources, source_taskdef
):
    attributes = {a["Key"]: a["Value"] for a in props(resources, "TargetGroup")["TargetGroupAttributes"]}
    delay = int(attributes["deregistration_delay.timeout_seconds"])
    assert delay == nginx_container(source_taskdef)["stopTimeout"] == 30
    read_timeouts = [int(s) for s in re.findall(r"proxy_read_timeout (\d+)s;", EDGE_CONF)]
    assert read_timeouts and delay >= max(read_timeouts)


NGINX_DEFAULT_KEEPALIVE_SECONDS = 75


def test_load_balancer_closes_idle_connections_before_nginx_does(resources):
    attributes = {a["Key"]: a["Value"] for a in props(resources, "LoadBalancer")["LoadBalancerAttributes"]}
    # Only the client side counts: upstream blocks' keepalive_timeout governs nginx's own upstreams.
    # (An upstream block ends at the first "}" in column 0; ${EDGE_...} values hold braces too.)
    conf = re.sub(r"^upstream\s+\w+\s*\{.*?^\}", "", EDGE_CONF, flags=re.M | re.S)
    client_keepalive = [int(s) for s in re.findall(r"^\s*keepalive_timeout\s+(\d+)s?\s*;", conf, re.M)]
    nginx_keepalive = min(client_keepalive, default=NGINX_DEFAULT_KEEPALIVE_SECONDS)
    assert int(attributes["idle_timeout.timeout_seconds"]) < nginx_keepalive


def test_stop_timeouts_in_the_template_are_the_task_definition_ones(resources, source_taskdef):
    in_stack = {c["Name"]: c["StopTimeout"] for c in deployed_containers(resources)}
    in_taskdef = {c["name"]: c["stopTimeout"] for c in source_taskdef["containerDefinitions"]}
    assert (
        in_stack
        == in_taskdef
        == {
            "nginx": 30,
            "oauth2-proxy": 20,
            "verifier": 20,
            "api": 20,
            "api-migrate": 20,
        }
    )


def test_health_check_grace_period_covers_the_slowest_container_start(resources, source_taskdef):
    slowest = max(
        c["healthCheck"]["startPeriod"] for c in source_taskdef["containerDefinitions"] if "healthCheck" in c
    )
    assert props(resources, "Service")["HealthCheckGracePeriodSeconds"] >= slowest


def test_log_group_and_role_names_are_the_ones_the_task_definition_refers_to(resources, source_taskdef):
    groups = {
        c["logConfiguration"]["options"]["awslogs-group"] for c in source_taskdef["containerDefinitions"]
    }
    assert {props(resources, "LogGroup")["LogGroupName"]} == groups
    assert source_taskdef["taskRoleArn"].endswith(":role/" + props(resources, "TaskRole")["RoleName"])
    assert source_taskdef["executionRoleArn"].endswith(
        ":role/" + props(resources, "ExecutionRole")["RoleName"]
    )
    assert props(resources, "LogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# --- Network exposure ----------------------------------------------------------------------------


def security_group_rules(
    resources: Mapping[str, Any], direction: Literal["Ingress", "Egress"]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(security group logical id, rule) for inline and stand-alone rules of one direction."""
    for name, sg in of_type(resources, "AWS::EC2::SecurityGroup").items():
        for rule in sg["Properties"].get(f"SecurityGroup{direction}", []):
            yield name, rule
    for rule_resource in of_type(resources, f"AWS::EC2::SecurityGroup{direction}").values():
        rule = dict(rule_resource["Properties"])
        yield ref_name(rule.pop("GroupId")) or "?", rule


def world_open(rule: Mapping[str, Any]) -> bool:
    """Whether a rule's source could be the whole internet: a literal /0, or anything computed."""
    for key in ("CidrIp", "CidrIpv6", "DestinationCidrIp"):
        value = rule.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            if value in OPEN_TO_THE_WORLD:
                return True
        else:
            return True  # computed (a parameter, a condition): assume the worst
    return bool(rule.get("SourcePrefixListId"))


def open_ingress(resources: Mapping[str, Any]) -> set[tuple[str, str, int, int]]:
    return {
        (group, str(rule["IpProtocol"]), rule.get("FromPort"), rule.get("ToPort"))
        for group, rule in security_group_rules(resources, "Ingress")
        if world_open(rule)
    }


def test_only_the_load_balancer_https_and_redirect_ports_are_open_to_the_internet(resources):
    assert open_ingress(resources) == {
        ("AlbSecurityGroup", "tcp", 443, 443),
        ("AlbSecurityGroup", "tcp", 80, 80),
    }


def test_an_extra_world_open_rule_is_found_inline_or_stand_alone(resources):
    changed = copy.deepcopy(resources)
    changed["TaskSecurityGroup"]["Properties"]["SecurityGroupIngress"] = [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv6": "::/0"}
    ]
    changed["DebugIngress"] = {
        "Type": "AWS::EC2::SecurityGroupIngress",
        "Properties": {
            "GroupId": {"Ref": "DatabaseSecurityGroup"},
            "IpProtocol": "-1",
            "CidrIp": {"Ref": "X"},
        },
    }
    found = open_ingress(changed)
    assert ("TaskSecurityGroup", "tcp", 22, 22) in found
    assert ("DatabaseSecurityGroup", "-1", None, None) in found


def test_the_http_listener_only_redirects_to_https(resources):
    listener = props(resources, "HttpRedirectListener")
    assert listener["Port"] == 80
    (action,) = listener["DefaultActions"]
    assert action["Type"] == "redirect"
    assert (action["RedirectConfig"]["Protocol"], action["RedirectConfig"]["Port"]) == ("HTTPS", "443")
    https = props(resources, "HttpsListener")
    assert (https["Port"], https["Protocol"]) == (443, "HTTPS")
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]


def test_tasks_admit_nginx_port_from_the_load_balancer_and_data_stores_admit_the_tasks_only(resources):
    rules = {
        (group, rule["IpProtocol"], rule["FromPort"], ref_name(rule.get("SourceSecurityGroupId")))
        for group, rule in security_group_rules(resources, "Ingress")
        if group != "AlbSecurityGroup"
    }
    assert rules == {
        ("TaskSecurityGroup", "tcp", 8080, "AlbSecurityGroup"),
        ("RedisSecurityGroup", "tcp", 6379, "TaskSecurityGroup"),
        ("DatabaseSecurityGroup", "tcp", 5432, "TaskSecurityGroup"),
    }


def test_egress_is_tasks_to_https_redis_and_postgres_and_load_balancer_to_nginx_only(resources):
    rules = {
        (
            group,
            rule["IpProtocol"],
            rule.get("FromPort"),
            ref_name(rule.get("DestinationSecurityGroupId")) or rule.get("CidrIp"),
        )
        for group, rule in security_group_rules(resources, "Egress")
    }
    assert rules == {
        ("AlbSecurityGroup", "tcp", 8080, "TaskSecurityGroup"),
        ("TaskSecurityGroup", "tcp", 443, "0.0.0.0/0"),
        ("TaskSecurityGroup", "tcp", 6379, "RedisSecurityGroup"),
        ("TaskSecurityGroup", "tcp", 5432, "DatabaseSecurityGroup"),
        # Listing a loopback-only rule is how a group gets no egress at all.
        ("RedisSecurityGroup", "-1", None, "127.0.0.1/32"),
        ("DatabaseSecurityGroup", "-1", None, "127.0.0.1/32"),
    }


def private_subnets(resources: Mapping[str, Any]) -> set[str]:
    """Subnets whose default route leads to a NAT gateway (never to the internet gateway)."""
    nat_tables = {
        ref_name(r["Properties"]["RouteTableId"])
        for r in of_type(resources, "AWS::EC2::Route").values()
        if r["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0" and "NatGatewayId" in r["Properties"]
    }
    return {
        ref_name(a["Properties"]["SubnetId"])
        for a in of_type(resources, "AWS::EC2::SubnetRouteTableAssociation").values()
        if ref_name(a["Properties"]["RouteTableId"]) in nat_tables
    }


def test_tasks_redis_and_database_live_in_two_private_subnets(resources):
    private = private_subnets(resources)
    assert len(private) == 2
    zones = {json.dumps(props(resources, s)["AvailabilityZone"]) for s in private}
    assert len(zones) == 2
    network = props(resources, "Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert {ref_name(s) for s in network["Subnets"]} == private
    assert {ref_name(s) for s in props(resources, "RedisSubnetGroup")["SubnetIds"]} == private
    assert {ref_name(s) for s in props(resources, "DatabaseSubnetGroup")["SubnetIds"]} == private
    assert props(resources, "Database")["PubliclyAccessible"] is False


# --- Secrets -------------------------------------------------------------------------------------

_VALUE_FROM = re.compile(r"^\$\{(?P<secret>\w+)\}:(?P<key>[^:]*):(?P<stage>[^:]*):(?P<version>[^:]*)$")


def secret_keys(secret: Mapping[str, Any]) -> set[str]:
    """The JSON keys a stack-made secret will hold."""
    generate = secret.get("GenerateSecretString")
    if generate:
        return set(json.loads(generate["SecretStringTemplate"])) | {generate["GenerateStringKey"]}
    text = secret["SecretString"]["Fn::Sub"]
    text = text[0] if isinstance(text, list) else text
    return set(json.loads(re.sub(r"\$\{[\w.:]+\}", "x", text)))


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing-off", "tracing-xray"])
def test_every_container_secret_comes_from_secrets_manager_with_a_key_the_secret_has(
    stack, resources, tracing
):
    secrets_manager = of_type(resources, "AWS::SecretsManager::Secret")
    checked = 0
    for container in deployed_containers(resources, tracing):
        for secret in container.get("Secrets", []):
            match = _VALUE_FROM.match(secret["ValueFrom"]["Fn::Sub"])
            assert match, f"{container['Name']} {secret['Name']}: valueFrom is not <secret ARN>:<key>::"
            source = match.group("secret")
            if source in secrets_manager:
                assert match.group("key") in secret_keys(props(resources, source)), secret["Name"]
            else:
                # The one secret the operator makes (it holds the Entra client secret): a parameter
                # that only takes a Secrets Manager ARN.
                assert source == "OAuth2ProxySecretArn"
                assert ":secretsmanager:" in stack["Parameters"][source]["AllowedPattern"]
            checked += 1
    assert checked == 9


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing-off", "tracing-xray"])
def test_no_environment_variable_carries_a_secret(resources, tracing):
    for container in deployed_containers(resources, tracing):
        for variable in container.get("Environment", []):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|KEY$", variable["Name"]), variable["Name"]
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", json.dumps(variable["Value"])), variable["Name"]


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing-off", "tracing-xray"])
def test_execution_role_reads_exactly_the_secrets_and_images_the_task_definition_names(resources, tracing):
    conditions = tracing_conditions(tracing)
    statements = {
        s["Sid"]: s
        for policy in decide(props(resources, "ExecutionRole"), conditions)["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    }
    containers = deployed_containers(resources, tracing)
    named = {
        _VALUE_FROM.match(s["ValueFrom"]["Fn::Sub"]).group("secret")
        for c in containers
        for s in c.get("Secrets", [])
    }
    assert statements["ReadTheSecrets"]["Action"] == "secretsmanager:GetSecretValue"
    assert {ref_name(r) for r in statements["ReadTheSecrets"]["Resource"]} == named
    # The account's own repositories; the collector's image is public (Amazon ECR Public), which
    # needs no permission to pull.
    images = {
        c["Image"]["Fn::Sub"].split(".amazonaws.com/")[1].split(":")[0]
        for c in containers
        if isinstance(c["Image"], dict)
    }
    public = [c["Image"] for c in containers if not isinstance(c["Image"], dict)]
    assert all(image.startswith("public.ecr.aws/") for image in public), public
    assert len(public) == (1 if tracing else 0)
    assert {
        r["Fn::Sub"].rsplit(":repository/", 1)[1] for r in statements["PullTheImages"]["Resource"]
    } == images
    # Nothing but ecr:GetAuthorizationToken (which has no resource form) is granted on "*".
    assert [s["Sid"] for s in statements.values() if s["Resource"] == "*"] == ["EcrLogin"]
    assert "ManagedPolicyArns" not in props(resources, "ExecutionRole")
    assert "ManagedPolicyArns" not in props(resources, "TaskRole")


def test_execution_role_writes_the_collectors_log_group_only_with_tracing(resources, tracing_overlay):
    (collector,) = tracing_overlay["containerDefinitions"]
    group = props(resources, "CollectorLogGroup")
    assert resources["CollectorLogGroup"]["Condition"] == "TracingOn"
    assert group["LogGroupName"] == collector["logConfiguration"]["options"]["awslogs-group"]
    assert group["LogGroupName"] != props(resources, "LogGroup")["LogGroupName"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for tracing, expected in ((False, ["LogGroup"]), (True, ["LogGroup", "CollectorLogGroup"])):
        role = decide(props(resources, "ExecutionRole"), tracing_conditions(tracing))
        (write,) = [
            s
            for p in role["Policies"]
            for s in p["PolicyDocument"]["Statement"]
            if s["Sid"] == "WriteTheLogs"
        ]
        assert [r["Fn::GetAtt"] for r in write["Resource"]] == [[name, "Arn"] for name in expected]


def test_task_role_may_only_write_traces_and_only_with_tracing(resources, tracing_policy):
    assert "Policies" not in decide(props(resources, "TaskRole"), tracing_conditions(False))
    (policy,) = decide(props(resources, "TaskRole"), tracing_conditions(True))["Policies"]
    assert policy["PolicyDocument"] == tracing_policy
    (statement,) = tracing_policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == [
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    ]
    # These X-Ray actions have no resource-level form.
    assert statement["Resource"] == "*"


def test_tracing_parameter_is_off_by_default_and_switches_one_condition(stack, renderer):
    parameter = stack["Parameters"]["Tracing"]
    assert parameter["Default"] == renderer.TRACING_DEFAULT == "off"
    assert parameter["AllowedValues"] == list(renderer.TRACING_MODES) == ["off", "xray"]
    assert stack["Conditions"] == {"TracingOn": {"Fn::Equals": [{"Ref": "Tracing"}, "xray"]}}
    conditional = {name for name, r in stack["Resources"].items() if "Condition" in r}
    assert conditional == {"CollectorLogGroup"}


def test_a_template_without_the_tracing_condition_is_refused(stack_renderer, render_stack, source_taskdef):
    source = stack_renderer.load_source()
    del source["Conditions"]
    with pytest.raises(stack_renderer.StackRenderError) as raised:
        render_stack(source, source_taskdef)
    assert raised.value.problems == ["Conditions has no TracingOn: the tracing overlay needs it"]


def test_only_if_nests_the_condition_at_the_difference(stack_renderer):
    off = {"A": "same", "B": [{"Name": "x", "Value": "1"}], "C": {"Fn::Sub": "${X}"}}
    on = {
        "A": "same",
        "B": [{"Name": "x", "Value": "2"}, {"Name": "y", "Value": "3"}],
        "C": {"Fn::Sub": "${Y}"},
    }
    assert stack_renderer.only_if("On", on, off) == {
        "A": "same",
        "B": [
            {"Name": "x", "Value": {"Fn::If": ["On", "2", "1"]}},
            {"Fn::If": ["On", {"Name": "y", "Value": "3"}, {"Ref": "AWS::NoValue"}]},
        ],
        # An intrinsic function is replaced whole, never merged key by key.
        "C": {"Fn::If": ["On", {"Fn::Sub": "${Y}"}, {"Fn::Sub": "${X}"}]},
    }


def test_passwords_given_to_aws_services_are_secrets_manager_references(stack, resources):
    reference = re.compile(r"^\{\{resolve:secretsmanager:\$\{(\w+)\}:SecretString:(\w+)\}\}$")

    def referenced(node: Any) -> tuple[str, str]:
        match = reference.match(node["Fn::Sub"])
        assert match, node
        return match.group(1), match.group(2)

    database = props(resources, "Database")
    assert referenced(database["MasterUsername"]) == ("DatabaseMasterSecret", "username")
    assert referenced(database["MasterUserPassword"]) == ("DatabaseMasterSecret", "password")
    (password,) = props(resources, "RedisAppUser")["AuthenticationMode"]["Passwords"]
    assert referenced(password) == ("RedisPasswordSecret", "password")
    for composed in ("RedisSecret", "DatabaseSecret"):
        _, variables = props(resources, composed)["SecretString"]["Fn::Sub"]
        assert {referenced(v)[0] for v in variables.values()} <= set(
            of_type(resources, "AWS::SecretsManager::Secret")
        )
    # No parameter carries a secret value (the oauth2-proxy secret is passed by ARN).
    assert not [name for name, p in stack["Parameters"].items() if p.get("NoEcho")]


# --- Data stores ---------------------------------------------------------------------------------


def test_redis_requires_tls_and_authenticates_every_client(resources):
    redis = props(resources, "SessionRedis")
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["TransitEncryptionMode"] == "required"
    assert redis["AtRestEncryptionEnabled"] is True
    assert redis["AutomaticFailoverEnabled"] is True and redis["NumCacheClusters"] >= 2
    assert [ref_name(g) for g in redis["UserGroupIds"]] == ["RedisUserGroup"]
    default_user = props(resources, "RedisDefaultUser")
    assert default_user["UserName"] == "default"
    assert default_user["AccessString"].split()[0] == "off"
    assert props(resources, "RedisAppUser")["AuthenticationMode"]["Type"] == "password"


def test_redis_user_may_touch_only_the_sessions_and_the_verifiers_own_keys(resources, source_taskdef):
    access = props(resources, "RedisAppUser")["AccessString"].split()
    patterns = {word[1:] for word in access if word.startswith("~")}
    env = {
        e["name"]: e["value"]
        for c in source_taskdef["containerDefinitions"]
        for e in c.get("environment", [])
    }
    assert patterns == {
        env["O2P_COOKIE_NAME"] + "-*",
        SPENT_KEY_PREFIX + "*",
        *(prefix + "*" for prefix in SESSION_REGISTRY_KEY_PREFIXES),
    }
    assert "-@dangerous" in access
    assert env["O2P_REDIS_URL"].startswith("rediss://")
    assert props(resources, "RedisAppUser")["UserName"] == {"Ref": "RedisUserName"}
    assert resources["TaskDefinition"]["Metadata"]["Placeholders"]["REDIS_USERNAME"] == {
        "Ref": "RedisUserName"
    }


def _verifier_constants(suffix: str) -> set[str]:
    """The string values of every ``*<suffix> = "..."`` constant in the verifier's modules."""
    pattern = re.compile(rf'^[A-Z_]*{suffix}\s*=\s*"([^"]+)"', re.M)
    return {
        value
        for module in (REPO / "verifier").rglob("*.py")
        for value in pattern.findall(module.read_text(encoding="utf-8"))
    }


def _granted(resources, sigil: str) -> set[str]:
    access = props(resources, "RedisAppUser")["AccessString"].split()
    return {word[1:] for word in access if word.startswith(sigil)}


def test_every_redis_key_prefix_the_verifier_declares_is_in_the_users_access_string(resources):
    # ElastiCache refuses, in production only, a key outside the user's patterns; the local Redis
    # has no such user. So a new key space in the verifier must be granted here as well.
    declared = _verifier_constants("KEY_PREFIX")
    assert declared
    assert {prefix + "*" for prefix in declared} <= _granted(resources, "~")


def test_every_pubsub_channel_the_verifier_declares_is_in_the_users_access_string(resources):
    # Redis 7 (acl-pubsub-default resetchannels) refuses SUBSCRIBE and PUBLISH on a channel the
    # user is not granted; the local Redis has no such user, so only this test would notice.
    declared = _verifier_constants("CHANNEL")
    assert declared == {"eba:session-ended"}
    assert _granted(resources, "&") == declared


def test_database_is_encrypted_private_postgres_kept_on_delete(resources):
    database = resources["Database"]
    settings = database["Properties"]
    assert settings["Engine"] == "postgres"
    assert settings["StorageEncrypted"] is True
    assert settings["PubliclyAccessible"] is False
    assert settings["DeletionProtection"] is True
    assert settings["BackupRetentionPeriod"] >= 7
    assert database["DeletionPolicy"] == database["UpdateReplacePolicy"] == "Snapshot"
    assert [ref_name(g) for g in settings["VPCSecurityGroups"]] == ["DatabaseSecurityGroup"]


def test_database_url_secret_points_at_the_database_it_authenticates_to(resources):
    text, variables = props(resources, "DatabaseSecret")["SecretString"]["Fn::Sub"]
    url = urlsplit(json.loads(re.sub(r"\$\{([\w.:]+)\}", r"\1", text))["url"])
    assert url.scheme == "postgresql"
    assert (
        url.hostname == "database.endpoint.address"
    )  # ${Database.Endpoint.Address}, lower-cased by urlsplit
    assert url.path == "/" + props(resources, "Database")["DBName"]
    assert set(variables) == {"User", "Password"}


# --- Service, deployment and outputs -------------------------------------------------------------


def test_service_runs_at_least_two_tasks_with_a_rolling_deployment_that_rolls_back(stack, resources):
    service = props(resources, "Service")
    assert service["DesiredCount"] == {"Ref": "DesiredCount"}
    assert stack["Parameters"]["DesiredCount"]["MinValue"] >= 2
    deployment = service["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert (deployment["MinimumHealthyPercent"], deployment["MaximumPercent"]) == (100, 200)
    assert service["DeploymentController"] == {"Type": "ECS"}
    assert service["CapacityProviderStrategy"] == [
        {"CapacityProvider": {"Ref": "CapacityProvider"}, "Weight": 1}
    ]
    assert stack["Parameters"]["CapacityProvider"]["AllowedValues"] == ["FARGATE", "FARGATE_SPOT"]
    assert set(props(resources, "Cluster")["CapacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}


def test_outputs_name_the_redirect_uris_the_task_definition_and_the_api_use(
    stack, sub_environment, renderer, taskdef_template, example_values
):
    outputs = {
        name: resolve(stack["Outputs"][name]["Value"], sub_environment)
        for name in ("Url", "BffRedirectUri", "BffPostLogoutRedirectUri", "SpaRedirectUris")
    }
    rendered = renderer.render(taskdef_template, example_values)
    env = {e["name"]: e["value"] for c in rendered["containerDefinitions"] for e in c.get("environment", [])}
    host = example_values["PUBLIC_HOST"]
    assert outputs["BffRedirectUri"] == env["O2P_REDIRECT_URL"] == f"https://{host}/oauth2/callback"
    assert f"post_logout_redirect_uri=https%3A%2F%2F{host}%2F" in env["EDGE_SIGN_OUT_URL"]
    assert outputs["BffPostLogoutRedirectUri"] == f"https://{host}/"
    assert outputs["SpaRedirectUris"].split() == [f"https://{host}/", f"https://{host}{OAUTH2_REDIRECT_PATH}"]
    assert outputs["Url"] == f"https://{host}/"


def test_dns_record_aliases_the_load_balancer_in_the_given_zone(resources):
    record = props(resources, "DnsRecord")
    assert record["HostedZoneId"] == {"Ref": "HostedZoneId"}
    assert record["Name"] == {"Ref": "DomainName"}
    assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}


# --- The example parameters ----------------------------------------------------------------------


def test_example_parameters_cover_every_required_parameter_and_satisfy_each_constraint(stack):
    given = json.loads(PARAMETERS_EXAMPLE.read_text(encoding="utf-8"))["Parameters"]
    declared = stack["Parameters"]
    assert set(given) <= set(declared)
    assert {name for name, p in declared.items() if "Default" not in p} <= set(given)
    for name, spec in declared.items():
        value = str(given.get(name, spec.get("Default")))
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), f"{name}={value!r}"
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], f"{name}={value!r}"
        if "MinValue" in spec:
            assert float(value) >= spec["MinValue"], name


def test_example_parameters_match_the_task_definition_example_values(example_values):
    given = json.loads(PARAMETERS_EXAMPLE.read_text(encoding="utf-8"))["Parameters"]
    assert given["DomainName"] == example_values["PUBLIC_HOST"]
    assert given["Tracing"] == example_values["TRACING"]
    assert given["EntraTenantId"] == example_values["ENTRA_TENANT_ID"]
    assert given["OAuth2ProxySecretArn"] == example_values["OAUTH2_PROXY_SECRET_ARN"]


def test_image_tag_parameter_refuses_latest(stack):
    pattern = stack["Parameters"]["ImageTag"]["AllowedPattern"]
    assert re.fullmatch(pattern, "git-3f8361d")
    assert not re.fullmatch(pattern, "latest")


def test_the_template_source_file_is_the_only_template_in_deploy_aws():
    # The rendered template is an output, never committed beside its source.
    assert sorted(p.name for p in DEPLOY_AWS.glob("*.y*ml")) == ["edge-stack.template.yaml"]
    assert Path(DEPLOY_AWS / "render.py").exists()


# --- The deployment docs -------------------------------------------------------------------------


def deploy_section() -> str:
    text = (REPO / "docs" / "aws.md").read_text(encoding="utf-8")
    start = text.index("## Deploy with CloudFormation")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_docs_parameter_table_lists_every_parameter_with_its_default(stack):
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", deploy_section(), re.MULTILINE)
    documented = {name: default.strip() for name, default in rows if name in stack["Parameters"]}
    assert set(documented) == set(stack["Parameters"])
    for name, spec in stack["Parameters"].items():
        expected = f"`{spec['Default']}`" if "Default" in spec else "(required)"
        assert documented[name] == expected, name


def test_docs_name_every_output_to_register_in_entra_id(stack):
    section = deploy_section()
    for name in ("BffRedirectUri", "BffPostLogoutRedirectUri", "SpaRedirectUris", "Url"):
        assert f"| `{name}`" in section, name
        assert name in stack["Outputs"]
    assert "aws cloudformation deploy" in section
    assert "--capabilities CAPABILITY_NAMED_IAM" in section


def test_nothing_of_the_development_identity_provider_reaches_the_template(stack, stack_renderer):
    from stack import topology

    deployed = stack_renderer.dump(stack) + PARAMETERS_EXAMPLE.read_text(encoding="utf-8")
    development = [
        "devidp",
        "localhost",
        ":8900",
        "change-me",
        topology.PRIMARY_TENANT_ID,
        topology.API_APP_ID,
        topology.BFF_CLIENT_ID,
        topology.SPA_CLIENT_ID,
        topology.BFF_CLIENT_SECRET,
    ]
    assert [value for value in development if value.lower() in deployed.lower()] == []
