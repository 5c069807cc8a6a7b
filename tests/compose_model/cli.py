"""The real Docker Compose CLI that scripts/setup.sh builds, run with nothing but the file under test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
DEV_ENV = REPO / "deploy" / "docker" / "devidp.env"
#: Never skipped for want of it: a machine without it has not run `make setup`.
COMPOSE_CLI = REPO / ".cache" / "bin" / "docker-compose"
#: No variable of the caller's shell may reach the interpolation: only the env file under test.
CLEAN_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": str(REPO / ".cache"),
    "DOCKER_CONFIG": str(REPO / ".cache" / "docker"),
}


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE_CLI.exists(), f"{COMPOSE_CLI} is missing: run `make setup` (scripts/setup.sh builds it)"
    return subprocess.run(
        [str(COMPOSE_CLI), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), *args],
        capture_output=True, text=True, timeout=60, check=False, env=CLEAN_ENV, cwd=REPO,
    )


def resolved_model(env_file: Path = DEV_ENV) -> dict[str, Any]:
    """compose.yaml as the CLI resolves it with ``env_file`` (`config --format json`)."""
    done = run_compose("--env-file", str(env_file), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
