"""Projects: Readers list and read, Writers create and change, Admins delete (see ``policy``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncConnection

from fastapi_app.authentication import current_principal
from fastapi_app.errors import Conflict
from fastapi_app.models import (
    AdminSettings,
    Project,
    ProjectCreate,
    ProjectPage,
    ProjectReport,
    ProjectUpdate,
)
from fastapi_app.policy import CAN_ADMINISTER, CAN_READ, CAN_WRITE, can_read_reports, critical
from fastapi_app.refusals import ApiReason, route_refusals
from fastapi_app.routes.common import JSON_BODY, database, operation_id
from fastapi_app.settings import ApiSettings
from fastapi_app.store import AdminSettingsStore, ProjectStore, write_transaction
from verifier.core.identity import Principal

Connection = Annotated[AsyncConnection, Depends(database, scope="function")]
#: The refusals the routes below give themselves (their dependencies declare the others).
NOT_FOUND = [ApiReason.NOT_FOUND]
CHANGE_REFUSED = [ApiReason.READ_ONLY]
#: After a project is created, its id leads to the operations on it (the document's links).
CREATED_LINKS = {
    201: {
        "description": "Created; Location names the new project.",
        "links": {
            name: {"operationId": name, "parameters": {"project_id": "$response.body#/id"}}
            for name in ("get_project", "update_project", "delete_project")
        },
    }
}


def _not_found() -> HTTPException:
    return HTTPException(status_code=404)


@asynccontextmanager
async def _project_change(conn: AsyncConnection) -> AsyncIterator[AdminSettings]:
    """One change to the projects: a write transaction, refused with 409 ``read_only`` while an
    administrator has made the API read-only (checked inside the transaction, so the switch and the
    change cannot pass each other). Yields the settings it read, for the change's other rules."""
    async with write_transaction(conn):
        settings = await AdminSettingsStore(conn).get()
        if settings.read_only:
            raise Conflict(ApiReason.READ_ONLY)
        yield settings


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["projects"], generate_unique_id_function=operation_id)

    @router.get("/projects", dependencies=CAN_READ)
    async def list_projects(
        conn: Connection,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> ProjectPage:
        items, total = await ProjectStore(conn).list(limit=limit, offset=offset)
        return ProjectPage(items=items, total=total, limit=limit, offset=offset)

    # Declared before /projects/{project_id}, and an id is a UUID by its route (the uuid convertor):
    # "report" is never parsed as an id, and PATCH /api/projects/report is 405, not a bad id.
    @router.get("/projects/report", dependencies=can_read_reports(settings.report_group_ids))
    async def project_report(conn: Connection) -> ProjectReport:
        return await ProjectStore(conn).report()

    @router.get(
        "/projects/{project_id:uuid}", dependencies=CAN_READ, openapi_extra=route_refusals(r404=NOT_FOUND)
    )
    async def get_project(project_id: UUID, conn: Connection) -> Project:
        project = await ProjectStore(conn).get(project_id)
        if project is None:
            raise _not_found()
        return project

    @router.post(
        "/projects",
        dependencies=[*CAN_WRITE, JSON_BODY],
        status_code=status.HTTP_201_CREATED,
        responses=CREATED_LINKS,
        openapi_extra=route_refusals(r409=[*CHANGE_REFUSED, ApiReason.PROJECT_QUOTA_EXCEEDED]),
    )
    async def create_project(
        body: ProjectCreate,
        response: Response,
        conn: Connection,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Project:
        async with _project_change(conn) as admin_settings:
            projects = ProjectStore(conn)
            if await projects.count_owned_by(principal.oid) >= admin_settings.max_projects_per_owner:
                raise Conflict(ApiReason.PROJECT_QUOTA_EXCEEDED)
            project = await projects.create(
                name=body.name, description=body.description, owner_oid=principal.oid, owner_tid=principal.tid
            )
        response.headers["Location"] = f"/api/projects/{project.id}"
        return project

    @router.patch(
        "/projects/{project_id:uuid}",
        dependencies=[*CAN_WRITE, JSON_BODY],
        openapi_extra=route_refusals(r404=NOT_FOUND, r409=CHANGE_REFUSED),
    )
    async def update_project(
        project_id: UUID,
        body: ProjectUpdate,
        conn: Connection,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Project:
        # Only the fields sent, each with a value (ProjectUpdate refuses null).
        changes = body.model_dump(exclude_unset=True)
        async with _project_change(conn):
            project = await ProjectStore(conn).update(project_id, changes, updated_by=principal.oid)
        if project is None:
            raise _not_found()
        return project

    @router.delete(
        "/projects/{project_id:uuid}",
        dependencies=[*CAN_ADMINISTER, *critical(settings.step_up_auth_context)],
        status_code=status.HTTP_204_NO_CONTENT,
        openapi_extra=route_refusals(r404=NOT_FOUND, r409=CHANGE_REFUSED),
    )
    async def delete_project(project_id: UUID, conn: Connection) -> Response:
        async with _project_change(conn):
            deleted = await ProjectStore(conn).delete(project_id)
        if not deleted:
            raise _not_found()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
