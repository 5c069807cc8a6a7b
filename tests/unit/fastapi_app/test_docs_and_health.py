"""The open endpoints: health, and the OpenAPI page that signs in with authorization code + PKCE."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from fastapi_app import create_app
from tests.unit.fastapi_app.conftest import API_URI, AUTHORITY, SPA_CLIENT_ID, TENANT, Api, make_settings


def test_healthz_is_open_and_reports_ok(api: Api) -> None:
    response = api.client.get("/api/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_reports_503_when_the_database_is_gone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        for path in settings.database_path.parent.iterdir():
            path.unlink()
        response = client.get("/api/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "database_unavailable"}
        assert not settings.database_path.exists()


def test_openapi_document_is_open_and_declares_the_pkce_sign_in(api: Api) -> None:
    response = api.client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    scheme = document["components"]["securitySchemes"]["entra"]
    flow = scheme["flows"]["authorizationCode"]
    assert scheme["type"] == "oauth2"
    assert flow["authorizationUrl"] == f"{AUTHORITY}/{TENANT}/oauth2/v2.0/authorize"
    assert flow["tokenUrl"] == f"{AUTHORITY}/{TENANT}/oauth2/v2.0/token"
    assert set(flow["scopes"]) == {f"{API_URI}/user.read", f"{API_URI}/user.write", f"{API_URI}/admin"}
    assert {"entra": []} in document["paths"]["/api/projects"]["get"]["security"]
    assert "security" not in document["paths"]["/api/healthz"]["get"]


def test_docs_page_is_open_and_configures_pkce_with_the_spa_client(api: Api) -> None:
    response = api.client.get("/api/docs")
    assert response.status_code == 200
    html = response.text
    assert "/api/openapi.json" in html
    assert "/api/docs/oauth2-redirect" in html
    assert f'"clientId": "{SPA_CLIENT_ID}"' in html
    assert '"usePkceWithAuthorizationCodeGrant": true' in html
    assert f'"scopes": "{API_URI}/user.read"' in html


def test_oauth2_redirect_page_is_open(api: Api) -> None:
    response = api.client.get("/api/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text.lower()
