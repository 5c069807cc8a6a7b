"""Entra's error shapes and the AADSTS codes devidp answers with.

Token-endpoint errors are JSON bodies with ``error``, ``error_description`` (which starts with the
AADSTS code and ends with trace id, correlation id and timestamp), ``error_codes``, ``timestamp``,
``trace_id``, ``correlation_id`` and ``error_uri``; ``invalid_client`` is answered with 401, the
rest with 400. Authorization errors travel to the redirect URI as query or form parameters, or are
shown on the sign-in page when the redirect URI itself cannot be trusted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class EntraError(Exception):
    error: str
    code: int
    message: str
    status: int = 400
    suberror: str | None = None

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.error}: AADSTS{self.code}")

    @property
    def description(self) -> str:
        return f"AADSTS{self.code}: {self.message}"

    def body(
        self, base_url: str, correlation_id: str | None = None, now: dt.datetime | None = None
    ) -> dict[str, Any]:
        now = now or dt.datetime.now(dt.UTC)
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        body: dict[str, Any] = {
            "error": self.error,
            # Entra separates the trailer with CRLF; clients that split on lines depend on it.
            "error_description": (
                f"{self.description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\n"
                f"Timestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{base_url}/error?code={self.code}",
        }
        if self.suberror:
            body["suberror"] = self.suberror
        return body


# -- requests ---------------------------------------------------------------------------------------


def missing_parameter(name: str) -> EntraError:
    return EntraError(
        "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def malformed_request() -> EntraError:
    return EntraError("invalid_request", 9002313, "Invalid request. Request is malformed or invalid.")


def unsupported_grant_type(grant: str) -> EntraError:
    return EntraError(
        "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
    )


def tenant_not_found(tenant: str) -> EntraError:
    return EntraError(
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
        "and are signing into the correct cloud.",
    )


# -- clients -----------------------------------------------------------------------------------------


def unknown_client(client_id: str, tenant_id: str) -> EntraError:
    return EntraError(
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant_id}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
    )


def invalid_client_secret(client_id: str) -> EntraError:
    return EntraError(
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        status=401,
    )


def client_secret_required() -> EntraError:
    return EntraError(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        status=401,
    )


def public_client_sent_secret() -> EntraError:
    return EntraError(
        "invalid_client",
        700025,
        "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        status=401,
    )


def spa_requires_cors() -> EntraError:
    return EntraError(
        "invalid_request",
        9002327,
        "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via "
        "cross-origin requests.",
    )


def cross_origin_not_spa(origin: str) -> EntraError:
    # Entra names the origin it saw; it is the caller's own header, cut short so it cannot bloat the body.
    return EntraError(
        "invalid_request",
        9002326,
        "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. "
        f"Request origin: '{origin[:200]}'.",
    )


# -- redirect URIs ------------------------------------------------------------------------------------


def redirect_uri_mismatch(redirect_uri: str, client_id: str) -> EntraError:
    return EntraError(
        "invalid_request",
        50011,
        f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
        f"URIs configured for the application '{client_id}'. Make sure the redirect URI sent in "
        "the request matches one added to your application in the Azure portal.",
    )


def no_redirect_uri_registered(client_id: str) -> EntraError:
    return EntraError(
        "invalid_request", 500113, f"No reply address is registered for the application '{client_id}'."
    )


def token_redirect_uri_mismatch() -> EntraError:
    return EntraError(
        "invalid_grant",
        500112,
        "The reply address does not match the reply address provided when requesting Authorization code.",
    )


def post_logout_redirect_not_registered(uri: str) -> EntraError:
    return EntraError(
        "invalid_request",
        50011,
        f"The post_logout_redirect_uri '{uri}' is not registered as a redirect URI of the application.",
    )


# -- scopes --------------------------------------------------------------------------------------------


def invalid_scope(scope: str) -> EntraError:
    return EntraError(
        "invalid_scope",
        70011,
        f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
    )


def scope_not_exposed(client_name: str, scope: str, resource: str) -> EntraError:
    return EntraError(
        "invalid_scope",
        650053,
        f"The application '{client_name}' asked for scope '{scope}' that doesn't exist on the "
        f"resource '{resource}'. Contact the app vendor.",
    )


def multiple_resources(scope: str) -> EntraError:
    return EntraError(
        "invalid_scope",
        700022,
        "The provided value for the input parameter scope is not valid because it contains more than "
        f"one resource. Scope {scope} is not valid.",
    )


def resource_not_found(resource: str, tenant: str) -> EntraError:
    return EntraError(
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant named {tenant}. This "
        "can happen if the application has not been installed by the administrator of the tenant "
        "or consented to by any user in the tenant. You might have sent your authentication request "
        "to the wrong tenant.",
    )


def default_scope_required(scope: str) -> EntraError:
    return EntraError(
        "invalid_scope",
        1002012,
        f"The provided value for scope {scope} is not valid. Client credential flows must have a "
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    )


def consent_required(client_id: str, client_name: str, *, on_token_endpoint: bool) -> EntraError:
    message = (
        f"The user or administrator has not consented to use the application with ID '{client_id}' "
        f"named '{client_name}'. Send an interactive authorization request for this user and resource."
    )
    if on_token_endpoint:
        return EntraError("invalid_grant", 65001, message, suberror="consent_required")
    return EntraError("consent_required", 65001, message)


# -- grants ----------------------------------------------------------------------------------------------


def code_malformed() -> EntraError:
    return EntraError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")


def code_expired() -> EntraError:
    return EntraError(
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. Send a new "
        "interactive authorization request for this user and resource.",
    )


def code_redeemed() -> EntraError:
    return EntraError(
        "invalid_grant",
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use "
        "an existing refresh token.",
    )


def grant_for_other_client() -> EntraError:
    return EntraError(
        "invalid_grant",
        70000,
        "The provided value for the 'code' parameter is not valid. The code was issued to a "
        "different client.",
    )


def pkce_mismatch() -> EntraError:
    return EntraError(
        "invalid_grant",
        501481,
        "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    )


def pkce_required() -> EntraError:
    return EntraError(
        "invalid_request",
        9002325,
        "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
    )


def pkce_method_unsupported(method: str) -> EntraError:
    return EntraError(
        "invalid_request", 5000751, f"The code_challenge_method '{method}' is not supported. Use 'S256'."
    )


def refresh_token_expired() -> EntraError:
    return EntraError(
        "invalid_grant",
        700082,
        "The refresh token has expired due to inactivity. The token was issued on a date and was "
        "inactive for the configured lifetime.",
    )


def grant_revoked() -> EntraError:
    return EntraError(
        "invalid_grant",
        50173,
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The "
        "user might have changed or reset their password, or the grant was used twice.",
    )


def bad_credentials() -> EntraError:
    return EntraError(
        "invalid_grant", 50126, "Error validating credentials due to invalid username or password."
    )


def user_not_found(name: str, tenant: str) -> EntraError:
    return EntraError(
        "invalid_grant",
        50034,
        f"The user account {name} does not exist in the {tenant} directory. "
        "To sign into this application, the account must be added to the directory.",
    )


def user_disabled() -> EntraError:
    return EntraError("invalid_grant", 50057, "The user account is disabled.")


def login_required() -> EntraError:
    return EntraError("login_required", 50058, "A silent sign-in request was sent but no user is signed in.")


def unsupported_response_type(response_type: str) -> EntraError:
    return EntraError(
        "unsupported_response_type",
        700054,
        f"response_type '{response_type}' is not enabled for the application.",
    )


def authorization_pending() -> EntraError:
    return EntraError(
        "authorization_pending",
        70016,
        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    )


def bad_verification_code() -> EntraError:
    # The error string is the device-code page's; the AADSTS number is not on a reference page.
    return EntraError(
        "bad_verification_code",
        70000,
        "The provided value for the input parameter 'device_code' is not valid.",
    )


def no_tenant_information() -> EntraError:
    return EntraError(
        "invalid_request",
        50059,
        "No tenant-identifying information found in either the request or implied by any provided "
        "credentials.",
    )


def device_code_expired() -> EntraError:
    return EntraError("expired_token", 70019, "Verification code expired.")


def device_flow_not_public() -> EntraError:
    return EntraError(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'. (The device code flow requires 'Allow public client flows'.)",
        status=401,
    )


def assertion_invalid(reason: str) -> EntraError:
    return EntraError("invalid_grant", 50013, f"Assertion failed signature validation. [Reason - {reason}]")


def assertion_audience_mismatch() -> EntraError:
    return EntraError(
        "invalid_grant", 500131, "Assertion audience does not match the Client app presenting the assertion."
    )


def assertion_expired() -> EntraError:
    return EntraError("invalid_grant", 500133, "Assertion is not within its valid time range.")


def obo_app_token() -> EntraError:
    return EntraError(
        "invalid_grant",
        50013,
        "Assertion failed signature validation. [Reason - The on-behalf-of flow needs a user token; "
        "an application token was presented.]",
    )


def bad_token() -> EntraError:
    return EntraError(
        "invalid_token",
        50013,
        "The access token is missing, expired or not issued by this tenant.",
        status=401,
    )
