"""Fixtures: a real app on each database backend (a SQLite file, a PostgreSQL database), and callers
whose headers are signed like the verifier's."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from httpx import Response
from jwt.algorithms import RSAAlgorithm

from fastapi_app import ApiSettings, create_app
from fastapi_app.database.migrations import upgrade_to_head
from fastapi_app.settings import database_url_for_sqlite
from fastapi_app.token_check import StaticKeys, VerifierRevalidator
from stack.postgres import PostgresCluster
from stack.topology import free_port
from tests.unit.fastapi_app.edge_path import edge_headers
from verifier.core.access_tokens import ValidationSettings
from verifier.core.identity import Principal, signed_principal_headers
from verifier.core.jwk import KeySet, tenant_keys_from_jwks

KEY = b"current-identity-signing-key-0123456789abcdef"
PREVIOUS_KEY = b"previous-identity-signing-key-0123456789abcdef"
TENANT = "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
API_APP_ID = "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"
API_URI = f"api://{API_APP_ID}"
SPA_CLIENT_ID = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
BFF_CLIENT_ID = "b7f3d1e2-6c4a-4b58-9e17-3d2c1a0f9e84"
DAEMON_CLIENT_ID = "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70"
AUTHORITY = "https://login.microsoftonline.com"
REPORT_GROUP = "0a1b2c3d-1111-4222-8333-444455556666"
KID = "test-kid-1"


def user(name: str, roles: tuple[str, ...], scopes: tuple[str, ...], **extra: Any) -> Principal:
    return Principal(
        oid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        tid=TENANT,
        principal_type="user",
        auth_source="session",
        client_id=BFF_CLIENT_ID,
        name=name.title(),
        email=f"{name}@contoso-dev.example",
        roles=roles,
        scopes=scopes,
        **extra,
    )


def app_principal(name: str, roles: tuple[str, ...]) -> Principal:
    return replace(
        user(name, roles, ()),
        principal_type="app",
        auth_source="bearer",
        client_id=DAEMON_CLIENT_ID,
        name="",
        email="",
    )


ALICE = user("alice", ("Reader",), ("user.read",))
BOB = user("bob", ("Writer",), ("user.read", "user.write"))
CAROL = user("carol", ("Admin",), ("user.read", "user.write", "admin"))
ERIN = user("erin", (), ("user.read",))
DAEMON = app_principal("daemon", ("Reader", "Writer"))


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return {"keys": [jwk]}


def key_set_of(key: rsa.RSAPrivateKey, kid: str = KID) -> KeySet:
    return KeySet({TENANT: tenant_keys_from_jwks(TENANT, jwks_of(key, kid))})


def validation_settings() -> ValidationSettings:
    return ValidationSettings(tenant_ids=frozenset({TENANT}), audiences=frozenset({API_URI, API_APP_ID}))


def mint_access_token(
    principal: Principal, key: rsa.RSAPrivateKey, *, kid: str = KID, now: int | None = None, **claims: Any
) -> str:
    """An Entra-shaped v2 access token proving ``principal``, signed with ``key``."""
    now = int(time.time()) if now is None else now
    payload: dict[str, Any] = {
        "iss": f"{AUTHORITY}/{principal.tid}/v2.0",
        "aud": API_URI,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "tid": principal.tid,
        "oid": principal.oid,
        "sub": principal.oid if principal.principal_type == "app" else f"sub-{principal.oid}",
        "azp": principal.client_id,
        "ver": "2.0",
        "idtyp": principal.principal_type,
        "uti": uuid.uuid4().hex,
    }
    if principal.roles:
        payload["roles"] = list(principal.roles)
    if principal.scopes:
        payload["scp"] = " ".join(principal.scopes)
    if principal.name:
        payload["name"] = principal.name
    if principal.email:
        payload["preferred_username"] = principal.email
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def sign(
    principal: Principal,
    method: str,
    uri: str,
    *,
    key: bytes = KEY,
    now: int | None = None,
) -> dict[str, str]:
    """The identity headers the verifier would hand nginx for this request."""
    return signed_principal_headers(
        principal, key=key, method=method, uri=uri, now=int(time.time()) if now is None else now
    )


def make_settings(tmp_path: Path, **changes: Any) -> ApiSettings:
    settings = ApiSettings(
        signing_keys=(KEY, PREVIOUS_KEY),
        database_url=database_url_for_sqlite(tmp_path / "db" / "api.sqlite3"),
        authority_url=f"{AUTHORITY}/{TENANT}",
        openapi_client_id=SPA_CLIENT_ID,
        scope_prefix=API_URI,
        report_group_ids=(REPORT_GROUP,),
        access_log=False,
        # No JWKS cache of its own by default: it would fetch keys from the real authority. Tests
        # that need re-validation inject a revalidator over local keys (see ``api``).
        revalidation=None,
    )
    return replace(settings, **changes)


@dataclass
class Api:
    """A TestClient whose calls carry signed identity headers (and, on request, a forwarded token)."""

    client: TestClient
    settings: ApiSettings
    rsa_key: rsa.RSAPrivateKey

    def call(
        self,
        method: str,
        uri: str,
        principal: Principal | None = None,
        *,
        access_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Response:
        """``method uri`` as it reaches FastAPI through the edge when ``principal`` calls it.

        The principal proves itself with ``access_token`` (by default a valid token of its own; empty
        for a source without one). Whether that token reaches FastAPI is the verifier's and nginx's
        decision (see ``edge_path``), not the test's.
        """
        all_headers: dict[str, str] = {}
        if principal is not None:
            token = mint_access_token(principal, self.rsa_key) if access_token is None else access_token
            all_headers.update(
                edge_headers(principal, method, uri, access_token=token, key=KEY, now=int(time.time()))
            )
        all_headers.update(headers or {})
        return self.client.request(method, uri, headers=all_headers, **kwargs)

    def create_project(self, principal: Principal = BOB, name: str = "Apollo") -> dict[str, Any]:
        response = self.call("POST", "/api/projects", principal, json={"name": name, "description": "d"})
        assert response.status_code == 201, response.text
        return response.json()


BACKENDS = ("sqlite", "postgresql")


SHARED_DATABASE = "api_tests"
#: Back to the state the migrations leave (no projects, the default settings row). Cheaper than a new
#: database per test (CREATE DATABASE copies and logs the whole template: about 0.3 s each).
RESET_TO_MIGRATED_STATE = (
    "TRUNCATE projects; UPDATE admin_settings SET read_only = false, max_projects_per_owner = 1000,"
    " banner = '', updated_at = NULL, updated_by = '' WHERE id = 1"
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throw-away PostgreSQL cluster for the whole session, with one migrated database for the tests."""
    with PostgresCluster(free_port()) as cluster:
        asyncio.run(upgrade_to_head(cluster.create_database(SHARED_DATABASE)))
        yield cluster


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend: a new SQLite file, or the shared PostgreSQL database
    reset to its migrated state."""
    if request.param == "sqlite":
        return database_url_for_sqlite(tmp_path / "db" / "api.sqlite3")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    cluster.run_sql(SHARED_DATABASE, RESET_TO_MIGRATED_STATE)
    return cluster.url(SHARED_DATABASE)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> ApiSettings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
def api(settings: ApiSettings, rsa_key: rsa.RSAPrivateKey) -> Iterator[Api]:
    revalidator = VerifierRevalidator(validation_settings(), StaticKeys(key_set_of(rsa_key)))
    with TestClient(create_app(settings, revalidator=revalidator)) as client:
        yield Api(client, settings, rsa_key)
