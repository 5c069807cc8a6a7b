"""The signed identity headers: nothing is believed unless the verifier's signature covers it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_app import create_app
from fastapi_app.authentication import IdentityGuard, current_principal
from fastapi_app.errors import install_error_handlers
from fastapi_app.models import Me
from tests.unit.fastapi_app.conftest import ALICE, KEY, PREVIOUS_KEY, Api, make_settings, sign
from verifier.core.identity import HEADER_SIGNATURE, Principal, principal_headers, sign_headers


def assert_unauthenticated(response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "unauthenticated", "reason": reason}


def test_signed_request_is_answered_with_the_principal(api: Api) -> None:
    response = api.call("GET", "/api/me", ALICE)
    assert response.status_code == 200
    assert response.json()["oid"] == ALICE.oid
    assert response.json()["roles"] == ["Reader"]


def test_missing_signature_is_rejected_with_reason_missing_identity_signature(api: Api) -> None:
    headers = principal_headers(ALICE)
    response = api.client.get("/api/me", headers=headers)
    assert_unauthenticated(response, "missing_identity_signature")


def test_request_without_any_identity_is_rejected(api: Api) -> None:
    assert_unauthenticated(api.client.get("/api/projects"), "missing_identity_signature")


@pytest.mark.parametrize(
    "value",
    ["v2;t=1;sig=abc", "v1;t=1", "v1;x=1;sig=abc", "v1;t=abc;sig=abc", "v1;t=-5;sig=abc", "garbage"],
)
def test_malformed_signature_is_rejected_with_reason_malformed_identity_signature(
    api: Api, value: str
) -> None:
    headers = {**sign(ALICE, "GET", "/api/me"), HEADER_SIGNATURE: value}
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "malformed_identity_signature")


def test_signature_made_with_another_key_is_rejected_with_reason_bad_identity_signature(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/me", key=b"an-attacker-chosen-key-that-is-long-enough!")
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "bad_identity_signature")


def test_signature_made_with_the_previous_key_is_accepted_during_rotation(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/me", key=PREVIOUS_KEY)
    assert api.client.get("/api/me", headers=headers).status_code == 200


def test_previous_key_is_refused_once_it_is_no_longer_configured(tmp_path: Path) -> None:
    from fastapi_app import create_app

    settings = make_settings(tmp_path, signing_keys=(KEY,))
    with TestClient(create_app(settings)) as client:
        headers = sign(ALICE, "GET", "/api/me", key=PREVIOUS_KEY)
        assert_unauthenticated(client.get("/api/me", headers=headers), "bad_identity_signature")


def test_stale_signature_is_rejected_with_reason_stale_identity_signature(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/me", now=int(time.time()) - api.settings.identity_max_age - 2)
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "stale_identity_signature")


def test_signature_dated_in_the_future_is_rejected_as_stale(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/me", now=int(time.time()) + 60)
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "stale_identity_signature")


@pytest.mark.parametrize(
    ("path", "changes", "removed"),
    [
        pytest.param("/api/admin/settings", {"X-Roles": "Admin"}, (), id="role-smuggled"),
        pytest.param("/api/me", {"X-Scopes": "user.read admin"}, (), id="scope-extended"),
        pytest.param(
            "/api/me",
            {"X-Groups": "0a1b2c3d-1111-4222-8333-444455556666"},
            ("X-Groups-Overage",),
            id="header-added",
        ),
        pytest.param("/api/me", {"X-User-Oid": "00000000-0000-0000-0000-000000000001"}, (), id="oid-swapped"),
    ],
)
def test_identity_header_changed_after_signing_is_rejected(
    api: Api, path: str, changes: dict[str, str], removed: tuple[str, ...]
) -> None:
    headers = sign(ALICE, "GET", path)
    for name in removed:
        del headers[name]
    headers.update(changes)
    assert_unauthenticated(api.client.get(path, headers=headers), "bad_identity_signature")


def test_signature_with_non_ascii_characters_is_rejected_with_reason_bad_identity_signature(
    api: Api,
) -> None:
    # A latin-1 byte where the base64url signature ends: refused like any other wrong signature,
    # not a failed comparison (hmac.compare_digest refuses non-ASCII text with a TypeError).
    headers: dict[str, str | bytes] = {**sign(ALICE, "GET", "/api/me")}
    headers[HEADER_SIGNATURE] = str(headers[HEADER_SIGNATURE])[:-1].encode("ascii") + b"\xe9"
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "bad_identity_signature")


def test_duplicated_identity_header_is_rejected_even_when_the_first_copy_is_signed(api: Api) -> None:
    headers = [*sign(ALICE, "GET", "/api/me").items(), ("X-Roles", "Admin")]
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "duplicate_identity_header")


def test_signature_for_another_method_is_rejected(api: Api) -> None:
    project = api.create_project()
    uri = f"/api/projects/{project['id']}"
    headers = sign(ALICE, "GET", uri)
    assert_unauthenticated(api.client.delete(uri, headers=headers), "bad_identity_signature")


def test_signature_for_another_path_is_rejected(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/me")
    assert_unauthenticated(api.client.get("/api/projects", headers=headers), "bad_identity_signature")


def test_signature_without_the_query_string_is_rejected(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/projects")
    response = api.client.get("/api/projects?limit=1", headers=headers)
    assert_unauthenticated(response, "bad_identity_signature")


def test_signature_for_another_query_string_is_rejected(api: Api) -> None:
    headers = sign(ALICE, "GET", "/api/projects?limit=1")
    response = api.client.get("/api/projects?limit=2", headers=headers)
    assert_unauthenticated(response, "bad_identity_signature")


def test_signature_covers_the_raw_percent_encoded_uri_not_its_decoded_form(api: Api) -> None:
    raw = "/api/projects?limit=5&tag=a%2Fb"
    assert api.client.get(raw, headers=sign(ALICE, "GET", raw)).status_code == 200
    decoded = "/api/projects?limit=5&tag=a/b"
    assert_unauthenticated(api.client.get(raw, headers=sign(ALICE, "GET", decoded)), "bad_identity_signature")


def test_unknown_principal_type_is_rejected_even_when_signed(api: Api) -> None:
    values = principal_headers(ALICE)
    values["X-Principal-Type"] = "robot"
    values[HEADER_SIGNATURE] = sign_headers(
        values, key=KEY, method="GET", uri="/api/me", now=int(time.time())
    )
    assert_unauthenticated(api.client.get("/api/me", headers=values), "malformed_identity_headers")


def test_signed_headers_without_oid_are_rejected(api: Api) -> None:
    from dataclasses import replace

    headers = sign(replace(ALICE, oid=""), "GET", "/api/me")
    assert_unauthenticated(api.client.get("/api/me", headers=headers), "malformed_identity_headers")


def test_rejection_never_echoes_header_values(api: Api) -> None:
    marker = "MARKER-7d3f<script>"
    headers = {
        **sign(ALICE, "GET", "/api/me"),
        "X-User-Name": marker,
        HEADER_SIGNATURE: f"v1;t={marker};sig=x",
    }
    response = api.client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert "MARKER" not in response.text


def test_unsigned_request_to_an_unknown_path_is_refused_before_routing(api: Api) -> None:
    assert_unauthenticated(api.client.get("/api/does-not-exist"), "missing_identity_signature")


def test_signed_request_to_an_unknown_path_is_not_found(api: Api) -> None:
    response = api.call("GET", "/api/does-not-exist", ALICE)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "reason": "not_found"}


def test_unsigned_request_is_refused_before_its_body_is_parsed(api: Api) -> None:
    response = api.client.post(
        "/api/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_unauthenticated(response, "missing_identity_signature")


def _assert_the_signature_is_checked(app: FastAPI, path: str, *, smuggled: dict[str, str]) -> None:
    """``GET path`` refuses no signature and a signed request with ``smuggled`` headers changed, and
    answers ALICE's signed request with her oid."""
    with TestClient(app) as client:
        assert_unauthenticated(client.get(path), "missing_identity_signature")
        changed = {**sign(ALICE, "GET", path), **smuggled}
        assert_unauthenticated(client.get(path, headers=changed), "bad_identity_signature")
        ok = client.get(path, headers=sign(ALICE, "GET", path))
        assert ok.status_code == 200
        assert ok.json()["oid"] == ALICE.oid


def test_current_principal_dependency_checks_the_signature_without_the_guard_middleware(
    tmp_path: Path,
) -> None:
    # An app assembled from the dependency alone (no IdentityGuard) must still refuse.
    app = FastAPI()
    app.state.settings = make_settings(tmp_path)
    app.state.clock = time.time
    install_error_handlers(app)

    @app.get("/api/whoami")
    def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, str]:
        return {"oid": principal.oid}

    _assert_the_signature_is_checked(app, "/api/whoami", smuggled={"X-User-Oid": "someone-else"})


def test_me_returns_the_decoded_identity(api: Api) -> None:
    from dataclasses import replace

    principal = replace(ALICE, name="Zoë d'Arc, Jr.", groups=("g-1", "g,2"))
    response = api.call("GET", "/api/me", principal)
    assert response.status_code == 200
    assert response.json() == {
        "oid": ALICE.oid,
        "tid": ALICE.tid,
        "name": "Zoë d'Arc, Jr.",
        "email": "alice@contoso-dev.example",
        "principal_type": "user",
        "auth_source": "session",
        "client_id": ALICE.client_id,
        "roles": ["Reader"],
        "scopes": ["user.read"],
        "groups": ["g-1", "g,2"],
        "groups_overage": False,
    }


def test_me_body_is_the_me_model_as_json(api: Api) -> None:
    from dataclasses import replace

    principal = replace(
        ALICE, name='Jos\u00e9 "N\u00fa\u00f1ez" </script>', groups=("g-1",), groups_overage=True
    )
    response = api.call("GET", "/api/me", principal)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == Me.of(principal).model_dump_json().encode()


def test_me_checks_the_signature_itself_in_an_app_without_the_guard_middleware(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    app.user_middleware = [m for m in app.user_middleware if m.cls is not IdentityGuard]
    _assert_the_signature_is_checked(app, "/api/me", smuggled={"X-Roles": "Admin"})


def test_websocket_connections_are_refused(api: Api) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as caught, api.client.websocket_connect("/api/me"):
        pass
    assert caught.value.code == 1008
