"""Shared fixtures for the deployment-file tests: the rendered ECS task definition, compose.yaml as
compose would interpolate it, and the templates both must agree with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from deploy.aws import render as aws_render
from stack.render import placeholders

REPO = Path(__file__).resolve().parents[3]
TASKDEF_TEMPLATE = REPO / "ecs-taskdefs" / "edge-api.taskdef.json"
EXAMPLE_VALUES = REPO / "ecs-taskdefs" / "values.example.json"
COMPOSE_FILE = REPO / "compose.yaml"
DEVIDP_ENV = REPO / "deploy" / "docker" / "devidp.env"
OAUTH2_PROXY_TEMPLATE = REPO / "oauth2-proxy" / "oauth2-proxy.cfg.template"
DOCKER_DIR = REPO / "deploy" / "docker"

#: Stand-ins for what Secrets Manager injects, shaped like real values.
PLACEHOLDER_SECRETS = {
    "IDENTITY_SIGNING_KEY": "k" * 43,
    "IDENTITY_SIGNING_KEY_PREVIOUS": "",
    "OAUTH2_PROXY_CLIENT_SECRET": "placeholder-client-secret",
    "OAUTH2_PROXY_COOKIE_SECRET": "c" * 32,
    "OAUTH2_PROXY_REDIS_PASSWORD": "placeholder-redis-password",
    "VERIFIER_REDIS_URL": "rediss://entra-bff-edge:placeholder@redis.example.internal:6379/0",
    # The database secret's url key, as the stack composes it.
    "API_DATABASE_URL": "postgresql://edge_api:placeholder@db.example.internal:5432/edge_api?sslmode=require",
}


@pytest.fixture(scope="session")
def renderer() -> ModuleType:
    """``ecs-taskdefs/render.py``, as the CloudFormation renderer loads it (one module, one copy)."""
    return aws_render.taskdef_renderer()


@pytest.fixture(scope="module")
def stack_renderer() -> ModuleType:
    """``deploy/aws/render.py``, the CloudFormation renderer."""
    return aws_render


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The CloudFormation template as ``deploy/aws/render.py`` renders it by default."""
    return aws_render.render_default()


@pytest.fixture(scope="session")
def example_values(renderer: ModuleType) -> dict[str, str]:
    return renderer.load_values(EXAMPLE_VALUES)


@pytest.fixture(scope="session")
def taskdef_template() -> dict[str, Any]:
    return json.loads(TASKDEF_TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture
def task_definition(renderer: ModuleType, taskdef_template: dict[str, Any], example_values: dict[str, str]):
    return renderer.render(taskdef_template, example_values)


@pytest.fixture
def containers(task_definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in task_definition["containerDefinitions"]}


def ecs_environment(container: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("environment", [])}


def ecs_secret_names(container: Mapping[str, Any]) -> set[str]:
    return {item["name"] for item in container.get("secrets", [])}


# --- templates rendered from the environment ------------------------------------------------------


# A test module of a template sets TEMPLATE (its path), PREFIX (its variables' prefix) and
# HEADER_NAME (a pattern finding a documented variable in one line of its leading comment block).


@pytest.fixture(scope="module")
def template_text(request: pytest.FixtureRequest) -> str:
    return request.module.TEMPLATE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def used(request: pytest.FixtureRequest, template_text: str) -> set[str]:
    """The ``${PREFIX...}`` variables the template uses; none at all means the wrong file was read."""
    prefix = request.module.PREFIX
    names = placeholders(template_text, prefix)
    assert names, f"the template uses no ${{{prefix}*}} variable: is it the right file?"
    return names


@pytest.fixture(scope="module")
def documented(request: pytest.FixtureRequest, template_text: str) -> set[str]:
    """The variables the template's leading comment block documents."""
    names: set[str] = set()
    for line in template_text.splitlines():
        if not line.startswith("#"):
            break
        names.update(re.findall(request.module.HEADER_NAME, line + " "))
    return names


def assert_sets_exactly(env: Mapping[str, str], prefix: str, used: set[str]) -> set[str]:
    """A container's ``PREFIX...`` variables are exactly the template's: none missing, none unknown."""
    named = {name for name in env if name.startswith(prefix)}
    assert named == used, f"missing: {sorted(used - named)}, unknown: {sorted(named - used)}"
    return named


# --- compose -------------------------------------------------------------------------------------

_COMPOSE_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":-", ":?") and value == "":
            value = None
        if value is not None:
            return value
        if op in (":-", "-"):
            return arg or ""
        if op in (":?", "?"):
            raise InterpolationError(f"{name}: {arg}")
        return ""

    return _COMPOSE_VAR.sub(substitute, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """An env file as compose reads it: a value may use the variables set above it."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = interpolate(value.strip(), values)
    return values


@dataclass(frozen=True)
class Compose:
    raw: dict[str, Any]
    interpolated: dict[str, Any]

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.interpolated["services"]

    def environment(self, service: str) -> dict[str, str]:
        env = self.services[service].get("environment", {})
        if isinstance(env, list):
            return dict(item.split("=", 1) for item in env)
        return {k: "" if v is None else str(v) for k, v in env.items()}


@pytest.fixture(scope="session")
def compose_loader() -> Callable[[Mapping[str, str]], Compose]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extras (pip install -e '.[test]')")

    def load(env: Mapping[str, str]) -> Compose:
        raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
        return Compose(raw=raw, interpolated=interpolate_tree(raw, env))

    return load


@pytest.fixture(scope="session")
def devidp_env() -> dict[str, str]:
    return read_env_file(DEVIDP_ENV)


@pytest.fixture(scope="session")
def compose(compose_loader: Callable[[Mapping[str, str]], Compose], devidp_env: dict[str, str]) -> Compose:
    """compose.yaml as `docker compose --env-file deploy/docker/devidp.env` sees it."""
    return compose_loader(devidp_env)


# --- Dockerfiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    instructions: list[tuple[str, str]]  # (KEYWORD, arguments) with continuation lines joined

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> Dockerfile:
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return Dockerfile(path, instructions)


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    return {p.name.removesuffix(".Dockerfile"): parse_dockerfile(p) for p in DOCKER_DIR.glob("*.Dockerfile")}


#: Which image each ECS container runs (by the repository name in its image URI).
def image_name(image_uri: str) -> str:
    return image_uri.rsplit("/", 1)[-1].split(":", 1)[0]


@pytest.fixture(scope="session")
def env_of() -> Callable[[Mapping[str, Any]], dict[str, str]]:
    """The ``environment`` of an ECS container definition as a dict."""
    return ecs_environment


@pytest.fixture(scope="session")
def secrets_of() -> Callable[[Mapping[str, Any]], set[str]]:
    """The names of an ECS container definition's ``secrets``."""
    return ecs_secret_names


@pytest.fixture(scope="session")
def image_of() -> Callable[[str], str]:
    return image_name


@pytest.fixture(scope="session")
def placeholder_secrets() -> dict[str, str]:
    return dict(PLACEHOLDER_SECRETS)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
