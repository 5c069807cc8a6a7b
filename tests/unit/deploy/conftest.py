"""Shared fixtures for the deployment-file tests: the rendered ECS task definition (with tracing off,
and with it on), compose.yaml as compose would interpolate it (with deploy/docker/tracing.env or
without), and the templates both must agree with.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from deploy.aws import render as aws_render
from stack.render import placeholders
from tests.prerequisites import require_file, require_program

REPO = Path(__file__).resolve().parents[3]
TASKDEF_TEMPLATE = REPO / "ecs-taskdefs" / "edge-api.taskdef.json"
EXAMPLE_VALUES = REPO / "ecs-taskdefs" / "values.example.json"
COMPOSE_FILE = REPO / "compose.yaml"
DEVIDP_ENV = REPO / "deploy" / "docker" / "devidp.env"
#: The env file that turns tracing on in compose (after another env file).
TRACING_ENV = REPO / "deploy" / "docker" / "tracing.env"
#: oauth2-proxy's two templates: the core options (--config) and its alpha configuration
#: (--alpha-config), rendered by the image's entrypoint from the same O2P_* variables.
OAUTH2_PROXY_TEMPLATES = (
    REPO / "oauth2-proxy" / "oauth2-proxy.cfg.template",
    REPO / "oauth2-proxy" / "oauth2-proxy.alpha.yaml.template",
)
OAUTH2_PROXY_ENTRYPOINT = REPO / "deploy" / "docker" / "oauth2-proxy-entrypoint.sh"
#: The binary scripts/setup.sh builds, the one the image builds too (oauth2-proxy/build.sh).
OAUTH2_PROXY = REPO / ".cache" / "bin" / "oauth2-proxy"
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


@pytest.fixture(scope="session")
def tracing_overlay(renderer: ModuleType) -> dict[str, Any]:
    """``ecs-taskdefs/edge-api.tracing.json``: what ``TRACING=xray`` adds."""
    return renderer.load_overlay()


@pytest.fixture
def task_definition(
    renderer: ModuleType,
    taskdef_template: dict[str, Any],
    example_values: dict[str, str],
    tracing_overlay: dict[str, Any],
):
    """The task definition of the example values: tracing off, as they say."""
    return renderer.render(taskdef_template, example_values, tracing_overlay)


@pytest.fixture
def containers(task_definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in task_definition["containerDefinitions"]}


@pytest.fixture
def traced_task_definition(
    renderer: ModuleType,
    taskdef_template: dict[str, Any],
    example_values: dict[str, str],
    tracing_overlay: dict[str, Any],
):
    """The task definition of the example values with ``TRACING=xray``."""
    return renderer.render(taskdef_template, {**example_values, "TRACING": "xray"}, tracing_overlay)


@pytest.fixture
def traced_containers(traced_task_definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in traced_task_definition["containerDefinitions"]}


def ecs_environment(container: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("environment", [])}


def ecs_secret_names(container: Mapping[str, Any]) -> set[str]:
    return {item["name"] for item in container.get("secrets", [])}


# --- templates rendered from the environment ------------------------------------------------------


# A test module of a template sets TEMPLATE (its path) or TEMPLATES (the paths of templates rendered
# together from the same variables), PREFIX (its variables' prefix) and HEADER_NAME (a pattern finding
# a documented variable in one line of a template's leading comment block).


@pytest.fixture(scope="module")
def template_texts(request: pytest.FixtureRequest) -> dict[Path, str]:
    """Each template of the test module, by path."""
    paths = getattr(request.module, "TEMPLATES", None) or (request.module.TEMPLATE,)
    return {path: path.read_text(encoding="utf-8") for path in paths}


@pytest.fixture(scope="module")
def template_text(template_texts: dict[Path, str]) -> str:
    """All the module's templates, one after the other."""
    return "\n".join(template_texts.values())


@pytest.fixture(scope="module")
def used(request: pytest.FixtureRequest, template_text: str) -> set[str]:
    """The ``${PREFIX...}`` variables the template uses; none at all means the wrong file was read."""
    prefix = request.module.PREFIX
    names = placeholders(template_text, prefix)
    assert names, f"the template uses no ${{{prefix}*}} variable: is it the right file?"
    return names


def header_names(text: str, pattern: str) -> set[str]:
    """The variables a template's leading comment block documents (``pattern`` finds one in a line)."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        names.update(re.findall(pattern, line + " "))
    return names


@pytest.fixture(scope="module")
def documented(request: pytest.FixtureRequest, template_texts: dict[Path, str]) -> set[str]:
    """The variables the templates' leading comment blocks document."""
    pattern = request.module.HEADER_NAME
    return {name for text in template_texts.values() for name in header_names(text, pattern)}


def assert_sets_exactly(env: Mapping[str, str], prefix: str, used: set[str]) -> set[str]:
    """A container's ``PREFIX...`` variables are exactly the template's: none missing, none unknown."""
    named = {name for name in env if name.startswith(prefix)}
    assert named == used, f"missing: {sorted(used - named)}, unknown: {sorted(named - used)}"
    return named


# --- compose -------------------------------------------------------------------------------------

_COMPOSE_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>(?:[^{}]|\{[^{}]*\})*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e},
    ${VAR:+r}, ${VAR+r}; ``d`` and ``r`` may hold one level of ${...} themselves."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":-", ":?", ":+") and value == "":
            value = None
        if op in (":+", "+"):
            return interpolate(arg or "", env) if value is not None else ""
        if value is not None:
            return value
        if op in (":-", "-"):
            return interpolate(arg or "", env)
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


def read_env_file(path: Path, before: Mapping[str, str] | None = None) -> dict[str, str]:
    """An env file as compose reads it after the env files ``before`` it (their values merged, later
    ones winning): a value may use the variables set above it, in this file or an earlier one."""
    values: dict[str, str] = dict(before or {})
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


@pytest.fixture(scope="session")
def traced_env(devidp_env: dict[str, str]) -> dict[str, str]:
    """``--env-file deploy/docker/devidp.env --env-file deploy/docker/tracing.env``, merged."""
    return read_env_file(TRACING_ENV, devidp_env)


@pytest.fixture(scope="session")
def traced_compose(
    compose_loader: Callable[[Mapping[str, str]], Compose], traced_env: dict[str, str]
) -> Compose:
    """compose.yaml with deploy/docker/tracing.env after deploy/docker/devidp.env: tracing on."""
    return compose_loader(traced_env)


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


# --- oauth2-proxy as its image runs it -----------------------------------------------------------

#: ElastiCache's scheme: an ACL user with a password, the default user off.
REDIS_USER = "entra-bff-edge"
REDIS_PASSWORD = "test-only-redis-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oauth2_proxy_entrypoint_files(folder: Path, binary: Path = OAUTH2_PROXY) -> dict[str, str]:
    """The entrypoint's own variables: the repository's two templates, rendered into ``folder``,
    and the binary it then runs."""
    core, alpha = OAUTH2_PROXY_TEMPLATES
    return {
        "O2P_TEMPLATE": str(core),
        "O2P_CONFIG": str(folder / "oauth2-proxy.cfg"),
        "O2P_ALPHA_TEMPLATE": str(alpha),
        "O2P_ALPHA_CONFIG": str(folder / "oauth2-proxy.alpha.yaml"),
        "O2P_BINARY": str(binary),
    }


def run_oauth2_proxy_entrypoint(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(OAUTH2_PROXY_ENTRYPOINT), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def oauth2_proxy_prerequisites() -> None:
    require_file(OAUTH2_PROXY, "scripts/setup.sh builds it")
    require_program("envsubst", "gettext-base")


def _redis_accepts(port: int, user: str, password: str) -> bool:
    """True once Redis at ``port`` answers AUTH for ``user`` and then PING."""
    command = f"AUTH {user} {password}\r\nPING\r\n".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(command)
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = connection.recv(256)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return False
    return answer == b"+OK\r\n+PONG\r\n"


def _wait_until_redis_accepts(proc: subprocess.Popen[bytes], port: int, user: str, password: str) -> None:
    deadline = time.monotonic() + 30
    while not _redis_accepts(port, user, password):
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with status {proc.returncode} before it answered")
        if time.monotonic() > deadline:
            pytest.fail(f"redis-server on port {port} did not accept {user}'s password within 30 s")
        time.sleep(0.05)


@contextmanager
def running_acl_redis(folder: Path) -> Iterator[int]:
    """A local Redis with ElastiCache's ACL user and password scheme (no TLS), for a with block; its
    port."""
    redis_server = require_program("redis-server", "redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_server,
            "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(folder), "--user", "default", "off",
            "--user", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all", "-@dangerous",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_redis_accepts(proc, port, REDIS_USER, REDIS_PASSWORD)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    with running_acl_redis(tmp_path) as port:
        yield port
