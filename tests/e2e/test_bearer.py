"""Bearer tokens from devidp reach FastAPI through nginx and the verifier with the right identity."""

from __future__ import annotations

import httpx
import jwt
import pytest

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_client_credentials_token_reaches_api_as_the_daemon_app(stack: Stack, client: httpx.Client, origin):
    token = edge_client.client_credentials_token(stack)
    r = client.get(origin + "/api/me", headers=_bearer(token))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["principal_type"] == "app"
    assert me["auth_source"] == "bearer"
    assert me["client_id"] == edge_client.DAEMON_CLIENT_ID
    assert sorted(me["roles"]) == ["Reader", "Writer"]
    assert me["tid"] == stack.topology.tenant_id
    assert me["oid"] == jwt.decode(token, options={"verify_signature": False})["oid"]


def test_password_grant_token_reaches_api_as_the_user(stack: Stack, client: httpx.Client, origin):
    api = stack.topology.api_app_id_uri
    # Entra puts name and preferred_username in an access token only with the profile scope.
    token = edge_client.password_token(
        stack, "bob@contoso-dev.example", "bob-password", scope=f"profile {api}/user.read {api}/user.write"
    )
    r = client.get(origin + "/api/me", headers=_bearer(token))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["principal_type"] == "user"
    assert me["name"] == "Bob Writer"
    assert me["email"] == "bob@contoso-dev.example"
    assert me["roles"] == ["Writer"]
    assert sorted(me["scopes"]) == ["user.read", "user.write"]
    assert me["client_id"] == edge_client.PUBLIC_CLIENT_ID
    # Bearer responses carry no CSRF token and no cookie: nothing for a browser to keep.
    assert "x-csrf-token" not in r.headers
    assert "set-cookie" not in r.headers


def test_microsoft_graph_token_is_rejected_with_reason_bad_signature(stack: Stack, client, origin):
    # Entra's tokens for Microsoft APIs are in a format that does not validate as a JWT (a hashed
    # header nonce), so the signature check refuses them before the audience is looked at.
    graph_token = edge_client.password_token(
        stack, "alice@contoso-dev.example", "alice-password", scope="openid profile User.Read"
    )
    r = client.get(origin + "/api/me", headers=_bearer(graph_token))
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "unauthorized", "bearer_error": "invalid_token", "reason": "bad_signature"}
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_token_for_another_audience_is_rejected_with_reason_bad_audience(stack: Stack, client, origin):
    # A token that validates but is not for our API: the ID token devidp issues to the public client.
    api = stack.topology.api_app_id_uri
    r = client.post(
        edge_client.token_endpoint(stack),
        data={
            "grant_type": "password",
            "client_id": edge_client.PUBLIC_CLIENT_ID,
            "username": "alice@contoso-dev.example",
            "password": "alice-password",
            "scope": f"openid profile {api}/user.read",
        },
    )
    assert r.status_code == 200, r.text
    r = client.get(origin + "/api/me", headers=_bearer(r.json()["id_token"]))
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "bearer_error": "invalid_token", "reason": "bad_audience"}


def test_token_of_another_tenant_is_rejected_with_reason_tenant_not_allowed(stack: Stack, client, origin):
    token = edge_client.other_tenant_token(stack)
    r = client.get(origin + "/api/me", headers=_bearer(token))
    assert r.status_code == 401
    assert r.json()["reason"] == "tenant_not_allowed"
    assert r.headers["www-authenticate"].startswith("Bearer ")


def test_tampered_token_is_rejected_with_reason_bad_signature(stack: Stack, client, origin):
    token = edge_client.client_credentials_token(stack)
    r = client.get(origin + "/api/me", headers=_bearer(edge_client.forged(token)))
    assert r.status_code == 401
    assert r.json()["reason"] == "bad_signature"


def test_missing_role_is_forbidden_with_reason_missing_role(stack: Stack, client, origin):
    # alice is a Reader: reading works, creating (Writer) is refused with 403 by the API's own policy
    # (the stack runs the verifier without a route policy, so insufficient_role cannot occur here).
    token = edge_client.password_token(stack, "alice@contoso-dev.example", "alice-password")
    assert client.get(origin + "/api/projects", headers=_bearer(token)).status_code == 200
    r = client.post(origin + "/api/projects", headers=_bearer(token), json={"name": "not allowed"})
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["reason"] == "missing_role"


def test_bearer_post_needs_no_csrf_token(stack: Stack, client, origin):
    token = edge_client.password_token(stack, "bob@contoso-dev.example", "bob-password")
    r = client.post(origin + "/api/projects", headers=_bearer(token), json={"name": "bearer post"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "bearer post"
