"""The API's own data: projects and the admin settings, on PostgreSQL or SQLite (``fastapi_app.database``).

Each request borrows one pooled connection (``routes.common.database``). Reads run in the
connection's implicit transaction; every change runs in :func:`write_transaction`, which takes the
write lock first, so a quota check and the insert it guards, or a read-only check and the change it
allows, cannot interleave with another request's. A failure anywhere inside rolls the whole
transaction back: nothing is ever half-written.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fastapi_app.database.engine import WRITE_LOCK_OPTION, lock_for_writing
from fastapi_app.database.schema import SETTINGS_ROW_ID, admin_settings, projects
from fastapi_app.models import AdminSettings, Project, ProjectReport

_CHANGEABLE = ("name", "description", "status")


def _now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def write_transaction(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """One transaction that holds the write lock from its first statement until it commits."""
    if conn.in_transaction():
        # A read earlier in this request began a transaction without the lock: end it first.
        await conn.rollback()
    await conn.execution_options(**{WRITE_LOCK_OPTION: True})
    try:
        async with conn.begin():
            await lock_for_writing(conn)
            yield conn
    finally:
        await conn.execution_options(**{WRITE_LOCK_OPTION: False})


def _project(row: sa.Row[Any]) -> Project:
    return Project.model_validate(dict(row._mapping))


@dataclass(slots=True)
class ProjectStore:
    conn: AsyncConnection

    async def list(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        page = sa.select(projects).order_by(projects.c.created_at, projects.c.id).limit(limit).offset(offset)
        rows = (await self.conn.execute(page)).all()
        total = (await self.conn.execute(sa.select(sa.func.count()).select_from(projects))).scalar_one()
        return [_project(row) for row in rows], int(total)

    async def get(self, project_id: uuid.UUID) -> Project | None:
        row = (await self.conn.execute(sa.select(projects).where(projects.c.id == str(project_id)))).first()
        return _project(row) if row else None

    async def count_owned_by(self, owner_oid: str) -> int:
        query = sa.select(sa.func.count()).select_from(projects).where(projects.c.owner_oid == owner_oid)
        return int((await self.conn.execute(query)).scalar_one())

    async def create(self, *, name: str, description: str, owner_oid: str, owner_tid: str) -> Project:
        now = _now()
        insert = (
            sa.insert(projects)
            .values(
                id=str(uuid.uuid4()),
                name=name,
                description=description,
                status="active",
                owner_oid=owner_oid,
                owner_tid=owner_tid,
                created_at=now,
                updated_at=now,
                updated_by=owner_oid,
            )
            .returning(*projects.c)
        )
        return _project((await self.conn.execute(insert)).one())

    async def update(
        self, project_id: uuid.UUID, changes: dict[str, Any], *, updated_by: str
    ) -> Project | None:
        allowed = {key: value for key, value in changes.items() if key in _CHANGEABLE}
        statement = (
            sa.update(projects)
            .where(projects.c.id == str(project_id))
            .values(**allowed, updated_at=_now(), updated_by=updated_by)
            .returning(*projects.c)
        )
        row = (await self.conn.execute(statement)).first()
        return _project(row) if row else None

    async def delete(self, project_id: uuid.UUID) -> bool:
        result = await self.conn.execute(sa.delete(projects).where(projects.c.id == str(project_id)))
        return result.rowcount == 1

    async def report(self) -> ProjectReport:
        grouped = sa.select(projects.c.status, sa.func.count()).group_by(projects.c.status)
        by_status = {status: int(n) for status, n in (await self.conn.execute(grouped)).all()}
        owners = (
            await self.conn.execute(sa.select(sa.func.count(sa.distinct(projects.c.owner_oid))))
        ).scalar_one()
        return ProjectReport(total=sum(by_status.values()), by_status=by_status, owners=int(owners))


@dataclass(slots=True)
class AdminSettingsStore:
    conn: AsyncConnection

    async def get(self) -> AdminSettings:
        query = sa.select(admin_settings).where(admin_settings.c.id == SETTINGS_ROW_ID)
        return _admin_settings((await self.conn.execute(query)).one())

    async def put(
        self, *, read_only: bool, max_projects_per_owner: int, banner: str, updated_by: str
    ) -> AdminSettings:
        statement = (
            sa.update(admin_settings)
            .where(admin_settings.c.id == SETTINGS_ROW_ID)
            .values(
                read_only=read_only,
                max_projects_per_owner=max_projects_per_owner,
                banner=banner,
                updated_at=_now(),
                updated_by=updated_by,
            )
            .returning(*admin_settings.c)
        )
        return _admin_settings((await self.conn.execute(statement)).one())


def _admin_settings(row: sa.Row[Any]) -> AdminSettings:
    return AdminSettings(
        read_only=bool(row.read_only),
        max_projects_per_owner=int(row.max_projects_per_owner),
        banner=row.banner,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )
