"""What /verify answers, before it becomes HTTP: a :class:`Decision` and the RFC 6750 challenge.

A decision is made by a credential source (bearer token, oauth2-proxy session, ...) and rendered in
one place (:func:`verifier.service.app.render`), so every source answers with the same identity
headers, the same RFC 6750 challenge and the same reason code in ``X-Auth-Reason`` (never the
token). A refusal has no body: nginx builds the client's JSON answer from those headers. Its status
comes from :func:`verifier.core.reasons.http_status`. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from verifier.core.identity import Principal
from verifier.core.reasons import (
    REQUEST_REASONS,
    UNCHALLENGED_REASONS,
    PolicyRejected,
    Reason,
    Rejection,
    http_status,
)

HEADER_ORIGINAL_METHOD = "X-Original-Method"
HEADER_ORIGINAL_URI = "X-Original-URI"
HEADER_REQUEST_ID = "X-Request-ID"
#: The reason code of every refusal; nginx puts it in its JSON error body.
HEADER_AUTH_REASON = "X-Auth-Reason"
#: On a 401: where nginx sends a browser that asked for a page without a session. nginx has no way to
#: query-escape ``$request_uri`` itself, so the verifier, which holds it, writes the whole URL.
HEADER_SIGN_IN_REDIRECT = "X-Sign-In-Redirect"
SIGN_IN_START = "/oauth2/start"
REALM = "api"
OK = "ok"

_METHOD = re.compile(r"^[A-Z]{1,16}$")
#: nginx's ``$request_uri``: printable ASCII (non-ASCII arrives percent-encoded), origin-form.
_URI = re.compile(r"^/[\x21-\x7e]{0,8191}$")


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    """The request nginx is asking about (not the ``/verify`` subrequest itself)."""

    method: str
    uri: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> OriginalRequest | None:
        """Read ``X-Original-Method`` / ``X-Original-URI``; None when absent or malformed.

        The identity signature binds these values, so without them there is nothing sound to sign.
        """
        method = headers.get(HEADER_ORIGINAL_METHOD, "").upper()
        uri = headers.get(HEADER_ORIGINAL_URI, "")
        if not _METHOD.match(method) or not _URI.match(uri):
            return None
        return cls(method, uri)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one /verify request.

    ``reason`` is ``"ok"`` for an allowed request, otherwise a reason code (:class:`Reason` or a
    source's own code). ``headers`` are extra response headers, such as a refreshed session cookie.
    ``challenge`` is False for refusals no bearer token would change (a CSRF failure on a cookie
    session): they get no ``WWW-Authenticate`` and name their reason in ``X-Auth-Reason`` instead.
    """

    status: int
    source: str
    reason: str
    principal: Principal | None = None
    detail: str = ""
    oid: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    required: tuple[str, ...] = ()
    #: ``principal_headers(principal)``, when already encoded (a token cache hit); never set otherwise.
    identity_headers: Mapping[str, str] | None = None
    challenge: bool = True
    #: The validated access token the principal came from; sent on only to the endpoints of
    #: ``VERIFIER_REVALIDATED_ROUTES`` (:mod:`verifier.core.forwarded_routes`). Never in a log
    #: line or a repr.
    access_token: str = field(default="", repr=False)

    @property
    def allowed(self) -> bool:
        return self.status == 200 and self.principal is not None

    @classmethod
    def allow(
        cls,
        principal: Principal,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        identity_headers: Mapping[str, str] | None = None,
        access_token: str = "",
    ) -> Decision:
        return cls(
            200,
            principal.auth_source,
            OK,
            principal=principal,
            oid=principal.oid,
            headers=headers,
            identity_headers=identity_headers,
            access_token=access_token,
        )

    @classmethod
    def reject(
        cls, rejection: Rejection, *, source: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> Decision:
        """Refuse with the status :func:`http_status` gives ``rejection.reason``."""
        return cls(
            http_status(rejection.reason),
            source,
            str(rejection.reason),
            detail=rejection.detail,
            oid=rejection.oid,
            headers=headers,
            required=rejection.required if isinstance(rejection, PolicyRejected) else (),
            challenge=rejection.reason not in UNCHALLENGED_REASONS,
        )

    def with_headers(self, *headers: tuple[str, str]) -> Decision:
        return replace(self, headers=(*self.headers, *headers))


def sign_in_redirect(uri: str) -> str:
    """oauth2-proxy's sign-in start with ``uri`` as the target, query-escaped so that its own query
    string (every ``&`` and ``=`` in it) survives as one ``rd`` value. ``/`` stays readable."""
    return f"{SIGN_IN_START}?rd={quote(uri, safe='/')}"


def rfc6750_error(decision: Decision) -> str | None:
    """The RFC 6750 ``error`` code, or None when no credentials came (RFC 6750 section 3.1)."""
    if decision.reason == Reason.INTERNAL_ERROR:
        return "server_error"
    if decision.status == 403:
        return "insufficient_scope"
    if decision.status != 401 or decision.reason == Reason.MISSING_TOKEN:
        return None
    if decision.reason in REQUEST_REASONS:
        return "invalid_request"
    return "invalid_token"


def bearer_challenge(decision: Decision) -> str:
    params = [f'realm="{REALM}"']
    error = rfc6750_error(decision)
    if error is not None:
        params.append(f'error="{error}"')
        params.append(f'error_description="{decision.reason}"')
    if decision.status == 403 and decision.required and decision.reason == Reason.INSUFFICIENT_SCOPE:
        params.append(f'scope="{" ".join(decision.required)}"')
    return "Bearer " + ", ".join(params)
