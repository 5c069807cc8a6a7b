"""Admin settings: Admins read them; changing them is critical (see ``policy``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncConnection

from fastapi_app.authentication import current_principal
from fastapi_app.models import AdminSettings, AdminSettingsUpdate
from fastapi_app.policy import CAN_ADMINISTER, critical
from fastapi_app.routes.common import JSON_BODY, database, operation_id
from fastapi_app.settings import ApiSettings
from fastapi_app.store import AdminSettingsStore, write_transaction
from verifier.core.identity import Principal

Connection = Annotated[AsyncConnection, Depends(database, scope="function")]


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(
        prefix="/api/admin",
        tags=["admin"],
        dependencies=CAN_ADMINISTER,
        generate_unique_id_function=operation_id,
    )

    @router.get("/settings")
    async def get_settings(conn: Connection) -> AdminSettings:
        return await AdminSettingsStore(conn).get()

    @router.put("/settings", dependencies=[JSON_BODY, *critical(settings.step_up_auth_context)])
    async def put_settings(
        body: AdminSettingsUpdate,
        conn: Connection,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> AdminSettings:
        async with write_transaction(conn):
            return await AdminSettingsStore(conn).put(
                read_only=body.read_only,
                max_projects_per_owner=body.max_projects_per_owner,
                banner=body.banner,
                updated_by=principal.oid,
            )

    return router
