"""The one JSON log schema of every service: one line per record, the same field names everywhere.

Every line has ``time`` (UTC, milliseconds), ``level``, ``logger`` and ``message``; a line about a
request adds ``request_id`` and ``trace_id`` when they came. Further fields are taken from a logging
call's ``extra=`` only when their name is in :data:`FIELDS`, so no token, cookie or secret can ride
along by accident.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

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
    "kid",
    "target_oid",
    "sessions_ended",
    "trace_id",
)

#: W3C ``traceparent``, version 00 (https://www.w3.org/TR/trace-context/), as nginx sends it.
_TRACEPARENT = re.compile(r"00-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_of(traceparent: str) -> str:
    """The trace id of a valid ``traceparent`` header value, else "": a log line names the trace
    nginx put the request in (nginx/trace-context.inc), so the line and the trace find each other."""
    match = _TRACEPARENT.fullmatch(traceparent)
    return match.group(1) if match else ""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None and value != "":
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and tracebacks of third-party code could quote input.
            line["exc_type"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Send every record to ``stream`` (stdout by default) as one JSON line, at ``level`` and above."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
