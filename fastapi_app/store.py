"""The API's own data in SQLite (standard ``sqlite3``).

One connection per request: SQLite connections are cheap to open, and a connection that is never
shared needs no lock. WAL lets readers proceed while one writer commits; writes take the write lock
up front (``BEGIN IMMEDIATE``) so a quota check and the insert it guards cannot interleave with
another request's.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi_app.models import AdminSettings, Project, ProjectReport

_BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    owner_oid TEXT NOT NULL,
    owner_tid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS projects_by_owner ON projects (owner_oid);
CREATE INDEX IF NOT EXISTS projects_by_creation ON projects (created_at, id);
CREATE TABLE IF NOT EXISTS admin_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    read_only INTEGER NOT NULL,
    max_projects_per_owner INTEGER NOT NULL,
    banner TEXT NOT NULL,
    updated_at TEXT,
    updated_by TEXT NOT NULL
);
INSERT OR IGNORE INTO admin_settings (id, read_only, max_projects_per_owner, banner, updated_at, updated_by)
VALUES (1, 0, 1000, '', NULL, '');
"""

_PROJECT_COLUMNS = "id, name, description, status, owner_oid, owner_tid, created_at, updated_at, updated_by"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: FastAPI may open, use and close the connection on different threadpool
    # workers, but only ever from one request at a time.
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def initialize(path: Path) -> None:
    """Create the database file and schema if needed and switch it to WAL (a persistent setting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
    finally:
        conn.close()


def ping(path: Path) -> None:
    """Raise ``sqlite3.Error`` unless the database opens and answers a query (for the health check)."""
    # mode=rw: a health check must not create an empty database where the real one went missing.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=1)
    try:
        conn.execute("SELECT 1 FROM admin_settings WHERE id = 1").fetchone()
    finally:
        conn.close()


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _project(row: sqlite3.Row) -> Project:
    return Project.model_validate(dict(row))


@dataclass(slots=True)
class ProjectStore:
    conn: sqlite3.Connection

    def list(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        rows = self.conn.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY created_at, id LIMIT ? OFFSET ?",  # noqa: S608
            (limit, offset),
        ).fetchall()
        total = self.conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0]
        return [_project(row) for row in rows], int(total)

    def get(self, project_id: uuid.UUID) -> Project | None:
        row = self.conn.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?",  # noqa: S608
            (str(project_id),),
        ).fetchone()
        return _project(row) if row else None

    def count_owned_by(self, owner_oid: str) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM projects WHERE owner_oid = ?", (owner_oid,)).fetchone()
        return int(row[0])

    def create(self, *, name: str, description: str, owner_oid: str, owner_tid: str) -> Project:
        project_id = str(uuid.uuid4())
        now = _now()
        self.conn.execute(
            f"INSERT INTO projects ({_PROJECT_COLUMNS}) VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?)",  # noqa: S608
            (project_id, name, description, owner_oid, owner_tid, now, now, owner_oid),
        )
        project = self.get(uuid.UUID(project_id))
        assert project is not None  # just inserted inside the same transaction
        return project

    def update(self, project_id: uuid.UUID, changes: dict[str, Any], *, updated_by: str) -> Project | None:
        allowed = {key: value for key, value in changes.items() if key in ("name", "description", "status")}
        assignments = ", ".join(f"{column} = ?" for column in allowed)
        cursor = self.conn.execute(
            f"UPDATE projects SET {assignments}, updated_at = ?, updated_by = ? WHERE id = ?",  # noqa: S608
            (*allowed.values(), _now(), updated_by, str(project_id)),
        )
        return self.get(project_id) if cursor.rowcount else None

    def delete(self, project_id: uuid.UUID) -> bool:
        return self.conn.execute("DELETE FROM projects WHERE id = ?", (str(project_id),)).rowcount == 1

    def report(self) -> ProjectReport:
        by_status = {
            row["status"]: int(row["n"])
            for row in self.conn.execute("SELECT status, COUNT(*) AS n FROM projects GROUP BY status")
        }
        owners = int(self.conn.execute("SELECT COUNT(DISTINCT owner_oid) FROM projects").fetchone()[0])
        return ProjectReport(total=sum(by_status.values()), by_status=by_status, owners=owners)


@dataclass(slots=True)
class AdminSettingsStore:
    conn: sqlite3.Connection

    def get(self) -> AdminSettings:
        row = self.conn.execute(
            "SELECT read_only, max_projects_per_owner, banner, updated_at, updated_by"
            " FROM admin_settings WHERE id = 1"
        ).fetchone()
        return AdminSettings(
            read_only=bool(row["read_only"]),
            max_projects_per_owner=int(row["max_projects_per_owner"]),
            banner=row["banner"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )

    def put(
        self, *, read_only: bool, max_projects_per_owner: int, banner: str, updated_by: str
    ) -> AdminSettings:
        self.conn.execute(
            "UPDATE admin_settings SET read_only = ?, max_projects_per_owner = ?, banner = ?, updated_at = ?,"
            " updated_by = ? WHERE id = 1",
            (int(read_only), max_projects_per_owner, banner, _now(), updated_by),
        )
        return self.get()
