"""``/api/healthz``: open, answers 200 only when the database answers from its schema.

The answer may be up to a second old while the database is healthy (see ``DatabaseHealth``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from fastapi_app.database import DATABASE_UNAVAILABLE_ERRORS
from fastapi_app.routes.common import operation_id
from fastapi_app.settings import ApiSettings

log = logging.getLogger(__name__)

#: ``{"status": "ok"}`` as JSONResponse renders it, encoded once: the answer to every load balancer
#: and container probe.
_OK = JSONResponse({"status": "ok"}).body


_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}, "reason": {"type": "string"}},
}
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The API and its database answer.",
        "content": {"application/json": {"schema": _STATUS}},
    },
    503: {
        "description": "The database does not answer (the API's answer) or the API does not (the edge's).",
        "content": {
            "application/json": {"schema": {"anyOf": [_STATUS, {"$ref": "#/components/schemas/Error"}]}}
        },
    },
}


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["health"], generate_unique_id_function=operation_id)

    @router.get("/healthz", responses=HEALTH_RESPONSES)
    async def healthz(request: Request) -> Response:
        try:
            await request.app.state.database_health.check()
        except (SQLAlchemyError, *DATABASE_UNAVAILABLE_ERRORS) as exc:
            # A schema that is missing (not migrated) counts as unavailable here too. The class
            # only: driver messages can quote connection parameters.
            log.error("health check failed: database unavailable: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "reason": "database_unavailable"}, status_code=503)
        return Response(_OK, media_type=JSONResponse.media_type, headers={"Cache-Control": "no-store"})

    return router
