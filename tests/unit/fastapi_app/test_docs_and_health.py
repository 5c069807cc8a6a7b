"""The open endpoints: health, and the OpenAPI page that signs in with authorization code + PKCE."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Security
from fastapi.testclient import TestClient

from fastapi_app import create_app
from fastapi_app.app import _declare_sign_in, _docs_sign_in
from fastapi_app.database.engine import sqlite_path
from fastapi_app.routes import admin, identity, projects
from fastapi_app.routes.docs import content_security_policy, script_json
from tests.unit.fastapi_app.conftest import API_URI, AUTHORITY, SPA_CLIENT_ID, TENANT, Api, make_settings


def test_healthz_is_open_and_reports_ok(api: Api) -> None:
    response = api.client.get("/api/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_reports_503_when_the_sqlite_file_is_gone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    database = sqlite_path(settings.database_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/healthz").status_code == 200
        for path in database.parent.iterdir():
            path.unlink()
        # A healthy answer is trusted for up to a second (DatabaseHealth); then the probe fails.
        deadline = time.monotonic() + 10
        while (response := client.get("/api/healthz")).status_code == 200:
            assert time.monotonic() < deadline
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "database_unavailable"}
        assert not database.exists()


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


def test_every_operation_but_health_declares_the_sign_in(api: Api) -> None:
    paths = api.client.get("/api/openapi.json").json()["paths"]
    operations = {(path, method): op for path, item in paths.items() for method, op in item.items()}
    assert ("/api/me", "get") in operations and ("/api/admin/settings", "put") in operations
    for (path, method), operation in operations.items():
        expected = None if path == "/api/healthz" else [{"entra": []}]
        assert operation.get("security") == expected, (path, method)
    me = operations[("/api/me", "get")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert me == {"$ref": "#/components/schemas/Me"}


def test_declared_sign_in_documents_what_a_security_dependency_would(tmp_path: Path) -> None:
    # The scheme is put in the document without a dependency FastAPI would solve on every request;
    # the document must be the one FastAPI writes for ``Security(scheme)`` on the same routers.
    settings = make_settings(tmp_path)
    scheme = _docs_sign_in(settings)
    declared, reference = FastAPI(), FastAPI()
    routers = [area.build_router(settings) for area in (identity, projects, admin)]
    _declare_sign_in(declared, scheme, routers)
    for router in routers:
        declared.include_router(router)
    for area in (identity, projects, admin):
        reference.include_router(area.build_router(settings), dependencies=[Security(scheme)])
    assert declared.openapi()["components"]["securitySchemes"]["entra"]["type"] == "oauth2"
    assert declared.openapi() == reference.openapi()


DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    f"connect-src 'self' {AUTHORITY}; form-action 'self' {AUTHORITY}; frame-ancestors 'none'; base-uri 'none'"
)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


def _script_config(js: str) -> dict[str, Any]:
    match = re.search(r"var config = (\{.*?\});\n", js)
    assert match, js
    return json.loads(match.group(1))


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/init.js", "/api/docs/oauth2-redirect"])
def test_docs_responses_are_open_uncached_and_carry_their_own_strict_csp(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == DOCS_CSP
    assert response.headers["Cache-Control"] == "no-store"


def test_docs_page_loads_swagger_ui_and_its_configuration_from_our_origin_with_no_inline_script(
    api: Api,
) -> None:
    response = api.client.get("/api/docs")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    html = response.text
    assert re.findall(r'<script src="([^"]+)"></script>', html) == [
        "/swagger-ui/swagger-ui-bundle.js",
        "/api/docs/init.js",
    ]
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)">', html) == ["/swagger-ui/swagger-ui.css"]
    assert not INLINE_SCRIPT.search(html)
    assert "<style" not in html and "style=" not in html
    assert "cdn" not in html.lower() and "http" not in html


def test_init_script_configures_pkce_with_the_spa_client_and_the_api_scope(api: Api) -> None:
    response = api.client.get("/api/docs/init.js")
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    config = _script_config(response.text)
    assert config == {
        "openapiUrl": "/api/openapi.json",
        "oauth2RedirectPath": "/api/docs/oauth2-redirect",
        "initOAuth": {
            "clientId": SPA_CLIENT_ID,
            "appName": "Projects API",
            "usePkceWithAuthorizationCodeGrant": True,
            "scopes": f"{API_URI}/user.read",
        },
    }
    assert "window.location.origin + config.oauth2RedirectPath" in response.text
    assert "persistAuthorization: false" in response.text
    assert "validatorUrl: null" in response.text


def test_init_script_escapes_values_that_could_end_the_script_or_start_markup(tmp_path: Path) -> None:
    hostile = "api://x/</script><!--&\u2028\u2029"
    settings = make_settings(tmp_path, scope_prefix=hostile)
    with TestClient(create_app(settings)) as client:
        js = client.get("/api/docs/init.js").text
    for raw in ("</script>", "<!--", "&", "\u2028", "\u2029"):
        assert raw not in js.replace("&&", ""), raw
    assert "\\u003c/script\\u003e\\u003c!--\\u0026\\u2028\\u2029" in js
    # The escapes are plain JSON: the browser reads back exactly the configured value.
    assert _script_config(js)["initOAuth"]["scopes"] == f"{hostile}/user.read"


def test_script_json_escapes_html_significant_characters() -> None:
    assert script_json({"a": "<b>&\u2028"}) == '{"a": "\\u003cb\\u003e\\u0026\\u2028"}'


def test_csp_names_the_authority_origin_without_its_tenant_path(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, authority_url="https://login.example.test:8900/tenant-id")
    assert settings.authority_origin == "https://login.example.test:8900"
    policy = content_security_policy(settings)
    assert "connect-src 'self' https://login.example.test:8900;" in policy
    assert "form-action 'self' https://login.example.test:8900;" in policy
    assert "tenant-id" not in policy


def test_oauth2_redirect_page_loads_swagger_uis_external_redirect_script_only(api: Api) -> None:
    response = api.client.get("/api/docs/oauth2-redirect")
    assert response.status_code == 200
    html = response.text
    assert re.findall(r'<script src="([^"]+)"></script>', html) == ["/swagger-ui/oauth2-redirect.js"]
    assert not INLINE_SCRIPT.search(html)


def test_docs_pages_are_not_listed_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/api/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/api/docs")]


def test_docs_pages_ignore_identity_headers_and_need_none(api: Api) -> None:
    # nginx clears identity headers for these paths; a forged one must not matter either way.
    response = api.client.get(
        "/api/docs", headers={"X-User-Oid": "forged", "X-Identity-Signature": "v1;t=1;sig=x"}
    )
    assert response.status_code == 200
