"""Runs the SPA's own unit tests (Vitest: CSRF token holder, API client retry logic, role -> actions)
so that `pytest` covers them too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SPA = Path(__file__).resolve().parents[2] / "spa"


def _vitest() -> Path:
    vitest = SPA / "node_modules" / ".bin" / "vitest"
    if not vitest.exists():
        pytest.skip(
            f"{vitest} is missing: run `npm ci` in {SPA} (scripts/setup.sh does) to run the SPA tests"
        )
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the SPA tests need Node.js 20.19 or newer")
    return vitest


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
    return {key: value for key, value in os.environ.items() if key != "NODE_OPTIONS"}
