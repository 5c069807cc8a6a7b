"""One async engine (a connection pool) per API process, for PostgreSQL or SQLite.

PostgreSQL (asyncpg): a bounded pool, a short connect timeout and a statement timeout, so a database
that is down or hung costs a request a few seconds and a 503, never a hung worker. Connections are
not pinged before each use (that is one more round trip on every request): after a database
restart, the first request that finds its pooled connection dead answers 503, and SQLAlchemy then
replaces every pooled connection older than that failure, so the API recovers by itself.

SQLite (aiosqlite): the embedded default. The driver's own transaction handling is switched off and
SQLAlchemy's ``begin`` event issues ``BEGIN`` itself (SQLAlchemy's documented recipe), so a write
transaction can take the write lock up front with ``BEGIN IMMEDIATE``; the API opens the file
read-write only, so a missing file stays missing (503) instead of becoming an empty database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from fastapi_app.database.schema import SETTINGS_ROW_ID, admin_settings

#: A connection execution option: the next transaction is a writer's (see ``store.write_transaction``).
WRITE_LOCK_OPTION = "entra_bff_edge_write_lock"

POSTGRES_CONNECT_TIMEOUT_SECONDS = 5.0
#: Longest any one statement may run, lock waits included; longer is a database in trouble (503).
POSTGRES_STATEMENT_TIMEOUT_SECONDS = 10.0
POSTGRES_POOL_SIZE = 5
POSTGRES_POOL_OVERFLOW = 5
#: How long a request waits for a free pooled connection before it is refused (503).
POOL_CHECKOUT_TIMEOUT_SECONDS = 5.0
SQLITE_BUSY_TIMEOUT_SECONDS = 5.0

#: What a database that is down, unreachable, hung or without its schema raises; the API answers 503
#: ``database_unavailable`` for these. asyncpg raises plain ``OSError`` (connection refused) and
#: ``TimeoutError`` (connect or statement timeout) outside SQLAlchemy's own exception classes.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path:
    database = make_url(url).database
    if not database:
        raise ValueError("the SQLite URL names no file")
    return Path(database)


def create_engine(url: str, *, create_sqlite_file: bool = False, **overrides: Any) -> AsyncEngine:
    """The engine for ``url`` (``postgresql+asyncpg://`` or ``sqlite+aiosqlite:///``).

    ``create_sqlite_file``: the migration step may create the SQLite file; the API never does.
    ``overrides`` go to :func:`create_async_engine` (the migration step uses no pool).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, create_file=create_sqlite_file, **overrides)
    options: dict[str, Any] = {
        "pool_size": POSTGRES_POOL_SIZE,
        "max_overflow": POSTGRES_POOL_OVERFLOW,
        "pool_timeout": POOL_CHECKOUT_TIMEOUT_SECONDS,
        "pool_pre_ping": False,
        "connect_args": {
            "timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
            "command_timeout": POSTGRES_STATEMENT_TIMEOUT_SECONDS,
            "server_settings": {"application_name": "entra-bff-edge-api"},
        },
        **overrides,
    }
    return create_async_engine(parsed, **_without_pool_options_for_null_pool(options))


def _sqlite_engine(url: URL, *, create_file: bool, **overrides: Any) -> AsyncEngine:
    path = Path(url.database or "")
    if create_file:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = url
    else:
        # mode=rw: never create the file; a database that went missing must not come back empty.
        target = url.set(database=f"file:{path.resolve()}", query={"mode": "rw", "uri": "true"})
    options: dict[str, Any] = {
        "pool_timeout": POOL_CHECKOUT_TIMEOUT_SECONDS,
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        **overrides,
    }
    engine = create_async_engine(target, **_without_pool_options_for_null_pool(options))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions by itself: the "begin" listener below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            if create_file:
                # Persistent in the file: readers go on while one writer commits.
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        writer = connection.get_execution_options().get(WRITE_LOCK_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def _without_pool_options_for_null_pool(options: dict[str, Any]) -> dict[str, Any]:
    # A one-off connection (the migration step) has no pool to size; SQLAlchemy refuses the options.
    if options.get("poolclass") is NullPool:
        return {k: v for k, v in options.items() if k not in ("pool_size", "max_overflow", "pool_timeout")}
    return options


async def ping(engine: AsyncEngine) -> None:
    """Raise one of :data:`DATABASE_UNAVAILABLE_ERRORS` unless the database answers from its schema."""
    if engine.dialect.name == "sqlite":
        # A pooled connection keeps a deleted file open and would still answer; the file must exist.
        # One stat of a local file: cheaper than handing it to a thread.
        path = Path(engine.url.database.removeprefix("file:"))
        if not path.is_file():  # noqa: ASYNC240
            raise sa.exc.OperationalError("ping", {}, FileNotFoundError(f"{path} does not exist"))
    async with engine.connect() as conn:
        query = sa.select(admin_settings.c.id).where(admin_settings.c.id == SETTINGS_ROW_ID)
        if (await conn.execute(query)).first() is None:
            raise sa.exc.OperationalError("ping", {}, LookupError("the admin settings row is missing"))


async def lock_for_writing(conn: AsyncConnection) -> None:
    """Inside a transaction: wait until no other writer holds the lock, then hold it until commit.

    PostgreSQL: the single settings row, ``FOR UPDATE``. Every write transaction takes it first, so a
    quota check and its insert, or a read-only check and the change it allows, never interleave with
    another request's (READ COMMITTED alone would let two inserts pass the same quota check). SQLite:
    ``BEGIN IMMEDIATE`` (see :func:`create_engine`) already holds the database's one write lock.
    """
    if conn.dialect.name == "sqlite":
        return
    await conn.execute(
        sa.select(admin_settings.c.id).where(admin_settings.c.id == SETTINGS_ROW_ID).with_for_update()
    )
