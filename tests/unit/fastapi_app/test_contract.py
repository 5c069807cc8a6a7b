"""The API's contract: the OpenAPI document names every status and reason an operation can answer, the
schema says what the validation enforces, and every refusal has a reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from fastapi_app.refusals import EDGE_ERRORS, ApiReason, all_reasons, endpoint_routes
from fastapi_app.routes.common import json_body
from stack.launcher import nginx_templates
from tests.unit.fastapi_app.conftest import BOB, CAROL, Api, sign
from verifier.core.reasons import Reason

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    return api.client.get("/api/openapi.json").json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def _reasons(operation: dict[str, Any], status: int) -> set[str]:
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return set(schema["properties"]["reason"]["enum"])


def _body_schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {**document["components"]["schemas"][name], "components": document["components"]}


# --- the document ---------------------------------------------------------------------------------


def test_every_protected_operation_documents_the_refusals_of_the_edge_and_of_the_api(document) -> None:
    operations = _operations(document)
    assert len(operations) >= 10
    for path, method, op in operations:
        if path == "/api/healthz":
            assert "401" not in op["responses"], "no auth_request in front of the health check"
            continue
        for status in (400, 401, 403, 413, 414, 431, 500, 503):
            assert str(status) in op["responses"], (method, path, status)
        assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert op["responses"]["503"]["headers"]["Retry-After"]["required"] is True
        # The edge's reasons (the verifier's own list) and the API's identity reasons.
        assert {"missing_token", "expired", "bad_signature"} <= _reasons(op, 401)
        assert "missing_identity_signature" in _reasons(op, 401)
        assert {"insufficient_scope", "csrf_token_missing"} <= _reasons(op, 403)
        assert "upstream_unavailable" in _reasons(op, 503)
        if path.endswith("/sessions/end"):
            # These ask the verifier, not the database.
            assert "session_store_unavailable" in _reasons(op, 503)
        elif path != "/api/me":
            assert "database_unavailable" in _reasons(op, 503)


@pytest.mark.parametrize(
    ("method", "path", "status", "reasons"),
    [
        ("post", "/api/projects", 409, {"read_only", "project_quota_exceeded"}),
        ("post", "/api/projects", 403, {"missing_role", "missing_scope"}),
        ("post", "/api/projects", 415, {"unsupported_media_type"}),
        ("post", "/api/projects", 400, {"malformed_json", "bad_request"}),
        ("patch", "/api/projects/{project_id}", 404, {"not_found"}),
        ("delete", "/api/projects/{project_id}", 401, {"missing_forwarded_token", "token_identity_mismatch"}),
        ("delete", "/api/projects/{project_id}", 503, {"revalidation_unavailable"}),
        ("post", "/api/me/sessions/end", 403, {"missing_scope", "app_token_not_allowed"}),
        ("post", "/api/users/{user_oid}/sessions/end", 403, {"missing_role", "missing_scope"}),
        ("get", "/api/projects/report", 403, {"missing_group", "groups_overage"}),
        ("get", "/api/projects", 422, {"invalid_value"}),
    ],
)
def test_each_operation_names_the_reasons_that_can_occur_there(
    document, method, path, status, reasons
) -> None:
    assert reasons <= _reasons(document["paths"][path][method], status)


def test_a_refusal_that_cannot_occur_is_not_documented(document) -> None:
    reader = document["paths"]["/api/projects"]["get"]
    assert "409" not in reader["responses"] and "415" not in reader["responses"]
    assert "app_token_not_allowed" not in _reasons(reader, 403), "app tokens pass on their role here"
    assert "missing_group" not in _reasons(reader, 403)
    assert "404" not in document["paths"]["/api/projects"]["post"]["responses"]


def test_the_error_schema_lists_every_reason_of_the_api_and_of_the_edge(document) -> None:
    enum = set(document["components"]["schemas"]["Error"]["properties"]["reason"]["enum"])
    assert enum == set(all_reasons())
    assert {str(r) for r in ApiReason} <= enum and {str(r) for r in Reason} <= enum
    for _, _, op in _operations(document):
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if status.startswith(("4", "5")) and "allOf" in schema:
                assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}]
                assert _reasons(op, int(status)) <= enum


def test_the_edges_own_error_codes_are_the_ones_nginx_answers_with() -> None:
    error_maps = nginx_templates(REPO)["error-maps.inc"]
    block = error_maps[
        error_maps.index("$edge_error_code {") : error_maps.index("}", error_maps.index("$edge_error_code {"))
    ]
    nginx = {int(status): code for status, code in re.findall(r'^\s*(\d{3}) "([a-z_]+)";', block, re.M)}
    documented = {(status, code) for status, codes in EDGE_ERRORS.items() for code in codes}
    # Every status the edge answers API callers with itself, by the code nginx gives it (404 and 405
    # of /api/ paths are the API's, and 403 there is the verifier's).
    for status, code in nginx.items():
        if status not in (403, 404, 405):
            assert (status, code) in documented, (status, code)
    assert (500, nginx.get(500, "internal_error")) in documented
    assert (503, "upstream_unavailable") in documented


def test_operation_ids_are_the_handlers_names(document) -> None:
    ids = {op["operationId"] for _, _, op in _operations(document)}
    assert {"list_projects", "get_project", "create_project", "update_project", "delete_project"} <= ids


def test_every_route_is_on_the_apps_own_router(api: Api) -> None:
    # An included router is matched as a router and then route by route again on every request;
    # create_app adds the routes themselves (and every router names its operations itself).
    routes = api.client.app.routes  # type: ignore[attr-defined]
    assert routes and all(isinstance(route, (APIRoute, Route)) for route in routes), routes


def test_a_created_project_links_to_the_operations_on_it(document) -> None:
    links = document["paths"]["/api/projects"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "get_project",
        "update_project",
        "delete_project",
    }
    assert all(link["parameters"] == {"project_id": "$response.body#/id"} for link in links.values())


# --- answers ----------------------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_refused_with_415(api: Api) -> None:
    headers = {**sign(BOB, "POST", "/api/projects"), "content-type": "text/plain"}
    response = api.client.post("/api/projects", content=b'{"name": "x"}', headers=headers)
    assert response.status_code == 415
    assert response.json() == {"error": "unsupported_media_type", "reason": "unsupported_media_type"}
    # JSON by any +json name is JSON.
    headers["content-type"] = "application/merge-patch+json; charset=utf-8"
    assert api.client.post("/api/projects", content=b'{"name": "x"}', headers=headers).status_code == 201


def test_every_route_with_a_body_takes_json_only(api: Api) -> None:
    with_body = [route for route in endpoint_routes(api.client.app.routes) if route.body_field is not None]
    assert len(with_body) == 3
    for route in with_body:
        calls = {dependency.call for dependency in route.dependant.dependencies}
        assert json_body in calls, route.path


def test_a_405_names_the_methods_the_resource_allows(api: Api) -> None:
    response = api.call("PUT", "/api/projects", BOB, json={})
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert response.json() == {"error": "method_not_allowed", "reason": "method_not_allowed"}


def test_a_404_has_its_reason(api: Api) -> None:
    response = api.call("GET", "/api/projects/0b1c2d3e-0000-4000-8000-000000000001", BOB)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "reason": "not_found"}


def test_a_422_has_its_reason_and_names_the_field_without_its_value(api: Api) -> None:
    response = api.call("POST", "/api/projects", BOB, json={"name": "secret\x01value"})
    assert response.status_code == 422
    body = response.json()
    assert body["reason"] == "invalid_value" and body["details"][0]["loc"] == ["body", "name"]
    assert "secret" not in response.text


# --- the schema says what the validation enforces ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "schema_valid"),
    [
        ({}, False),
        ({"name": None}, False),
        ({"status": None}, False),
        ({"name": " Apollo"}, False),
        ({"name": "Apollo "}, False),
        ({"name": "x" * 101}, False),
        ({"name": "Apollo 11"}, True),
        ({"description": ""}, True),
        ({"status": "archived"}, True),
    ],
)
def test_a_project_change_is_accepted_exactly_when_the_schema_allows_it(
    api: Api, document, change, schema_valid
) -> None:
    project = api.create_project(BOB, "Apollo")
    valid = jsonschema_rs.Draft202012Validator(_body_schema(document, "ProjectUpdate")).is_valid(change)
    assert valid is schema_valid
    response = api.call("PATCH", f"/api/projects/{project['id']}", BOB, json=change)
    assert (response.status_code == 200) is schema_valid, response.text


@pytest.mark.parametrize(
    ("quota", "schema_valid", "stored"),
    [
        (7, True, 7),
        (7.0, True, 7),
        (99999.0, True, 99999),
        (7.5, False, None),
        ("7", False, None),
        (True, False, None),
        (0, False, None),
    ],
)
def test_an_integer_is_what_json_schema_calls_one(api: Api, document, quota, schema_valid, stored) -> None:
    body = {"read_only": False, "max_projects_per_owner": quota}
    valid = jsonschema_rs.Draft202012Validator(_body_schema(document, "AdminSettingsUpdate")).is_valid(body)
    assert valid is schema_valid
    response = api.call("PUT", "/api/admin/settings", CAROL, json=body)
    assert (response.status_code == 200) is schema_valid, response.text
    if stored is not None:
        assert response.json()["max_projects_per_owner"] == stored
