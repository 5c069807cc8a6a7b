"""Render the CloudFormation template for one environment from its source and the ECS task definition.

Usage::

    .venv/bin/python deploy/aws/render.py --output edge-stack.yaml
    aws cloudformation deploy --template-file edge-stack.yaml ...

``edge-stack.template.yaml`` is an ordinary CloudFormation template except that some values read
``!FromTaskDefinition <name>``. Those are taken from ``ecs-taskdefs/edge-api.taskdef.json`` here, so the
task definition has one home and the load balancer, roles and log group cannot drift from it:

- ``task-definition``: the task definition itself, as ``AWS::ECS::TaskDefinition`` properties. Each
  ``${NAME}`` placeholder becomes the ``Fn::Sub`` variable the template's ``TaskDefinition`` resource
  lists under ``Metadata.Placeholders`` (a parameter, a pseudo parameter or a resource attribute);
  ``OAUTH2_PROXY_VERSION`` is filled in as ``ecs-taskdefs/render.py`` fills it.
- ``entry-container``, ``entry-port``: the one container with a port mapping (nginx) and its port.
- ``health-check-path``: the path of that container's own health check, for the target group.
- ``deregistration-delay``: that container's ``stopTimeout``, so draining never outlasts it.
- ``log-group``, ``task-role-name``, ``execution-role-name``: the names the task definition refers to.
- ``image-repository-arns``, ``secret-arns``: what the execution role may pull and read, exactly the
  images and secrets the task definition names.
- ``redis-port``: the port of ``O2P_REDIS_URL``.
- ``bff-redirect-uri``, ``bff-post-logout-redirect-uri``: ``O2P_REDIRECT_URL`` and the
  ``post_logout_redirect_uri`` of ``EDGE_SIGN_OUT_URL``, the URIs to register in Entra ID.
- ``tracing-log-group``: the log group of the containers the tracing overlay adds (the collector).
- ``tracing-task-role-policy``: ``ecs-taskdefs/tracing-task-role-policy.json``, what the task role may
  do with tracing on (write to X-Ray).

Tracing is one task definition with conditions, not two: the task definition with the tracing overlay
(``ecs-taskdefs/edge-api.tracing.json``) applied and the one without are compared, and every
difference becomes an ``Fn::If`` on the template's ``TracingOn`` condition (an added container or
variable is ``AWS::NoValue`` when off, a changed value takes the off value), so the stack deploys
exactly what ``ecs-taskdefs/render.py`` renders with ``TRACING`` ``xray`` or ``off``.

Rendering fails, listing every problem, when a placeholder has no variable, a variable is listed
that the task definition does not use, a ``!FromTaskDefinition`` name is unknown, the template has no
``TracingOn`` condition, or the task definition lacks something a derived value needs.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
STACK_SOURCE = HERE / "edge-stack.template.yaml"
TASKDEF_TEMPLATE = REPO_ROOT / "ecs-taskdefs" / "edge-api.taskdef.json"
TASKDEF_RENDERER = REPO_ROOT / "ecs-taskdefs" / "render.py"
TASK_DEFINITION_RESOURCE = "TaskDefinition"
#: The template's condition that is true when the Tracing parameter turns tracing on.
TRACING_CONDITION = "TracingOn"

#: ECS API members whose values are maps of user data: their keys are kept as they are.
_MAP_MEMBERS = frozenset({"options", "dockerLabels", "driverOpts", "labels"})
#: The few ECS API members whose CloudFormation name is not the API name with a capital first letter.
_RENAMED_MEMBERS = {
    "efsVolumeConfiguration": "EFSVolumeConfiguration",
    "fsxWindowsFileServerVolumeConfiguration": "FSxWindowsFileServerVolumeConfiguration",
}
_ECR_IMAGE = re.compile(
    r"^\$\{ACCOUNT_ID\}\.dkr\.ecr\.\$\{REGION\}\.amazonaws\.com/(?P<repository>[a-z0-9._/-]+)[:@]"
)
_ROLE_ARN = re.compile(r"^arn:aws:iam::\$\{ACCOUNT_ID\}:role/(?P<name>[\w+=,.@-]+)$")
_SECRET_REFERENCE = re.compile(
    r"^(?P<arn>\$\{[A-Z0-9_]+\}|arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+)"
)
_LOCAL_URL = re.compile(r"^https?://(?:127\.0\.0\.1|localhost)(?::(?P<port>\d+))?(?P<path>/[^\s'\"]*)")


class StackRenderError(Exception):
    """The stack cannot be rendered; ``problems`` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("cannot render the CloudFormation template:\n  " + "\n  ".join(problems))
        self.problems = problems


# --- YAML with CloudFormation's short-form tags --------------------------------------------------


@dataclass(frozen=True)
class FromTaskDefinition:
    """A ``!FromTaskDefinition <name>`` marker in the template source."""

    name: str


class _SourceLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus CloudFormation's ``!Ref``/``!Sub``/... tags, read as their long forms.

    Hand-written rather than borrowed from cfn-lint's decoder: cfn-lint is a test dependency and its
    decoder is not a documented API, while this mapping (``!X`` is ``Fn::X``; ``!Ref``, ``!Condition``
    and the dotted ``!GetAtt`` aside) is fixed by the CloudFormation template reference.
    """


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "FromTaskDefinition":
        return FromTaskDefinition(str(value))
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_SourceLoader.add_multi_constructor("!", _construct_intrinsic)


def load_source(path: Path = STACK_SOURCE) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_SourceLoader)  # noqa: S506 (safe loader + tags)


# --- The task definition as CloudFormation properties --------------------------------------------


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def taskdef_renderer() -> ModuleType:
    """``ecs-taskdefs/render.py``: its placeholder syntax and built-in values are the ones used here."""
    return _load_module(TASKDEF_RENDERER, "ecs_taskdef_render")


def cfn_string(text: str, variables: Mapping[str, str], literals: Mapping[str, str]) -> Any:
    """A task definition string as a CloudFormation value: plain, ``Ref``, or ``Fn::Sub``.

    ``${NAME}`` becomes ``${variables[NAME]}``; built-in names become their literal value.
    """
    renderer = taskdef_renderer()
    if not renderer.PLACEHOLDER.search(text):
        return text

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in literals:
            return literals[name].replace("${", "${!")
        return "${" + variables[name] + "}"

    substituted = renderer.PLACEHOLDER.sub(substitute, text)
    whole = re.fullmatch(r"\$\{([A-Za-z0-9:]+)\}", substituted)
    if whole:
        return {"Ref": whole.group(1)}
    if "${" not in substituted.replace("${!", ""):
        return substituted.replace("${!", "${")
    return {"Fn::Sub": substituted}


def _cfn_member_name(api_name: str) -> str:
    return _RENAMED_MEMBERS.get(api_name, api_name[:1].upper() + api_name[1:])


def to_cloudformation(node: Any, to_value: Callable[[str], Any], *, keep_keys: bool = False) -> Any:
    """ECS API JSON (camelCase members) as CloudFormation properties (PascalCase), values via ``to_value``."""
    if isinstance(node, str):
        return to_value(node)
    if isinstance(node, list):
        return [to_cloudformation(item, to_value) for item in node]
    if isinstance(node, dict):
        return {
            (key if keep_keys else _cfn_member_name(key)): to_cloudformation(
                value, to_value, keep_keys=key in _MAP_MEMBERS
            )
            for key, value in node.items()
        }
    return node


def only_if(condition: str, when_on: Any, when_off: Any) -> Any:
    """One CloudFormation value that is ``when_on`` while ``condition`` holds and ``when_off`` otherwise.

    Equal parts stay as they are; mappings are merged key by key, lists of named items (containers,
    variables: ``Name``) item by item, so the ``Fn::If`` sits as deep as the difference does. A part
    on one side only is ``AWS::NoValue`` on the other.
    """
    if when_on == when_off:
        return when_on
    if isinstance(when_on, dict) and isinstance(when_off, dict) and not _is_intrinsic(when_on, when_off):
        merged: dict[str, Any] = {}
        for key in [*when_on, *(k for k in when_off if k not in when_on)]:
            merged[key] = only_if(condition, when_on.get(key, _no_value()), when_off.get(key, _no_value()))
        return merged
    if _named_items(when_on) and _named_items(when_off):
        off_by_name = {item["Name"]: item for item in when_off}
        on_names = {item["Name"] for item in when_on}
        items = [only_if(condition, item, off_by_name.get(item["Name"], _no_value())) for item in when_on]
        items += [only_if(condition, _no_value(), item) for item in when_off if item["Name"] not in on_names]
        return items
    return {"Fn::If": [condition, when_on, when_off]}


#: Fresh each time: one dict in two places would be dumped as a YAML alias, which CloudFormation refuses.
def _no_value() -> dict[str, str]:
    return {"Ref": "AWS::NoValue"}


def _is_intrinsic(*nodes: dict[str, Any]) -> bool:
    return any(
        len(node) == 1 and (next(iter(node)) == "Ref" or next(iter(node)).startswith("Fn::"))
        for node in nodes
    )


def _named_items(node: Any) -> bool:
    return isinstance(node, list) and all(isinstance(item, dict) and "Name" in item for item in node)


# --- Values the rest of the stack takes from the task definition ---------------------------------


@dataclass(frozen=True)
class TaskDefinitionFacts:
    entry_container: str
    entry_port: int
    health_check_path: str
    stop_timeout: int
    log_group: str
    task_role_name: str
    execution_role_name: str
    image_repositories: tuple[str, ...]
    secret_arns: tuple[str, ...]  # as written in the task definition: "${NAME}" or a literal ARN
    redis_port: int
    bff_redirect_uri: str
    bff_post_logout_redirect_uri: str


def _environment(container: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("environment", [])}


def task_definition_facts(taskdef: Mapping[str, Any]) -> TaskDefinitionFacts:
    """Read from the task definition template (placeholders unresolved) what the stack must agree on."""
    problems: list[str] = []
    containers = taskdef.get("containerDefinitions", [])
    exposed = [c for c in containers if c.get("portMappings")]
    entry: Mapping[str, Any] = exposed[0] if exposed else {}
    if len(exposed) != 1:
        problems.append(f"expected exactly one container with portMappings, found {len(exposed)}")
    entry_port = int(entry.get("portMappings", [{}])[0].get("containerPort", 0)) if entry else 0

    path = ""
    for arg in entry.get("healthCheck", {}).get("command", []):
        match = _LOCAL_URL.match(str(arg))
        if match and int(match.group("port") or 80) == entry_port:
            path = match.group("path")
    if entry and not path:
        problems.append(
            f"container {entry.get('name')!r}: its healthCheck command requests no http://127.0.0.1:"
            f"{entry_port}/<path>, so the target group's health check path is unknown"
        )
    stop_timeout = entry.get("stopTimeout")
    if entry and not isinstance(stop_timeout, int):
        problems.append(f"container {entry.get('name')!r}: stopTimeout must be set (it bounds draining)")

    groups = {c.get("logConfiguration", {}).get("options", {}).get("awslogs-group") for c in containers}
    if len(groups) != 1 or None in groups:
        problems.append(f"every container must log to one awslogs-group, found {sorted(map(str, groups))}")

    role_names = {}
    for member in ("taskRoleArn", "executionRoleArn"):
        match = _ROLE_ARN.match(str(taskdef.get(member, "")))
        if not match:
            problems.append(f"{member} must read arn:aws:iam::${{ACCOUNT_ID}}:role/<name>")
        role_names[member] = match.group("name") if match else ""

    repositories: set[str] = set()
    secret_arns: list[str] = []
    for container in containers:
        match = _ECR_IMAGE.match(str(container.get("image", "")))
        if not match:
            problems.append(
                f"container {container.get('name')!r}: image must be in this account's ECR "
                "(${ACCOUNT_ID}.dkr.ecr.${REGION}.amazonaws.com/<repository>:<tag>)"
            )
        else:
            repositories.add(match.group("repository"))
        for secret in container.get("secrets", []):
            ref = _SECRET_REFERENCE.match(secret["valueFrom"])
            if not ref:
                problems.append(f"secret {secret['name']}: valueFrom is not a Secrets Manager ARN")
            elif ref.group("arn") not in secret_arns:
                secret_arns.append(ref.group("arn"))

    env = {name: value for c in containers for name, value in _environment(c).items()}
    redis_url = urlsplit(env.get("O2P_REDIS_URL", ""))
    if redis_url.scheme != "rediss" or redis_url.port is None:
        problems.append("O2P_REDIS_URL must be rediss://<host>:<port> (ElastiCache requires TLS here)")
    redirect_uri = env.get("O2P_REDIRECT_URL", "")
    if not redirect_uri:
        problems.append("O2P_REDIRECT_URL is not set")
    post_logout = parse_qs(urlsplit(env.get("EDGE_SIGN_OUT_URL", "")).query).get("post_logout_redirect_uri")
    if not post_logout:
        problems.append("EDGE_SIGN_OUT_URL has no post_logout_redirect_uri")
    if problems:
        raise StackRenderError(problems)
    return TaskDefinitionFacts(
        entry_container=entry["name"],
        entry_port=entry_port,
        health_check_path=path,
        stop_timeout=int(stop_timeout),  # type: ignore[arg-type]
        log_group=groups.pop(),  # type: ignore[arg-type]
        task_role_name=role_names["taskRoleArn"],
        execution_role_name=role_names["executionRoleArn"],
        image_repositories=tuple(sorted(repositories)),
        secret_arns=tuple(secret_arns),
        redis_port=int(redis_url.port),  # type: ignore[arg-type]
        bff_redirect_uri=redirect_uri,
        bff_post_logout_redirect_uri=unquote(post_logout[0]),
    )


# --- Putting it together -------------------------------------------------------------------------


def _fill(node: Any, values: Mapping[str, Any], problems: list[str]) -> Any:
    if isinstance(node, FromTaskDefinition):
        if node.name not in values:
            problems.append(
                f"!FromTaskDefinition {node.name}: unknown name (known: {', '.join(sorted(values))})"
            )
            return None
        return values[node.name]
    if isinstance(node, dict):
        return {key: _fill(value, values, problems) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, values, problems) for item in node]
    return node


def _sub_variables(placeholders: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """``{NAME: {"Ref": X}}`` / ``{NAME: {"Fn::GetAtt": [R, A]}}`` as Fn::Sub variable names (X, R.A)."""
    variables: dict[str, str] = {}
    problems: list[str] = []
    for name, target in placeholders.items():
        if isinstance(target, dict) and set(target) == {"Ref"}:
            variables[name] = str(target["Ref"])
        elif isinstance(target, dict) and set(target) == {"Fn::GetAtt"}:
            variables[name] = ".".join(target["Fn::GetAtt"])
        else:
            problems.append(f"Placeholders.{name}: expected !Ref or !GetAtt, got {target!r}")
    return variables, problems


def render_stack(
    source: Mapping[str, Any],
    taskdef: Mapping[str, Any],
    tracing: Mapping[str, Any],
    tracing_task_role_policy: Mapping[str, Any],
) -> dict[str, Any]:
    """The deployable template: ``source`` with every ``!FromTaskDefinition`` filled from ``taskdef``,
    its ``tracing`` overlay (under the ``TracingOn`` condition) and the tracing task role policy."""
    renderer = taskdef_renderer()
    resource = source.get("Resources", {}).get(TASK_DEFINITION_RESOURCE, {})
    variables, problems = _sub_variables(resource.get("Metadata", {}).get("Placeholders", {}))
    if TRACING_CONDITION not in source.get("Conditions", {}):
        problems.append(f"Conditions has no {TRACING_CONDITION}: the tracing overlay needs it")
    literals = renderer.built_in_values()
    used = renderer.placeholders(taskdef) | renderer.placeholders(tracing)
    problems += [
        f"${{{name}}} has no Fn::Sub variable: add it to Resources.{TASK_DEFINITION_RESOURCE}"
        ".Metadata.Placeholders"
        for name in sorted(used - set(variables) - set(literals))
    ]
    problems += [
        f"Placeholders lists {name}, which the task definition never uses (a typo?)"
        for name in sorted(set(variables) - used)
    ]
    if problems:
        raise StackRenderError(problems)
    facts = task_definition_facts(taskdef)
    try:
        traced = renderer.with_tracing(taskdef, tracing)
    except renderer.RenderError as exc:
        raise StackRenderError(exc.problems) from exc
    tracing_log_group = _tracing_log_group(tracing, facts.log_group)

    def value(text: str) -> Any:
        return cfn_string(text, variables, literals)

    derived: dict[str, Any] = {
        "task-definition": only_if(
            TRACING_CONDITION,
            to_cloudformation(traced, value),
            to_cloudformation(dict(taskdef), value),
        ),
        "entry-container": facts.entry_container,
        "entry-port": facts.entry_port,
        "health-check-path": facts.health_check_path,
        "deregistration-delay": str(facts.stop_timeout),
        "log-group": facts.log_group,
        "task-role-name": facts.task_role_name,
        "execution-role-name": facts.execution_role_name,
        "image-repository-arns": [
            {"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/" + repository}
            for repository in facts.image_repositories
        ],
        "secret-arns": [value(arn) for arn in facts.secret_arns],
        "redis-port": facts.redis_port,
        "bff-redirect-uri": value(facts.bff_redirect_uri),
        "bff-post-logout-redirect-uri": value(facts.bff_post_logout_redirect_uri),
        "tracing-log-group": tracing_log_group,
        "tracing-task-role-policy": dict(tracing_task_role_policy),
    }
    rendered = _fill(dict(source), derived, problems)
    if problems:
        raise StackRenderError(problems)
    return rendered


def _tracing_log_group(tracing: Mapping[str, Any], task_log_group: str) -> str:
    """The one log group of the containers the tracing overlay adds: their own, not the task's."""
    groups = {
        c.get("logConfiguration", {}).get("options", {}).get("awslogs-group")
        for c in tracing.get("containerDefinitions", [])
    }
    if len(groups) != 1 or None in groups or task_log_group in groups:
        raise StackRenderError(
            [
                "the tracing overlay's containers must log to one awslogs-group of their own, "
                f"found {sorted(map(str, groups))}"
            ]
        )
    return str(groups.pop())


def render_default() -> dict[str, Any]:
    """The template from the repository's own source, task definition and tracing overlay."""
    renderer = taskdef_renderer()
    taskdef = json.loads(TASKDEF_TEMPLATE.read_text(encoding="utf-8"))
    policy = json.loads(renderer.TRACING_TASK_ROLE_POLICY.read_text(encoding="utf-8"))
    return render_stack(load_source(), taskdef, renderer.load_overlay(), policy)


HEADER = (
    "# Rendered by deploy/aws/render.py from deploy/aws/edge-stack.template.yaml and\n"
    "# ecs-taskdefs/edge-api.taskdef.json: edit those, not this file.\n"
)


def dump(template: Mapping[str, Any]) -> str:
    return HEADER + yaml.safe_dump(dict(template), sort_keys=False, width=120, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, help="write the template here (default: standard output)")
    args = parser.parse_args(argv)
    try:
        text = dump(render_default())
    except StackRenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
