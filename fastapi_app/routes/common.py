"""Dependencies shared by the routes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from fastapi import Request

from fastapi_app import store


def database(request: Request) -> Iterator[sqlite3.Connection]:
    """A connection for this request only, closed when the request is done."""
    conn = store.connect(request.app.state.settings.database_path)
    try:
        yield conn
    finally:
        conn.close()
