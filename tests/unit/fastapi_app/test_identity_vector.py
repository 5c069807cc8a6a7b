"""FastAPI accepts exactly the known-answer vector (tests/fixtures/identity_signature_v1.json).

The headers here are the vector's literal bytes, not the output of verifier.core.identity, so the API is
held to the wire format itself: if the verifier's signing or the API's checking drifted, one of the
two vector tests would fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fastapi_app import ApiSettings, create_app
from tests.fixtures import identity_signature_vector

VECTOR = identity_signature_vector()


def _settings(tmp_path: Path) -> ApiSettings:
    # Read from the environment as the API reads it in production, key and all.
    return ApiSettings.from_env(
        {
            "IDENTITY_SIGNING_KEY": VECTOR["identity_signing_key_env"],
            "API_DATABASE_PATH": str(tmp_path / "api.sqlite3"),
            "API_AUTHORITY_URL": f"https://login.microsoftonline.com/{VECTOR['principal']['tid']}",
            "API_OPENAPI_CLIENT_ID": VECTOR["principal"]["client_id"],
            "API_SCOPE_PREFIX": "api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57",
            "API_ACCESS_LOG": "false",
        }
    )


@pytest.fixture
def client_at_the_vector_time(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(_settings(tmp_path), clock=lambda: float(VECTOR["timestamp"]))
    with TestClient(app) as client:
        yield client


def _vector_headers(**changes: str) -> dict[str, str]:
    # nginx omits a header whose value is empty; the signature treats absent and empty alike.
    headers = {name: value for name, value in VECTOR["headers"].items() if value}
    headers["X-Identity-Signature"] = VECTOR["signature"]
    headers.update(changes)
    return headers


def test_the_api_accepts_the_vector_and_reads_its_principal(client_at_the_vector_time: TestClient) -> None:
    response = client_at_the_vector_time.request(VECTOR["method"], VECTOR["uri"], headers=_vector_headers())
    assert response.status_code == 200, response.text
    principal = VECTOR["principal"]
    assert response.json() == {
        "oid": principal["oid"],
        "tid": principal["tid"],
        "name": principal["name"],
        "email": principal["email"],
        "principal_type": principal["principal_type"],
        "auth_source": principal["auth_source"],
        "client_id": principal["client_id"],
        "roles": principal["roles"],
        "scopes": principal["scopes"],
        "groups": principal["groups"],
        "groups_overage": principal["groups_overage"],
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"X-Roles": "Reader,Writer,Admin"},
        {"X-User-Name": "Jose Nunez"},
        {"X-Groups-Overage": "1"},
        {"X-Identity-Signature": VECTOR["signature"][:-1] + ("A" if VECTOR["signature"][-1] != "A" else "B")},
    ],
    ids=["role-added", "name-changed", "overage-added", "signature-changed"],
)
def test_the_api_refuses_the_vector_with_any_value_changed(
    client_at_the_vector_time: TestClient, changes: dict[str, str]
) -> None:
    response = client_at_the_vector_time.request(
        VECTOR["method"], VECTOR["uri"], headers=_vector_headers(**changes)
    )
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "unauthenticated", "reason": "bad_identity_signature"}


def test_the_api_refuses_the_vector_on_another_uri(client_at_the_vector_time: TestClient) -> None:
    response = client_at_the_vector_time.request(
        VECTOR["method"], "/api/me?view=full", headers=_vector_headers()
    )
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "unauthenticated", "reason": "bad_identity_signature"}
