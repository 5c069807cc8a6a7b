"""Who is calling: the verifier's signed identity headers, checked on every protected request.

FastAPI never parses an Entra token on the hot path. nginx asks the verifier, which answers with
identity headers and an HMAC over them, the method and the original URI; nginx copies them onto the
proxied request. Here the signature is checked before any header is believed, so a request that went
around nginx, a header a client smuggled in, or a signature replayed onto another request is refused.

Two layers use the same check: :class:`IdentityGuard` (ASGI middleware) refuses unsigned requests to
every non-public path before routing or body parsing, so a route that forgets its dependency is still
closed; :func:`current_principal` (the dependency endpoints declare) returns the principal the guard
established, or performs the check itself when an app is assembled without the guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_app.errors import Unauthenticated, unauthenticated_response
from fastapi_app.refusals import ApiReason
from fastapi_app.routes.docs import DOCS_PATHS
from fastapi_app.settings import ApiSettings
from verifier.core.identity import (
    IDENTITY_HEADERS,
    Principal,
    SignatureError,
    principal_from_headers,
    verify_signature,
)

Clock = Callable[[], float]

#: Paths served without identity: liveness and the documentation pages (which sign in by themselves).
PUBLIC_PATHS = frozenset({"/api/healthz"}) | DOCS_PATHS

_STATE_KEY = "principal"
#: Lower-case wire name -> the spelling :mod:`verifier.core.identity` looks the header up by.
_IDENTITY_HEADER_NAMES = {name.lower().encode("latin-1"): name for name in IDENTITY_HEADERS}


def request_target(scope: Scope) -> str:
    """The request URI exactly as the client sent it: raw path, and ``?query`` when there is one.

    nginx gives the verifier ``$request_uri`` (the unmodified request line target) and proxies the
    same bytes here, so this string must be byte-identical to what the verifier signed. The decoded
    ``scope["path"]`` would not be: ``%2F`` and ``/`` differ on the wire but not after decoding.
    """
    raw_path = scope.get("raw_path")
    if raw_path is None:
        raise Unauthenticated(ApiReason.MALFORMED_REQUEST_URI)
    query = scope.get("query_string", b"")
    target = raw_path + b"?" + query if query else raw_path
    try:
        return target.decode("ascii")
    except UnicodeDecodeError:
        # Clients percent-encode URIs; raw non-ASCII bytes cannot be compared reliably with what the
        # verifier saw through another HTTP stack, so they are refused rather than guessed at.
        raise Unauthenticated(ApiReason.MALFORMED_REQUEST_URI) from None


def identity_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's identity headers by the names :mod:`verifier.core.identity` reads, in one pass.

    A plain dict rather than Starlette's ``Headers``: that one scans every header of the request on
    each lookup, and checking and reading the identity takes about two dozen lookups (a tenth of the
    API's time per request in a profile). Every name the check reads is one of ``IDENTITY_HEADERS``.

    Names are matched as they are: ASGI servers hand them over lower-cased (the ASGI spec requires
    it, and Starlette's ``Headers`` relies on it too), so a name in any other case is no identity
    header to anyone here, and a request whose signature arrives so is refused as unsigned.
    """
    found: dict[str, str] = {}
    for name, value in raw_headers:
        canonical = _IDENTITY_HEADER_NAMES.get(name)
        if canonical is None:
            continue
        if canonical in found:
            # A second copy of a signed header would be ignored by the signature check (which reads
            # the first) and could be read by a careless consumer; nginx never sends two, so two
            # means tampering.
            raise Unauthenticated(ApiReason.DUPLICATE_IDENTITY_HEADER)
        found[canonical] = value.decode("latin-1")
    return found


def authenticate(scope: Scope, settings: ApiSettings, now: int) -> Principal:
    """The principal the verifier vouched for on this request, or :class:`Unauthenticated`."""
    headers = identity_headers(scope.get("headers", []))
    try:
        verify_signature(
            headers,
            keys=settings.signing_keys,
            method=scope["method"],
            uri=request_target(scope),
            now=now,
            max_age=settings.identity_max_age,
        )
        principal = principal_from_headers(headers)
    except SignatureError as exc:
        raise Unauthenticated(exc.reason) from None
    if not principal.oid or not principal.tid:
        raise Unauthenticated(ApiReason.MALFORMED_IDENTITY_HEADERS)
    return principal


class IdentityGuard:
    """ASGI middleware: every non-public HTTP request must carry a valid identity signature."""

    def __init__(self, app: ASGIApp, *, settings: ApiSettings, clock: Clock = time.time) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No route speaks WebSocket; one added later must not bypass the check by accident.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            principal = authenticate(scope, self.settings, int(self.clock()))
        except Unauthenticated as exc:
            await unauthenticated_response(exc.reason)(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE_KEY] = principal
        await self.app(scope, receive, send)


def principal_of(scope: Scope) -> Principal | None:
    """The principal :class:`IdentityGuard` established for this request, if any (for logging)."""
    state = scope.get("state") or {}
    principal = state.get(_STATE_KEY)
    return principal if isinstance(principal, Principal) else None


async def current_principal(request: Request) -> Principal:
    """Dependency: the signed-header principal of this request (401 when it cannot be trusted).

    ``async`` although it awaits nothing: it does no blocking I/O (an HMAC at most), and a plain
    ``def`` dependency costs a trip to AnyIO's thread pool and back on every protected request.
    """
    principal = principal_of(request.scope)
    if principal is not None:
        return principal
    clock: Clock = request.app.state.clock
    principal = authenticate(request.scope, request.app.state.settings, int(clock()))
    request.scope.setdefault("state", {})[_STATE_KEY] = principal
    return principal
