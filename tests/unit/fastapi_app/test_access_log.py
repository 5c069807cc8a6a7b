"""The API's access log: every request, or (behind nginx, the default) only refusals with their reason."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from fastapi_app.errors import forbidden_response, unauthenticated_response
from fastapi_app.middleware import AccessLog
from service_runtime.logs import JsonFormatter


async def routes(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers as our routes do: 200, FastAPI's own 401 and 403 bodies, and a 500 that is not JSON."""
    path = scope["path"]
    if path == "/api/ok":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"reason":"not_a_refusal"}'})
    elif path == "/api/unsigned":
        await unauthenticated_response("missing_identity_headers")(scope, receive, send)
    elif path == "/api/policy":
        await forbidden_response("missing_role", ("Admin",))(scope, receive, send)
    else:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"Traceback: reason=secret"})


def access_lines(caplog: pytest.LogCaptureFixture, *, every_request: bool) -> list[dict[str, object]]:
    client = TestClient(AccessLog(routes, every_request=every_request))
    with caplog.at_level(logging.INFO, logger="fastapi_app.access"):
        for path in ("/api/ok?token=secret", "/api/unsigned", "/api/policy", "/api/broken"):
            client.get(path)
    return [json.loads(JsonFormatter().format(record)) for record in caplog.records]


def test_behind_nginx_only_refusals_and_errors_are_logged_with_their_reason(caplog):
    lines = access_lines(caplog, every_request=False)
    # The shared schema leaves out empty fields: no reason means no "reason" key.
    assert [(line["path"], line["status"], line.get("reason", "")) for line in lines] == [
        ("/api/unsigned", 401, "missing_identity_headers"),
        ("/api/policy", 403, "missing_role"),
        # Not one of our JSON bodies: no reason, and nothing of the body in the log.
        ("/api/broken", 500, ""),
    ]


def test_every_request_mode_logs_each_request_without_its_query_or_body(caplog):
    lines = access_lines(caplog, every_request=True)
    assert [(line["path"], line["status"]) for line in lines] == [
        ("/api/ok", 200),
        ("/api/unsigned", 401),
        ("/api/policy", 403),
        ("/api/broken", 500),
    ]
    assert "reason" not in lines[0]
    assert "secret" not in json.dumps(lines)


def test_an_access_line_is_one_flat_json_object_with_the_envelope(caplog):
    line = access_lines(caplog, every_request=False)[0]
    assert line["event"] == "access"
    assert (line["level"], line["logger"]) == ("info", "fastapi_app.access")
    assert str(line["time"]).endswith("Z")
    assert isinstance(line["duration_ms"], float)


def test_an_access_line_names_the_trace_nginx_put_the_request_in_and_nothing_else(caplog):
    client = TestClient(AccessLog(routes, every_request=False))
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with caplog.at_level(logging.INFO, logger="fastapi_app.access"):
        client.get("/api/unsigned", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        client.get("/api/unsigned", headers={"traceparent": f'00-{trace}-00f067aa0ba902b7-01"x'})
        client.get("/api/unsigned")
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    # The shared schema leaves out empty fields: a malformed or absent traceparent gives no trace_id.
    assert [line.get("trace_id") for line in lines] == [trace, None, None]
