"""The README's bearer example, run as written against the real stack.

Only what a different machine changes is replaced: the stack here listens on free ports, and its CA
is in the test's run folder instead of run/tls/. Every id, secret, path and pipe is the README's own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stack.launcher import Stack

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def _bearer_example() -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    return blocks[1]


def _for_this_stack(script: str, stack: Stack) -> str:
    return (
        script.replace("https://localhost:8900", stack.topology.devidp_origin)
        .replace("https://localhost:8443", stack.topology.public_origin)
        .replace("run/tls/dev-ca.pem", str(stack.ca_file))
    )


def _run(script: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.fail("curl is missing: scripts/setup.sh installs it (the README's examples use it)")
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_readme_bearer_example_answers_as_the_daemon_app(stack: Stack) -> None:
    result = _run(_for_this_stack(_bearer_example(), stack))
    assert result.returncode == 0, result.stderr
    me = json.loads(result.stdout)
    assert me["principal_type"] == "app"
    assert me["auth_source"] == "bearer"
    assert me["client_id"] == "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70"
    assert me["tid"] == stack.topology.tenant_id


def test_the_readme_refusal_example_has_the_shape_the_edge_answers(stack: Stack) -> None:
    example = _bearer_example()
    documented = json.loads(re.search(r"# a refused token says why: (\{.*\})", example).group(1))
    # The same request as the README's last line, with a token that has expired long ago.
    last_call = [line for line in example.splitlines() if "/api/me" in line][-1]
    expired = (
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJleHAiOjEwMDAwMDAwMDAsInRpZCI6IjdmMWMyYjNhLTRkNWUtNGY2MC04YTdiLTljMGQxZTJmM2E0YiJ9.c2ln"
    )
    result = _run(_for_this_stack(f"TOKEN={expired}\n{last_call}", stack))
    assert result.returncode == 0, result.stderr
    refused = json.loads(result.stdout)
    assert sorted(refused) == sorted(documented)
    assert refused["error"] == documented["error"]
    assert refused["bearer_error"] == documented["bearer_error"]
