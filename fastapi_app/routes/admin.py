"""Admin settings: Admins read them; changing them also re-validates the forwarded token."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, Depends

from fastapi_app.models import AdminSettings, AdminSettingsUpdate
from fastapi_app.policy import CAN_ADMINISTER
from fastapi_app.revalidation import revalidated_principal
from fastapi_app.routes.common import database
from fastapi_app.settings import ApiSettings
from fastapi_app.store import AdminSettingsStore, write_transaction
from verifier.identity import Principal

Connection = Annotated[sqlite3.Connection, Depends(database)]


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=CAN_ADMINISTER)

    @router.get("/settings")
    def get_settings(conn: Connection) -> AdminSettings:
        return AdminSettingsStore(conn).get()

    @router.put("/settings")
    def put_settings(
        body: AdminSettingsUpdate,
        conn: Connection,
        principal: Annotated[Principal, Depends(revalidated_principal)],
    ) -> AdminSettings:
        with write_transaction(conn):
            return AdminSettingsStore(conn).put(
                read_only=body.read_only,
                max_projects_per_owner=body.max_projects_per_owner,
                banner=body.banner,
                updated_by=principal.oid,
            )

    return router
