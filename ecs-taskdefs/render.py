"""Render an ECS task definition template into the JSON ``aws ecs register-task-definition`` takes.

Usage::

    python ecs-taskdefs/render.py ecs-taskdefs/edge-api.taskdef.json --values my-values.json > td.json
    aws ecs register-task-definition --cli-input-json file://td.json

The template is plain task definition JSON in which string values may contain ``${NAME}``
placeholders (upper-case names). Values come from a flat JSON object of strings (see
``values.example.json``); ``OAUTH2_PROXY_VERSION`` is always read from the repository's pinned
version file so the deployed proxy cannot drift from the one the tests ran.

One value is a switch rather than a placeholder: ``TRACING`` is ``off`` (the default when absent) or
``xray``, which applies the tracing overlay (``edge-api.tracing.json``, or ``--tracing-overlay``):
the AWS Distro for OpenTelemetry collector as one more container and the variables that make the
verifier, the API and nginx send it their spans (:func:`with_tracing`). The overlay's placeholders
count as used either way, so one values file renders both, and switching tracing never asks for
another value. The task role then needs ``tracing-task-role-policy.json`` (X-Ray).

Substitution happens on the parsed JSON, string by string, so a value can never break the document's
structure. Rendering fails, listing every problem at once, when a placeholder has no value, a value is
given that no placeholder uses (almost always a typo), or a value is empty, and, when botocore is
installed, when the result does not match the ``RegisterTaskDefinition`` input shape of botocore's
ECS service model.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
VERSION_FILE = REPO_ROOT / "OAUTH2_PROXY_VERSION"
#: What ``TRACING=xray`` adds to the task definition, and what it asks of the task role.
TRACING_OVERLAY = HERE / "edge-api.tracing.json"
TRACING_TASK_ROLE_POLICY = HERE / "tracing-task-role-policy.json"
#: Values the renderer supplies itself; a values file must not set them.
BUILT_IN = ("OAUTH2_PROXY_VERSION",)
#: The values-file switch for tracing, its values (the CloudFormation parameter's too) and default.
TRACING = "TRACING"
TRACING_MODES = ("off", "xray")
TRACING_DEFAULT = "off"
#: What an overlay may hold ("//" is its comment).
_OVERLAY_KEYS = {"//", "environment", "containerDefinitions"}

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class RenderError(Exception):
    """The template cannot be rendered; ``problems`` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("cannot render the task definition:\n  " + "\n  ".join(problems))
        self.problems = problems


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def placeholders(template: Any) -> set[str]:
    """Every ``${NAME}`` used anywhere in the parsed template (keys included)."""
    return {match for text in _strings(template) for match in PLACEHOLDER.findall(text)}


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], node)
    if isinstance(node, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    return node


def built_in_values() -> dict[str, str]:
    return {"OAUTH2_PROXY_VERSION": VERSION_FILE.read_text(encoding="utf-8").strip()}


def with_tracing(template: Any, overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``template`` with the tracing ``overlay`` applied (both unrendered; neither is changed).

    Each ``environment`` entry of the overlay replaces the container's variable of the same name or
    is added after its own; each of its ``containerDefinitions`` is added after the template's.
    """
    problems = [f"tracing overlay: unknown key {key!r}" for key in sorted(set(overlay) - _OVERLAY_KEYS)]
    document = copy.deepcopy(dict(template))
    containers = {c.get("name"): c for c in document.get("containerDefinitions", [])}
    for name, variables in overlay.get("environment", {}).items():
        container = containers.get(name)
        if container is None:
            problems.append(f"tracing overlay: the task definition has no container {name!r}")
            continue
        environment = container.setdefault("environment", [])
        for variable in variables:
            existing = next((v for v in environment if v["name"] == variable["name"]), None)
            if existing is None:
                environment.append(copy.deepcopy(variable))
            else:
                existing["value"] = variable["value"]
    for added in overlay.get("containerDefinitions", []):
        if added.get("name") in containers:
            problems.append(
                f"tracing overlay: the task definition already has a container {added.get('name')!r}"
            )
        document.setdefault("containerDefinitions", []).append(copy.deepcopy(added))
    if problems:
        raise RenderError(problems)
    return document


def render(
    template: Any, values: Mapping[str, str], tracing_overlay: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Substitute ``values`` (plus the built-in ones) into a parsed template; no placeholder may remain.

    ``values[TRACING] == "xray"`` applies ``tracing_overlay`` first (:func:`with_tracing`).
    """
    problems: list[str] = []
    values = dict(values)
    mode = values.pop(TRACING, TRACING_DEFAULT)
    if mode not in TRACING_MODES:
        problems.append(f"{TRACING}={mode!r}: expected one of {', '.join(TRACING_MODES)}")
    elif mode != "off" and tracing_overlay is None:
        problems.append(
            f"{TRACING}={mode}: no tracing overlay given (render.py reads {TRACING_OVERLAY.name})"
        )
    used = placeholders(template) | placeholders(tracing_overlay or {})
    for name in used:
        if not _NAME.match(name):
            problems.append(f"placeholder ${{{name}}}: names are upper-case letters, digits and _")
    for name in sorted(set(values) & set(BUILT_IN)):
        problems.append(f"{name}: set by the renderer itself (from {VERSION_FILE.name}); remove it")
    merged = {**values, **built_in_values()}
    for name in sorted(used - set(merged)):
        problems.append(f"${{{name}}} has no value: add {name!r} to the values file")
    for name in sorted(set(values) - used):
        problems.append(f"{name!r} is set but the template never uses it (a typo?)")
    for name, value in sorted(merged.items()):
        if not isinstance(value, str):
            problems.append(f"{name}: expected a string, got {type(value).__name__}")
        elif not value.strip():
            problems.append(f"{name} is empty")
        elif PLACEHOLDER.search(value):
            problems.append(f"{name}: a value must not itself contain a ${{...}} placeholder")
    if problems:
        raise RenderError(problems)
    document = (
        with_tracing(template, tracing_overlay)
        if mode == "xray" and tracing_overlay is not None
        else template
    )
    return _substitute(document, merged)


def load_overlay(path: Path = TRACING_OVERLAY) -> dict[str, Any]:
    """A tracing overlay (``edge-api.tracing.json``)."""
    overlay = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(overlay, dict):
        raise RenderError([f"{path}: expected a JSON object"])
    return overlay


def shape_problems(task_definition: Mapping[str, Any]) -> list[str]:
    """Problems against botocore's ``RegisterTaskDefinition`` input shape (empty when valid).

    botocore's validator checks required members, unknown members, types, enums-as-strings and
    documented ranges exactly as the AWS CLI would before sending the request.
    """
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(dict(task_definition), shape)
    if not report.has_errors():
        return []
    return [line for line in report.generate_report().splitlines() if line.strip()]


def load_values(path: Path) -> dict[str, str]:
    """A values file: a JSON object of name -> string; keys starting with ``//`` are comments."""
    values = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        raise RenderError([f"{path}: expected a JSON object of name -> string"])
    return {k: v for k, v in values.items() if not k.startswith("//")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", type=Path, help="task definition template (JSON)")
    parser.add_argument("--values", type=Path, required=True, help="JSON object of placeholder values")
    parser.add_argument(
        "--tracing-overlay",
        type=Path,
        default=TRACING_OVERLAY,
        help=f"what TRACING=xray adds (default: {TRACING_OVERLAY.name} beside this script)",
    )
    parser.add_argument(
        "--no-validate", action="store_true", help="skip the botocore shape check (botocore not installed)"
    )
    args = parser.parse_args(argv)
    try:
        template = json.loads(args.template.read_text(encoding="utf-8"))
        values = load_values(args.values)
        overlay = load_overlay(args.tracing_overlay)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        rendered = render(template, values, overlay)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.no_validate:
        problems = shape_problems(rendered)
        if problems:
            print("error: not valid input for RegisterTaskDefinition:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            return 1
    json.dump(rendered, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
