"""Smoke tests against a running deployment of compose.yaml with the devidp profile, reached by
base URL: the bearer path, a browser sign-in and a session call, and the Postman collection.

Not collected by a plain `pytest` run (the file name does not start with `test_`): run it explicitly
with the deployment's addresses in the environment, as `make e2e-compose` (Docker) and
tests/e2e/test_compose_model.py (the same services as plain processes) do:

    EDGE_ORIGIN=https://localhost:8443 EDGE_IDP_ORIGIN=https://localhost:8900 \
    EDGE_CA_FILE=dev-ca.pem python -m pytest tests/compose_model/smoke.py
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from stack.topology import (
    API_APP_ID_URI,
    DAEMON_CLIENT_ID,
    DAEMON_CLIENT_SECRET,
    PRIMARY_TENANT_ID,
    SESSION_COOKIE_NAME,
)
from tests.e2e import edge_client
from tests.e2e.test_postman import API_FOLDERS, TOKEN_FOLDERS, failures_of, run_newman_at


@pytest.fixture(scope="module")
def deployment() -> dict[str, str]:
    names = ("EDGE_ORIGIN", "EDGE_IDP_ORIGIN", "EDGE_CA_FILE")
    missing = [name for name in names if not os.environ.get(name)]
    assert not missing, f"set {', '.join(missing)}: this module tests a deployment someone started"
    return {
        "origin": os.environ["EDGE_ORIGIN"].rstrip("/"),
        "idp": os.environ["EDGE_IDP_ORIGIN"].rstrip("/"),
        "ca_file": os.environ["EDGE_CA_FILE"],
    }


@pytest.fixture
def client(deployment: dict[str, str]) -> Iterator[httpx.Client]:
    verify = ssl.create_default_context(cafile=deployment["ca_file"])
    with httpx.Client(verify=verify, timeout=20.0, trust_env=False) as c:
        yield c


def service_token(client: httpx.Client, deployment: dict[str, str]) -> str:
    r = client.post(f"{deployment['idp']}/{PRIMARY_TENANT_ID}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": DAEMON_CLIENT_ID,
        "client_secret": DAEMON_CLIENT_SECRET, "scope": f"{API_APP_ID_URI}/.default",
    })
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_a_service_token_reaches_the_api_as_the_service(client, deployment):
    token = service_token(client, deployment)
    r = client.get(deployment["origin"] + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["principal_type"], me["auth_source"], me["client_id"]) == ("app", "bearer", DAEMON_CLIENT_ID)
    assert me["tid"] == PRIMARY_TENANT_ID


def test_a_request_without_credentials_is_refused_with_missing_token(client, deployment):
    r = client.get(deployment["origin"] + "/api/me")
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "bearer_error": "", "reason": "missing_token"}


def test_a_browser_signs_in_and_its_session_reads_and_writes(client, deployment):
    hops = edge_client.follow(client, "GET", deployment["origin"] + "/")
    page = hops[-1]
    assert page.status == 200 and page.url.startswith(deployment["idp"]), [(h.status, h.url) for h in hops]
    action, fields = edge_client.password_form(page.body)  # type: ignore[attr-defined]
    fields.update({"username": "bob@contoso-dev.example", "password": "bob-password", "signin": "password"})
    fields.pop("pick", None)
    fields.pop("cancel", None)
    back = edge_client.follow(client, "POST", urljoin(page.url, action), data=fields)
    trail = [(h.status, h.url) for h in back]
    assert back[-1].status == 200 and back[-1].url == deployment["origin"] + "/", trail
    assert any(c.startswith(SESSION_COOKIE_NAME + "=") for h in back for c in h.set_cookies)

    me = client.get(deployment["origin"] + "/api/me")
    assert me.status_code == 200, me.text
    assert (me.json()["name"], me.json()["auth_source"]) == ("Bob Writer", "session")
    created = client.post(
        deployment["origin"] + "/api/projects",
        json={"name": "compose smoke"},
        headers={"X-CSRF-Token": me.headers["x-csrf-token"], "Origin": deployment["origin"]},
    )
    assert created.status_code == 201, created.text


def test_the_postman_collection_passes(deployment, tmp_path: Path):
    result = run_newman_at(
        deployment["origin"], deployment["idp"], Path(deployment["ca_file"]), (*TOKEN_FOLDERS, *API_FOLDERS),
        tmp_path / "newman.json",
    )
    assert failures_of(result) == [], result["cli_output"][-6000:]
