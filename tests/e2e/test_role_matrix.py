"""Every endpoint, for every kind of caller and every way in, through nginx: the documented answer.

Callers: a Reader (alice), a Writer (bob), an Admin (carol), a user with no role (erin), an app with
application roles (the nightly job: Reader and Writer) and an app without any (the BFF's own client).
Ways in: a bearer token (Postman, scripts, services) and, for users, the browser session (the cookie,
plus Origin, Sec-Fetch-Site and the X-CSRF-Token the previous answer carried for writes), exactly as
the SPA sends them. The Admin's token and session come from sign-ins that passed step-up
(authentication context c1, which deleting and changing settings need; tests/e2e/test_step_up.py
covers the challenge and the refusal without it). The expected answers are docs/api.md's policy
table; a refusal is checked by its status and its whole body, an allowed action by its status and
what it returns or changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stack.launcher import Stack
from stack.topology import BFF_CLIENT_ID, BFF_CLIENT_SECRET
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "carol": "carol-password",
    "erin": "erin-password",
}
USERS = {"reader": "alice", "writer": "bob", "admin": "carol", "no_role": "erin"}
APPS = ("app_with_roles", "app_without_roles")

ACTIONS = ("me", "list", "get", "report", "create", "update", "delete", "read_settings", "change_settings")
READ = {"list", "get"}
WRITE = {"create", "update"}
ADMIN = {"delete", "read_settings", "change_settings"}


def _missing_role(*roles: str) -> tuple[int, dict[str, Any]]:
    return 403, {"error": "forbidden", "reason": "missing_role", "required": list(roles)}


def expected_refusal(caller: str, action: str) -> tuple[int, dict[str, Any]] | None:
    """docs/api.md's policy: None when the action is allowed, else (status, whole JSON body)."""
    if caller == "app_without_roles":
        # A token with neither scopes nor roles grants nothing: the verifier refuses it for every path.
        body = {"error": "unauthorized", "bearer_error": "invalid_token", "reason": "no_scp_or_roles"}
        return 401, body
    if action == "me":
        return None
    roles = {
        "reader": {"Reader"},
        "writer": {"Writer"},
        "admin": {"Admin"},
        "no_role": set(),
        "app_with_roles": {"Reader", "Writer"},
    }[caller]
    if action in READ or action == "report":
        if not roles & {"Reader", "Writer", "Admin"}:
            return _missing_role("Reader", "Writer", "Admin")
        if action == "report":
            # The local stack names no report group (API_REPORT_GROUP_IDS is empty): closed to all.
            return 403, {"error": "forbidden", "reason": "missing_group", "required": []}
        return None
    if action in WRITE:
        return None if roles & {"Writer", "Admin"} else _missing_role("Writer", "Admin")
    return None if "Admin" in roles else _missing_role("Admin")


@dataclass
class Caller:
    """One caller and one way in: sends requests as that caller would."""

    name: str
    way: str
    origin: str
    client: httpx.Client
    token_source: Callable[[], str] | None = None
    csrf: str = ""

    def send(self, method: str, path: str, json: Any = None) -> httpx.Response:
        headers: dict[str, str] = {}
        if self.way == "bearer":
            assert self.token_source is not None
            headers["Authorization"] = f"Bearer {self.token_source()}"
        elif method not in ("GET", "HEAD"):
            if not self.csrf:
                self.send("GET", "/api/me")
            headers.update(
                {"Origin": self.origin, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": self.csrf}
            )
        response = self.client.request(method, self.origin + path, json=json, headers=headers)
        if self.way == "session" and "x-csrf-token" in response.headers:
            # Each allowed answer carries the token for the next unsafe request, as the SPA keeps it.
            self.csrf = response.headers["x-csrf-token"]
        return response


def _user_token(stack: Stack, user: str) -> Callable[[], str]:
    api = stack.topology.api_app_id_uri
    scope = f"{api}/user.read {api}/user.write {api}/admin"
    username = f"{user}@contoso-dev.example"
    if user == USERS["admin"]:
        # The Admin's critical actions need step-up (authentication context c1): its tokens come
        # from a sign-in that passed it, as an MSAL client's do after the claims challenge.
        code = edge_client.STEP_UP_CODES[user]
        return lambda: edge_client.stepped_up_token(stack, username, PASSWORDS[user], code, scope=scope)
    # A fresh token per request: the stack's tokens live only seconds (see conftest).
    return lambda: edge_client.password_token(stack, username, PASSWORDS[user], scope=scope)


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> Iterator[dict[str, edge_client.SignIn]]:
    signed_in = {
        role: edge_client.sign_in(stack, f"{user}@contoso-dev.example", PASSWORDS[user])
        for role, user in USERS.items()
    }
    # The Admin's session steps up once, as the SPA does on the first claims challenge.
    admin = USERS["admin"]
    edge_client.step_up_session(
        signed_in["admin"].client, stack.topology.public_origin, edge_client.STEP_UP_CODES[admin]
    )
    try:
        yield signed_in
    finally:
        for s in signed_in.values():
            s.client.close()


@pytest.fixture(scope="module")
def callers(stack: Stack, sessions: dict[str, edge_client.SignIn]) -> Iterator[dict[tuple[str, str], Caller]]:
    origin = stack.topology.public_origin
    bearer_client = edge_client.new_client(stack)
    made: dict[tuple[str, str], Caller] = {}
    for role, user in USERS.items():
        made[(role, "bearer")] = Caller(role, "bearer", origin, bearer_client, _user_token(stack, user))
        made[(role, "session")] = Caller(role, "session", origin, sessions[role].client)
    made[("app_with_roles", "bearer")] = Caller(
        "app_with_roles", "bearer", origin, bearer_client, lambda: edge_client.client_credentials_token(stack)
    )
    made[("app_without_roles", "bearer")] = Caller(
        "app_without_roles",
        "bearer",
        origin,
        bearer_client,
        # The BFF's client has delegated permissions only: its app-only token carries no roles.
        lambda: edge_client.client_credentials_token(
            stack, client_id=BFF_CLIENT_ID, secret=BFF_CLIENT_SECRET
        ),
    )
    try:
        yield made
    finally:
        bearer_client.close()


@pytest.fixture(scope="module")
def admin(callers: dict[tuple[str, str], Caller]) -> Caller:
    """carol by bearer: makes the projects the other callers act on."""
    caller = callers[("admin", "bearer")]
    # Room for every create in the matrix, whatever other tests left behind.
    body = {"read_only": False, "max_projects_per_owner": 1000, "banner": ""}
    assert caller.send("PUT", "/api/admin/settings", json=body).status_code == 200
    return caller


CASES = [
    (caller, way, action)
    for caller, ways in [
        *((role, ("bearer", "session")) for role in USERS),
        *((app, ("bearer",)) for app in APPS),
    ]
    for way in ways
    for action in ACTIONS
]


@pytest.mark.parametrize(("caller", "way", "action"), CASES, ids=["-".join(case) for case in CASES])
def test_every_endpoint_answers_each_caller_as_documented(
    callers: dict[tuple[str, str], Caller], admin: Caller, caller: str, way: str, action: str
) -> None:
    me = callers[(caller, way)]
    project = admin.send("POST", "/api/projects", json={"name": f"matrix {caller} {way} {action}"})
    assert project.status_code == 201, project.text
    item = f"/api/projects/{project.json()['id']}"
    new_settings = {"read_only": False, "max_projects_per_owner": 1000, "banner": f"set by {caller} {way}"}
    requests: dict[str, tuple[str, str, Any]] = {
        "me": ("GET", "/api/me", None),
        "list": ("GET", "/api/projects?limit=100", None),
        "get": ("GET", item, None),
        "report": ("GET", "/api/projects/report", None),
        "create": ("POST", "/api/projects", {"name": f"by {caller} {way}", "description": "matrix"}),
        "update": ("PATCH", item, {"status": "archived"}),
        "delete": ("DELETE", item, None),
        "read_settings": ("GET", "/api/admin/settings", None),
        "change_settings": ("PUT", "/api/admin/settings", new_settings),
    }
    method, path, body = requests[action]
    response = me.send(method, path, json=body)
    refusal = expected_refusal(caller, action)
    if refusal is not None:
        assert (response.status_code, response.json()) == refusal, response.text
        # Nothing changed.
        assert admin.send("GET", item).json() == project.json()
        return

    who = callers[(caller, way)].send("GET", "/api/me").json()
    assert who["auth_source"] == way
    if action == "me":
        assert response.status_code == 200
        assert response.json() == who
        expected_type = "app" if caller.startswith("app") else "user"
        assert who["principal_type"] == expected_type
    elif action == "list":
        assert response.status_code == 200
        assert project.json()["id"] in {p["id"] for p in response.json()["items"]}
    elif action == "get":
        assert (response.status_code, response.json()) == (200, project.json())
    elif action == "create":
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["name"], created["owner_oid"]) == (f"by {caller} {way}", who["oid"])
        assert response.headers["location"] == f"/api/projects/{created['id']}"
    elif action == "update":
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["updated_by"]) == ("archived", who["oid"])
        assert admin.send("GET", item).json()["status"] == "archived"
    elif action == "delete":
        assert (response.status_code, response.content) == (204, b""), response.text
        assert admin.send("GET", item).status_code == 404
    elif action == "read_settings":
        assert response.status_code == 200
        assert set(response.json()) >= {"read_only", "max_projects_per_owner", "banner"}
    elif action == "change_settings":
        assert response.status_code == 200, response.text
        assert {k: response.json()[k] for k in new_settings} == new_settings
        assert response.json()["updated_by"] == who["oid"]
        assert admin.send("GET", "/api/admin/settings").json()["banner"] == new_settings["banner"]
    else:  # pragma: no cover - every action is listed above
        raise AssertionError(action)
