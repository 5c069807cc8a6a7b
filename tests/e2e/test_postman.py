"""The Postman collection (postman/), run by newman against the real stack: every request answers and
every `pm.test` check passes, refusals included.

newman is the exactly pinned npm package of postman/package.json, installed by scripts/setup.sh. It
trusts the stack's development CA through NODE_EXTRA_CA_CERTS, so TLS stays verified. The local
environment file names the fixed ports of `make run`; the two origins are overridden for the stack
this session started on free ports.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stack.launcher import Stack

pytestmark = pytest.mark.e2e

POSTMAN = Path(__file__).resolve().parents[2] / "postman"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
COLLECTION = POSTMAN / "entra-bff-edge.postman_collection.json"
LOCAL_ENVIRONMENT = POSTMAN / "local.postman_environment.json"

#: The folders a machine can run alone, in collection order. The last folder ("Real tenant") needs a
#: person at a browser and is never part of an automated run.
TOKEN_FOLDERS = ("1. Service token and device code", "2. User tokens by password (devidp only)")
API_FOLDERS = ("3. API", "4. Refusals")
REVALIDATED_FOLDER = "5. API: deleting and changing settings (re-validated, step-up)"
PERSON_FOLDER = "6. Real tenant (in the Postman app)"


def _collection_folders() -> dict[str, list[str]]:
    collection = json.loads(COLLECTION.read_text(encoding="utf-8"))
    return {folder["name"]: [item["name"] for item in folder["item"]] for folder in collection["item"]}


def run_newman(stack: Stack, folders: tuple[str, ...], report: Path) -> dict[str, Any]:
    t = stack.topology
    return run_newman_at(t.public_origin, t.devidp_origin, stack.ca_file, folders, report)


def run_newman_at(
    origin: str,
    idp_origin: str,
    ca_file: Path,
    folders: tuple[str, ...],
    report: Path,
) -> dict[str, Any]:
    """Run the collection's ``folders`` against a deployment at ``origin`` whose identity provider
    (devidp) is at ``idp_origin``, both serving certificates of the CA in ``ca_file``."""
    assert NEWMAN.is_file(), f"{NEWMAN} is missing: run `make setup` (scripts/setup.sh installs newman)"
    command = [
        str(NEWMAN),
        "run",
        str(COLLECTION),
        "--environment",
        str(LOCAL_ENVIRONMENT),
        "--env-var",
        f"baseUrl={origin}",
        "--env-var",
        f"authorityHost={idp_origin}",
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report),
        "--color",
        "off",
        "--timeout-request",
        "20000",
    ]
    for folder in folders:
        command += ["--folder", folder]
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(ca_file)}
    done = subprocess.run(
        command, cwd=POSTMAN, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert report.is_file(), f"newman wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    result = json.loads(report.read_text(encoding="utf-8"))
    result["cli_output"] = done.stdout + done.stderr
    result["exit_code"] = done.returncode
    return result


def failures_of(result: dict[str, Any]) -> list[str]:
    return [
        f"{f['source'].get('name', '?')}: {f['error'].get('test') or ''} {f['error']['message']}"
        for f in result["run"]["failures"]
    ]


def executed_requests(result: dict[str, Any]) -> list[str]:
    return [execution["item"]["name"] for execution in result["run"]["executions"]]


def assertion_count(result: dict[str, Any]) -> int:
    return sum(len(execution.get("assertions", [])) for execution in result["run"]["executions"])


def test_collection_folders_are_the_ones_this_test_runs():
    folders = _collection_folders()
    assert list(folders) == [*TOKEN_FOLDERS, *API_FOLDERS, REVALIDATED_FOLDER, PERSON_FOLDER]


def test_every_request_and_check_of_the_collection_passes_against_the_stack(stack: Stack, tmp_path: Path):
    result = run_newman(stack, (*TOKEN_FOLDERS, *API_FOLDERS), tmp_path / "newman.json")
    assert failures_of(result) == [], result["cli_output"][-6000:]
    assert result["exit_code"] == 0, result["cli_output"][-6000:]
    folders = _collection_folders()
    expected = [name for folder in (*TOKEN_FOLDERS, *API_FOLDERS) for name in folders[folder]]
    assert executed_requests(result) == expected
    # Every request carries checks of its own; none passed by checking nothing.
    for execution in result["run"]["executions"]:
        assert execution.get("assertions"), f"{execution['item']['name']} has no pm.test check"
    assert assertion_count(result) >= 2 * len(expected)


def test_the_admin_folder_gets_the_step_up_challenge_through_the_edge(stack: Stack, tmp_path: Path):
    # A password-grant token cannot step up: each critical request gets the claims challenge, checked
    # header and body by the collection; deleting after step-up is tests/e2e/test_step_up.py's.
    result = run_newman(stack, (*TOKEN_FOLDERS, "3. API", REVALIDATED_FOLDER), tmp_path / "newman.json")
    assert failures_of(result) == [], result["cli_output"][-6000:]
