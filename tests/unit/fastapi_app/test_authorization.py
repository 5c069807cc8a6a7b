"""The authorization policy, every role/scope/app-token combination, and the dependency semantics."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_app.authorization import require_groups, require_roles, require_scopes
from fastapi_app.errors import install_error_handlers
from tests.unit.fastapi_app.conftest import (
    ALICE,
    BOB,
    CAROL,
    REPORT_GROUP,
    Api,
    app_principal,
    make_settings,
    sign,
    user,
)
from verifier.core.identity import Principal

ALL_SCOPES = ("user.read", "user.write", "admin")

PRINCIPALS: dict[str, Principal] = {
    "reader": ALICE,
    "reader_without_read_scope": user("rita", ("Reader",), ("user.write",)),
    "writer": BOB,
    "writer_with_only_read_scope": user("walt", ("Writer",), ("user.read",)),
    "admin": CAROL,
    "admin_without_admin_scope": user("ada", ("Admin",), ("user.read", "user.write")),
    "no_role": user("erin", (), ALL_SCOPES),
    "reader_app": app_principal("reader-app", ("Reader",)),
    "writer_app": app_principal("writer-app", ("Reader", "Writer")),
    "admin_app": app_principal("admin-app", ("Admin",)),
    "no_role_app": app_principal("plain-app", ()),
}

ACTIONS = ("list", "get", "create", "update", "delete", "read_settings", "change_settings")
OK = {"list": 200, "get": 200, "create": 201, "update": 200, "delete": 204, "read_settings": 200,
      "change_settings": 200}  # fmt: skip

ROLE = "missing_role"
SCOPE = "missing_scope"

# principal -> the actions it is refused, with the reason. Everything else must succeed.
REFUSED: dict[str, dict[str, str]] = {
    "reader": {"create": ROLE, "update": ROLE, "delete": ROLE, "read_settings": ROLE,
               "change_settings": ROLE},
    "reader_without_read_scope": {
        "list": SCOPE, "get": SCOPE, "create": ROLE, "update": ROLE, "delete": ROLE,
        "read_settings": ROLE, "change_settings": ROLE,
    },
    "writer": {"delete": ROLE, "read_settings": ROLE, "change_settings": ROLE},
    "writer_with_only_read_scope": {
        "create": SCOPE, "update": SCOPE, "delete": ROLE, "read_settings": ROLE, "change_settings": ROLE,
    },
    "admin": {},
    "admin_without_admin_scope": {"delete": SCOPE, "read_settings": SCOPE, "change_settings": SCOPE},
    "no_role": dict.fromkeys(ACTIONS, ROLE),
    "reader_app": {"create": ROLE, "update": ROLE, "delete": ROLE, "read_settings": ROLE,
                   "change_settings": ROLE},
    "writer_app": {"delete": ROLE, "read_settings": ROLE, "change_settings": ROLE},
    "admin_app": {},
    "no_role_app": dict.fromkeys(ACTIONS, ROLE),
}  # fmt: skip

REQUIRED = {
    ("list", ROLE): ["Reader", "Writer", "Admin"],
    ("list", SCOPE): ["user.read"],
    ("create", ROLE): ["Writer", "Admin"],
    ("create", SCOPE): ["user.write"],
    ("delete", ROLE): ["Admin"],
    ("delete", SCOPE): ["admin"],
}
REQUIRED[("get", ROLE)], REQUIRED[("get", SCOPE)] = REQUIRED[("list", ROLE)], REQUIRED[("list", SCOPE)]
REQUIRED[("update", ROLE)], REQUIRED[("update", SCOPE)] = (
    REQUIRED[("create", ROLE)],
    REQUIRED[("create", SCOPE)],
)
for _action in ("read_settings", "change_settings"):
    REQUIRED[(_action, ROLE)], REQUIRED[(_action, SCOPE)] = (
        REQUIRED[("delete", ROLE)],
        REQUIRED[("delete", SCOPE)],
    )


def perform(api: Api, action: str, principal: Principal) -> Any:
    project = api.create_project(CAROL)
    item = f"/api/projects/{project['id']}"
    settings_body = {"read_only": False, "max_projects_per_owner": 50, "banner": "hello"}
    calls: dict[str, tuple[str, str, dict[str, Any]]] = {
        "list": ("GET", "/api/projects", {}),
        "get": ("GET", item, {}),
        "create": ("POST", "/api/projects", {"json": {"name": "New"}}),
        "update": ("PATCH", item, {"json": {"status": "archived"}}),
        "delete": ("DELETE", item, {}),
        "read_settings": ("GET", "/api/admin/settings", {}),
        "change_settings": ("PUT", "/api/admin/settings", {"json": settings_body}),
    }
    method, uri, kwargs = calls[action]
    # Every call carries a real access token for the same principal, so re-validating endpoints
    # reach their decision; the policy alone decides the outcome here.
    return api.call(method, uri, principal, **kwargs)


MATRIX = [(name, action) for name in PRINCIPALS for action in ACTIONS]


@pytest.mark.parametrize(("name", "action"), MATRIX, ids=[f"{n}-{a}" for n, a in MATRIX])
def test_policy_matrix(api: Api, name: str, action: str) -> None:
    response = perform(api, action, PRINCIPALS[name])
    reason = REFUSED[name].get(action)
    if reason is None:
        assert response.status_code == OK[action], response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json() == {
            "error": "forbidden",
            "reason": reason,
            "required": REQUIRED[(action, reason)],
        }


def test_me_needs_only_a_signed_identity(api: Api) -> None:
    for principal in PRINCIPALS.values():
        assert api.call("GET", "/api/me", principal).status_code == 200


# --- the report: groups -------------------------------------------------------------------------


def test_report_is_answered_for_a_member_of_a_report_group(api: Api) -> None:
    api.create_project(BOB, "One")
    api.create_project(CAROL, "Two")
    member = replace(ALICE, groups=("11111111-2222-4333-8444-555555555555", REPORT_GROUP))
    response = api.call("GET", "/api/projects/report", member)
    assert response.status_code == 200
    assert response.json() == {"total": 2, "by_status": {"active": 2}, "owners": 2}


def test_report_group_membership_is_compared_case_insensitively(api: Api) -> None:
    member = replace(ALICE, groups=(REPORT_GROUP.upper(),))
    assert api.call("GET", "/api/projects/report", member).status_code == 200


def test_report_is_refused_with_missing_group_for_a_non_member(api: Api) -> None:
    response = api.call(
        "GET", "/api/projects/report", replace(ALICE, groups=("11111111-2222-4333-8444-555555555555",))
    )
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "reason": "missing_group", "required": [REPORT_GROUP]}


def test_groups_overage_is_refused_with_reason_groups_overage(api: Api) -> None:
    dave = user("dave", ("Reader",), ("user.read",), groups_overage=True)
    response = api.call("GET", "/api/projects/report", dave)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "reason": "groups_overage", "required": [REPORT_GROUP]}


def test_report_checks_roles_before_groups(api: Api) -> None:
    outsider = user("olga", (), ("user.read",), groups=(REPORT_GROUP,))
    response = api.call("GET", "/api/projects/report", outsider)
    assert response.status_code == 403
    assert response.json()["reason"] == "missing_role"


def test_report_is_refused_to_app_tokens_which_carry_no_groups(api: Api) -> None:
    response = api.call("GET", "/api/projects/report", PRINCIPALS["reader_app"])
    assert response.status_code == 403
    assert response.json()["reason"] == "missing_group"


def test_report_is_closed_to_everyone_when_no_report_group_is_configured(tmp_path: Path) -> None:
    from fastapi_app import create_app

    with TestClient(create_app(make_settings(tmp_path, report_group_ids=()))) as client:
        member = replace(ALICE, groups=(REPORT_GROUP,))
        response = client.get("/api/projects/report", headers=sign(member, "GET", "/api/projects/report"))
        assert response.status_code == 403
        assert response.json() == {"error": "forbidden", "reason": "missing_group", "required": []}


# --- the dependencies themselves ------------------------------------------------------------------


@pytest.fixture
def probe(tmp_path: Path) -> TestClient:
    """A bare app whose routes use the dependencies directly, without the project's policy."""
    app = FastAPI()
    app.state.settings = make_settings(tmp_path)
    app.state.clock = time.time
    install_error_handlers(app)

    @app.get("/scoped")
    def scoped(principal: Annotated[Principal, Depends(require_scopes("user.read", "user.write"))]) -> str:
        return principal.oid

    @app.get(
        "/composed", dependencies=[Depends(require_roles("Writer")), Depends(require_scopes("user.write"))]
    )
    def composed() -> str:
        return "ok"

    @app.get("/grouped", dependencies=[Depends(require_groups("G-One", "g-two"))])
    def grouped() -> str:
        return "ok"

    return TestClient(app)


def get(client: TestClient, uri: str, principal: Principal) -> Any:
    return client.get(uri, headers=sign(principal, "GET", uri))


def test_require_scopes_accepts_any_one_of_the_listed_scopes(probe: TestClient) -> None:
    response = get(probe, "/scoped", user("sam", (), ("user.write",)))
    assert response.status_code == 200


def test_require_scopes_refuses_app_tokens_unless_the_endpoint_allows_them(probe: TestClient) -> None:
    response = get(probe, "/scoped", PRINCIPALS["admin_app"])
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "reason": "app_token_not_allowed",
        "required": ["user.read", "user.write"],
    }


def test_composed_dependencies_report_the_first_failing_check(probe: TestClient) -> None:
    assert get(probe, "/composed", user("wes", ("Writer",), ("user.write",))).status_code == 200
    no_role = get(probe, "/composed", user("ned", ("Reader",), ("user.write",)))
    assert no_role.json()["reason"] == "missing_role"
    no_scope = get(probe, "/composed", user("nia", ("Writer",), ("user.read",)))
    assert no_scope.json()["reason"] == "missing_scope"


def test_require_groups_matches_any_listed_group_ignoring_case(probe: TestClient) -> None:
    assert get(probe, "/grouped", user("gus", (), (), groups=("G-TWO",))).status_code == 200
    refused = get(probe, "/grouped", user("gil", (), (), groups=("g-three",)))
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "reason": "missing_group", "required": ["g-one", "g-two"]}


def test_require_groups_refuses_overage_even_without_a_group_list(probe: TestClient) -> None:
    refused = get(probe, "/grouped", user("ova", (), (), groups_overage=True))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "groups_overage"
