"""``python -m fastapi_app``: validate the environment, then serve the API with uvicorn.

``proxy_headers=False``: the API sits behind nginx on localhost and must not rewrite the client
address or scheme from ``X-Forwarded-*`` headers a client could have sent. uvicorn's own access log
is off; the app writes JSON access lines without query strings, headers or bodies.

``API_WORKERS``: uvicorn worker processes sharing one listener, as many as the task has vCPUs (see
:func:`tcp_listener` for the one thing uvicorn's own multi-worker start gets wrong).

``timeout_keep_alive``: nginx keeps idle connections to the API open for up to 60 s
(``keepalive_timeout`` of ``upstream edge_api`` in nginx/edge.conf.template). uvicorn must wait longer
than that before it closes one, or nginx may send a request down a connection uvicorn is closing; a
POST on such a connection is not retried and the user sees an error.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from fastapi_app.app import create_app
from fastapi_app.settings import ApiSettings, SettingsError

#: Seconds uvicorn keeps an idle connection open: longer than nginx's upstream keepalive_timeout.
KEEP_ALIVE_SECONDS = 75


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            # An access line (fastapi_app.middleware.AccessLog): its fields, encoded once, below.
            line = dict(access)
        else:
            line = {"event": "log", "message": record.getMessage()}
            for name in ("reason", "oid"):
                if hasattr(record, name):
                    line[name] = getattr(record, name)
        line.update(
            {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
            }
        )
        return json.dumps(line)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each worker process (``API_WORKERS`` > 1); main() validated the env."""
    settings = ApiSettings.from_env(os.environ)
    configure_logging(settings.log_level)
    return create_app(settings)


def main() -> int:
    try:
        settings = ApiSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        create_app(settings) if settings.workers == 1 else "fastapi_app.__main__:app_from_environment",
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # Named, not "auto": a missing uvloop or httptools must fail the start, not quietly run the
        # pure-Python asyncio loop and h11 parser at twice the CPU per request.
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        access_log=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        log_config=None,
        log_level=settings.log_level,
    )
    if settings.workers == 1:
        uvicorn.Server(config).run()
        return 0
    Multiprocess(config, sockets=[tcp_listener(config)]).run()
    return 0


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
