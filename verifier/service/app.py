"""The verifier's aiohttp applications, built by factories that take their settings and collaborators.

``create_app`` serves ``/verify`` (nginx ``auth_request``), ``/session-ended`` (asked by nginx before a
sign-out), ``/front-channel-logout`` (the identity provider's single sign-out, through nginx),
``/sessions/end`` (the API's "sign out everywhere", over localhost), ``/healthz`` (liveness) and
``/readyz`` (503 until signing keys are loaded);
``create_metrics_app`` serves ``/metrics`` on its own port, which the load balancer never reaches.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service_runtime.logs import trace_id_of
from verifier.core.decision import (
    HEADER_AUTH_REASON,
    HEADER_ORIGINAL_METHOD,
    HEADER_ORIGINAL_URI,
    HEADER_REQUEST_ID,
    HEADER_SIGN_IN_REDIRECT,
    Decision,
    OriginalRequest,
    bearer_challenge,
    sign_in_redirect,
)
from verifier.core.forwarded_routes import ForwardedTokenRoute, needs_forwarded_token
from verifier.core.id_tokens import is_session_id
from verifier.core.identity import (
    HEADER_FORWARDED_TOKEN,
    HEADER_SIGNATURE,
    SignatureError,
    principal_from_headers,
    sign_headers,
    signed_principal_headers,
    verify_signature,
)
from verifier.core.jose import GUID
from verifier.core.reasons import Reason, Rejection, TokenRejected, http_status
from verifier.keys.jwks import JwksCache
from verifier.keys.provider import KeyProvider
from verifier.service.metrics import VerifierMetrics, outcome_for_status
from verifier.service.settings import VerifierSettings
from verifier.sources.access_token import TokenAuthenticator, VerifiedTokenCache
from verifier.sources.bearer import BearerSource
from verifier.sources.credential_source import CredentialSource, SessionEnder
from verifier.sources.csrf import is_unsafe_method

log = logging.getLogger("verifier.decision")

#: aiohttp refuses header fields over 8 KiB with a bare 400 before any handler runs. Entra tokens
#: with many claims exceed that, and an oversized token must be answered with a proper 401
#: ``token_too_large``, so the server accepts large fields and the handler refuses them by length.
SERVER_LIMITS: dict[str, int] = {"max_field_size": 2 * 1024 * 1024, "max_line_size": 16 * 1024}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


@dataclass(frozen=True, slots=True)
class VerifierState:
    settings: VerifierSettings
    tokens: TokenAuthenticator
    keys: KeyProvider
    jwks: JwksCache | None
    sources: tuple[CredentialSource, ...]
    #: The sources whose sessions a sign-out ends (``/session-ended``).
    session_enders: tuple[SessionEnder, ...]
    metrics: VerifierMetrics
    clock: Callable[[], float]

    @property
    def ready(self) -> bool:
        if self.jwks is not None:
            return self.jwks.ready
        keys = self.keys.keys
        return all(keys.for_tenant(t) is not None for t in self.settings.validation.tenant_ids)


STATE = web.AppKey("verifier_state", VerifierState)


def create_app(
    settings: VerifierSettings,
    *,
    sources: Sequence[CredentialSource] = (),
    keys: KeyProvider | None = None,
    metrics: VerifierMetrics | None = None,
    token_cache: VerifiedTokenCache | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """Build the /verify app.

    ``sources`` are credential sources consulted after the bearer token (e.g. the oauth2-proxy
    session); each gets the app's :class:`TokenAuthenticator` to validate the token it finds and is
    closed on shutdown. ``keys`` replaces the JWKS cache (a fixed key set in tests); by default a
    :class:`JwksCache` is built, started with the app and fetches keys in the background.
    ``middlewares`` wrap every request (the server span when tracing is on, verifier.service.tracing).
    """
    metrics = metrics if metrics is not None else VerifierMetrics()
    jwks: JwksCache | None = None
    if keys is None:
        jwks = JwksCache(
            settings.validation,
            refresh_seconds=settings.jwks_refresh_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            ca_file=settings.ca_file,
            metrics=metrics,
            monotonic=monotonic,
        )
        keys = jwks
    cache = (
        token_cache if token_cache is not None else VerifiedTokenCache(settings.token_cache_size, clock=clock)
    )
    tokens = TokenAuthenticator(
        settings.validation, keys, cache=cache, metrics=metrics, policy=settings.route_policy, clock=clock
    )
    state = VerifierState(
        settings=settings,
        tokens=tokens,
        keys=keys,
        jwks=jwks,
        sources=(BearerSource(), *sources),
        session_enders=tuple(source for source in sources if isinstance(source, SessionEnder)),
        metrics=metrics,
        clock=clock,
    )
    metrics.track_readiness(lambda: state.ready)
    app = web.Application(middlewares=tuple(middlewares))
    app[STATE] = state
    app.router.add_route("*", "/verify", handle_verify)
    app.router.add_route("*", "/session-ended", handle_session_ended)
    app.router.add_get("/front-channel-logout", handle_front_channel_logout)
    app.router.add_post("/sessions/end", handle_end_user_sessions)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


def create_metrics_app(metrics: VerifierMetrics) -> web.Application:
    async def handle_metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/metrics", handle_metrics)
    return app


async def _start(app: web.Application) -> None:
    state = app[STATE]
    if state.jwks is not None:
        await state.jwks.start()
    for source in state.sources:
        await source.start()


async def _stop(app: web.Application) -> None:
    state = app[STATE]
    for source in state.sources:
        await source.close()
    if state.jwks is not None:
        await state.jwks.close()


async def decision_of_first_present_source(
    state: VerifierState, request: web.Request, original: OriginalRequest
) -> Decision:
    """The first source whose credentials the request carries decides; none means ``missing_token``."""
    for source in state.sources:
        if source.present(request):
            try:
                return await source.check_credentials(request, original, state.tokens)
            except Exception:
                # Fail closed: a bug or an unexpected upstream answer never lets a request through.
                log.exception("credential source %s failed", source.name, extra={"source": source.name})
                return Decision.reject(
                    TokenRejected(Reason.INTERNAL_ERROR, "the credential source failed"), source=source.name
                )
    return Decision.reject(TokenRejected(Reason.MISSING_TOKEN, "no credentials"), source="none")


async def handle_verify(request: web.Request) -> web.Response:
    started = perf_counter()
    state = request.app[STATE]
    original = OriginalRequest.from_headers(request.headers)
    if original is None:
        decision = Decision.reject(
            TokenRejected(
                Reason.MISSING_ORIGINAL_REQUEST, "X-Original-Method and X-Original-URI are required"
            ),
            source="none",
        )
    else:
        decision = await decision_of_first_present_source(state, request, original)
    response = render(
        decision,
        original,
        identity_key=state.settings.identity_key,
        now=int(state.clock()),
        revalidated_routes=state.settings.revalidated_routes,
    )
    elapsed = perf_counter() - started
    state.metrics.record_decision(decision.source, response.status, decision.reason, elapsed)
    _log_decision(request, decision, original, response.status, elapsed)
    return response


def _log_decision(
    request: web.Request, decision: Decision, original: OriginalRequest | None, status: int, elapsed: float
) -> None:
    level = logging.DEBUG if decision.allowed else logging.INFO
    if not log.isEnabledFor(level):
        return
    principal = decision.principal
    log.log(
        level,
        "allowed" if decision.allowed else f"refused: {decision.reason}",
        extra={
            "event": "decision",
            **_request_fields(request),
            "source": decision.source,
            "status": status,
            "outcome": outcome_for_status(status),
            "reason": decision.reason,
            "detail": decision.detail,
            "oid": decision.oid,
            "tid": principal.tid if principal else "",
            "principal_type": principal.principal_type if principal else "",
            # The path only: a query string can carry anything, tokens included.
            "method": original.method if original else "",
            "path": original.uri.split("?", 1)[0] if original else "",
            "duration_ms": round(elapsed * 1000, 3),
        },
    )


async def handle_session_ended(request: web.Request) -> web.Response:
    """A browser is signing out: nginx asks here (``auth_request``) before it passes
    ``/oauth2/sign_out`` to oauth2-proxy, so that no verifier task answers for that session from
    memory any more (:mod:`verifier.sources.session_cache`). Always 204: a cookie can only end what
    it would itself have been allowed to use, and nothing is revealed."""
    for source in request.app[STATE].session_enders:
        await source.end(request.headers.getall("Cookie", ()))
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


#: What the identity provider's hidden iframe gets: nothing to see, nothing to run. nginx adds the
#: CSP whose frame-ancestors lets only the provider's origin frame it.
_FRONT_CHANNEL_PAGE = '<!doctype html><meta charset="utf-8"><title>Signed out</title>\n'

#: How long an identity signature sent on to ``/sessions/end`` stays good: the API forwards it at
#: once, in the same task.
END_SESSIONS_SIGNATURE_MAX_AGE_SECONDS = 30

#: The most a ``/sessions/end`` body may hold; it is ``{"oid": "<guid>"}``.
MAX_END_SESSIONS_BODY_BYTES = 1024


def _front_channel_answer(status: int) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "5"
    return web.Response(status=status, text=_FRONT_CHANNEL_PAGE, content_type="text/html", headers=headers)


async def handle_front_channel_logout(request: web.Request) -> web.Response:
    """The identity provider's front-channel logout (OpenID Connect Front-Channel Logout 1.0, as
    Entra sends it): ``GET ?sid=<its sign-in session>``, from a hidden iframe on its logout page.

    The session cookie does not arrive (the frame is cross-site and the cookie ``SameSite=Lax``), so
    the sessions are found by ``sid`` (:meth:`SessionEnder.end_sign_in`), on every task at once. Entra
    sends no ``iss``, and the call carries no proof: what it can do is bounded by what knowing a
    ``sid`` allows, which only the sign-in's ID token (kept server-side, never in the browser) tells.
    Safe to repeat; an unknown ``sid`` ends nothing and is logged as such. 400 without exactly one
    well-formed ``sid``; 503 with ``Retry-After`` when the session store does not answer.
    """
    state = request.app[STATE]
    sids = request.query.getall("sid", [])
    if len(sids) != 1 or not is_session_id(sids[0]):
        log.warning("front-channel logout refused: no single well-formed sid", extra=_request_fields(request))
        return _front_channel_answer(400)
    ended = 0
    try:
        for source in state.session_enders:
            ended += await source.end_sign_in(sids[0])
    except Rejection as failed:
        log.warning(
            "front-channel logout failed: %s",
            failed.reason,
            extra={**_request_fields(request), "reason": failed.reason},
        )
        return _front_channel_answer(http_status(failed.reason))
    fields = {**_request_fields(request), "event": "front_channel_logout", "sessions_ended": ended}
    if ended:
        log.info("front-channel logout ended %d session(s)", ended, extra=fields)
    else:
        log.info("front-channel logout for an unknown sid: nothing ended", extra=fields)
    return _front_channel_answer(200)


async def handle_end_user_sessions(request: web.Request) -> web.Response:
    """ "Sign out everywhere": end every session of one user (``{"oid": ...}``) on every task.

    Asked by the API over localhost, never through nginx, on behalf of a request the API has
    authorized ("end all my sessions" for the caller, "end all sessions of user X" for an Admin). The
    API sends on that request's identity headers, its signature and its method and target
    (``X-Original-Method``, ``X-Original-URI``); the verifier acts only on a fresh signature it made
    itself for an unsafe request, which a browser's got only after the CSRF checks. Who may end whose
    sessions is the API's decision. Answers ``{"ended": n}``; 503 when the session store does not
    answer.
    """
    state = request.app[STATE]
    method = request.headers.get(HEADER_ORIGINAL_METHOD, "")
    uri = request.headers.get(HEADER_ORIGINAL_URI, "")
    try:
        if not is_unsafe_method(method):
            raise SignatureError("bad_identity_signature", "only an unsafe request may end sessions")
        verify_signature(
            request.headers,
            keys=(state.settings.identity_key,),
            method=method,
            uri=uri,
            now=int(state.clock()),
            max_age=END_SESSIONS_SIGNATURE_MAX_AGE_SECONDS,
        )
        caller = principal_from_headers(request.headers)
    except SignatureError as refused:
        log.warning("sessions/end refused: %s", refused.reason, extra={"reason": refused.reason})
        return web.json_response({"error": "forbidden", "reason": refused.reason}, status=403)
    body = await request.content.read(MAX_END_SESSIONS_BODY_BYTES + 1)
    try:
        oid = json.loads(body)["oid"] if len(body) <= MAX_END_SESSIONS_BODY_BYTES else None
    except (ValueError, TypeError, KeyError):
        oid = None
    if not isinstance(oid, str) or not GUID.fullmatch(oid):
        return web.json_response({"error": "bad_request", "reason": "bad_oid"}, status=400)
    ended = 0
    try:
        for source in state.session_enders:
            ended += await source.end_user(oid, now=int(state.clock()))
    except Rejection as failed:
        status = http_status(failed.reason)
        return web.json_response(
            {"error": "unavailable", "reason": failed.reason},
            status=status,
            headers={"Retry-After": "5"} if status == 503 else None,
        )
    log.info(
        "ended every session of a user",
        extra={"event": "sessions_ended", "oid": caller.oid, "target_oid": oid, "sessions_ended": ended},
    )
    return web.json_response({"ended": ended}, headers={"Cache-Control": "no-store"})


def _request_fields(request: web.Request) -> dict[str, str]:
    """The request's id and trace for a log line: nginx's, when they have the shape nginx gives them."""
    request_id = request.headers.get(HEADER_REQUEST_ID, "")
    return {
        "request_id": request_id if _REQUEST_ID.fullmatch(request_id) else "",
        "trace_id": trace_id_of(request.headers.get("traceparent", "")),
    }


async def handle_healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    if request.app[STATE].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not_ready", "reason": "keys_unavailable"}, status=503)


def render(
    decision: Decision,
    original: OriginalRequest | None,
    *,
    identity_key: bytes,
    now: int,
    revalidated_routes: tuple[ForwardedTokenRoute, ...] = (),
) -> web.Response:
    """The HTTP answer for ``decision``; identity headers are signed over ``original``."""
    if decision.allowed and original is not None:
        assert decision.principal is not None
        if decision.identity_headers is not None:
            # The same values signed_principal_headers would encode, encoded once per cached token.
            headers = dict(decision.identity_headers)
            headers[HEADER_SIGNATURE] = sign_headers(
                headers, key=identity_key, method=original.method, uri=original.uri, now=now
            )
        else:
            headers = signed_principal_headers(
                decision.principal, key=identity_key, method=original.method, uri=original.uri, now=now
            )
        if decision.access_token and needs_forwarded_token(original.method, original.uri, revalidated_routes):
            headers[HEADER_FORWARDED_TOKEN] = decision.access_token
        headers["Cache-Control"] = "no-store"
        response = web.Response(status=200, headers=headers)
    else:
        status = 500 if decision.status == 200 else decision.status
        # No body: everything is in the headers (the reason in X-Auth-Reason, RFC 6750's error in
        # WWW-Authenticate), and nginx builds the client's answer from them. nginx never reads an
        # auth_request answer's body, so it closes the connection of any answer that has one: each
        # refusal then cost a new TCP connection to the verifier (3.5 times the CPU, measured in
        # bench/profiles/fixes.md) and a socket in TIME_WAIT, which a flood of bad tokens would
        # turn into exhausted ports and 503s for everyone.
        response = web.Response(status=status, headers={"Cache-Control": "no-store"})
        if status in (401, 403) and decision.challenge:
            response.headers["WWW-Authenticate"] = bearer_challenge(decision)
        response.headers[HEADER_AUTH_REASON] = decision.reason
        if status == 401 and original is not None:
            response.headers[HEADER_SIGN_IN_REDIRECT] = sign_in_redirect(original.uri)
    for name, value in decision.headers:
        response.headers.add(name, value)
    return response
