"""Discovery documents and JWKS at Entra's paths, in the shapes go-oidc, MSAL and PyJWT expect."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509

from tests.unit.devidp.harness import OTHER_TENANT, TENANT, RunningIdp, assert_entra_error


def test_v2_document_names_tenant_issuer_and_endpoints_on_devidp_base(idp: RunningIdp) -> None:
    r = idp.session().get(idp.url(f"/{TENANT}/v2.0/.well-known/openid-configuration"), timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    base = idp.base_url
    assert doc["issuer"] == f"{base}/{TENANT}/v2.0"
    assert doc["authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/token"
    assert doc["device_authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/devicecode"
    assert doc["end_session_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/logout"
    assert doc["jwks_uri"] == f"{base}/{TENANT}/discovery/v2.0/keys"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["subject_types_supported"] == ["pairwise"]
    assert "form_post" in doc["response_modes_supported"]
    # Entra does not advertise PKCE methods; neither does devidp.
    assert "code_challenge_methods_supported" not in doc


def test_tenant_can_be_named_by_its_domain_like_entra(idp: RunningIdp) -> None:
    doc = (
        idp.session()
        .get(idp.url("/contoso-dev.example/v2.0/.well-known/openid-configuration"), timeout=10)
        .json()
    )
    assert doc["issuer"] == f"{idp.base_url}/{TENANT}/v2.0"


def test_v1_document_uses_sts_style_issuer_and_v1_keys(idp: RunningIdp) -> None:
    doc = idp.session().get(idp.url(f"/{TENANT}/.well-known/openid-configuration"), timeout=10).json()
    assert doc["issuer"] == f"{idp.base_url}/{TENANT}/"
    assert doc["jwks_uri"] == f"{idp.base_url}/{TENANT}/discovery/keys"


def test_common_document_carries_tenantid_template(idp: RunningIdp) -> None:
    s = idp.session()
    v2 = s.get(idp.url("/common/v2.0/.well-known/openid-configuration"), timeout=10).json()
    assert v2["issuer"] == f"{idp.base_url}/{{tenantid}}/v2.0"
    assert v2["token_endpoint"] == f"{idp.base_url}/common/oauth2/v2.0/token"
    v1 = s.get(idp.url("/common/.well-known/openid-configuration"), timeout=10).json()
    assert v1["issuer"] == f"{idp.base_url}/{{tenantid}}/"


def test_jwks_entries_carry_kid_x5t_x5c_and_v2_issuer_template(idp: RunningIdp) -> None:
    s = idp.session()
    keys = s.get(idp.url(f"/{TENANT}/discovery/v2.0/keys"), timeout=10).json()["keys"]
    (key,) = [k for k in keys if k["kid"] == idp.runtime.keys.current.kid]
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["e"] == "AQAB"
    der = base64.b64decode(key["x5c"][0])
    x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    assert key["x5t"] == x5t == key["kid"]
    cert = x509.load_der_x509_certificate(der)
    n = int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=="), "big")
    assert cert.public_key().public_numbers().n == n
    assert key["issuer"] == f"{idp.base_url}/{{tenantid}}/v2.0"
    v1_keys = s.get(idp.url(f"/{TENANT}/discovery/keys"), timeout=10).json()["keys"]
    assert [k["kid"] for k in v1_keys] == [k["kid"] for k in keys]
    assert all("issuer" not in k for k in v1_keys)


def test_unknown_tenant_discovery_is_entra_error_90002(idp: RunningIdp) -> None:
    r = idp.session().get(
        idp.url("/11111111-2222-4333-8444-555555555555/v2.0/.well-known/openid-configuration"), timeout=10
    )
    assert_entra_error(r, 400, "invalid_tenant", 90002)


def test_second_tenant_has_its_own_issuer(idp: RunningIdp) -> None:
    doc = (
        idp.session()
        .get(idp.url(f"/{OTHER_TENANT}/v2.0/.well-known/openid-configuration"), timeout=10)
        .json()
    )
    assert doc["issuer"] == f"{idp.base_url}/{OTHER_TENANT}/v2.0"


def test_user_realm_reports_managed_domain_for_msal(idp: RunningIdp) -> None:
    s = idp.session()
    body = s.get(idp.url("/common/userrealm/alice@contoso-dev.example?api-version=1.0"), timeout=10).json()
    assert body["account_type"] == "Managed"
    assert body["domain_name"] == "contoso-dev.example"
    other = s.get(idp.url("/common/userrealm/x@elsewhere.example?api-version=1.0"), timeout=10).json()
    assert other["account_type"] == "Unknown"
