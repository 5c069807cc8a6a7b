"""ASGI middleware: request body bound and a JSON access log without secrets."""

from __future__ import annotations

import json
import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_app.authentication import principal_of

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
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._too_large(send)
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
        payload = json.dumps({"error": "body_too_large", "max_bytes": self.max_bytes}).encode()
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


class AccessLog:
    """One JSON line per request (:mod:`service_runtime.logs`): request id, method, path (never the
    query string), status, duration, caller oid.

    Query strings, headers, cookies and bodies are never logged: they are where tokens and personal
    data travel.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            principal = principal_of(scope)
            access_log.info(
                "access",
                extra={
                    "event": "access",
                    "request_id": _request_id(scope),
                    "method": scope["method"],
                    "path": scope["path"][:512],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "oid": principal.oid if principal else "",
                },
            )


def _request_id(scope: Scope) -> str:
    """nginx's ``X-Request-ID``, when it has the shape nginx gives it (it is logged as is)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if REQUEST_ID.fullmatch(text) else ""
    return ""
