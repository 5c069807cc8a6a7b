"""The API as a client generated from its own OpenAPI document meets it: Schemathesis, a
property-based API tester, drives every operation through nginx and the verifier, as each role, with
every check (status codes, content types, headers and bodies against the document, data the schema
refuses is refused and data it allows is accepted, 405 with Allow, refusal without credentials,
resources that stay available after creation and gone after deletion) and its stateful phase (the
document's links: create a project, then read, change and delete it). It must find nothing.

Its own stack, so tokens live long enough for a whole run (the shared one's live seconds) and the
projects and settings the run creates and changes touch no other test. A fixed seed and a bounded
number of examples keep the run short and repeatable; the output names the seed and each failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.launcher import Stack
from stack.topology import free_port, free_port_topology
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

SEED = 20261207
#: Examples per operation and phase: enough for every check to meet every operation, a run of the
#: four roles stays within about a minute.
MAX_EXAMPLES = 25
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}
ROLES = {"reader": "alice", "writer": "bob", "admin": "carol", "app": None}


@pytest.fixture(scope="module")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    topology = free_port_topology(
        tmp_path_factory.mktemp("contract-stack"),
        database=os.environ.get("E2E_API_DATABASE", "sqlite"),
        postgres_port=free_port(),
    )
    with Stack(topology) as running:
        yield running


def _token(stack: Stack, role: str) -> str:
    user = ROLES[role]
    if user is None:
        return edge_client.client_credentials_token(stack)
    api = stack.topology.api_app_id_uri
    scope = f"{api}/user.read {api}/user.write {api}/admin"
    username = f"{user}@contoso-dev.example"
    if role == "admin":
        # Stepped up (authentication context c1): the Admin's deletes and settings changes succeed,
        # so the run reaches their 2xx answers too.
        code = edge_client.STEP_UP_CODES[user]
        return edge_client.stepped_up_token(stack, username, PASSWORDS[user], code, scope=scope)
    return edge_client.password_token(stack, username, PASSWORDS[user], scope=scope)


@pytest.fixture(scope="module")
def schema_file(contract_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The document as a client fetches it: through the edge, with a token."""
    token = _token(contract_stack, "reader")
    with edge_client.new_client(contract_stack) as client:
        response = client.get(
            f"{contract_stack.topology.public_origin}/api/openapi.json",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    path = tmp_path_factory.mktemp("contract") / "openapi.json"
    path.write_bytes(response.content)
    return path


@pytest.mark.parametrize("role", list(ROLES))
def test_schemathesis_finds_nothing_as_each_role(contract_stack: Stack, schema_file: Path, role: str) -> None:
    token = _token(contract_stack, role)
    command = [
        str(Path(sys.executable).with_name("st")), "run", str(schema_file),
        "--url", contract_stack.topology.public_origin,
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--header", f"Authorization: Bearer {token}",
        "--tls-verify", str(contract_stack.ca_file),
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",
        "--no-color",
        "--output-truncate", "false",
    ]  # fmt: skip
    # In its own folder: Schemathesis keeps a cache of crashes in the working directory.
    done = subprocess.run(
        command, cwd=schema_file.parent, capture_output=True, text=True, timeout=600, check=False
    )
    # The token is a secret of this test's own stack only, but keep it out of the report anyway.
    output = (done.stdout + done.stderr).replace(token, "<token>")
    assert done.returncode == 0, output[-20_000:]
    summary = output[output.rfind("SUMMARY") :]
    print(f"\n[api contract] {role}:\n{summary}")
    # Every operation was tested, and no phase was skipped for want of data.
    assert "Tested: 12" in summary, summary
    assert "❌" not in summary, summary


def test_every_405_names_the_allowed_methods_nginxs_and_the_apis(contract_stack: Stack) -> None:
    origin = contract_stack.topology.public_origin
    bearer = {"Authorization": f"Bearer {_token(contract_stack, 'writer')}"}
    with edge_client.new_client(contract_stack) as client:
        # nginx refuses TRACE itself, before any location.
        traced = client.request("TRACE", f"{origin}/api/projects", headers=bearer)
        assert traced.status_code == 405
        assert traced.headers.get_list("allow") == ["GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"]
        assert traced.json() == {"error": "method_not_allowed", "reason": "method_not_allowed"}
        # The API's own 405 keeps its exact list, once.
        put = client.put(f"{origin}/api/projects", headers=bearer, json={})
        assert put.status_code == 405
        assert put.headers.get_list("allow") == ["GET, POST"]
        # A page path: what nginx serves there.
        page = client.request("TRACE", f"{origin}/assets/x.js")
        assert page.status_code == 405 and page.headers.get_list("allow") == ["GET, HEAD"]


def test_a_body_that_is_not_json_gets_its_reason_through_the_edge(contract_stack: Stack) -> None:
    origin = contract_stack.topology.public_origin
    bearer = {"Authorization": f"Bearer {_token(contract_stack, 'writer')}"}
    with edge_client.new_client(contract_stack) as client:
        broken = client.post(
            f"{origin}/api/projects",
            content=b"{not json",
            headers={**bearer, "Content-Type": "application/json"},
        )
        assert (broken.status_code, broken.json()) == (
            400,
            {"error": "invalid_request", "reason": "malformed_json"},
        )
        text = client.post(
            f"{origin}/api/projects", content=b"name=x", headers={**bearer, "Content-Type": "text/plain"}
        )
        assert text.status_code == 415
        assert text.json() == {"error": "unsupported_media_type", "reason": "unsupported_media_type"}
