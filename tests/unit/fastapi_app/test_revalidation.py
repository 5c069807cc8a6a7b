"""Re-validating the forwarded access token on critical endpoints, with the verifier's library."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from fastapi_app import app as app_module
from fastapi_app import create_app
from fastapi_app.refusals import endpoint_routes
from fastapi_app.revalidation import REVALIDATED_ROUTES, revalidating_routes
from fastapi_app.token_check import StaticKeys, VerifierRevalidator
from tests.unit.fastapi_app.conftest import (
    ALICE,
    CAROL,
    KEY,
    TENANT,
    Api,
    key_set_of,
    make_settings,
    mint_access_token,
    validation_settings,
)
from tests.unit.fastapi_app.edge_path import api_header_copies, edge_headers
from verifier.core.forwarded_routes import needs_forwarded_token, parse_routes
from verifier.core.identity import HEADER_FORWARDED_TOKEN, Principal
from verifier.core.jwk import KeySet

SETTINGS_BODY = {"read_only": True, "max_projects_per_owner": 3, "banner": "changed"}


def delete_with_token(api: Api, token: str | None, principal: Principal = CAROL) -> Any:
    project = api.create_project(CAROL)
    uri = f"/api/projects/{project['id']}"
    response = api.call("DELETE", uri, principal, access_token=token if token is not None else "")
    still_there = api.call("GET", uri, ALICE).status_code == 200
    return response, still_there


def assert_refused(response: Any, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "unauthenticated", "reason": reason}


def test_delete_with_a_matching_valid_token_succeeds(api: Api) -> None:
    response, still_there = delete_with_token(api, mint_access_token(CAROL, api.rsa_key))
    assert response.status_code == 204
    assert not still_there


def test_token_with_bearer_prefix_is_accepted(api: Api) -> None:
    response, _ = delete_with_token(api, "Bearer " + mint_access_token(CAROL, api.rsa_key))
    assert response.status_code == 204


def test_delete_without_forwarded_token_is_refused_with_reason_missing_forwarded_token(api: Api) -> None:
    response, still_there = delete_with_token(api, None)
    assert_refused(response, "missing_forwarded_token")
    assert still_there


def test_token_of_another_user_is_refused_with_reason_token_identity_mismatch(api: Api) -> None:
    other_admin = replace(CAROL, oid="0e0e0e0e-0000-4000-8000-000000000001")
    response, still_there = delete_with_token(api, mint_access_token(other_admin, api.rsa_key))
    assert_refused(response, "token_identity_mismatch")
    assert still_there


def test_token_with_fewer_roles_than_the_signed_headers_is_refused_as_mismatch(api: Api) -> None:
    # Headers claim Admin (e.g. forged with a stolen signing key); the real token says Reader.
    token = mint_access_token(replace(CAROL, roles=("Reader",)), api.rsa_key)
    response, still_there = delete_with_token(api, token)
    assert_refused(response, "token_identity_mismatch")
    assert still_there


def test_token_with_other_scopes_than_the_signed_headers_is_refused_as_mismatch(api: Api) -> None:
    token = mint_access_token(replace(CAROL, scopes=("user.read",)), api.rsa_key)
    response, _ = delete_with_token(api, token)
    assert_refused(response, "token_identity_mismatch")


def test_app_token_for_a_user_identity_is_refused_as_mismatch(api: Api) -> None:
    token = mint_access_token(replace(CAROL, principal_type="app", scopes=()), api.rsa_key)
    response, _ = delete_with_token(api, token)
    assert_refused(response, "token_identity_mismatch")


def test_expired_token_is_refused_with_reason_expired(api: Api) -> None:
    token = mint_access_token(CAROL, api.rsa_key, now=int(time.time()) - 7200)
    response, still_there = delete_with_token(api, token)
    assert_refused(response, "expired")
    assert still_there


def test_token_signed_by_another_key_is_refused_with_reason_bad_signature(api: Api) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response, still_there = delete_with_token(api, mint_access_token(CAROL, stranger))
    assert_refused(response, "bad_signature")
    assert still_there


def test_token_for_another_audience_is_refused_with_reason_bad_audience(api: Api) -> None:
    token = mint_access_token(CAROL, api.rsa_key, aud="api://some-other-api")
    response, _ = delete_with_token(api, token)
    assert_refused(response, "bad_audience")


def test_token_with_unknown_kid_is_refused_with_reason_unknown_kid(api: Api) -> None:
    response, _ = delete_with_token(api, mint_access_token(CAROL, api.rsa_key, kid="rotated-away"))
    assert_refused(response, "unknown_kid")


def test_garbage_token_is_refused_with_the_library_reason(api: Api) -> None:
    response, _ = delete_with_token(api, "not-a-jwt")
    assert_refused(response, "malformed_token")


def test_oversized_forwarded_token_is_refused_before_parsing(api: Api) -> None:
    response, _ = delete_with_token(api, "a" * (17 * 1024))
    assert_refused(response, "malformed_forwarded_token")


def test_authorization_is_decided_before_the_token_is_revalidated(api: Api) -> None:
    # A Reader with a perfectly valid token is refused by policy, never reaching re-validation.
    project = api.create_project(CAROL)
    response = api.call("DELETE", f"/api/projects/{project['id']}", ALICE)
    assert response.status_code == 403
    assert response.json()["reason"] == "missing_role"


def test_admin_settings_change_with_mismatched_token_is_refused_and_not_applied(api: Api) -> None:
    token = mint_access_token(replace(CAROL, oid="0e0e0e0e-0000-4000-8000-000000000002"), api.rsa_key)
    response = api.call("PUT", "/api/admin/settings", CAROL, json=SETTINGS_BODY, access_token=token)
    assert_refused(response, "token_identity_mismatch")
    assert api.call("GET", "/api/admin/settings", CAROL).json()["read_only"] is False


def test_admin_settings_change_without_token_is_refused(api: Api) -> None:
    # A source that has no access token to pass on (the ALB's header) cannot change settings.
    response = api.call("PUT", "/api/admin/settings", CAROL, json=SETTINGS_BODY, access_token="")
    assert_refused(response, "missing_forwarded_token")


def test_admin_settings_read_does_not_need_a_forwarded_token(api: Api) -> None:
    assert api.call("GET", "/api/admin/settings", CAROL).status_code == 200


def test_revalidating_endpoint_answers_503_when_revalidation_is_not_configured(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    settings = make_settings(tmp_path, revalidation=None)
    with TestClient(create_app(settings)) as client:
        headers = edge_headers(
            CAROL,
            "PUT",
            "/api/admin/settings",
            access_token=mint_access_token(CAROL, rsa_key),
            key=KEY,
            now=int(time.time()),
        )
        response = client.put("/api/admin/settings", json=SETTINGS_BODY, headers=headers)
        assert response.status_code == 503
        assert response.json() == {"error": "unavailable", "reason": "revalidation_unavailable"}


class RotatingKeys:
    """A key provider that learns a new key only when asked to refetch (like the JWKS cache)."""

    def __init__(self, before: KeySet, after: KeySet) -> None:
        self.keys = before
        self._after = after
        self.refetches: list[tuple[str, str]] = []

    async def refetch_for_unknown_kid(self, tenant_id: str, kid: str) -> bool:
        self.refetches.append((tenant_id, kid))
        self.keys = self._after
        return True


async def test_revalidator_refetches_keys_once_for_a_rotated_kid(rsa_key: rsa.RSAPrivateKey) -> None:
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = RotatingKeys(key_set_of(rsa_key), key_set_of(new_key, kid="kid-2"))
    revalidator = VerifierRevalidator(validation_settings(), keys)
    principal = await revalidator.revalidate(mint_access_token(CAROL, new_key, kid="kid-2"))
    assert principal.oid == CAROL.oid
    assert principal.roles == ("Admin",)
    assert keys.refetches == [(TENANT, "kid-2")]


async def test_revalidator_fetches_keys_for_a_tenant_not_loaded_yet(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = RotatingKeys(KeySet(), key_set_of(rsa_key))
    principal = await VerifierRevalidator(validation_settings(), keys).revalidate(
        mint_access_token(CAROL, rsa_key)
    )
    assert principal.oid == CAROL.oid
    assert len(keys.refetches) == 1


async def test_revalidator_reports_unavailable_when_keys_cannot_be_loaded(rsa_key: rsa.RSAPrivateKey) -> None:
    from fastapi_app.revalidation import RevalidationUnavailable

    revalidator = VerifierRevalidator(validation_settings(), StaticKeys(KeySet()))
    with pytest.raises(RevalidationUnavailable) as caught:
        await revalidator.revalidate(mint_access_token(CAROL, rsa_key))
    assert caught.value.reason == "revalidation_unavailable"


def test_default_revalidator_is_built_from_settings_with_the_verifier_jwks_cache(tmp_path: Path) -> None:
    from verifier.keys.jwks import JwksCache

    # Built, not started (no lifespan), so no key fetch leaves the machine.
    app = create_app(make_settings(tmp_path, revalidation=validation_settings()))
    revalidator = app.state.revalidator
    assert isinstance(revalidator, VerifierRevalidator)
    assert isinstance(revalidator._keys, JwksCache)


# --- the token's way from the verifier through nginx -------------------------------------------------


def test_nginx_copies_the_forwarded_token_from_the_verifiers_answer_to_the_api() -> None:
    assert api_header_copies()[HEADER_FORWARDED_TOKEN] == HEADER_FORWARDED_TOKEN.lower()


@pytest.mark.parametrize(
    ("method", "uri"),
    [
        ("GET", "/api/me"),
        ("GET", "/api/projects"),
        ("POST", "/api/projects"),
        ("PATCH", "/api/projects/0b1c2d3e-0000-4000-8000-000000000001"),
        ("GET", "/api/admin/settings"),
    ],
)
def test_endpoints_that_do_not_revalidate_never_receive_the_token(rsa_key: rsa.RSAPrivateKey, method, uri):
    headers = edge_headers(
        CAROL, method, uri, access_token=mint_access_token(CAROL, rsa_key), key=KEY, now=int(time.time())
    )
    assert "X-Identity-Signature" in headers
    assert HEADER_FORWARDED_TOKEN not in headers


def test_the_verifier_forwards_the_token_to_exactly_the_endpoints_that_revalidate_it(api: Api) -> None:
    routes = api.client.app.routes  # type: ignore[attr-defined]
    revalidating = revalidating_routes(routes)
    assert revalidating == {"DELETE /api/projects/{project_id}", "PUT /api/admin/settings"}
    assert revalidating == set(REVALIDATED_ROUTES)
    # The verifier configured as every deployment configures it (the list the API publishes): for every
    # route FastAPI has, with its path parameters filled in, yes for the re-validating ones and no for
    # all the others.
    configured, problems = parse_routes(", ".join(REVALIDATED_ROUTES))
    assert problems == []
    endpoints = [(method, route.path_format) for route in endpoint_routes(routes) for method in route.methods]
    assert len(endpoints) > 10
    for method, path in endpoints:
        uri = path.replace("{project_id}", "0b1c2d3e-0000-4000-8000-000000000001")
        expected = f"{method} {path}" in revalidating
        assert needs_forwarded_token(method, uri, configured) is expected, (method, path)


def test_an_app_whose_routes_disagree_with_the_published_list_is_not_built(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(app_module, "REVALIDATED_ROUTES", ("DELETE /api/projects/{project_id}",))
    with pytest.raises(RuntimeError, match="PUT /api/admin/settings"):
        app_module.create_app(make_settings(tmp_path))
