"""The API's tables, as SQLAlchemy Core metadata: what the queries in ``fastapi_app.store`` use.

The migrations in ``fastapi_app/migrations/versions`` create exactly these tables; a test compares
the migrated database with this metadata, so the two cannot drift apart.

Types are chosen per backend: PostgreSQL gets native ``uuid``, ``boolean`` and ``timestamptz``;
SQLite keeps the text columns the embedded database has always had (ISO-8601 with the UTC offset),
so an existing ``run/api.sqlite3`` is adopted by the first migration as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UtcTimestamp(sa.types.TypeDecorator[datetime]):
    """An aware UTC ``datetime``: ``timestamptz`` on PostgreSQL, ISO-8601 text on SQLite.

    SQLAlchemy's own ``DateTime`` on SQLite stores naive text and drops the offset; the API's answers
    promise an offset, and text comparison orders ISO-8601 UTC values correctly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


#: A UUID as text with dashes on SQLite (as the embedded database always stored it), native on PostgreSQL.
UuidText = sa.Text().with_variant(postgresql.UUID(as_uuid=False), "postgresql")

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("owner_oid", sa.Text, nullable=False),
    sa.Column("owner_tid", sa.Text, nullable=False),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.CheckConstraint("status IN ('active', 'archived')", name="projects_status"),
    sa.Index("projects_by_owner", "owner_oid"),
    sa.Index("projects_by_creation", "created_at", "id"),
)

#: One row (id 1), created by the first migration. Every write transaction on PostgreSQL locks it
#: (``SELECT ... FOR UPDATE``), which is what serializes a quota check with the insert it guards.
admin_settings = sa.Table(
    "admin_settings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("read_only", sa.Boolean, nullable=False),
    sa.Column("max_projects_per_owner", sa.Integer, nullable=False),
    sa.Column("banner", sa.Text, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=True),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.CheckConstraint("id = 1", name="admin_settings_single_row"),
)

SETTINGS_ROW_ID = 1
