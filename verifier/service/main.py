"""The verifier process: read the environment, refuse to start on any problem, then serve.

``python -m verifier`` runs :func:`main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

import uvloop
from aiohttp import web

from service_runtime.config_error import ConfigError
from service_runtime.logs import configure_logging
from service_runtime.tracing import start_tracing, stop_tracing
from verifier.service.app import SERVER_LIMITS, STATE, create_app, create_metrics_app
from verifier.service.metrics import VerifierMetrics
from verifier.service.settings import VerifierSettings, settings_from_env
from verifier.sources.alb import build_alb_source
from verifier.sources.credential_source import CredentialSource
from verifier.sources.session.source import build_session_source

log = logging.getLogger("verifier")


def _tls_label(settings: VerifierSettings) -> str:
    if settings.tls is None:
        return ""
    return " with TLS" + (" (client certificates)" if settings.tls.client_ca_file else "")


async def serve(settings: VerifierSettings, *, sources: Sequence[CredentialSource] | None = None) -> None:
    """Run the /verify app and the metrics app until SIGTERM or SIGINT.

    ``sources`` defaults to what the settings configure: the oauth2-proxy session source, then the
    ALB OIDC source when enabled, built here inside the event loop their connection pools will
    belong to.
    """
    # Traces, only when configured: the SDK, the instrumentations and the traced metrics are loaded
    # here or not at all, so a verifier without tracing runs exactly the code it always ran.
    provider = start_tracing(settings.tracing)
    middlewares = []
    if provider is not None:
        from verifier.service import tracing

        tracing.instrument_clients(provider)
        metrics: VerifierMetrics = tracing.TracedVerifierMetrics()
        middlewares.append(tracing.server_span_middleware(provider))
    else:
        metrics = VerifierMetrics()
    if sources is None:
        configured: list[CredentialSource] = []
        if settings.session is not None:
            session = build_session_source(
                settings.session, metrics=metrics, fresh_routes=settings.revalidated_routes
            )
            configured.append(session)
            if settings.alb is not None:
                # The ALB's browsers pass the same CSRF checks, with the same key and spent tokens.
                configured.append(build_alb_source(settings.alb, csrf=session.csrf, metrics=metrics))
        sources = tuple(configured)
    app = create_app(settings, sources=sources, metrics=metrics, middlewares=middlewares)
    metrics_app = create_metrics_app(app[STATE].metrics)
    runner = web.AppRunner(app, access_log=None, **SERVER_LIMITS)
    metrics_runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    await metrics_runner.setup()
    relay = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        # TLS, when configured, on /verify's port only: the metrics port is scraped inside the task.
        tls = settings.tls.context() if settings.tls is not None else None
        await web.TCPSite(runner, settings.host, settings.port, ssl_context=tls).start()
        await web.TCPSite(metrics_runner, settings.host, settings.metrics_port).start()
        if provider is not None and settings.edge_spans_listen is not None:
            relay = await tracing.start_edge_span_relay(*settings.edge_spans_listen, provider)
        log.info(
            "verifier listening on %s:%d%s (metrics on %s:%d)",
            settings.host,
            settings.port,
            _tls_label(settings),
            settings.host,
            settings.metrics_port,
        )
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await metrics_runner.cleanup()
        await runner.cleanup()
        if provider is not None:
            tracing.stop_edge_span_relay(relay)
            stop_tracing(provider)


def main() -> int:
    try:
        settings = settings_from_env()
    except ConfigError as exc:
        print("verifier: refusing to start; fix these settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        # uvloop, as the API runs on: the verifier's time is mostly the event loop and socket writes
        # (bench/profiles/), which uvloop does in C.
        uvloop.run(serve(settings))
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    return 0
