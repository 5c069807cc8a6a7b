"""Every refusal an API caller can receive, and where each can occur: the one list the OpenAPI
document's error answers are generated from, so the document cannot drift from the code.

A caller of ``/api/`` meets two layers. The edge (nginx and the verifier) answers before the API is
reached: 401 and 403 with the verifier's reason (:class:`verifier.core.reasons.Reason`, its status
from :func:`verifier.core.reasons.http_status`), and nginx's own 400, 413, 414, 431 and 503. The API
answers the rest with an :class:`ApiReason`. Both use one body: ``{"error", "reason"}`` and, where
they apply, ``bearer_error`` (the edge's RFC 6750 error code), ``required`` (403: the permissions the
endpoint needs), ``details`` (422: which fields, never their values) and ``max_bytes`` (413).

Where a refusal can occur is declared next to what raises it: each dependency that refuses carries
its statuses and reasons (:func:`declare`), and a route adds its own (:func:`route_refusals`);
:func:`document_refusals` collects them per operation into the document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute

from verifier.core.reasons import Reason, http_status


class ApiReason(StrEnum):
    """The reasons the API itself gives; the values are a public contract (add, never rename)."""

    # 401: the identity headers the verifier signed (fastapi_app.authentication).
    MISSING_IDENTITY_SIGNATURE = "missing_identity_signature"
    MALFORMED_IDENTITY_SIGNATURE = "malformed_identity_signature"
    STALE_IDENTITY_SIGNATURE = "stale_identity_signature"
    BAD_IDENTITY_SIGNATURE = "bad_identity_signature"
    MALFORMED_REQUEST_URI = "malformed_request_uri"
    DUPLICATE_IDENTITY_HEADER = "duplicate_identity_header"
    MALFORMED_IDENTITY_HEADERS = "malformed_identity_headers"
    # 401: the re-validated access token of critical endpoints (fastapi_app.revalidation).
    MISSING_FORWARDED_TOKEN = "missing_forwarded_token"
    DUPLICATE_FORWARDED_TOKEN = "duplicate_forwarded_token"
    MALFORMED_FORWARDED_TOKEN = "malformed_forwarded_token"
    TOKEN_IDENTITY_MISMATCH = "token_identity_mismatch"
    # 401: a step-up the client can do: Entra's claims challenge is in WWW-Authenticate
    # (fastapi_app.authorization.require_auth_context).
    INSUFFICIENT_CLAIMS = "insufficient_claims"
    # 403: the endpoint's permissions (fastapi_app.authorization).
    MISSING_ROLE = "missing_role"
    MISSING_SCOPE = "missing_scope"
    APP_TOKEN_NOT_ALLOWED = "app_token_not_allowed"
    MISSING_GROUP = "missing_group"
    GROUPS_OVERAGE = "groups_overage"
    AUTH_CONTEXT_REQUIRED = "auth_context_required"
    # 409: the state refuses a valid request.
    READ_ONLY = "read_only"
    PROJECT_QUOTA_EXCEEDED = "project_quota_exceeded"
    # 503: a dependency is down; the request is refused, never waved through.
    DATABASE_UNAVAILABLE = "database_unavailable"
    REVALIDATION_UNAVAILABLE = "revalidation_unavailable"
    SESSION_STORE_UNAVAILABLE = "session_store_unavailable"
    # The request itself.
    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_VALUE = "invalid_value"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"


#: Every reason the signed identity headers can be refused with: on every protected operation, by
#: the identity guard in front of every route (fastapi_app.authentication).
IDENTITY_REFUSALS = (
    ApiReason.MISSING_IDENTITY_SIGNATURE,
    ApiReason.MALFORMED_IDENTITY_SIGNATURE,
    ApiReason.STALE_IDENTITY_SIGNATURE,
    ApiReason.BAD_IDENTITY_SIGNATURE,
    ApiReason.MALFORMED_REQUEST_URI,
    ApiReason.DUPLICATE_IDENTITY_HEADER,
    ApiReason.MALFORMED_IDENTITY_HEADERS,
)

#: nginx's own error answers (nginx/error-maps.inc's $edge_error_code, and upstream_unavailable when
#: the verifier or the API cannot be reached), by status. A test keeps this equal to the template.
EDGE_ERRORS: Mapping[int, tuple[str, ...]] = {
    400: ("bad_request",),
    413: ("request_too_large",),
    414: ("uri_too_long",),
    431: ("request_headers_too_large",),
    500: ("internal_error",),
    503: ("unavailable", "upstream_unavailable"),
}

#: The statuses of refusals, with what a client reads from each.
DESCRIPTIONS: Mapping[int, str] = {
    400: "The request cannot be read (malformed JSON, a malformed request line or header).",
    401: "No valid credentials: sign in again or get a new token (the challenge is in WWW-Authenticate).",
    403: "Authenticated, but without the role, scope or group this endpoint needs (`required` names them).",
    404: "No such resource.",
    409: "Valid, but the current state refuses it (the API is read-only, or a quota is reached).",
    413: "The request body is larger than the API accepts.",
    414: "The URI is longer than the edge accepts.",
    415: "The body is not JSON (`Content-Type: application/json`).",
    422: "A value breaks the schema (`details` names each field, never its value).",
    431: "The request headers are larger than the edge accepts.",
    500: "The edge could not decide (a deployment fault); nothing was done.",
    503: "A dependency is unavailable; nothing was done. Try again after Retry-After seconds.",
}

Refusals = dict[int, set[str]]
_F = TypeVar("_F", bound=Callable[..., Any])
_ATTRIBUTE = "__api_refusals__"


def declare(dependency: _F, refusals: Mapping[int, Iterable[str]]) -> _F:
    """Mark ``dependency`` as one that can refuse with these statuses and reasons."""
    declared = {status: {str(reason) for reason in reasons} for status, reasons in refusals.items()}
    setattr(dependency, _ATTRIBUTE, declared)
    return dependency


def _merge(into: Refusals, more: Mapping[int, Iterable[str]]) -> None:
    for status, reasons in more.items():
        into.setdefault(status, set()).update(str(reason) for reason in reasons)


def edge_refusals(*, protected: bool) -> Refusals:
    """What is answered before an operation's own code runs: nginx's own errors, and on a protected
    path the verifier's refusals (auth_request in front) and the identity guard's."""
    found: Refusals = {}
    if protected:
        for reason in Reason:
            found.setdefault(http_status(reason), set()).add(str(reason))
        _merge(found, EDGE_ERRORS)
        _merge(found, {401: IDENTITY_REFUSALS})
    else:
        # No verifier: no 401, 403 or 500 of its; the route documents its own 503 (an unreachable
        # API is nginx's 503 there too).
        _merge(found, {status: codes for status, codes in EDGE_ERRORS.items() if status not in (500, 503)})
    return found


def operation_refusals(route: APIRoute, *, protected: bool) -> Refusals:
    """Every refusal ``route`` can answer: its dependencies', its body's, its own and the edge's."""
    found = edge_refusals(protected=protected)
    _merge(found, {413: [ApiReason.BODY_TOO_LARGE]})
    for call in dependency_calls(route):
        _merge(found, getattr(call, _ATTRIBUTE, {}))
    if route.dependant.path_params or route.dependant.query_params or route.body_field is not None:
        _merge(found, {422: [ApiReason.INVALID_VALUE]})
    own = (route.openapi_extra or {}).get("x-refusals", {})
    _merge(found, {int(status): reasons for status, reasons in own.items()})
    return found


def route_refusals(**refusals: Iterable[str]) -> dict[str, Any]:
    """``openapi_extra`` for a route that refuses by itself: ``route_refusals(r409=[...])``."""
    return {"x-refusals": {int(key.removeprefix("r")): sorted(reasons) for key, reasons in refusals.items()}}


def all_reasons() -> list[str]:
    """Every reason code a caller of the API can read, the API's and the edge's."""
    edge = {code for codes in EDGE_ERRORS.values() for code in codes}
    return sorted({str(r) for r in ApiReason} | {str(r) for r in Reason} | edge)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "reason"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "The kind of refusal."},
        "reason": {"type": "string", "enum": all_reasons(), "description": "The stable reason code."},
        "bearer_error": {"type": "string", "description": "The edge's RFC 6750 error code (401, 403)."},
        "required": {"type": "array", "items": {"type": "string"}, "description": "403: any one of these."},
        "max_bytes": {"type": "integer", "description": "413: the largest body accepted."},
        "details": {
            "type": "array",
            "description": "422: each field that breaks the schema; never its value.",
            "items": {
                "type": "object",
                "required": ["loc", "type", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "type": {"type": "string"},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

_HEADERS: Mapping[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}, "description": "RFC 6750."}},
    503: {"Retry-After": {"required": True, "schema": {"type": "string"}, "description": "Seconds."}},
}


def _response(status: int, reasons: Iterable[str]) -> dict[str, Any]:
    schema = {
        "allOf": [{"$ref": "#/components/schemas/Error"}],
        "properties": {"reason": {"type": "string", "enum": sorted(reasons)}},
    }
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def endpoint_routes(routes: Sequence[Any]) -> list[Any]:
    """Every endpoint route, looking inside included routers (however this FastAPI version nests them)."""
    found = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            found += endpoint_routes(nested.routes)
        elif getattr(route, "dependant", None) is not None:
            found.append(route)
    return found


def dependency_calls(route: APIRoute) -> Iterator[Callable[..., Any]]:
    """Every dependency ``route`` solves, directly or through another dependency."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if dependency.call is not None:
            yield dependency.call
        stack.extend(dependency.dependencies)


def document_refusals(app: FastAPI, *, unprotected: Iterable[str]) -> None:
    """Add every operation's refusals to ``app``'s OpenAPI document (one ``Error`` schema, each status
    with the reasons that can occur there). ``unprotected`` paths have no auth_request in front."""
    open_paths = set(unprotected)
    by_operation: dict[tuple[str, str], Refusals] = {}
    for route in endpoint_routes(app.routes):
        if isinstance(route, APIRoute) and route.include_in_schema:
            refusals = operation_refusals(route, protected=route.path_format not in open_paths)
            for method in route.methods:
                by_operation[(route.path_format, method.lower())] = refusals
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        if "Error" in document.get("components", {}).get("schemas", {}):
            return document  # already documented (FastAPI keeps the document it built)
        document.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for schema in ("HTTPValidationError", "ValidationError"):
            document["components"]["schemas"].pop(schema, None)
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                refusals = by_operation.get((path, method))
                if refusals is None:
                    continue
                operation.pop("x-refusals", None)
                responses = operation.setdefault("responses", {})
                for status, reasons in sorted(refusals.items()):
                    responses[str(status)] = _response(status, reasons)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
