"""Token contents shaped like Entra's, checked with PyJWT against devidp's discovery and JWKS."""

from __future__ import annotations

import pytest

from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    API,
    API_URI,
    BFF,
    DAVE,
    OTHER_TENANT,
    POSTMAN,
    TENANT,
    RunningIdp,
    bff_code,
    unverified,
    validate_as_resource_server,
)


def _ropc(idp: RunningIdp, user: str, scope: str, client: str = POSTMAN, tenant: str = TENANT) -> dict:
    r = idp.token(
        forms.password(f"{user}", user.split("@")[0] + "-password", scope, client_id=client),
        tenant=tenant,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_v2_user_access_token_has_entra_v2_claims(idp: RunningIdp) -> None:
    body = _ropc(idp, "alice@contoso-dev.example", f"profile {API_URI}/user.read")
    assert body["scope"] == f"{API_URI}/user.read"
    claims = validate_as_resource_server(idp, body["access_token"], audience=API)
    assert claims["iss"] == f"{idp.base_url}/{TENANT}/v2.0"
    assert claims["aud"] == API and claims["ver"] == "2.0"
    assert claims["azp"] == POSTMAN and "appid" not in claims
    assert claims["scp"] == "user.read"
    assert claims["roles"] == ["Reader"]
    assert claims["groups"] == ["6a7b8c9d-0e1f-4a2b-8c3d-4e5f60718293"]
    assert claims["exp"] - claims["iat"] == body["expires_in"] and claims["nbf"] == claims["iat"]
    for name in ("oid", "tid", "sub", "uti", "name", "preferred_username"):
        assert claims[name], name


def test_v1_access_token_when_api_requests_version_1(start_idp) -> None:
    def v1(data: dict) -> None:
        data["tenants"][0]["applications"][0]["api"]["requestedAccessTokenVersion"] = 1

    idp = start_idp(v1)
    body = _ropc(idp, "bob@contoso-dev.example", f"{API_URI}/user.write")
    claims = validate_as_resource_server(idp, body["access_token"], audience=API_URI, version=1)
    assert claims["iss"] == f"{idp.base_url}/{TENANT}/"
    assert claims["aud"] == API_URI and claims["ver"] == "1.0"
    assert claims["appid"] == POSTMAN and claims["appidacr"] == "0" and "azp" not in claims
    assert claims["upn"] == "bob@contoso-dev.example" and claims["unique_name"] == claims["upn"]
    app = idp.token(forms.daemon_credentials()).json()
    app_claims = validate_as_resource_server(idp, app["access_token"], audience=API_URI, version=1)
    assert app_claims["appidacr"] == "1" and app_claims["idtyp"] == "app"


def test_scp_lists_only_requested_scopes(idp: RunningIdp) -> None:
    body = _ropc(idp, "carol@contoso-dev.example", f"{API_URI}/admin {API_URI}/user.read openid")
    claims = unverified(body["access_token"])
    assert claims["scp"] == "admin user.read"
    assert claims["roles"] == ["Admin"]


def test_user_with_250_groups_gets_overage_not_groups(idp: RunningIdp) -> None:
    claims = unverified(_ropc(idp, "dave@contoso-dev.example", f"{API_URI}/user.read")["access_token"])
    assert "groups" not in claims
    assert claims["_claim_names"] == {"groups": "src1"}
    assert claims["_claim_sources"]["src1"]["endpoint"].endswith(f"/{TENANT}/users/{DAVE}/getMemberObjects")


def test_user_without_role_or_mail_has_no_roles_or_email(idp: RunningIdp) -> None:
    claims = unverified(_ropc(idp, "erin@contoso-dev.example", f"{API_URI}/user.read")["access_token"])
    assert "roles" not in claims and "email" not in claims and "groups" not in claims


def test_sub_is_pairwise_per_application_and_oid_is_not(idp: RunningIdp) -> None:
    by_postman = unverified(_ropc(idp, "alice@contoso-dev.example", f"{API_URI}/user.read")["access_token"])
    code = bff_code(idp, idp.session(), f"openid {API_URI}/user.read")
    by_bff = unverified(idp.token(forms.bff_code_redemption(code)).json()["access_token"])
    assert by_postman["oid"] == by_bff["oid"] == ALICE
    assert by_postman["sub"] != by_bff["sub"]
    assert by_bff["azpacr"] == "1"


def test_id_token_has_nonce_client_audience_and_email_only_with_email_scope(idp: RunningIdp) -> None:
    code = bff_code(idp, idp.session(), "openid profile email")
    body = idp.token(forms.bff_code_redemption(code)).json()
    id_claims = validate_as_resource_server(idp, body["id_token"], audience=BFF)
    assert id_claims["nonce"] == "n-456" and id_claims["email"] == "alice@contoso-dev.example"
    assert id_claims["preferred_username"] == "alice@contoso-dev.example"
    # OIDC-only requests get a Microsoft Graph token, which also serves the userinfo endpoint.
    graph = unverified(body["access_token"])
    assert graph["aud"] == "00000003-0000-0000-c000-000000000000"
    info = idp.session().get(
        idp.url("/oidc/userinfo"), headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10
    )
    assert info.status_code == 200 and info.json()["sub"] == id_claims["sub"]
    refused = idp.session().get(
        idp.url("/oidc/userinfo"), headers={"Authorization": "Bearer x.y.z"}, timeout=10
    )
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]


def test_tokens_use_rs256_with_kid_and_x5t(idp: RunningIdp) -> None:
    import jwt

    header = jwt.get_unverified_header(_ropc(idp, "alice@contoso-dev.example", "openid")["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    assert header["kid"] == header["x5t"] == idp.runtime.keys.current.kid


def test_other_tenant_tokens_validate_only_against_their_own_issuer(idp: RunningIdp) -> None:
    body = _ropc(idp, "mallory@fabrikam-dev.example", f"{API_URI}/user.read", tenant=OTHER_TENANT)
    claims = validate_as_resource_server(idp, body["access_token"], audience=API, tenant=OTHER_TENANT)
    assert claims["tid"] == OTHER_TENANT
    import jwt

    with pytest.raises(jwt.InvalidIssuerError):
        validate_as_resource_server(idp, body["access_token"], audience=API, tenant=TENANT)


def test_lifetimes_come_from_configuration(start_idp) -> None:
    def short(data: dict) -> None:
        data["lifetimes"].update(access_token_seconds=120, id_token_seconds=90)

    idp = start_idp(short)
    body = _ropc(idp, "alice@contoso-dev.example", f"openid {API_URI}/user.read")
    access, ident = unverified(body["access_token"]), unverified(body["id_token"])
    assert body["expires_in"] == 120 and access["exp"] - access["iat"] == 120
    assert ident["exp"] - ident["iat"] == 90
