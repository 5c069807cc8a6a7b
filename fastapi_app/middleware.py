"""ASGI middleware: request body bound and a JSON access log without secrets."""

from __future__ import annotations

import json
import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_app.authentication import principal_of
from service_runtime.logs import trace_id_of

access_log = logging.getLogger("fastapi_app.access")
#: A request id worth logging: what nginx generates or passes on, nothing a client could shape into
#: a fake log line.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 before any parsing.

    The body is read into memory up to the bound and then replayed, which covers chunked uploads that
    announce no Content-Length; the bound keeps that buffer small.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                announced = True
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._too_large(send)
                    return
            elif name == b"transfer-encoding":
                announced = True
        if not announced:
            # Neither Content-Length nor Transfer-Encoding: an HTTP/1.1 request without a body
            # (RFC 9112, section 6.3), like every GET. Nothing to bound or replay.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        payload = json.dumps(
            {"error": "body_too_large", "reason": "body_too_large", "max_bytes": self.max_bytes}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


#: A refusal's body is small JSON; longer ones are not read for a reason.
_REASON_BODY_LIMIT = 4096
_REASON = re.compile(r"[a-z0-9_]{1,64}")


def _reason_of(body: bytes) -> str:
    """The ``reason`` code of one of our JSON error bodies, or "" (never free text from a body)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    reason = payload.get("reason") if isinstance(payload, dict) else None
    return reason if isinstance(reason, str) and _REASON.fullmatch(reason) else ""


class AccessLog:
    """JSON access lines (:mod:`service_runtime.logs`): request id, method, path (never the query
    string), status, duration, caller oid.

    ``every_request=True`` writes one line per request. Behind nginx (``API_ACCESS_LOG=false``, the
    default) nginx already writes one per request with the request id, status and oid, so only the
    answers nginx cannot explain get one here: status 400 and above, with the ``reason`` code of
    FastAPI's own refusal (a 401 for a bad identity signature, a 403 of an endpoint's policy, a 503
    of the database), which exists nowhere else but in the response body.

    Query strings, headers, cookies and bodies are never logged: they are where tokens and personal
    data travel (only a refusal's ``reason`` code is taken from its body, checked to be ``[a-z0-9_]``).
    """

    def __init__(self, app: ASGIApp, *, every_request: bool = True, traced: bool = False) -> None:
        self.app = app
        self.every_request = every_request
        #: With tracing on, the request's server span gets what the line gets: the caller's kind and
        #: a refusal's reason code (fastapi_app.tracing).
        self.traced = traced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        body = b""

        async def send_and_record(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if status >= 400 and len(body) < _REASON_BODY_LIMIT:
                    body += message.get("body", b"")
                if self.traced and not message.get("more_body", False):
                    # Before the last part goes: the server span ends with the response.
                    _annotate_span(scope, _reason_of(body[:_REASON_BODY_LIMIT]) if status >= 400 else "")
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if self.every_request or status >= 400:
                principal = principal_of(scope)
                fields: dict[str, object] = {
                    "event": "access",
                    "request_id": _request_id(scope),
                    "trace_id": _trace_id(scope),
                    "method": scope["method"],
                    "path": scope["path"][:512],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "oid": principal.oid if principal else "",
                }
                if status >= 400:
                    fields["reason"] = _reason_of(body[:_REASON_BODY_LIMIT])
                access_log.info("access", extra=fields)


def _annotate_span(scope: Scope, reason: str) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    principal = principal_of(scope)
    if principal is not None:
        span.set_attribute("edge.auth.principal_type", principal.principal_type)
    if reason:
        span.set_attribute("edge.api.reason", reason)


def _trace_id(scope: Scope) -> str:
    """The trace nginx put the request in (its ``traceparent``), or ""."""
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return trace_id_of(value.decode("latin-1"))
    return ""


def _request_id(scope: Scope) -> str:
    """nginx's ``X-Request-ID``, when it has the shape nginx gives it (it is logged as is)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if REQUEST_ID.fullmatch(text) else ""
    return ""
