"""``python -m fastapi_app``: validate the environment, then serve the API with uvicorn.

``proxy_headers=False``: the API sits behind nginx on localhost and must not rewrite the client
address or scheme from ``X-Forwarded-*`` headers a client could have sent. uvicorn's own access log
is off; the app writes JSON access lines without query strings, headers or bodies.

``timeout_keep_alive``: nginx keeps idle connections to the API open for up to 60 s
(``keepalive_timeout`` of ``upstream edge_api`` in nginx/edge.conf.template). uvicorn must wait longer
than that before it closes one, or nginx may send a request down a connection uvicorn is closing; a
POST on such a connection is not retried and the user sees an error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import uvicorn

from fastapi_app.app import create_app
from fastapi_app.settings import ApiSettings, SettingsError

#: Seconds uvicorn keeps an idle connection open: longer than nginx's upstream keepalive_timeout.
KEEP_ALIVE_SECONDS = 75


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "fastapi_app.access":
            # Already a JSON object; add the envelope fields without re-encoding it as a string.
            line = json.loads(message)
        else:
            line = {"event": "log", "message": message}
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


def main() -> int:
    try:
        settings = ApiSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
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
