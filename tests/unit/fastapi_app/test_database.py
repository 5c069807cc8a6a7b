"""The database layer on both backends: migrations, write locking, and a database that goes away."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from fastapi_app import create_app
from fastapi_app.database import create_engine
from fastapi_app.database.engine import sqlite_path
from fastapi_app.database.health import DatabaseHealth
from fastapi_app.database.migrations import MIGRATION_LOCK_KEY, head_revision, upgrade_to_head
from fastapi_app.database.schema import metadata
from fastapi_app.store import AdminSettingsStore, ProjectStore, write_transaction
from stack.postgres import PostgresCluster
from stack.topology import free_port
from tests.unit.fastapi_app.conftest import ALICE, BOB, CAROL, Api, make_settings, sign

ROOT = Path(__file__).resolve().parents[3]
UNAVAILABLE = {"error": "unavailable", "reason": "database_unavailable"}


def run(coro):
    return asyncio.run(coro)


async def _schema_report(url: str) -> tuple[list[str], list[object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def inspect(sync_conn: sa.Connection) -> tuple[list[str], list[object]]:
                versions = [
                    row[0] for row in sync_conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                ]
                return versions, compare_metadata(MigrationContext.configure(sync_conn), metadata)

            return await conn.run_sync(inspect)
    finally:
        await engine.dispose()


def test_migrated_schema_is_exactly_the_tables_the_queries_use(database_url: str) -> None:
    run(upgrade_to_head(database_url))
    versions, differences = run(_schema_report(database_url))
    assert versions == [head_revision()]
    assert differences == []


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    assert run(upgrade_to_head(database_url)) == head_revision()
    assert run(upgrade_to_head(database_url)) == head_revision()
    assert run(_schema_report(database_url)) == ([head_revision()], [])


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    run(upgrade_to_head(settings.database_url))
    conn = sqlite3.connect(sqlite_path(settings.database_url))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_sqlite_database_made_before_migrations_is_adopted_with_its_data(tmp_path: Path) -> None:
    # The schema the API created itself before it had migrations, with one project in it.
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('active', 'archived')), owner_oid TEXT NOT NULL,
            owner_tid TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL);
        CREATE INDEX projects_by_owner ON projects (owner_oid);
        CREATE INDEX projects_by_creation ON projects (created_at, id);
        CREATE TABLE admin_settings (id INTEGER PRIMARY KEY CHECK (id = 1), read_only INTEGER NOT NULL,
            max_projects_per_owner INTEGER NOT NULL, banner TEXT NOT NULL, updated_at TEXT,
            updated_by TEXT NOT NULL);
        INSERT INTO admin_settings VALUES (1, 0, 7, 'kept', NULL, '');
        INSERT INTO projects VALUES ('0b0e6a51-2f43-4f4e-9a4e-1b7c1f0a8d11', 'Old', '', 'active', 'o', 't',
            '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00', 'o');
        """
    )
    conn.close()
    settings = make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{path}")
    with TestClient(create_app(settings)) as client:
        listing = client.get("/api/projects", headers=sign(ALICE, "GET", "/api/projects")).json()
        limits = client.get("/api/admin/settings", headers=sign(CAROL, "GET", "/api/admin/settings")).json()
    assert [p["name"] for p in listing["items"]] == ["Old"]
    assert (limits["max_projects_per_owner"], limits["banner"]) == (7, "kept")


async def _set_quota(url: str, quota: int) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn, write_transaction(conn):
            await AdminSettingsStore(conn).put(
                read_only=False, max_projects_per_owner=quota, banner="", updated_by=CAROL.oid
            )
    finally:
        await engine.dispose()


def test_concurrent_creates_never_exceed_the_quota(api: Api) -> None:
    run(_set_quota(api.settings.database_url, 3))

    def create(i: int) -> int:
        return api.call("POST", "/api/projects", BOB, json={"name": f"race {i}"}).status_code

    # TestClient hands every thread's request to the one server event loop, where they interleave
    # at each database round trip.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(12)))
    assert sorted(statuses) == [201] * 3 + [409] * 9
    assert api.call("GET", "/api/projects", ALICE).json()["total"] == 3


def test_two_migrations_started_at_once_both_succeed_and_leave_one_schema(
    postgres: PostgresCluster,
) -> None:
    url = postgres.create_database("api_two_migrators")
    env = {k: v for k, v in os.environ.items() if not k.startswith("API_")}
    env["API_DATABASE_URL"] = url
    engine = create_engine(url)

    async def hold_lock_until_both_wait() -> None:
        # Holding the migration lock makes both migrators queue on it, so they really run at the
        # same moment when it is released (rather than one finishing before the other starts).
        async with engine.connect() as holder, engine.connect() as watcher:
            await holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await holder.commit()
            # Popen only starts them; they run on their own while this loop watches the lock.
            starts = [
                subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", "fastapi_app.migrate"],
                    env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                for _ in range(2)
            ]  # fmt: skip
            waiting = sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            deadline = time.monotonic() + 60
            while (await watcher.execute(waiting)).scalar_one() < 2:
                await watcher.rollback()
                assert time.monotonic() < deadline, "the two migrators never both waited for the lock"
                assert all(p.poll() is None for p in starts), [p.communicate() for p in starts]
                await asyncio.sleep(0.05)
            await holder.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await holder.commit()
        outcomes = [p.communicate(timeout=60) for p in starts]
        assert [p.returncode for p in starts] == [0, 0], outcomes
        await engine.dispose()

    try:
        run(hold_lock_until_both_wait())
        assert run(_schema_report(url)) == ([head_revision()], [])
    finally:
        postgres.drop_database("api_two_migrators")


def test_api_answers_503_while_postgres_is_down_and_recovers_without_a_restart(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    with PostgresCluster(free_port()) as cluster:
        run(upgrade_to_head(cluster.url()))
        settings = make_settings(tmp_path, database_url=cluster.url())
        with TestClient(create_app(settings)) as client:
            api = Api(client, settings, rsa_key)
            kept = api.create_project(BOB, "Before the outage")

            cluster.stop()
            for method, uri, principal, kwargs in (
                ("GET", "/api/projects", ALICE, {}),
                ("GET", f"/api/projects/{kept['id']}", ALICE, {}),
                ("POST", "/api/projects", BOB, {"json": {"name": "During the outage"}}),
            ):
                response = api.call(method, uri, principal, **kwargs)
                assert response.status_code == 503, (method, uri, response.text)
                assert response.json() == UNAVAILABLE
                assert response.headers["Retry-After"] == "5"
            health = client.get("/api/healthz")
            assert health.status_code == 503
            assert health.json() == {"status": "unavailable", "reason": "database_unavailable"}

            cluster.start()
            deadline = time.monotonic() + 30
            while (health := client.get("/api/healthz")).status_code != 200:
                assert time.monotonic() < deadline, health.text
                time.sleep(0.1)
            listing = api.call("GET", "/api/projects", ALICE)
            assert listing.status_code == 200
            assert [p["name"] for p in listing.json()["items"]] == ["Before the outage"]
            assert api.create_project(BOB, "After the outage")["name"] == "After the outage"


def test_api_without_a_migrated_postgres_schema_answers_503(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres.create_database("api_not_migrated")
    try:
        settings = make_settings(tmp_path, database_url=url)
        with TestClient(create_app(settings)) as client:
            assert client.get("/api/healthz").json() == {
                "status": "unavailable",
                "reason": "database_unavailable",
            }
    finally:
        postgres.drop_database("api_not_migrated")


def test_a_write_that_fails_after_its_insert_leaves_nothing_behind(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ProjectStore.create

    async def insert_then_lose_the_connection(self: ProjectStore, **values: str) -> object:
        await original(self, **values)
        raise sa.exc.OperationalError("INSERT", {}, ConnectionResetError("connection lost"))

    monkeypatch.setattr(ProjectStore, "create", insert_then_lose_the_connection)
    response = api.call("POST", "/api/projects", BOB, json={"name": "Half written"})
    assert response.status_code == 503
    assert response.json() == UNAVAILABLE
    monkeypatch.undo()
    assert api.call("GET", "/api/projects", ALICE).json()["total"] == 0


def test_two_sqlite_migrations_started_at_once_both_succeed_and_leave_one_schema(tmp_path: Path) -> None:
    url = make_settings(tmp_path).database_url
    with ThreadPoolExecutor(max_workers=2) as pool:
        revisions = list(pool.map(lambda _: asyncio.run(upgrade_to_head(url)), range(2)))
    assert revisions == [head_revision()] * 2
    assert run(_schema_report(url)) == ([head_revision()], [])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _count_health_probes(url: str, steps) -> list[int]:
    """Statements the database saw after each step of ``steps(health, clock)``."""
    engine = create_engine(url)
    executed: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    clock = FakeClock()
    health = DatabaseHealth(engine, max_age=1.0, clock=clock)
    counts = []
    try:
        async for _ in steps(health, clock):
            counts.append(sum("admin_settings" in statement for statement in executed))
    finally:
        await engine.dispose()
    return counts


def test_a_healthy_database_is_probed_at_most_once_per_max_age(database_url: str) -> None:
    async def steps(health: DatabaseHealth, clock: FakeClock):
        await asyncio.gather(*(health.check() for _ in range(5)))  # concurrent callers share one probe
        yield
        clock.now += 0.9
        await health.check()
        yield
        clock.now += 0.2
        await health.check()
        yield
        health.mark_unavailable()  # a request met the database down: the next check probes again
        await health.check()
        yield

    run(upgrade_to_head(database_url))
    assert run(_count_health_probes(database_url, steps)) == [1, 1, 2, 3]


def test_a_failed_probe_is_not_trusted_so_recovery_shows_at_once(tmp_path: Path) -> None:
    url = make_settings(tmp_path).database_url
    run(upgrade_to_head(url))
    database = sqlite_path(url)

    async def steps(health: DatabaseHealth, clock: FakeClock):
        database.rename(database.with_suffix(".moved"))
        with pytest.raises(sa.exc.OperationalError):
            await health.check()
        yield
        database.with_suffix(".moved").rename(database)
        await health.check()  # same instant: no cached failure
        yield

    assert run(_count_health_probes(url, steps)) == [0, 1]
