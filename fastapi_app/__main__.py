"""``python -m fastapi_app``: validate the environment, then serve the API with uvicorn.

``proxy_headers=False``: the API sits behind nginx on localhost and must not rewrite the client
address or scheme from ``X-Forwarded-*`` headers a client could have sent. uvicorn's own access log
is off; the app writes JSON access lines (the schema every service shares, :mod:`service_runtime.logs`)
without query strings, headers or bodies.

``timeout_keep_alive``: nginx keeps idle connections to the API open for up to 60 s
(``keepalive_timeout`` of ``upstream edge_api`` in nginx/edge.conf.template). uvicorn must wait longer
than that before it closes one, or nginx may send a request down a connection uvicorn is closing; a
POST on such a connection is not retried and the user sees an error.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from fastapi_app.app import create_app
from fastapi_app.settings import ApiSettings, SettingsError
from service_runtime.logs import configure_logging

#: Seconds uvicorn keeps an idle connection open: longer than nginx's upstream keepalive_timeout.
KEEP_ALIVE_SECONDS = 75


def main() -> int:
    try:
        settings = ApiSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, stream=sys.stderr)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=False,
        access_log=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        log_config=None,
        log_level=settings.log_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
