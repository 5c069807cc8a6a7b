"""Development-only admin endpoints: key rotation, session revocation, user changes."""

from __future__ import annotations

from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    API,
    API_URI,
    DAEMON,
    TENANT,
    RunningIdp,
    assert_entra_error,
    bff_authorize_url,
    bff_code,
    redirect_params,
    validate_as_resource_server,
)

ADMIN = "/_devidp/admin"


def test_admin_endpoints_are_absent_unless_enabled(idp: RunningIdp) -> None:
    r = idp.session().post(idp.url(f"{ADMIN}/keys/rotate"), timeout=10)
    assert r.status_code == 404


def test_rotation_publishes_new_key_and_keeps_previous(start_idp) -> None:
    idp = start_idp(admin=True)
    cc = forms.daemon_credentials()
    before = idp.token(cc).json()["access_token"]
    old_kid = idp.runtime.keys.current.kid
    announced_kid = idp.runtime.keys.upcoming.kid
    r = idp.session().post(idp.url(f"{ADMIN}/keys/rotate"), timeout=10)
    assert r.status_code == 200
    body = r.json()
    # The key announced before the rotation signs now; a new one is announced; the old one stays.
    assert body["kid"] == announced_kid != old_kid
    assert body["published"] == [body["upcoming"], announced_kid, old_kid]
    after = idp.token(cc).json()["access_token"]
    # Both the token signed before and the one signed after the rotation validate from the JWKS.
    assert validate_as_resource_server(idp, before, audience=API)["azp"] == DAEMON
    assert validate_as_resource_server(idp, after, audience=API)["azp"] == DAEMON


def test_revoking_a_user_ends_session_and_refresh_tokens(start_idp) -> None:
    idp = start_idp(admin=True)
    s = idp.session()
    code = bff_code(idp, s, f"openid offline_access {API_URI}/user.read")
    tokens = idp.token(forms.bff_code_redemption(code)).json()
    r = idp.session().post(idp.url(f"{ADMIN}/tenants/{TENANT}/users/{ALICE}/revoke"), timeout=10)
    assert r.status_code == 200 and r.json()["revoked"] >= 2
    refresh = idp.token(forms.bff_refresh(tokens["refresh_token"]))
    assert_entra_error(refresh, 400, "invalid_grant", 50173)
    silent = s.get(bff_authorize_url(idp, "openid", prompt="none"), allow_redirects=False, timeout=10)
    assert redirect_params(silent)["error"] == "login_required"


def test_changing_a_user_changes_the_next_token(start_idp) -> None:
    idp = start_idp(admin=True)
    r = idp.session().patch(
        idp.url(f"{ADMIN}/tenants/{TENANT}/users/alice@contoso-dev.example"),
        json={"appRoleAssignments": [{"resourceAppId": API, "appRole": "Admin"}], "generatedGroupCount": 201},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["groupCount"] == 201
    token = idp.token(
        forms.password(
            "alice@contoso-dev.example",
            "alice-password",
            f"{API_URI}/user.read",
            client_id="d3e5f7a9-2b4c-4d6e-9f80-1a2b3c4d5e6f",
        )
    ).json()["access_token"]
    claims = validate_as_resource_server(idp, token, audience=API)
    assert claims["roles"] == ["Admin"] and "groups" not in claims and "_claim_names" in claims
    bad = idp.session().patch(
        idp.url(f"{ADMIN}/tenants/{TENANT}/users/{ALICE}"), json={"isAdmin": True}, timeout=10
    )
    assert bad.status_code == 400
