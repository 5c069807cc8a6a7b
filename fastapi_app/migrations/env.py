"""Alembic's environment: runs the revisions on the connection ``fastapi_app.database.migrations`` hands over.

That caller has already begun the transaction and taken the migration lock, so every revision runs
inside it (Alembic sees the transaction and does not begin or commit one of its own).
"""

from __future__ import annotations

from alembic import context

from fastapi_app.database.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `python -m fastapi_app.migrate` (it takes the lock that makes concurrent "
        "starts safe); the alembic command line is not configured for this project"
    )
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
