"""Cross-origin redemption at the token endpoint, as Entra does it.

A browser (anything that sends ``Origin``) may redeem only codes and refresh tokens issued for a
redirect URI registered on the SPA platform; it gets CORS for its own origin, never with credentials.
A browser redeeming anything else gets AADSTS9002326, readable by the page.
"""

from __future__ import annotations

import requests

from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    API_URI,
    POSTMAN,
    SPA,
    RunningIdp,
    assert_entra_error,
    bff_code,
    code_for,
    pkce_pair,
)

SCOPE = f"openid profile offline_access {API_URI}/user.read"
APP_ORIGIN = "https://localhost:8443"
DOCS_REDIRECT = f"{APP_ORIGIN}/api/docs/oauth2-redirect"


def _spa_redemption(idp: RunningIdp, origin: str | None) -> requests.Response:
    verifier, challenge = pkce_pair()
    code = code_for(idp, idp.session(), SPA, DOCS_REDIRECT, SCOPE, challenge=challenge)
    form = forms.pkce_redemption(SPA, code, DOCS_REDIRECT, verifier)
    return idp.token(form, headers={"Origin": origin} if origin else {})


def _assert_9002326(response: requests.Response, origin: str) -> None:
    body = assert_entra_error(response, 400, "invalid_request", 9002326)
    assert "permitted only for the 'Single-Page Application' client-type" in body["error_description"]
    assert f"Request origin: '{origin}'." in body["error_description"]
    # The page that made the call can read why it was refused.
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_spa_redemption_from_a_browser_gets_tokens_and_cors_for_its_origin_without_credentials(
    idp: RunningIdp,
) -> None:
    r = _spa_redemption(idp, APP_ORIGIN)
    assert r.status_code == 200, r.text
    assert r.json()["access_token"] and r.json()["token_type"] == "Bearer"
    assert r.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert r.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_spa_refresh_from_a_browser_works_and_without_origin_is_9002327(idp: RunningIdp) -> None:
    first = _spa_redemption(idp, APP_ORIGIN).json()
    form = {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": first["refresh_token"]}
    assert_entra_error(idp.token(form), 400, "invalid_request", 9002327)
    r = idp.token(form, headers={"Origin": APP_ORIGIN})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_web_platform_code_redeemed_from_a_browser_is_9002326(idp: RunningIdp) -> None:
    code = bff_code(idp, idp.session(), SCOPE)
    form = forms.bff_code_redemption(code)
    _assert_9002326(idp.token(form, headers={"Origin": APP_ORIGIN}), APP_ORIGIN)
    # Refused before redemption: the same code still works server-side (no Origin).
    ok = idp.token(form)
    assert ok.status_code == 200, ok.text
    assert "Access-Control-Allow-Origin" not in ok.headers

    refresh = forms.bff_refresh(ok.json()["refresh_token"])
    _assert_9002326(idp.token(refresh, headers={"Origin": APP_ORIGIN}), APP_ORIGIN)


def test_public_client_code_redeemed_from_a_browser_is_9002326(idp: RunningIdp) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(idp, idp.session(), POSTMAN, "http://localhost", SCOPE, challenge=challenge)
    form = forms.pkce_redemption(POSTMAN, code, "http://localhost", verifier)
    _assert_9002326(idp.token(form, headers={"Origin": "http://localhost:3000"}), "http://localhost:3000")


def test_client_credentials_from_a_browser_is_9002326(idp: RunningIdp) -> None:
    form = forms.daemon_credentials()
    _assert_9002326(idp.token(form, headers={"Origin": "https://evil.example"}), "https://evil.example")


def test_preflight_allows_swagger_ui_and_msal_headers_for_the_calling_origin(idp: RunningIdp) -> None:
    r = requests.options(
        idp.authority + "/oauth2/v2.0/token",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-requested-with",
        },
        verify=idp.tls.ca_cert,
        timeout=5,
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert r.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-requested-with", "client-request-id", "x-client-sku"} <= allowed
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_an_origin_that_is_not_an_origin_gets_no_cors_answer(idp: RunningIdp) -> None:
    for bogus in ("null", "https://a.example/path", "javascript:alert(1)"):
        r = _spa_redemption(idp, bogus)
        # Still a browser call (the SPA rule is met), but nothing is allowed to read it.
        assert "Access-Control-Allow-Origin" not in r.headers, bogus
