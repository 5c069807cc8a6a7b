"""Runs the SPA's own unit tests (Vitest: CSRF token holder, API client retry logic, role -> actions)
so that `pytest` covers them too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.prerequisites import missing, require_file

REPO = Path(__file__).resolve().parents[2]
SPA = REPO / "spa"


def _vitest() -> Path:
    vitest = require_file(SPA / "node_modules" / ".bin" / "vitest", f"run `npm ci` in {SPA}")
    node = shutil.which("node", path=_node_path())
    if node is None:
        missing("node", "the SPA tests need Node.js 20.19 or newer")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if (major, minor) < (20, 19):
        missing("Node.js 20.19 or newer", f"{node} is {version}")
    return vitest


def _node_path() -> str:
    # The Node.js scripts/setup.sh installs when the machine's is too old comes first, as under make.
    return os.pathsep.join([str(REPO / ".cache" / "node" / "bin"), os.environ.get("PATH", "")])


@pytest.mark.timeout(120)
def test_spa_vitest_suite_passes() -> None:
    vitest = _vitest()
    result = subprocess.run(
        [str(vitest), "run", "--reporter=dot", "--color=false"],
        cwd=SPA,
        capture_output=True,
        text=True,
        timeout=110,
        env={**_clean_env(), "CI": "true"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"vitest failed (exit {result.returncode}):\n{output[-6000:]}"
    assert " passed" in output and " failed" not in output, output[-2000:]


def test_spa_typechecks() -> None:
    _vitest()
    tsc = SPA / "node_modules" / ".bin" / "tsc"
    result = subprocess.run(
        [str(tsc), "--noEmit", "-p", str(SPA)],
        cwd=SPA,
        capture_output=True,
        text=True,
        timeout=110,
        env=_clean_env(),
    )
    assert result.returncode == 0, f"tsc found type errors:\n{(result.stdout + result.stderr)[-6000:]}"


def _clean_env() -> dict[str, str]:
    # NODE_OPTIONS from a caller's shell (e.g. an inspector flag) must not change how the suite runs.
    env = {key: value for key, value in os.environ.items() if key != "NODE_OPTIONS"}
    return {**env, "PATH": _node_path()}
