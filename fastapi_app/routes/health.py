"""``/api/healthz``: open, answers 200 only when the database opens and answers."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fastapi_app import store
from fastapi_app.settings import ApiSettings

log = logging.getLogger(__name__)


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["health"])

    @router.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            store.ping(settings.database_path)
        except sqlite3.Error as exc:
            log.error("health check failed: database unavailable: %s", exc)
            return JSONResponse({"status": "unavailable", "reason": "database_unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    return router
