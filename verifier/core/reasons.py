"""The one vocabulary of rejection reasons.

Every refusal the verifier makes carries exactly one :class:`Reason`. The same string appears in the
JSON log line, in the ``reason`` label of ``verifier_decisions_total``, in the RFC 6750
``error_description`` and in the JSON body, so an operator can follow one refused request from a
client's error message to a metric and a log line without guessing. The values are a public contract:
add new ones, never rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Reason(StrEnum):
    # The request carried no usable credentials, or carried them wrongly.
    MISSING_TOKEN = "missing_token"
    MULTIPLE_AUTHORIZATION_HEADERS = "multiple_authorization_headers"
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    MISSING_ORIGINAL_REQUEST = "missing_original_request"
    # The token's shape.
    TOKEN_TOO_LARGE = "token_too_large"
    MALFORMED_TOKEN = "malformed_token"
    BAD_BASE64 = "bad_base64"
    BAD_JSON = "bad_json"
    JWE_NOT_SUPPORTED = "jwe_not_supported"
    # The JOSE header.
    UNSUPPORTED_ALG = "unsupported_alg"
    FORBIDDEN_HEADER = "forbidden_header"
    CRIT_NOT_SUPPORTED = "crit_not_supported"
    MISSING_KID = "missing_kid"
    # Keys and signature.
    UNKNOWN_KID = "unknown_kid"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    # Claims.
    MISSING_CLAIM = "missing_claim"
    BAD_CLAIM_TYPE = "bad_claim_type"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_ISSUER = "bad_issuer"
    ISSUER_VERSION_NOT_ALLOWED = "issuer_version_not_allowed"
    TENANT_NOT_ALLOWED = "tenant_not_allowed"
    TENANT_MISMATCH = "tenant_mismatch"
    BAD_AUDIENCE = "bad_audience"
    AUDIENCE_LIST = "audience_list"
    NO_SCP_OR_ROLES = "no_scp_or_roles"
    ID_TOKEN = "id_token"
    # Authorization (route policy).
    INSUFFICIENT_SCOPE = "insufficient_scope"
    INSUFFICIENT_ROLE = "insufficient_role"
    # The oauth2-proxy session (verifier.sources.session).
    NO_SESSION = "no_session"
    SESSION_FORBIDDEN = "session_forbidden"
    SESSION_BACKEND_UNAVAILABLE = "session_backend_unavailable"
    SESSION_TOKEN_MISSING = "session_token_missing"
    SESSION_EXPIRED = "session_expired"
    SESSION_ENDED = "session_ended"
    # CSRF on cookie-authenticated unsafe requests (verifier.sources.csrf).
    CSRF_TOKEN_MISSING = "csrf_token_missing"
    CSRF_TOKEN_MALFORMED = "csrf_token_malformed"
    CSRF_TOKEN_BAD_MAC = "csrf_token_bad_mac"
    CSRF_TOKEN_EXPIRED = "csrf_token_expired"
    CSRF_TOKEN_SPENT = "csrf_token_spent"
    CSRF_ORIGIN_MISMATCH = "csrf_origin_mismatch"
    CSRF_CROSS_SITE = "csrf_cross_site"
    CSRF_STORE_UNAVAILABLE = "csrf_store_unavailable"
    # The ALB's x-amzn-oidc-data header (verifier.sources.alb, verifier.core.alb_token).
    ALB_MALFORMED = "alb_malformed"
    ALB_UNSUPPORTED_ALG = "alb_unsupported_alg"
    ALB_BAD_KID = "alb_bad_kid"
    ALB_BAD_SIGNER = "alb_bad_signer"
    ALB_BAD_ISSUER = "alb_bad_issuer"
    ALB_BAD_CLIENT = "alb_bad_client"
    ALB_EXPIRED = "alb_expired"
    ALB_KEYS_UNAVAILABLE = "alb_keys_unavailable"
    ALB_BAD_SIGNATURE = "alb_bad_signature"
    # The verifier itself: a credential source failed unexpectedly (answered 500, never allowed).
    INTERNAL_ERROR = "internal_error"


#: Reasons about how the credentials were presented rather than about the token itself; RFC 6750
#: calls these ``invalid_request``.
REQUEST_REASONS: frozenset[Reason] = frozenset(
    {Reason.MULTIPLE_AUTHORIZATION_HEADERS, Reason.UNSUPPORTED_SCHEME, Reason.MISSING_ORIGINAL_REQUEST}
)

#: The HTTP status /verify answers for each reason that is not 401. The one table: every source,
#: the app and the renderer ask :func:`http_status`, none picks a status of its own.
_STATUS_OTHER_THAN_401: Mapping[Reason, int] = {
    # Nothing sound to sign without the original request: the caller (nginx) is misconfigured.
    Reason.MISSING_ORIGINAL_REQUEST: 400,
    # Authenticated, but the route policy or oauth2-proxy's own rules say no.
    Reason.INSUFFICIENT_SCOPE: 403,
    Reason.INSUFFICIENT_ROLE: 403,
    Reason.SESSION_FORBIDDEN: 403,
    # A cookie-authenticated unsafe request that failed a CSRF check.
    Reason.CSRF_TOKEN_MISSING: 403,
    Reason.CSRF_TOKEN_MALFORMED: 403,
    Reason.CSRF_TOKEN_BAD_MAC: 403,
    Reason.CSRF_TOKEN_EXPIRED: 403,
    Reason.CSRF_TOKEN_SPENT: 403,
    Reason.CSRF_ORIGIN_MISMATCH: 403,
    Reason.CSRF_CROSS_SITE: 403,
    # Not the caller's fault and not fixable by signing in again: a backend is down.
    Reason.SESSION_BACKEND_UNAVAILABLE: 503,
    Reason.CSRF_STORE_UNAVAILABLE: 503,
    # The deployment is broken (oauth2-proxy without --pass-access-token, a failing source).
    Reason.SESSION_TOKEN_MISSING: 500,
    Reason.INTERNAL_ERROR: 500,
}

#: Refusals that no bearer token would change (oauth2-proxy's own refusal, a CSRF failure): answered
#: without a ``WWW-Authenticate`` challenge, naming their reason in ``X-Auth-Reason`` only.
UNCHALLENGED_REASONS: frozenset[Reason] = frozenset(
    {Reason.SESSION_FORBIDDEN}
    | {
        reason
        for reason, status in _STATUS_OTHER_THAN_401.items()
        if reason.startswith("csrf_") and status == 403
    }
)


def http_status(reason: Reason) -> int:
    """The status /verify answers a refusal for ``reason`` with: 401 unless the table says otherwise."""
    return _STATUS_OTHER_THAN_401.get(reason, 401)


class Rejection(Exception):
    """A request or token was refused. ``reason`` is the stable code; ``detail`` is for humans.

    ``detail`` never contains the token or any secret; it may name a claim or a header parameter.
    ``oid`` is the (possibly unverified) object id when the payload could be read, for logs only.
    """

    def __init__(self, reason: Reason, detail: str, *, oid: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.oid = oid


class TokenRejected(Rejection):
    """The token itself failed validation."""


class KeyNotHeld(TokenRejected):
    """The token names a key this process does not hold (yet): one refetch of the tenant's JWKS
    may fix it. Carries the tenant and kid so the caller can ask for exactly that."""

    def __init__(self, reason: Reason, detail: str, tenant_id: str, kid: str, *, oid: str = "") -> None:
        super().__init__(reason, detail, oid=oid)
        self.tenant_id = tenant_id
        self.kid = kid


class UnknownKid(KeyNotHeld):
    """The tenant's key set is loaded but lacks the token's ``kid``."""

    def __init__(self, tenant_id: str, kid: str, *, oid: str = "") -> None:
        super().__init__(
            Reason.UNKNOWN_KID, f"no key with this kid in tenant {tenant_id}'s JWKS", tenant_id, kid, oid=oid
        )


class KeysNotLoaded(KeyNotHeld):
    """No key set of the token's (allowed) tenant is loaded at all yet."""

    def __init__(self, tenant_id: str, kid: str, *, oid: str = "") -> None:
        super().__init__(
            Reason.KEYS_UNAVAILABLE, "the tenant's signing keys are not loaded yet", tenant_id, kid, oid=oid
        )


class PolicyRejected(Rejection):
    """Authenticated, but the route policy requires a scope or role the caller lacks."""

    def __init__(self, reason: Reason, detail: str, *, required: tuple[str, ...] = (), oid: str = "") -> None:
        super().__init__(reason, detail, oid=oid)
        self.required = required
