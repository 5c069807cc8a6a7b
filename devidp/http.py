"""Small HTTP pieces shared by the endpoint modules: Entra-shaped JSON errors and HTML responses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devidp import pages
from devidp.errors import EntraError
from devidp.runtime import RUNTIME, Runtime

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def json_error(request: web.Request, error: EntraError) -> web.Response:
    correlation_id = request.headers.get("client-request-id")
    body = error.body(runtime(request).base_url, correlation_id=_safe_id(correlation_id))
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="devidp"'
    return web.json_response(body, status=error.status, headers=headers)


def json_ok(body: dict[str, Any], *, cache: bool = False) -> web.Response:
    headers = {} if cache else dict(NO_STORE)
    return web.json_response(body, headers=headers)


def html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    merged = dict(pages.PAGE_HEADERS)
    merged.update(headers or {})
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=merged)


def error_html(error: EntraError, status: int = 400) -> web.Response:
    return html(
        pages.error_page(
            "Sorry, but we're having trouble signing you in.", error.description, {"Error": error.error}
        ),
        status=status,
    )


def _safe_id(value: str | None) -> str | None:
    # The client's correlation id is echoed back; accept only a GUID-like value so it cannot carry markup.
    if value and len(value) <= 64 and all(c in "0123456789abcdefABCDEF-" for c in value):
        return value
    return None
