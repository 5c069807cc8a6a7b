"""compose.yaml, really run: every service started as a plain process exactly as the real Compose
CLI's resolved model describes it (command, environment, volumes, ports, health checks, dependency
conditions), in private network and mount namespaces, then the bearer, session and Postman smoke
tests against it. A wrong variable, port, path or health check in compose.yaml fails here.

The machines that run `make test` have no container engine; `make e2e-compose` runs the same smoke
tests against real containers where there is one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compose_model import cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def namespace_command() -> list[str]:
    # A PID namespace too: when its first process ends, however it ends, the kernel ends every
    # service left in it. As root the namespaces need nothing more; otherwise a user namespace maps
    # us to root in it.
    command = ["unshare", "--net", "--mount", "--pid", "--mount-proc", "--fork"]
    if os.getuid() != 0:
        command.insert(1, "--map-root-user")
    return command


def test_the_services_of_compose_yaml_run_as_described_and_pass_the_smoke_tests(tmp_path: Path):
    assert shutil.which("unshare") and shutil.which("nsenter"), "util-linux's unshare and nsenter are needed"
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(cli.resolved_model()), encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    done = subprocess.run(
        [*namespace_command(), sys.executable, "-m", "tests.compose_model.run",
         "--model", str(model_file), "--work", str(tmp_path / "work"), "--logs", str(logs)],
        cwd=cli.REPO, capture_output=True, text=True, timeout=400, check=False,
    )
    tails = "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        for log in sorted(logs.glob("*.log"))
    )
    assert done.returncode == 0, f"{done.stdout[-8000:]}\n{done.stderr[-4000:]}\n{tails}"
    assert "4 passed" in done.stdout, done.stdout[-4000:]
    for service in ("nginx", "oauth2-proxy", "verifier", "api", "redis", "postgres", "devidp"):
        assert f"[compose-model] {service} is healthy" in done.stdout, service
    assert "[compose-model] tls-init completed" in done.stdout
    assert "[compose-model] api-migrate completed" in done.stdout
