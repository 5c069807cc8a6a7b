"""The projects and admin settings tables, and the one settings row.

``IF NOT EXISTS`` throughout: a SQLite database made before migrations existed already has exactly
these tables (same names, columns and indexes), and this revision adopts it as it is.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fastapi_app.database.schema import UtcTimestamp, UuidText

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
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
        if_not_exists=True,
    )
    op.create_index("projects_by_owner", "projects", ["owner_oid"], if_not_exists=True)
    op.create_index("projects_by_creation", "projects", ["created_at", "id"], if_not_exists=True)
    op.create_table(
        "admin_settings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("read_only", sa.Boolean, nullable=False),
        sa.Column("max_projects_per_owner", sa.Integer, nullable=False),
        sa.Column("banner", sa.Text, nullable=False),
        sa.Column("updated_at", UtcTimestamp, nullable=True),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.CheckConstraint("id = 1", name="admin_settings_single_row"),
        if_not_exists=True,
    )
    # ON CONFLICT DO NOTHING: both PostgreSQL and SQLite (3.24+) spell it the same way.
    op.execute(
        "INSERT INTO admin_settings (id, read_only, max_projects_per_owner, banner, updated_at, updated_by)"
        " VALUES (1, false, 1000, '', NULL, '') ON CONFLICT (id) DO NOTHING"
    )


def downgrade() -> None:
    op.drop_table("admin_settings")
    op.drop_index("projects_by_creation", table_name="projects")
    op.drop_index("projects_by_owner", table_name="projects")
    op.drop_table("projects")
