"""``/api/healthz``: open, answers 200 only when the database answers from its schema.

The answer may be up to a second old while the database is healthy (see ``DatabaseHealth``).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from fastapi_app.database import DATABASE_UNAVAILABLE_ERRORS
from fastapi_app.settings import ApiSettings

log = logging.getLogger(__name__)

#: ``{"status": "ok"}`` as JSONResponse renders it, encoded once: the answer to every load balancer
#: and container probe.
_OK = JSONResponse({"status": "ok"}).body


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["health"])

    @router.get("/healthz")
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
