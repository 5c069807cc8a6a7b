"""The application factory: ``create_app(settings)`` builds a complete, independent API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from fastapi.security import OAuth2AuthorizationCodeBearer

from fastapi_app.authentication import PUBLIC_PATHS, Clock, IdentityGuard
from fastapi_app.database import create_engine, is_sqlite
from fastapi_app.database.health import DatabaseHealth
from fastapi_app.database.migrations import upgrade_to_head
from fastapi_app.errors import install_error_handlers
from fastapi_app.middleware import AccessLog, BodyLimit
from fastapi_app.policy import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE
from fastapi_app.refusals import document_refusals
from fastapi_app.revalidation import REVALIDATED_ROUTES, TokenRevalidator, revalidating_routes
from fastapi_app.routes import admin, docs, health, identity, projects, sessions
from fastapi_app.routes.common import operation_id
from fastapi_app.routes.docs import OPENAPI_PATH
from fastapi_app.routes.sessions import VerifierSessions
from fastapi_app.settings import ApiSettings
from service_runtime.tracing import stop_tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TITLE = "Projects API"
#: FastAPI's OpenTelemetry support, all of it off (tracing is off unless configured).
_NO_TELEMETRY: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def _docs_sign_in(settings: ApiSettings) -> OAuth2AuthorizationCodeBearer:
    """The OpenAPI security scheme: documentation only.

    It makes the docs page's "Authorize" button run authorization code + PKCE against the configured
    authority, so requests sent from the page carry a bearer token that nginx and the verifier turn
    into signed identity headers. The API itself never reads this token (nginx does not even pass
    ``Authorization`` on), so the scheme is declared in the document only (:func:`_declare_sign_in`),
    not as a dependency FastAPI would solve on every request.
    """
    return OAuth2AuthorizationCodeBearer(
        authorizationUrl=settings.authorization_url,
        tokenUrl=settings.token_url,
        scopes={
            settings.scope(SCOPE_READ): "Read projects",
            settings.scope(SCOPE_WRITE): "Create and change projects",
            settings.scope(SCOPE_ADMIN): "Delete projects and change admin settings",
        },
        scheme_name="entra",
        auto_error=False,
    )


def _declare_sign_in(app: FastAPI, scheme: OAuth2AuthorizationCodeBearer, routers: list[APIRouter]) -> None:
    """Put ``scheme`` in the OpenAPI document as ``Security(scheme)`` on each of ``routers`` would.

    The same document (the scheme under ``components.securitySchemes``, ``security`` on each of
    their operations) without the per-request cost: as a dependency, FastAPI would read the
    ``Authorization`` header for nothing on every request (about a tenth of ``/api/me``'s time in
    the app). ``tests/unit/fastapi_app/test_docs_and_health.py`` pins the document.
    """
    requirement = {"security": [{scheme.scheme_name: []}]}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                route.openapi_extra = {**(route.openapi_extra or {}), **requirement}
    definition = jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # built once and kept by FastAPI; adding the scheme again is a no-op
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[scheme.scheme_name] = definition
        return document

    app.openapi = openapi  # type: ignore[method-assign]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The pool lives as long as the server (and on its event loop). PostgreSQL is migrated by its own
    # step before the API starts; the embedded SQLite file is the one database only this process
    # uses, so the API brings it to the newest schema itself (the migration lock makes that safe).
    settings: ApiSettings = app.state.settings
    if is_sqlite(settings.database_url):
        await upgrade_to_head(settings.database_url)
    app.state.database = create_engine(settings.database_url)
    app.state.database_health = DatabaseHealth(app.state.database)
    provider: TracerProvider | None = app.state.tracer_provider
    if provider is not None:
        from fastapi_app import tracing

        tracing.instrument_database(app.state.database, provider)
    try:
        async with _revalidator_running(app):
            yield
    finally:
        await app.state.database.dispose()
        stop_tracing(provider)


@asynccontextmanager
async def _revalidator_running(app: FastAPI) -> AsyncIterator[None]:
    # The revalidator starts with the server and stops with it (TokenRevalidator.start and close).
    revalidator: TokenRevalidator | None = app.state.revalidator
    if revalidator is None:
        yield
        return
    await revalidator.start()
    try:
        yield
    finally:
        await revalidator.close()


def create_app(
    settings: ApiSettings,
    *,
    revalidator: TokenRevalidator | None = None,
    clock: Clock = time.time,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the API. ``revalidator`` defaults to the verifier's validation library when configured.
    ``tracer_provider`` (service_runtime.tracing.start_tracing) turns the API's spans on; the app
    shuts it down when it stops."""
    telemetry = _NO_TELEMETRY
    if tracer_provider is not None:
        from fastapi_app import tracing

        tracing.instrument_clients(tracer_provider)
        telemetry = tracing.telemetry(tracer_provider)
    app = FastAPI(
        title=TITLE,
        version="1.0.0",
        description="Business API behind nginx. Every endpoint except health and these docs is authorized "
        "from identity headers signed by the verifier.",
        # The built-in pages load Swagger UI from a CDN with inline scripts; ours are in routes/docs.py.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=_lifespan,
        openapi_url=OPENAPI_PATH,
        # FastAPI's built-in OpenTelemetry instrumentation: on only with tracing (fastapi_app.tracing).
        # Off, it is off entirely: with it on, every request asks the global providers whether anyone
        # listens (about a tenth of /api/me's time in the app in a profile).
        telemetry=telemetry,
        # No redirect from /api/projects/ to /api/projects: uvicorn does not believe forwarded headers
        # (see __main__), so the redirect would send the browser to http://, off TLS. Each path is
        # answered as it is: an unknown one is 404.
        redirect_slashes=False,
        # Operation ids are the handlers' names (routes.common.operation_id, as on every router).
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.tracer_provider = tracer_provider
    if revalidator is None and settings.revalidation is not None:
        from fastapi_app.token_check import VerifierRevalidator

        revalidator = VerifierRevalidator.from_settings(settings)
    app.state.revalidator = revalidator
    app.state.verifier_sessions = VerifierSessions(settings.verifier_url)

    install_error_handlers(app)
    signed_in = [area.build_router(settings) for area in (identity, projects, admin, sessions)]
    _declare_sign_in(app, _docs_sign_in(settings), signed_in)
    # The routes go onto the app's own router rather than through include_router, which matches an
    # included router as a router and then its routes again on every request (about a third of
    # /api/me's time in the app; bench/profiles/). Each route already carries its router's prefix,
    # tags and dependencies, so nothing else changes. The health check first (one route, what load
    # balancers call every few seconds), then /api/me, the hot path of every client.
    docs_router = docs.build_router(settings, title=TITLE, scopes=settings.scope(SCOPE_READ))
    for router in (health.build_router(settings), *signed_in, docs_router):
        app.router.routes.extend(router.routes)

    # Each add wraps the previous one, so at run time the order is AccessLog -> IdentityGuard ->
    # BodyLimit -> routes: everything is logged (every request, or only refusals and errors, see
    # AccessLog), and unsigned requests are refused before any body is read.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(IdentityGuard, settings=settings, clock=clock)
    app.add_middleware(AccessLog, every_request=settings.access_log, traced=tracer_provider is not None)
    document_refusals(app, unprotected=PUBLIC_PATHS)
    declared = revalidating_routes(app.routes)
    if declared != set(REVALIDATED_ROUTES):
        # The verifier forwards the token to REVALIDATED_ROUTES only: a route missing there would
        # refuse every call (missing_forwarded_token), an extra one would receive tokens it ignores.
        raise RuntimeError(
            f"the routes that re-validate the forwarded token are {sorted(declared)}, "
            f"but REVALIDATED_ROUTES lists {sorted(REVALIDATED_ROUTES)}"
        )
    return app
