"""JSON log lines. Fields are chosen explicitly, so no token, cookie or secret can ride along."""

from __future__ import annotations

import json
import logging
import sys
import time

#: ``extra=`` fields copied into the JSON line; anything else passed as extra is dropped.
FIELDS: tuple[str, ...] = (
    "event",
    "request_id",
    "source",
    "status",
    "outcome",
    "reason",
    "detail",
    "oid",
    "tid",
    "principal_type",
    "method",
    "path",
    "duration_ms",
    "tenant",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None and value != "":
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and tracebacks of third-party code could quote input.
            line["exc_type"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print every URI, query strings (and whatever they carry) included.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
