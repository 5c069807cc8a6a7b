"""Every grant's failures answer with Entra's error, AADSTS code and HTTP status."""

from __future__ import annotations

import base64

from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    API_URI,
    BFF,
    BFF_REDIRECT,
    DAEMON,
    DAEMON_SECRET,
    POSTMAN,
    SPA,
    SPA_REDIRECT,
    RunningIdp,
    assert_entra_error,
    bff_code,
    code_for,
    pkce_pair,
    unverified,
)

SCOPE = f"openid profile offline_access {API_URI}/user.read"


def _bff_code(idp: RunningIdp) -> str:
    return bff_code(idp, idp.session(), SCOPE)


def _redeem_bff(idp: RunningIdp, code: str, **overrides: str):
    data = forms.bff_code_redemption(code, **overrides)
    return idp.token({k: v for k, v in data.items() if v is not None})


# -- client credentials ------------------------------------------------------------------------------


def test_client_credentials_wrong_secret_is_invalid_client_7000215_401(idp: RunningIdp) -> None:
    r = idp.token(
        {
            "grant_type": "client_credentials",
            "client_id": DAEMON,
            "client_secret": "not-the-secret",
            "scope": f"{API_URI}/.default",
        }
    )
    body = assert_entra_error(r, 401, "invalid_client", 7000215)
    assert "not-the-secret" not in r.text and DAEMON_SECRET not in body["error_description"]


def test_client_credentials_unknown_client_is_unauthorized_client_700016(idp: RunningIdp) -> None:
    r = idp.token(
        {
            "grant_type": "client_credentials",
            "client_id": "99999999-9999-4999-8999-999999999999",
            "client_secret": "whatever-secret-value",
            "scope": f"{API_URI}/.default",
        }
    )
    assert_entra_error(r, 400, "unauthorized_client", 700016)


def test_client_credentials_without_secret_is_7000218(idp: RunningIdp) -> None:
    r = idp.token({"grant_type": "client_credentials", "client_id": DAEMON, "scope": f"{API_URI}/.default"})
    assert_entra_error(r, 401, "invalid_client", 7000218)


def test_client_credentials_basic_auth_works_and_named_scope_is_1002012(idp: RunningIdp) -> None:
    basic = base64.b64encode(f"{DAEMON}:{DAEMON_SECRET}".encode()).decode()
    ok = idp.token(
        {"grant_type": "client_credentials", "scope": f"{API_URI}/.default"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert ok.status_code == 200 and unverified(ok.json()["access_token"])["roles"] == ["Reader", "Writer"]
    r = idp.token(
        {"grant_type": "client_credentials", "scope": f"{API_URI}/user.read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert_entra_error(r, 400, "invalid_scope", 1002012)


def test_client_credentials_unknown_resource_is_500011(idp: RunningIdp) -> None:
    r = idp.token(forms.daemon_credentials("api://no-such-api/.default"))
    assert_entra_error(r, 400, "invalid_resource", 500011)


# -- authorization code ------------------------------------------------------------------------------


def test_code_with_wrong_secret_is_7000215(idp: RunningIdp) -> None:
    assert_entra_error(
        _redeem_bff(idp, _bff_code(idp), client_secret="wrong-secret-value"), 401, "invalid_client", 7000215
    )


def test_code_for_web_redirect_without_secret_is_7000218(idp: RunningIdp) -> None:
    assert_entra_error(_redeem_bff(idp, _bff_code(idp), client_secret=None), 401, "invalid_client", 7000218)


def test_code_reused_is_54005_and_revokes_first_refresh_token(idp: RunningIdp) -> None:
    code = _bff_code(idp)
    first = _redeem_bff(idp, code)
    assert first.status_code == 200, first.text
    assert_entra_error(_redeem_bff(idp, code), 400, "invalid_grant", 54005)
    refresh = idp.token(forms.bff_refresh(first.json()["refresh_token"]))
    assert_entra_error(refresh, 400, "invalid_grant", 50173)


def test_code_expired_is_70008(idp: RunningIdp) -> None:
    code = _bff_code(idp)
    idp.clock.offset = idp.runtime.config.lifetimes.code_seconds + 1
    assert_entra_error(_redeem_bff(idp, code), 400, "invalid_grant", 70008)


def test_code_redeemed_with_other_redirect_uri_is_500112(idp: RunningIdp) -> None:
    r = _redeem_bff(idp, _bff_code(idp), redirect_uri="https://localhost:8443/other")
    assert_entra_error(r, 400, "invalid_grant", 500112)


def test_code_redeemed_by_another_client_is_70000(idp: RunningIdp) -> None:
    code = _bff_code(idp)
    r = idp.token(
        {
            "grant_type": "authorization_code",
            "client_id": DAEMON,
            "client_secret": DAEMON_SECRET,
            "code": code,
            "redirect_uri": BFF_REDIRECT,
        }
    )
    assert_entra_error(r, 400, "invalid_grant", 70000)


def test_pkce_verifier_mismatch_is_501481(idp: RunningIdp) -> None:
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = code_for(idp, idp.session(), SPA, SPA_REDIRECT, SCOPE, challenge=challenge)
    r = idp.token(
        forms.pkce_redemption(SPA, code, SPA_REDIRECT, other_verifier),
        headers={"Origin": "https://localhost:8443"},
    )
    assert_entra_error(r, 400, "invalid_grant", 501481)


def test_spa_code_redeemed_without_origin_is_9002327(idp: RunningIdp) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(idp, idp.session(), SPA, SPA_REDIRECT, SCOPE, challenge=challenge)
    r = idp.token(forms.pkce_redemption(SPA, code, SPA_REDIRECT, verifier))
    assert_entra_error(r, 400, "invalid_request", 9002327)
    ok = idp.token(
        forms.pkce_redemption(SPA, code, SPA_REDIRECT, verifier),
        headers={"Origin": "https://localhost:8443"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["Access-Control-Allow-Origin"] == "https://localhost:8443"


def test_garbage_code_is_malformed_9002313(idp: RunningIdp) -> None:
    assert_entra_error(_redeem_bff(idp, "not-a-code"), 400, "invalid_grant", 9002313)


def test_missing_grant_type_is_900144_and_unknown_grant_is_70003(idp: RunningIdp) -> None:
    assert_entra_error(idp.token({"client_id": BFF}), 400, "invalid_request", 900144)
    assert_entra_error(
        idp.token({"grant_type": "implicit", "client_id": BFF}), 400, "unsupported_grant_type", 70003
    )


# -- refresh token -----------------------------------------------------------------------------------


def test_refresh_token_expired_is_700082(idp: RunningIdp) -> None:
    first = _redeem_bff(idp, _bff_code(idp)).json()
    idp.clock.offset = idp.runtime.config.lifetimes.refresh_token_seconds + 1
    r = idp.token(forms.bff_refresh(first["refresh_token"]))
    assert_entra_error(r, 400, "invalid_grant", 700082)


# -- password ---------------------------------------------------------------------------------------


def _ropc(idp: RunningIdp, username: str, password: str, scope: str = f"{API_URI}/user.read"):
    return idp.token(forms.password(username, password, scope))


def test_password_wrong_is_50126(idp: RunningIdp) -> None:
    assert_entra_error(_ropc(idp, "alice@contoso-dev.example", "nope"), 400, "invalid_grant", 50126)


def test_password_disabled_user_is_50057(idp: RunningIdp) -> None:
    assert_entra_error(_ropc(idp, "frank@contoso-dev.example", "frank-password"), 400, "invalid_grant", 50057)


def test_password_unknown_user_is_50034(idp: RunningIdp) -> None:
    assert_entra_error(_ropc(idp, "zed@contoso-dev.example", "x"), 400, "invalid_grant", 50034)


def test_scope_not_exposed_is_650053(idp: RunningIdp) -> None:
    r = _ropc(idp, "alice@contoso-dev.example", "alice-password", f"{API_URI}/orders.delete")
    assert_entra_error(r, 400, "invalid_scope", 650053)


def test_password_grant_for_confidential_app_without_secret_is_7000218(idp: RunningIdp) -> None:
    r = idp.token(
        forms.password("alice@contoso-dev.example", "alice-password", f"{API_URI}/user.read", client_id=BFF)
    )
    assert_entra_error(r, 401, "invalid_client", 7000218)


# -- device code ------------------------------------------------------------------------------------


def test_device_code_pending_then_expired(idp: RunningIdp) -> None:
    start = (
        idp.session()
        .post(
            idp.url(f"/{idp.authority.rsplit('/', 1)[1]}/oauth2/v2.0/devicecode"),
            data={"client_id": POSTMAN, "scope": f"{API_URI}/user.read"},
            timeout=10,
        )
        .json()
    )
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": POSTMAN,
        "device_code": start["device_code"],
    }
    assert_entra_error(idp.token(data), 400, "authorization_pending", 70016)
    idp.clock.offset = start["expires_in"] + 1
    assert_entra_error(idp.token(data), 400, "expired_token", 70019)


def test_device_code_unknown_client_is_700016(idp: RunningIdp) -> None:
    r = idp.session().post(
        idp.url(f"/{idp.authority.rsplit('/', 1)[1]}/oauth2/v2.0/devicecode"),
        data={"client_id": "99999999-9999-4999-8999-999999999999", "scope": "openid"},
        timeout=10,
    )
    assert_entra_error(r, 400, "unauthorized_client", 700016)


# -- on-behalf-of -----------------------------------------------------------------------------------


def _obo_setup(data: dict) -> None:
    # The API becomes a confidential middle tier that calls itself downstream (enough to exercise OBO).
    api = data["tenants"][0]["applications"][0]
    api["passwordCredentials"] = [{"secretText": "api-obo-secret-value"}]


def test_on_behalf_of_exchanges_user_token_for_downstream_token(start_idp) -> None:
    idp = start_idp(_obo_setup)
    user = _ropc(idp, "carol@contoso-dev.example", "carol-password", f"{API_URI}/user.read").json()
    api_id = API_URI.removeprefix("api://")
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "client_id": api_id,
        "client_secret": "api-obo-secret-value",
        "assertion": user["access_token"],
        "requested_token_use": "on_behalf_of",
        "scope": f"{API_URI}/admin",
    }
    r = idp.token(data)
    assert r.status_code == 200, r.text
    claims = unverified(r.json()["access_token"])
    assert claims["oid"] == "ca201000-0000-4000-8000-000000000003"
    assert claims["azp"] == api_id and claims["scp"] == "admin" and claims["roles"] == ["Admin"]


def test_on_behalf_of_with_token_for_another_audience_is_500131(start_idp) -> None:
    idp = start_idp(_obo_setup)
    app_token = idp.token(forms.daemon_credentials()).json()["access_token"]
    user_token = _ropc(idp, "alice@contoso-dev.example", "alice-password", "openid profile").json()[
        "access_token"
    ]
    api_id = API_URI.removeprefix("api://")
    base = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "client_id": api_id,
        "client_secret": "api-obo-secret-value",
        "requested_token_use": "on_behalf_of",
        "scope": f"{API_URI}/user.read",
    }
    assert_entra_error(idp.token({**base, "assertion": user_token}), 400, "invalid_grant", 500131)
    assert_entra_error(idp.token({**base, "assertion": app_token}), 400, "invalid_grant", 50013)
    assert_entra_error(idp.token({**base, "assertion": "e30.e30.sig"}), 400, "invalid_grant", 50013)


def test_on_behalf_of_for_disabled_user_is_50057(start_idp) -> None:
    idp = start_idp(_obo_setup, admin=True)
    token = _ropc(idp, "alice@contoso-dev.example", "alice-password").json()["access_token"]
    s = idp.session()
    s.patch(
        idp.url(f"/_devidp/admin/tenants/{idp.authority.rsplit('/', 1)[1]}/users/{ALICE}"),
        json={"accountEnabled": False},
        timeout=10,
    ).raise_for_status()
    api_id = API_URI.removeprefix("api://")
    r = idp.token(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "client_id": api_id,
            "client_secret": "api-obo-secret-value",
            "assertion": token,
            "requested_token_use": "on_behalf_of",
            "scope": f"{API_URI}/user.read",
        }
    )
    assert_entra_error(r, 400, "invalid_grant", 50057)
