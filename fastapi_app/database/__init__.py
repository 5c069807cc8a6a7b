"""The API's database: one async engine (a pool) per process, the schema, and its migrations.

``API_DATABASE_URL`` picks PostgreSQL (``postgresql+asyncpg://``, production) or SQLite
(``sqlite+aiosqlite:///path``, the embedded default); the queries themselves live in
``fastapi_app.store`` and are the same for both.
"""

from fastapi_app.database.engine import (
    DATABASE_UNAVAILABLE_ERRORS,
    create_engine,
    is_sqlite,
    lock_for_writing,
    ping,
)

__all__ = ["DATABASE_UNAVAILABLE_ERRORS", "create_engine", "is_sqlite", "lock_for_writing", "ping"]
