"""Dependencies shared by the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection

from fastapi_app.database import DATABASE_UNAVAILABLE_ERRORS
from fastapi_app.errors import Unavailable, UnsupportedMediaType
from fastapi_app.refusals import ApiReason, declare

log = logging.getLogger(__name__)


def operation_id(route: APIRoute) -> str:
    """An operation's id in the OpenAPI document is its handler's name (``get_project``, not
    ``get_project_api_projects__id__get``): what a client generated from the document calls its
    methods. Every router passes it as ``generate_unique_id_function``, because its routes are added
    to the app as they are (see ``create_app``), never re-created by ``include_router``."""
    return route.name


async def database(request: Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for this request only, returned to the pool when the endpoint is done.

    Use with ``Depends(database, scope="function")``: the connection goes back before the response
    is sent, and a database that is down, or fails in the middle of the endpoint, becomes a 503
    ``database_unavailable`` (whatever the transaction had done is rolled back) instead of a 500.
    """
    try:
        async with request.app.state.database.connect() as conn:
            yield conn
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        request.app.state.database_health.mark_unavailable()
        # The class only: driver messages can quote connection parameters.
        log.error("database unavailable: %s", type(exc).__name__, extra={"reason": "database_unavailable"})
        raise Unavailable(ApiReason.DATABASE_UNAVAILABLE) from exc


declare(database, {503: [ApiReason.DATABASE_UNAVAILABLE]})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def json_body(request: Request) -> None:
    """Every endpoint with a body takes JSON: anything else is 415 ``unsupported_media_type`` (FastAPI
    would otherwise read a text/plain body as bytes and answer a confusing 422). Malformed JSON is
    400 ``malformed_json`` (fastapi_app.errors)."""
    if not _is_json(request.headers.get("content-type", "")):
        raise UnsupportedMediaType(ApiReason.UNSUPPORTED_MEDIA_TYPE)


declare(json_body, {415: [ApiReason.UNSUPPORTED_MEDIA_TYPE], 400: [ApiReason.MALFORMED_JSON]})
#: For the ``dependencies`` of every route with a body.
JSON_BODY = Depends(json_body)
