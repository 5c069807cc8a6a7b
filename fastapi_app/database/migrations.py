"""Schema migrations (Alembic), run as their own step before the API starts.

``python -m fastapi_app.migrate`` upgrades the database named by the API's own settings to the
newest revision. Several tasks may start at once, so the upgrade runs in one transaction that first
takes a lock: a PostgreSQL transaction-level advisory lock (``pg_advisory_xact_lock``), or SQLite's
write lock (``BEGIN IMMEDIATE``). The second migrator waits, then finds the schema already at the
newest revision and does nothing (SQLite migrators are also ordered by a lock file beside the
database, see :func:`upgrade_to_head`); the lock is released by the commit (or the rollback of a failed
upgrade, which leaves the previous schema whole: PostgreSQL and SQLite both roll back DDL).

Alembic is configured here in code rather than with an ``alembic.ini``: the only input is the
database URL, which comes from the API's settings (and holds a password, so it never goes in a file).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from fastapi_app.database.engine import WRITE_LOCK_OPTION, create_engine, is_sqlite, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The advisory lock's key: any constant the application owns (the text "edge-api" as 8 bytes).
MIGRATION_LOCK_KEY = int.from_bytes(b"edge-api", "big") & 0x7FFF_FFFF_FFFF_FFFF
SQLITE_MIGRATION_BUSY_SECONDS = 60.0


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: sa.Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade_to_head(url: str) -> str:
    """Bring the database at ``url`` to the newest revision (creating a SQLite file); return it."""
    if not is_sqlite(url):
        return await _upgrade_in_one_transaction(url)
    # SQLite: switching a new file to WAL happens before any transaction, so BEGIN IMMEDIATE alone
    # cannot order two migrators that open a new file together; an exclusive lock on a file beside
    # the database does (flock, never the database's own POSIX locks, so SQLite is not disturbed).
    lock_path = sqlite_path(url).with_name(sqlite_path(url).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        return await _upgrade_in_one_transaction(url)
    finally:
        os.close(descriptor)  # releases the lock


async def _upgrade_in_one_transaction(url: str) -> str:
    # A second SQLite migrator waits this long for the first one's write lock.
    sqlite_wait = {"connect_args": {"timeout": SQLITE_MIGRATION_BUSY_SECONDS}} if is_sqlite(url) else {}
    engine = create_engine(url, create_sqlite_file=True, poolclass=NullPool, **sqlite_wait)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**{WRITE_LOCK_OPTION: True})
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                await conn.run_sync(_upgrade)
                revision = await conn.run_sync(current_revision)
    finally:
        await engine.dispose()
    assert revision is not None
    return revision
