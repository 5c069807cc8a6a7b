"""Projects and admin settings: persistence, validation, read-only mode and quota."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from fastapi_app import create_app
from tests.unit.fastapi_app.conftest import ALICE, BOB, CAROL, DAEMON, Api, sign


def test_created_project_is_owned_by_the_caller_and_timestamped(api: Api) -> None:
    response = api.call("POST", "/api/projects", BOB, json={"name": "Apollo", "description": "Moon"})
    assert response.status_code == 201
    body = response.json()
    assert uuid.UUID(body["id"]).version == 4
    assert response.headers["location"] == f"/api/projects/{body['id']}"
    assert body["name"] == "Apollo"
    assert body["description"] == "Moon"
    assert body["status"] == "active"
    assert body["owner_oid"] == BOB.oid
    assert body["owner_tid"] == BOB.tid
    assert body["updated_by"] == BOB.oid
    assert datetime.fromisoformat(body["created_at"]) == datetime.fromisoformat(body["updated_at"])
    assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None


def test_app_token_creates_projects_owned_by_the_service_principal(api: Api) -> None:
    body = api.create_project(DAEMON, "Nightly import")
    assert body["owner_oid"] == DAEMON.oid


def test_project_can_be_read_back_and_is_listed(api: Api) -> None:
    created = api.create_project(BOB, "Gemini")
    item = api.call("GET", f"/api/projects/{created['id']}", ALICE)
    assert item.status_code == 200
    assert item.json() == created
    listing = api.call("GET", "/api/projects", ALICE)
    assert listing.status_code == 200
    assert listing.json() == {"items": [created], "total": 1, "limit": 50, "offset": 0}


def test_projects_persist_in_the_database_across_app_instances(api: Api) -> None:
    created = api.create_project(BOB, "Mercury")
    with TestClient(create_app(api.settings)) as fresh:
        uri = f"/api/projects/{created['id']}"
        response = fresh.get(uri, headers=sign(ALICE, "GET", uri))
        assert response.status_code == 200
        assert response.json() == created


def test_listing_is_paginated_in_creation_order(api: Api) -> None:
    names = [api.create_project(BOB, f"P{i}")["name"] for i in range(3)]
    first = api.call("GET", "/api/projects?limit=2", ALICE).json()
    second = api.call("GET", "/api/projects?limit=2&offset=2", ALICE).json()
    assert [p["name"] for p in first["items"]] == names[:2]
    assert [p["name"] for p in second["items"]] == names[2:]
    assert first["total"] == second["total"] == 3
    assert (second["limit"], second["offset"]) == (2, 2)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=abc"])
def test_out_of_range_paging_is_a_validation_error(api: Api, query: str) -> None:
    response = api.call("GET", f"/api/projects?{query}", ALICE)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_update_changes_only_given_fields_and_records_who(api: Api) -> None:
    created = api.create_project(BOB, "Skylab")
    response = api.call("PATCH", f"/api/projects/{created['id']}", CAROL, json={"status": "archived"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "archived"
    assert body["name"] == "Skylab"
    assert body["owner_oid"] == BOB.oid
    assert body["updated_by"] == CAROL.oid
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(body["created_at"])
    again = api.call("GET", f"/api/projects/{created['id']}", ALICE).json()
    assert again == body


def test_deleted_project_is_gone(api: Api) -> None:
    created = api.create_project(BOB, "Vostok")
    uri = f"/api/projects/{created['id']}"
    response = api.call("DELETE", uri, CAROL)
    assert response.status_code == 204
    assert response.content == b""
    assert api.call("GET", uri, ALICE).status_code == 404
    assert api.call("GET", "/api/projects", ALICE).json()["total"] == 0


@pytest.mark.parametrize(
    ("method", "principal", "kwargs"),
    [
        ("GET", ALICE, {}),
        ("PATCH", BOB, {"json": {"name": "x"}}),
        ("DELETE", CAROL, {}),
    ],
)
def test_unknown_project_id_is_not_found(api: Api, method: str, principal, kwargs) -> None:
    response = api.call(method, f"/api/projects/{uuid.uuid4()}", principal, **kwargs)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "reason": "not_found"}


def test_a_project_id_that_is_no_uuid_names_no_project(api: Api) -> None:
    # The route takes a UUID only (its path convertor): anything else is no resource at all.
    response = api.call("GET", "/api/projects/not-a-uuid", ALICE)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "reason": "not_found"}
    # /api/projects/report is its own resource, not a project id: other methods are 405 with Allow.
    refused = api.call("PATCH", "/api/projects/report", BOB, json={"name": "x"})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "ok", "owner_oid": "someone-else"}, ["body", "owner_oid"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 101}, ["body", "name"]),
        ({"name": "tab\tinside"}, ["body", "name"]),
        ({"name": 123}, ["body", "name"]),
        ({"name": "ok", "description": "d" * 2001}, ["body", "description"]),
        ({}, ["body", "name"]),
    ],
)
def test_invalid_project_is_refused_with_the_field_named(api: Api, body: dict, loc: list[str]) -> None:
    response = api.call("POST", "/api/projects", BOB, json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert loc in [detail["loc"] for detail in response.json()["details"]]
    assert api.call("GET", "/api/projects", ALICE).json()["total"] == 0


@pytest.mark.parametrize("body", [{}, {"name": None}, {"status": "deleted"}, {"colour": "red"}])
def test_invalid_update_is_refused(api: Api, body: dict) -> None:
    created = api.create_project(BOB)
    response = api.call("PATCH", f"/api/projects/{created['id']}", BOB, json=body)
    assert response.status_code == 422
    assert api.call("GET", f"/api/projects/{created['id']}", ALICE).json() == created


def test_validation_errors_do_not_echo_the_input(api: Api) -> None:
    marker = "ECHO-MARKER-" + "y" * 3000
    response = api.call("POST", "/api/projects", BOB, json={"name": marker, "extra": marker})
    assert response.status_code == 422
    assert "ECHO-MARKER" not in response.text
    assert len(response.content) < 2000
    for detail in response.json()["details"]:
        assert set(detail) == {"loc", "type", "msg"}


def test_body_that_is_not_json_is_refused_as_malformed(api: Api) -> None:
    headers = {**sign(BOB, "POST", "/api/projects"), "content-type": "application/json"}
    for body in (b"{broken", b"\xff\xfe{}"):
        response = api.client.post("/api/projects", content=body, headers=headers)
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_request", "reason": "malformed_json"}


def test_oversized_body_is_refused_with_413(api: Api) -> None:
    big = {"name": "x", "description": "d" * (api.settings.max_body_bytes + 10)}
    response = api.call("POST", "/api/projects", BOB, json=big)
    assert response.status_code == 413
    expected = {
        "error": "body_too_large",
        "reason": "body_too_large",
        "max_bytes": api.settings.max_body_bytes,
    }
    assert response.json() == expected


def test_oversized_chunked_body_without_content_length_is_refused_with_413(api: Api) -> None:
    def chunks():
        for _ in range(10):
            yield b"x" * (api.settings.max_body_bytes // 4)

    headers = {**sign(BOB, "POST", "/api/projects"), "content-type": "application/json"}
    response = api.client.post("/api/projects", content=chunks(), headers=headers)
    assert response.status_code == 413


# --- admin settings -----------------------------------------------------------------------------


def test_admin_settings_start_with_defaults(api: Api) -> None:
    response = api.call("GET", "/api/admin/settings", CAROL)
    assert response.status_code == 200
    assert response.json() == {
        "read_only": False,
        "max_projects_per_owner": 1000,
        "banner": "",
        "updated_at": None,
        "updated_by": "",
    }


def test_admin_settings_change_is_persisted_and_attributed(api: Api) -> None:
    body = {"read_only": False, "max_projects_per_owner": 7, "banner": "Maintenance on Friday"}
    response = api.call("PUT", "/api/admin/settings", CAROL, json=body)
    assert response.status_code == 200
    assert response.json()["updated_by"] == CAROL.oid
    read = api.call("GET", "/api/admin/settings", CAROL).json()
    assert {k: read[k] for k in body} == body
    assert read["updated_at"] is not None


@pytest.mark.parametrize(
    "body",
    [
        {"read_only": "yes", "max_projects_per_owner": 5},
        {"read_only": False, "max_projects_per_owner": 0},
        {"read_only": False, "max_projects_per_owner": 5, "banner": "b" * 201},
        {"read_only": False, "max_projects_per_owner": 5, "debug": True},
        {"read_only": False},
    ],
)
def test_invalid_admin_settings_are_refused(api: Api, body: dict) -> None:
    response = api.call("PUT", "/api/admin/settings", CAROL, json=body)
    assert response.status_code == 422
    assert api.call("GET", "/api/admin/settings", CAROL).json()["updated_at"] is None


def put_settings(api: Api, **values: object) -> None:
    body = {"read_only": False, "max_projects_per_owner": 1000, "banner": "", **values}
    assert api.call("PUT", "/api/admin/settings", CAROL, json=body).status_code == 200


def test_read_only_mode_refuses_project_changes_with_409(api: Api) -> None:
    created = api.create_project(BOB)
    put_settings(api, read_only=True)
    uri = f"/api/projects/{created['id']}"
    for method, principal, kwargs in (
        ("POST", BOB, {"json": {"name": "late"}}),
        ("PATCH", BOB, {"json": {"name": "late"}}),
        ("DELETE", CAROL, {}),
    ):
        response = api.call(method, uri if method != "POST" else "/api/projects", principal, **kwargs)
        assert response.status_code == 409, method
        assert response.json() == {"error": "conflict", "reason": "read_only"}
    assert api.call("GET", uri, ALICE).json() == created


def test_project_quota_per_owner_is_enforced(api: Api) -> None:
    put_settings(api, max_projects_per_owner=2)
    api.create_project(BOB, "one")
    api.create_project(BOB, "two")
    response = api.call("POST", "/api/projects", BOB, json={"name": "three"})
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "reason": "project_quota_exceeded"}
    assert api.create_project(CAROL, "other owner")["owner_oid"] == CAROL.oid
