"""The Docker engine and Compose CLI, as the container tests use them.

`make test` runs under scripts/docker-engine.sh, which makes sure an engine answers (starting Debian's
dockerd for the run where none does). The images are built once per test session, exactly as
`make images` builds them: deploy/docker/prepare.py, then `docker compose build` of every service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
DEV_ENV = REPO / "deploy" / "docker" / "devidp.env"
#: Never skipped for want of it: a machine without it has not run `make setup`.
COMPOSE_CLI = REPO / ".cache" / "bin" / "docker-compose"
#: Where scripts/setup.sh puts the buildx plugin Compose builds with (BuildKit: build secrets).
DOCKER_CONFIG = REPO / ".cache" / "docker" / "config"
#: What deploy/docker/prepare.py writes: the machine's extra CAs for the build steps, or nothing.
BUILD_CA_FILE = REPO / ".cache" / "docker" / "build-ca.pem"
IMAGE_TAG = "local"
#: The images compose.yaml builds, by the name the ECS task definition gives them.
SHIPPED_IMAGES = ("nginx", "oauth2-proxy", "python")
DEVELOPMENT_IMAGES = ("devidp", "postgres", "redis")


def image(name: str) -> str:
    return f"entra-bff-edge/{name}:{IMAGE_TAG}"


def docker(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"docker {' '.join(argv)}: {done.stderr.strip()[-3000:]}"
    return done


def inspect(name: str) -> dict[str, Any]:
    return json.loads(docker("inspect", name).stdout)[0]


def engine_answers() -> bool:
    try:
        return docker("version", "--format", "{{.Server.Version}}", timeout=20, check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def compose_environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """No variable of the caller's shell reaches compose's interpolation: only these and the env file."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(REPO / ".cache"),
        "DOCKER_CONFIG": str(DOCKER_CONFIG),
        "BUILD_CA_FILE": str(BUILD_CA_FILE.relative_to(REPO)),
        "IMAGE_TAG": IMAGE_TAG,
        **extra,
    }


def run_compose(
    *args: str, variables: Mapping[str, str] = {}, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The Compose CLI on compose.yaml, with nothing of the caller's shell but ``variables``."""
    assert COMPOSE_CLI.exists(), f"{COMPOSE_CLI} is missing: run `make setup` (setup.sh builds it)"
    return subprocess.run(
        [str(COMPOSE_CLI), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
        env=compose_environment(variables),
    )  # fmt: skip


def resolved_model(env_file: Path = DEV_ENV) -> dict[str, Any]:
    """compose.yaml as the CLI resolves it with ``env_file`` (`config --format json`)."""
    done = run_compose("--env-file", str(env_file), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class ComposeProject:
    """compose.yaml with deploy/docker/devidp.env (the devidp profile) as one named project."""

    name: str
    variables: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_compose(
            "--env-file", str(DEV_ENV), "-p", self.name, *args, variables=self.variables, timeout=timeout
        )
        if check:
            output = f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            assert done.returncode == 0, f"compose {' '.join(args)}:\n{output}"
        return done

    def resolved(self) -> dict[str, Any]:
        return json.loads(self.run("config", "--format", "json", timeout=60).stdout)

    def container(self, service: str) -> str:
        return f"{self.name}-{service}-1"

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "25", timeout=60, check=False).stdout[-12000:]


@dataclass(frozen=True)
class Build:
    seconds: float


def build_images() -> Build:
    """What `make images` does: the base image and build CA (prepare.py), then every image of compose.yaml."""
    assert engine_answers(), (
        "no Docker engine answers: run the tests with `make test` (scripts/docker-engine.sh starts "
        "Debian's dockerd as root), or start your engine"
    )
    started = time.monotonic()
    prepared = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "docker" / "prepare.py")],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    ComposeProject("entra-bff-edge-build").run("--profile", "devidp", "build", timeout=1800)
    return Build(time.monotonic() - started)
