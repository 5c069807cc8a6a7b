"""Defense in depth for critical endpoints: re-validate the access token nginx forwarded.

The signed identity headers already say who the caller is. For destructive or administrative
endpoints the API additionally validates the original access token (``X-Forwarded-Access-Token``)
with the verifier's own validation code, and requires that it names the same identity and grants the
same permissions as the signed headers. A leaked signing key alone is then not enough to delete data.

The validation itself sits behind :class:`TokenRevalidator`, injected through ``app.state``, so the
dependency can be tested with any implementation and the default one uses the verifier's library.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, Request

from fastapi_app.authentication import current_principal
from fastapi_app.errors import Refusal, Unauthenticated, Unavailable
from fastapi_app.refusals import ApiReason, declare, dependency_calls, endpoint_routes
from verifier.core.identity import HEADER_FORWARDED_TOKEN, Principal
from verifier.core.reasons import Reason, http_status

log = logging.getLogger(__name__)

#: Same bound as the verifier's: Entra access tokens are a few KiB even with many groups.
MAX_FORWARDED_TOKEN_BYTES = 16 * 1024

#: The endpoints that re-validate the forwarded token, as ``METHOD path`` in FastAPI's path syntax:
#: the routes that depend on :func:`revalidated_principal` (``create_app`` refuses to build an app
#: whose routes say otherwise). The verifier is told this list as ``VERIFIER_REVALIDATED_ROUTES``
#: and sends the token to these endpoints only.
REVALIDATED_ROUTES: tuple[str, ...] = ("DELETE /api/projects/{project_id}", "PUT /api/admin/settings")


class ForwardedTokenRejected(Refusal):
    """The forwarded token is not valid. ``reason`` is the validation library's stable reason code."""


class RevalidationUnavailable(Unavailable):
    """The token cannot be checked right now (not configured, keys unreachable): refuse with 503."""

    def __init__(self, detail: str) -> None:
        super().__init__(ApiReason.REVALIDATION_UNAVAILABLE)
        self.detail = detail


@runtime_checkable
class TokenRevalidator(Protocol):
    """What checks a forwarded token again. The app starts it with the server and closes it on
    shutdown: a revalidator subclasses this and overrides :meth:`start` or :meth:`close` only when it
    holds resources (the default's JWKS cache has a refresh task and an HTTP client)."""

    async def revalidate(self, token: str) -> Principal:
        """The principal ``token`` proves; else :class:`ForwardedTokenRejected` or
        :class:`RevalidationUnavailable`."""
        ...

    async def start(self) -> None:
        """Start background work, inside the running event loop."""
        return None

    async def close(self) -> None:
        """Release what :meth:`start` or the constructor acquired."""
        return None


def _forwarded_token(request: Request) -> str:
    values = request.headers.getlist(HEADER_FORWARDED_TOKEN)
    if not values or not values[0].strip():
        raise Unauthenticated(ApiReason.MISSING_FORWARDED_TOKEN)
    if len(values) > 1:
        raise Unauthenticated(ApiReason.DUPLICATE_FORWARDED_TOKEN)
    token = values[0].strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if len(token) > MAX_FORWARDED_TOKEN_BYTES or not token.isascii():
        raise Unauthenticated(ApiReason.MALFORMED_FORWARDED_TOKEN)
    return token


def _same_identity(signed: Principal, fresh: Principal) -> bool:
    # Identity and permissions must match; display name, e-mail and groups may legitimately be
    # encoded or truncated differently and decide nothing on the endpoints that re-validate.
    return (
        fresh.oid == signed.oid
        and fresh.tid.lower() == signed.tid.lower()
        and fresh.principal_type == signed.principal_type
        and set(fresh.roles) == set(signed.roles)
        and set(fresh.scopes) == set(signed.scopes)
    )


async def revalidated_principal(
    request: Request, signed: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """Dependency: the signed-header principal, confirmed by re-validating the forwarded token, with
    the token's ``acrs`` and ``xms_cc`` (which the signed headers do not carry).

    401 ``missing_forwarded_token`` / ``malformed_forwarded_token`` / ``duplicate_forwarded_token``,
    401 with the validation library's reason (``expired``, ``bad_signature``, ...) for an invalid
    token, 401 ``token_identity_mismatch`` when the token is valid but names someone else (or other
    permissions), 503 ``revalidation_unavailable`` when it cannot be checked.
    """
    token = _forwarded_token(request)
    revalidator: TokenRevalidator | None = request.app.state.revalidator
    if revalidator is None:
        raise RevalidationUnavailable("token re-validation is not configured (VERIFIER_* variables)")
    try:
        fresh = await revalidator.revalidate(token)
    except ForwardedTokenRejected as exc:
        log.info("forwarded token refused", extra={"reason": exc.reason, "oid": signed.oid})
        raise Unauthenticated(exc.reason) from None
    if not _same_identity(signed, fresh):
        log.warning("forwarded token does not match the signed identity", extra={"oid": signed.oid})
        raise Unauthenticated(ApiReason.TOKEN_IDENTITY_MISMATCH)
    # What only the token says, from the token checked just now: the authentication contexts the
    # sign-in satisfied and the client's capabilities (the step-up check reads them; see authorization).
    return replace(signed, auth_contexts=fresh.auth_contexts, client_capabilities=fresh.client_capabilities)


declare(
    revalidated_principal,
    {
        # Its own, and the validation library's for a token it refuses (every 401 reason of a token).
        401: [
            ApiReason.MISSING_FORWARDED_TOKEN,
            ApiReason.DUPLICATE_FORWARDED_TOKEN,
            ApiReason.MALFORMED_FORWARDED_TOKEN,
            ApiReason.TOKEN_IDENTITY_MISMATCH,
            *(reason for reason in Reason if http_status(reason) == 401),
        ],
        503: [ApiReason.REVALIDATION_UNAVAILABLE],
    },
)


def revalidating_routes(routes: Sequence[Any]) -> set[str]:
    """``METHOD path`` of every route among ``routes`` that depends on :func:`revalidated_principal`,
    directly or through another dependency."""
    return {
        f"{method} {route.path_format}"
        for route in endpoint_routes(routes)
        if revalidated_principal in dependency_calls(route)
        for method in route.methods
    }
