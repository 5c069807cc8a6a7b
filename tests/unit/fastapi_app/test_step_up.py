"""Step-up on critical actions: the Conditional Access authentication context in the re-validated token.

Project delete and settings change need ``acrs`` to hold the configured context (``c1``). Without it, a
token whose client declared ``cp1`` (``xms_cc``) gets Microsoft's claims challenge, any other a plain
403 ``auth_context_required``; app-only tokens pass on their role.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from fastapi_app import create_app
from fastapi_app.authorization import require_auth_context
from fastapi_app.errors import claims_challenge
from fastapi_app.token_check import StaticKeys, VerifierRevalidator
from tests.unit.fastapi_app.conftest import (
    ALICE,
    AUTHORITY,
    CAROL,
    TENANT,
    Api,
    app_principal,
    key_set_of,
    make_settings,
    mint_access_token,
    validation_settings,
)
from verifier.core.identity import Principal

SETTINGS_BODY = {"read_only": False, "max_projects_per_owner": 7, "banner": "stepped up"}
ADMIN_APP = app_principal("admin-job", ("Admin",))
#: Microsoft's example value: standard base64 of {"access_token":{"acrs":{"essential":true,"value":"c1"}}}.
C1_CLAIMS = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"


@pytest.fixture
def stepped_api(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Iterator[Api]:
    settings = make_settings(tmp_path, step_up_auth_context="c1")
    revalidator = VerifierRevalidator(validation_settings(), StaticKeys(key_set_of(rsa_key)))
    with TestClient(create_app(settings, revalidator=revalidator)) as client:
        yield Api(client, settings, rsa_key)


def _delete(api: Api, principal: Principal, **claims: Any) -> tuple[Any, bool]:
    project = api.create_project(CAROL)
    uri = f"/api/projects/{project['id']}"
    token = mint_access_token(principal, api.rsa_key, **claims)
    response = api.call("DELETE", uri, principal, access_token=token)
    return response, api.call("GET", uri, ALICE).status_code == 200


def _put_settings(api: Api, principal: Principal, **claims: Any) -> Any:
    token = mint_access_token(principal, api.rsa_key, **claims)
    return api.call("PUT", "/api/admin/settings", principal, access_token=token, json=SETTINGS_BODY)


def _challenge_parameters(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer"
    return dict(re.findall(r'(\w+)="([^"]*)"', rest))


def test_the_claims_value_is_microsofts_documented_request_for_the_context() -> None:
    decoded = json.loads(base64.b64decode(claims_challenge("c1"), validate=True))
    assert decoded == {"access_token": {"acrs": {"essential": True, "value": "c1"}}}
    assert claims_challenge("c1") == C1_CLAIMS


def test_an_admin_whose_sign_in_satisfied_the_context_deletes(stepped_api: Api) -> None:
    response, still_there = _delete(stepped_api, CAROL, acrs=["c1"], xms_cc=["cp1"])
    assert response.status_code == 204, response.text
    assert not still_there


def test_a_cp1_client_without_the_context_gets_the_claims_challenge_and_nothing_is_deleted(
    stepped_api: Api,
) -> None:
    response, still_there = _delete(stepped_api, CAROL, xms_cc=["cp1"])
    assert response.status_code == 401
    body = {"error": "unauthenticated", "reason": "insufficient_claims", "required": ["c1"]}
    assert response.json() == body
    challenge = response.headers["www-authenticate"]
    assert challenge == (
        f'Bearer realm="", authorization_uri="{AUTHORITY}/{TENANT}/oauth2/v2.0/authorize", '
        'error="insufficient_claims", '
        f'claims="{C1_CLAIMS}"'
    )
    assert _challenge_parameters(challenge)["error"] == "insufficient_claims"
    assert response.headers["cache-control"] == "no-store"
    assert still_there


def test_another_context_than_the_one_required_is_not_enough(stepped_api: Api) -> None:
    response, still_there = _delete(stepped_api, CAROL, acrs=["c2"], xms_cc=["cp1"])
    assert response.status_code == 401
    assert response.json()["reason"] == "insufficient_claims"
    assert still_there


def test_a_client_that_cannot_step_up_gets_a_plain_403_with_its_reason(stepped_api: Api) -> None:
    response, still_there = _delete(stepped_api, CAROL)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "reason": "auth_context_required", "required": ["c1"]}
    assert "www-authenticate" not in response.headers
    assert still_there


def test_an_unknown_capability_is_not_cp1(stepped_api: Api) -> None:
    response, _ = _delete(stepped_api, CAROL, xms_cc=["cp2"])
    assert response.status_code == 403
    assert response.json()["reason"] == "auth_context_required"


def test_the_context_is_read_from_the_token_not_from_what_the_headers_claim(stepped_api: Api) -> None:
    # The signed identity carries no acrs; a principal that says it has one changes nothing.
    claimed = replace(CAROL, auth_contexts=("c1",))
    response, still_there = _delete(stepped_api, claimed)
    assert response.status_code == 403
    assert still_there


def test_a_malformed_acrs_claim_refuses_the_token(stepped_api: Api) -> None:
    response, still_there = _delete(stepped_api, CAROL, acrs="c1")
    assert response.status_code == 401
    assert response.json() == {"error": "unauthenticated", "reason": "bad_claim_type"}
    assert still_there


def test_the_settings_change_asks_for_the_same_step_up(stepped_api: Api) -> None:
    challenged = _put_settings(stepped_api, CAROL, xms_cc=["cp1"])
    assert challenged.status_code == 401
    assert challenged.json()["reason"] == "insufficient_claims"
    refused = _put_settings(stepped_api, CAROL)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "auth_context_required"
    assert stepped_api.call("GET", "/api/admin/settings", CAROL).json()["banner"] != SETTINGS_BODY["banner"]
    saved = _put_settings(stepped_api, CAROL, acrs=["c1"], xms_cc=["cp1"])
    assert saved.status_code == 200, saved.text
    assert saved.json()["banner"] == SETTINGS_BODY["banner"]


def test_an_app_token_passes_on_its_role(stepped_api: Api) -> None:
    response, still_there = _delete(stepped_api, ADMIN_APP)
    assert response.status_code == 204, response.text
    assert not still_there


def test_the_role_is_still_checked_before_the_step_up(stepped_api: Api) -> None:
    response, still_there = _delete(stepped_api, ALICE, acrs=["c1"], xms_cc=["cp1"])
    assert response.status_code == 403
    assert response.json()["reason"] == "missing_role"
    assert still_there


def test_without_a_step_up_context_the_critical_actions_only_revalidate(api: Api) -> None:
    response, still_there = _delete(api, CAROL)
    assert response.status_code == 204, response.text
    assert not still_there


def test_the_document_lists_both_refusals_on_the_critical_operations(stepped_api: Api) -> None:
    paths = stepped_api.client.get("/api/openapi.json").json()["paths"]
    for operation in (paths["/api/projects/{project_id}"]["delete"], paths["/api/admin/settings"]["put"]):
        text = json.dumps(operation["responses"])
        assert "insufficient_claims" in text
        assert "auth_context_required" in text
    assert "auth_context_required" not in json.dumps(paths["/api/admin/settings"]["get"]["responses"])


def test_the_dependency_refuses_a_bad_context_id() -> None:
    with pytest.raises(ValueError, match="c1 to c99"):
        require_auth_context("c100")
