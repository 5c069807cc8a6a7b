"""The API on PostgreSQL, through the whole edge: projects and settings are kept in the database
every task shares (create, read, list, update, delete; the admin settings), and a database that
stops is a 503 with its reason until it is back, without restarting anything.

This module starts its own stack (``database="postgres"``: a throw-away PostgreSQL cluster, the
migration step, then the API on ``API_DATABASE_URL``) beside the session's SQLite one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from fastapi_app.database import create_engine
from fastapi_app.database.migrations import head_revision
from stack.launcher import Stack
from stack.topology import free_port, free_port_topology
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

UNAVAILABLE = {"error": "unavailable", "reason": "database_unavailable"}


@pytest.fixture(scope="module")
def postgres_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    topology = free_port_topology(
        tmp_path_factory.mktemp("postgres-stack"), database="postgres", postgres_port=free_port()
    )
    with Stack(topology) as running:
        yield running


@pytest.fixture
def edge(postgres_stack: Stack) -> Iterator[httpx.Client]:
    with edge_client.new_client(postgres_stack, base_url=postgres_stack.topology.public_origin) as client:
        yield client


def _bearer(stack: Stack, user: str, *, step_up: bool = False) -> dict[str, str]:
    """A user's token; ``step_up``: from a sign-in that passed step-up (what deleting needs)."""
    api = stack.topology.api_app_id_uri
    username, password = f"{user}@contoso-dev.example", f"{user}-password"
    scope = f"{api}/user.read {api}/user.write {api}/admin"
    if step_up:
        code = edge_client.STEP_UP_CODES[user]
        token = edge_client.stepped_up_token(stack, username, password, code, scope=scope)
    else:
        token = edge_client.password_token(stack, username, password, scope=scope)
    return {"Authorization": f"Bearer {token}"}


def _rows_in_postgres(stack: Stack, project_id: str) -> list[tuple[str, str]]:
    """What PostgreSQL itself holds for ``project_id`` (name, status), read beside the API."""
    assert stack.postgres is not None

    async def read() -> list[tuple[str, str]]:
        engine = create_engine(stack.postgres.url())
        try:
            async with engine.connect() as conn:
                query = sa.text("SELECT name, status FROM projects WHERE id = :id")
                return [(row.name, row.status) for row in await conn.execute(query, {"id": project_id})]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_projects_are_created_read_listed_and_changed_in_postgresql_through_the_edge(
    postgres_stack: Stack, edge: httpx.Client
) -> None:
    writer, reader = _bearer(postgres_stack, "bob"), _bearer(postgres_stack, "alice")
    created = edge.post("/api/projects", headers=writer, json={"name": "Kept in PostgreSQL"})
    assert created.status_code == 201, created.text
    project = created.json()
    assert created.headers["location"] == f"/api/projects/{project['id']}"

    read = edge.get(f"/api/projects/{project['id']}", headers=reader)
    assert read.status_code == 200
    assert read.json() == project
    listing = edge.get("/api/projects", headers=reader, params={"limit": 100})
    assert listing.status_code == 200
    assert project in listing.json()["items"]

    changed = edge.patch(f"/api/projects/{project['id']}", headers=writer, json={"status": "archived"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "archived"
    assert _rows_in_postgres(postgres_stack, project["id"]) == [("Kept in PostgreSQL", "archived")]
    assert not (postgres_stack.topology.run_dir / "api.sqlite3").exists()


def test_an_admin_changes_settings_and_deletes_a_project_in_postgresql_through_the_edge(
    postgres_stack: Stack, edge: httpx.Client
) -> None:
    writer, admin = _bearer(postgres_stack, "bob"), _bearer(postgres_stack, "carol", step_up=True)
    project = edge.post("/api/projects", headers=writer, json={"name": "To be deleted"}).json()
    body = {"read_only": False, "max_projects_per_owner": 500, "banner": "Kept in PostgreSQL"}
    changed = edge.put("/api/admin/settings", headers=admin, json=body)
    assert changed.status_code == 200, changed.text
    assert edge.get("/api/admin/settings", headers=admin).json()["banner"] == "Kept in PostgreSQL"

    deleted = edge.delete(f"/api/projects/{project['id']}", headers=admin)
    assert deleted.status_code == 204, deleted.text
    assert edge.get(f"/api/projects/{project['id']}", headers=admin).status_code == 404
    assert _rows_in_postgres(postgres_stack, project["id"]) == []


def test_bad_input_is_still_a_422_on_postgresql(postgres_stack: Stack, edge: httpx.Client) -> None:
    response = edge.post("/api/projects", headers=_bearer(postgres_stack, "bob"), json={"name": ""})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_postgresql_stopped_is_a_503_with_its_reason_and_the_api_recovers_without_a_restart(
    postgres_stack: Stack, edge: httpx.Client
) -> None:
    api_pid = postgres_stack.processes["api"].pid
    writer, reader = _bearer(postgres_stack, "bob"), _bearer(postgres_stack, "alice")
    assert edge.get("/api/projects", headers=reader).status_code == 200

    postgres_stack.stop_component("postgres")
    try:
        listing = edge.get("/api/projects", headers=reader)
        assert listing.status_code == 503, listing.text
        assert listing.json() == UNAVAILABLE
        refused = edge.post("/api/projects", headers=writer, json={"name": "Written during the outage"})
        assert refused.status_code == 503, refused.text
        assert refused.json() == UNAVAILABLE
        health = edge.get("/api/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "reason": "database_unavailable"}
    finally:
        postgres_stack.start_component("postgres")

    assert edge_client.wait_until(lambda: edge.get("/api/healthz").status_code == 200, timeout=30)
    reader = _bearer(postgres_stack, "alice")
    listing = edge.get("/api/projects", headers=reader, params={"limit": 100})
    assert listing.status_code == 200
    assert "Written during the outage" not in [p["name"] for p in listing.json()["items"]]
    assert postgres_stack.processes["api"].pid == api_pid


def test_the_api_runs_on_the_database_url_after_the_migration_step(postgres_stack: Stack) -> None:
    api = postgres_stack.processes["api"]
    assert api.env["API_DATABASE_URL"].startswith("postgresql+asyncpg://edge:")
    assert "API_DATABASE_PATH" not in api.env
    log = api.log_path.read_text(encoding="utf-8")
    assert f'{{"event": "migrate", "outcome": "ok", "revision": "{head_revision()}"}}' in log
    assert api.env["API_DATABASE_URL"].split("@", 1)[0].split(":")[-1] not in log, "the password is logged"
