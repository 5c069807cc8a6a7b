"""``python -m fastapi_app``: validate the environment, then serve the API with uvicorn.

``proxy_headers=False``: the API sits behind nginx on localhost and must not rewrite the client
address or scheme from ``X-Forwarded-*`` headers a client could have sent. uvicorn's own access log
is off; the app writes JSON access lines (the schema every service shares, :mod:`service_runtime.logs`)
without query strings, headers or bodies.

``API_WORKERS``: uvicorn worker processes sharing one listener, as many as the task has vCPUs (see
:func:`tcp_listener` for the one thing uvicorn's own multi-worker start gets wrong).

``timeout_keep_alive``: nginx keeps idle connections to the API open for up to 60 s
(``keepalive_timeout`` of ``upstream edge_api`` in nginx/edge.conf.template). uvicorn must wait longer
than that before it closes one, or nginx may send a request down a connection uvicorn is closing; a
POST on such a connection is not retried and the user sees an error.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from fastapi_app.app import create_app
from fastapi_app.settings import ApiSettings
from service_runtime.config_error import ConfigError
from service_runtime.logs import configure_logging
from service_runtime.tracing import start_tracing

#: Seconds uvicorn keeps an idle connection open: longer than nginx's upstream keepalive_timeout.
KEEP_ALIVE_SECONDS = 75


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each worker process (``API_WORKERS`` > 1); main() validated the env."""
    settings = ApiSettings.from_env(os.environ)
    configure_logging(settings.log_level, stream=sys.stderr)
    # Each worker its own exporter (its own batch and thread): a provider does not survive a fork.
    return create_app(settings, tracer_provider=start_tracing(settings.tracing))


def main() -> int:
    try:
        settings = ApiSettings.from_env(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, stream=sys.stderr)
    config = uvicorn.Config(
        create_app(settings, tracer_provider=start_tracing(settings.tracing))
        if settings.workers == 1
        else "fastapi_app.__main__:app_from_environment",
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **server_options(settings),
    )
    if settings.workers == 1:
        uvicorn.Server(config).run()
        return 0
    Multiprocess(config, sockets=[tcp_listener(config)]).run()
    return 0


def server_options(settings: ApiSettings) -> dict[str, Any]:
    """uvicorn's options for the API, whatever it listens on (bench/edge/uds_serve.py adds a socket)."""
    return {
        # Named, not "auto": a missing uvloop or httptools must fail the start, not quietly run the
        # pure-Python asyncio loop and h11 parser at twice the CPU per request.
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": False,
        "access_log": False,
        "server_header": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "log_config": None,
        "log_level": settings.log_level,
        **_tls_options(settings),
    }


def _tls_options(settings: ApiSettings) -> dict[str, Any]:
    """uvicorn's TLS options for ``API_TLS_*`` (service_runtime.tls); none when TLS is off."""
    if settings.tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": settings.tls.cert_file, "ssl_keyfile": settings.tls.key_file}
    if settings.tls.client_ca_file is not None:
        options.update(ssl_ca_certs=str(settings.tls.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def tcp_listener(config: uvicorn.Config) -> socket.socket:
    """The shared listening socket for the workers, bound as uvicorn binds it, with its protocol set.

    ``Config.bind_socket()`` creates the socket with protocol 0. Accepted sockets inherit it, and
    asyncio (uvloop too) sets TCP_NODELAY only on sockets whose protocol is TCP, so with workers every
    keep-alive response after the first would wait about 40 ms for the peer's delayed ACK (uvicorn
    issue 3149, open for 0.54). A single worker binds its own socket and is not affected.
    """
    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


if __name__ == "__main__":
    sys.exit(main())
