"""Microsoft's own MSAL for Python acquires tokens from devidp; PyJWT validates them as an API would."""

from __future__ import annotations

import hashlib
import threading
from urllib.parse import parse_qs, urlsplit

import msal
import pytest

from tests.unit.devidp.harness import (
    ALICE,
    API,
    API_URI,
    BOB_UPN,
    DAEMON,
    DAEMON_SECRET,
    POSTMAN,
    TENANT,
    RunningIdp,
    form_action,
    form_fields,
    validate_as_resource_server,
)


@pytest.fixture(autouse=True)
def _no_port_less_user_realm(monkeypatch: pytest.MonkeyPatch) -> None:
    # MSAL builds the user-realm URL from the authority's host name without its port
    # (https://localhost/common/userrealm/...), which cannot reach a devidp on another port. MSAL's
    # own fallback for hosts without user-realm discovery is this set; devidp's endpoint is
    # exercised directly in test_discovery.
    monkeypatch.setattr(msal.authority.Authority, "_domains_without_user_realm_discovery", {"localhost"})


def _public(idp: RunningIdp) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        POSTMAN, authority=idp.authority, instance_discovery=False, verify=str(idp.tls.ca_cert)
    )


def test_msal_client_credentials_gets_app_token_with_roles_and_idtyp_app(idp: RunningIdp) -> None:
    app = msal.ConfidentialClientApplication(
        DAEMON,
        client_credential=DAEMON_SECRET,
        authority=idp.authority,
        instance_discovery=False,
        verify=str(idp.tls.ca_cert),
    )
    result = app.acquire_token_for_client(scopes=[f"{API_URI}/.default"])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    claims = validate_as_resource_server(idp, result["access_token"], audience=API)
    assert claims["roles"] == ["Reader", "Writer"]
    assert claims["idtyp"] == "app"
    assert claims["azp"] == DAEMON and claims["azpacr"] == "1"
    assert claims["tid"] == TENANT and claims["ver"] == "2.0"
    assert "scp" not in claims
    assert claims["oid"] == claims["sub"]


def test_msal_username_password_gets_user_token_and_id_token(idp: RunningIdp) -> None:
    result = _public(idp).acquire_token_by_username_password(
        BOB_UPN, "bob-password", scopes=[f"{API_URI}/user.read", f"{API_URI}/user.write"]
    )
    assert "access_token" in result, result
    claims = validate_as_resource_server(idp, result["access_token"], audience=API)
    assert claims["scp"] == "user.read user.write"
    assert claims["roles"] == ["Writer"]
    assert claims["preferred_username"] == BOB_UPN
    assert claims["azp"] == POSTMAN and claims["azpacr"] == "0"
    assert result["id_token_claims"]["aud"] == POSTMAN
    assert "refresh_token" in result  # MSAL adds offline_access
    # And MSAL's cache now answers silently through the refresh token.
    app_accounts = result.get("id_token_claims", {})
    assert app_accounts["preferred_username"] == BOB_UPN


def test_msal_device_code_flow_completes_after_user_enters_code(idp: RunningIdp) -> None:
    app = _public(idp)
    flow = app.initiate_device_flow(scopes=[f"{API_URI}/user.read"])
    assert "user_code" in flow, flow
    assert flow["verification_uri"] == idp.url("/devicelogin")
    assert flow["interval"] == 1

    def person_at_the_browser() -> None:
        s = idp.session()
        page = s.post(idp.url("/devicelogin"), data={"otc": flow["user_code"]}, timeout=10)
        assert page.status_code == 200, page.text
        done = s.post(
            idp.url(form_action(page.text)), data={**form_fields(page.text), "pick": ALICE}, timeout=10
        )
        assert done.status_code == 200 and "You have signed in" in done.text

    # MSAL polls first (authorization_pending), the person signs in meanwhile, the next poll succeeds.
    timer = threading.Timer(0.5, person_at_the_browser)
    timer.start()
    result = app.acquire_token_by_device_flow(flow)
    timer.join()
    assert "access_token" in result, result
    claims = validate_as_resource_server(idp, result["access_token"], audience=API)
    assert claims["oid"] == ALICE and claims["scp"] == "user.read"


def test_msal_auth_code_flow_with_pkce_through_sign_in_form(idp: RunningIdp) -> None:
    app = _public(idp)
    flow = app.initiate_auth_code_flow(scopes=[f"{API_URI}/user.read"], redirect_uri="http://localhost:53123")
    assert flow["code_verifier"] and "code_challenge=" in flow["auth_uri"]
    s = idp.session()
    page = s.get(flow["auth_uri"], timeout=10)
    assert page.status_code == 200 and "Sign in to Postman and scripts" in page.text
    answer = s.post(
        idp.url(form_action(page.text)),
        allow_redirects=False,
        timeout=10,
        data={
            **form_fields(page.text),
            "username": "alice@contoso-dev.example",
            "password": "alice-password",
        },
    )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == "http://localhost:53123"
    auth_response = {k: v[0] for k, v in parse_qs(location.query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    assert "access_token" in result, result
    claims = validate_as_resource_server(idp, result["access_token"], audience=API)
    assert claims["oid"] == ALICE and claims["roles"] == ["Reader"]
    # MSAL sends the SHA-256 of its nonce and expects it back in the ID token.
    assert result["id_token_claims"]["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    # client_info lets MSAL key its cache by home account, as with Entra.
    assert app.get_accounts()[0]["home_account_id"] == f"{ALICE}.{TENANT}"
    silent = app.acquire_token_silent(
        [f"{API_URI}/user.read"], account=app.get_accounts()[0], force_refresh=True
    )
    assert silent and "access_token" in silent, silent
    assert silent["access_token"] != result["access_token"]
