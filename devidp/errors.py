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


@dataclass(frozen=True, slots=True)
class Aadsts:
    """One row of the catalogue: Entra's error string, AADSTS number, HTTP status, message template.

    Calling a row fills the template's ``{placeholders}`` and gives the error to raise or send.
    """

    error: str
    code: int
    status: int
    template: str
    suberror: str | None = None

    def __call__(self, **values: str) -> EntraError:
        return EntraError(self.error, self.code, self.template.format(**values), self.status, self.suberror)


_CONSENT = (
    "The user or administrator has not consented to use the application with ID '{client_id}' "
    "named '{client_name}'. Send an interactive authorization request for this user and resource."
)

# -- the catalogue: every error devidp answers with ----------------------------------------------------
# requests
MISSING_PARAMETER = Aadsts(
    "invalid_request", 900144, 400, "The request body must contain the following parameter: '{name}'."
)
MALFORMED_REQUEST = Aadsts(
    "invalid_request", 9002313, 400, "Invalid request. Request is malformed or invalid."
)
V1_ENDPOINT = Aadsts(
    "invalid_request",
    9002313,
    400,
    "Invalid request. devidp emulates the v2.0 endpoints only; use /oauth2/v2.0/ paths.",
)
UNSUPPORTED_GRANT_TYPE = Aadsts(
    "unsupported_grant_type", 70003, 400, "The app requested an unsupported grant type '{grant}'."
)
UNSUPPORTED_RESPONSE_TYPE = Aadsts(
    "unsupported_response_type",
    700054,
    400,
    "response_type '{response_type}' is not enabled for the application.",
)
TENANT_NOT_FOUND = Aadsts(
    "invalid_tenant",
    90002,
    400,
    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
    "and are signing into the correct cloud.",
)
NO_TENANT_INFORMATION = Aadsts(
    "invalid_request",
    50059,
    400,
    "No tenant-identifying information found in either the request or implied by any provided credentials.",
)
# clients
UNKNOWN_CLIENT = Aadsts(
    "unauthorized_client",
    700016,
    400,
    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
    "This can happen if the application has not been installed by the "
    "administrator of the tenant or consented to by any user in the tenant. You may have "
    "sent your authentication request to the wrong tenant.",
)
INVALID_CLIENT_SECRET = Aadsts(
    "invalid_client",
    7000215,
    401,
    "Invalid client secret provided. Ensure the secret being sent in the request is the "
    "client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
)
CLIENT_SECRET_REQUIRED = Aadsts(
    "invalid_client",
    7000218,
    401,
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
)
PUBLIC_CLIENT_SENT_SECRET = Aadsts(
    "invalid_client",
    700025,
    401,
    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
)
SPA_REQUIRES_CORS = Aadsts(
    "invalid_request",
    9002327,
    400,
    "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via "
    "cross-origin requests.",
)
CROSS_ORIGIN_NOT_SPA = Aadsts(
    "invalid_request",
    9002326,
    400,
    "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. "
    "Request origin: '{origin}'.",
)
# redirect URIs
REDIRECT_URI_MISMATCH = Aadsts(
    "invalid_request",
    50011,
    400,
    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
    "URIs configured for the application '{client_id}'. Make sure the redirect URI sent in "
    "the request matches one added to your application in the Azure portal.",
)
NO_REDIRECT_URI_REGISTERED = Aadsts(
    "invalid_request", 500113, 400, "No reply address is registered for the application '{client_id}'."
)
TOKEN_REDIRECT_URI_MISMATCH = Aadsts(
    "invalid_grant",
    500112,
    400,
    "The reply address does not match the reply address provided when requesting Authorization code.",
)
POST_LOGOUT_REDIRECT_NOT_REGISTERED = Aadsts(
    "invalid_request",
    50011,
    400,
    "The post_logout_redirect_uri '{uri}' is not registered as a redirect URI of the application.",
)
# scopes
INVALID_SCOPE = Aadsts(
    "invalid_scope",
    70011,
    400,
    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
)
SCOPE_NOT_EXPOSED = Aadsts(
    "invalid_scope",
    650053,
    400,
    "The application '{client_name}' asked for scope '{scope}' that doesn't exist on the "
    "resource '{resource}'. Contact the app vendor.",
)
MULTIPLE_RESOURCES = Aadsts(
    "invalid_scope",
    700022,
    400,
    "The provided value for the input parameter scope is not valid because it contains more than "
    "one resource. Scope {scope} is not valid.",
)
RESOURCE_NOT_FOUND = Aadsts(
    "invalid_resource",
    500011,
    400,
    "The resource principal named {resource} was not found in the tenant named {tenant}. This "
    "can happen if the application has not been installed by the administrator of the tenant "
    "or consented to by any user in the tenant. You might have sent your authentication request "
    "to the wrong tenant.",
)
DEFAULT_SCOPE_REQUIRED = Aadsts(
    "invalid_scope",
    1002012,
    400,
    "The provided value for scope {scope} is not valid. Client credential flows must have a "
    "scope value with /.default suffixed to the resource identifier (application ID URI).",
)
CONSENT_REQUIRED = Aadsts("consent_required", 65001, 400, _CONSENT)
CONSENT_REQUIRED_ON_TOKEN_ENDPOINT = Aadsts("invalid_grant", 65001, 400, _CONSENT, "consent_required")
USER_DECLINED_CONSENT = Aadsts("access_denied", 65004, 400, "User declined to consent to access the app.")
# grants
CODE_MALFORMED = Aadsts("invalid_grant", 9002313, 400, "Invalid request. Request is malformed or invalid.")
CODE_EXPIRED = Aadsts(
    "invalid_grant",
    70008,
    400,
    "The provided authorization code or refresh token has expired due to inactivity. Send a new "
    "interactive authorization request for this user and resource.",
)
CODE_REDEEMED = Aadsts(
    "invalid_grant",
    54005,
    400,
    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use "
    "an existing refresh token.",
)
GRANT_FOR_OTHER_CLIENT = Aadsts(
    "invalid_grant",
    70000,
    400,
    "The provided value for the 'code' parameter is not valid. The code was issued to a different client.",
)
PKCE_MISMATCH = Aadsts(
    "invalid_grant",
    501481,
    400,
    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
)
PKCE_REQUIRED = Aadsts(
    "invalid_request",
    9002325,
    400,
    "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
)
PKCE_METHOD_UNSUPPORTED = Aadsts(
    "invalid_request", 5000751, 400, "The code_challenge_method '{method}' is not supported. Use 'S256'."
)
REFRESH_TOKEN_EXPIRED = Aadsts(
    "invalid_grant",
    700082,
    400,
    "The refresh token has expired due to inactivity. The token was issued on a date and was "
    "inactive for the configured lifetime.",
)
GRANT_REVOKED = Aadsts(
    "invalid_grant",
    50173,
    400,
    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The "
    "user might have changed or reset their password, or the grant was used twice.",
)
# users
BAD_CREDENTIALS = Aadsts(
    "invalid_grant", 50126, 400, "Error validating credentials due to invalid username or password."
)
USER_NOT_FOUND = Aadsts(
    "invalid_grant",
    50034,
    400,
    "The user account {name} does not exist in the {tenant} directory. "
    "To sign into this application, the account must be added to the directory.",
)
USER_DISABLED = Aadsts("invalid_grant", 50057, 400, "The user account is disabled.")
LOGIN_REQUIRED = Aadsts(
    "login_required", 50058, 400, "A silent sign-in request was sent but no user is signed in."
)
# Conditional Access: authentication context (step-up) and the claims parameter
# The number and message are Entra's answer to a claims parameter it cannot read (not on the
# reference page); the last sentence is devidp's, naming what was wrong.
CLAIMS_MALFORMED = Aadsts(
    "invalid_request",
    50117,
    400,
    "Failed to deserialize policy specified in the request's claim parameter. {reason}",
)
_STRONG_AUTH = (
    "Due to a configuration change made by your administrator, or because you moved to a new location, "
    "you must use multi-factor authentication to access '{resource}'."
)
STEP_UP_REQUIRED = Aadsts("interaction_required", 50076, 400, _STRONG_AUTH)
STEP_UP_REQUIRED_ON_TOKEN_ENDPOINT = Aadsts("invalid_grant", 50076, 400, _STRONG_AUTH, "basic_action")
STEP_UP_NOT_PASSED = Aadsts(
    "access_denied",
    50074,
    400,
    "Strong Authentication is required and the user did not pass the MFA challenge.",
)
BLOCKED_BY_CONDITIONAL_ACCESS = Aadsts(
    "access_denied",
    53003,
    400,
    "Access has been blocked by Conditional Access policies. The access policy does not allow token "
    "issuance.",
)
# device code
AUTHORIZATION_PENDING = Aadsts(
    "authorization_pending",
    70016,
    400,
    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
)
# The error string is the device-code page's; the AADSTS number is not on a reference page.
BAD_VERIFICATION_CODE = Aadsts(
    "bad_verification_code",
    70000,
    400,
    "The provided value for the input parameter 'device_code' is not valid.",
)
DEVICE_CODE_EXPIRED = Aadsts("expired_token", 70019, 400, "Verification code expired.")
# on-behalf-of assertions
ASSERTION_INVALID = Aadsts(
    "invalid_grant", 50013, 400, "Assertion failed signature validation. [Reason - {reason}]"
)
ASSERTION_AUDIENCE_MISMATCH = Aadsts(
    "invalid_grant",
    500131,
    400,
    "Assertion audience does not match the Client app presenting the assertion.",
)
ASSERTION_EXPIRED = Aadsts("invalid_grant", 500133, 400, "Assertion is not within its valid time range.")
