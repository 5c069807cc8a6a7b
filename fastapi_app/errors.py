"""The API's error answers: one shape per status, a stable reason code, no echo of request data.

Handlers never include header values, tokens or request bodies: a reason code and, for 403, the
permissions the endpoint requires (which are public policy, not caller data).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fastapi_app.refusals import ApiReason, endpoint_routes

#: At most this many validation problems are reported, each without the offending input.
MAX_VALIDATION_ERRORS = 10
_MAX_MESSAGE_CHARS = 200


class Refusal(Exception):
    """A refusal with a stable reason code; each subclass is answered with its own status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthenticated(Refusal):
    """The caller's identity cannot be established or trusted (401)."""


class Forbidden(Refusal):
    """The caller is known but lacks a permission (403)."""

    def __init__(self, reason: str, required: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.required = required


class StepUpRequired(Unauthenticated):
    """The token lacks the authentication context the endpoint demands and its client declared it can
    answer a claims challenge (``xms_cc`` holds ``cp1``): 401 with the challenge (see
    :func:`claims_challenge_response`)."""

    def __init__(self, context: str, authorization_uri: str) -> None:
        super().__init__(ApiReason.INSUFFICIENT_CLAIMS)
        self.context = context
        self.authorization_uri = authorization_uri


class Conflict(Refusal):
    """The request is valid but the current state refuses it (409), e.g. read-only mode or a quota."""


class UnsupportedMediaType(Refusal):
    """The body is not in a media type the endpoint takes (415)."""


class Unavailable(Refusal):
    """A dependency the decision needs is unavailable (503); the request is refused, never waved through."""


def unauthenticated_response(reason: str) -> JSONResponse:
    # RFC 6750: a 401 for a bearer-protected resource names the scheme. The reason stays in the body;
    # the identity headers are not something a client can fix by itself.
    return JSONResponse(
        {"error": "unauthenticated", "reason": reason},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
    )


def claims_challenge(context: str) -> str:
    """The ``claims`` value that asks for authentication context ``context``: base64 (standard, padded)
    of ``{"access_token":{"acrs":{"essential":true,"value":"c1"}}}``, as Microsoft documents it."""
    request = {"access_token": {"acrs": {"essential": True, "value": context}}}
    return base64.b64encode(json.dumps(request, separators=(",", ":")).encode()).decode("ascii")


def claims_challenge_response(context: str, authorization_uri: str) -> JSONResponse:
    """401 with Entra's claims challenge (``error="insufficient_claims"``, ``claims``), which MSAL and
    the SPA turn into an interactive sign-in for ``context``; ``required`` names it in the body too.
    The values are configuration, never request data, and hold no character that needs quoting."""
    challenge = (
        f'Bearer realm="", authorization_uri="{authorization_uri}", '
        f'error="insufficient_claims", claims="{claims_challenge(context)}"'
    )
    return JSONResponse(
        {"error": "unauthenticated", "reason": ApiReason.INSUFFICIENT_CLAIMS, "required": [context]},
        status_code=401,
        headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
    )


def forbidden_response(reason: str, required: tuple[str, ...]) -> JSONResponse:
    return JSONResponse(
        {"error": "forbidden", "reason": reason, "required": list(required)},
        status_code=403,
        headers={"Cache-Control": "no-store"},
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors()[:MAX_VALIDATION_ERRORS]:
        details.append(
            {
                "loc": [part if isinstance(part, int) else str(part)[:64] for part in error.get("loc", ())],
                "type": str(error.get("type", ""))[:64],
                "msg": str(error.get("msg", ""))[:_MAX_MESSAGE_CHARS],
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        if isinstance(exc, StepUpRequired):
            return claims_challenge_response(exc.context, exc.authorization_uri)
        return unauthenticated_response(exc.reason)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return forbidden_response(exc.reason, exc.required)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"error": "conflict", "reason": exc.reason}, status_code=409)

    @app.exception_handler(UnsupportedMediaType)
    async def _unsupported(_: Request, exc: UnsupportedMediaType) -> JSONResponse:
        return JSONResponse({"error": "unsupported_media_type", "reason": exc.reason}, status_code=415)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse(
            {"error": "unavailable", "reason": exc.reason},
            status_code=503,
            headers={"Cache-Control": "no-store", "Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        if any(error.get("type") == "json_invalid" for error in exc.errors()):
            return _malformed_json()
        # FastAPI's default answer repeats each offending input; a hostile client could make us
        # reflect megabytes or smuggle content into logs, so only location, type and message go back.
        return JSONResponse(
            {
                "error": "invalid_request",
                "reason": ApiReason.INVALID_VALUE,
                "details": _validation_details(exc),
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's "error parsing the body" (bytes that are not text, for one).
            return _malformed_json()
        reason = _HTTP_REASONS.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route whose path matched; the resource
            # allows those of every route on its path (RFC 9110, 15.5.6).
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse({"error": reason, "reason": reason}, status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the resource the request's path names: every route with the path template of
    the first route that matches it (so /api/projects/report is its own resource, not a project id)."""
    path = request.scope["path"]
    routes = [route for route in endpoint_routes(request.app.routes) if hasattr(route, "path_regex")]
    template = next((route.path for route in routes if route.path_regex.match(path)), None)
    methods = {method for route in routes if route.path == template for method in route.methods or ()}
    return sorted(methods)


_HTTP_REASONS = {404: ApiReason.NOT_FOUND, 405: ApiReason.METHOD_NOT_ALLOWED, 413: ApiReason.BODY_TOO_LARGE}


def _malformed_json() -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "reason": ApiReason.MALFORMED_JSON}, status_code=400)
