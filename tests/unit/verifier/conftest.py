from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.token_forge import (
    TENANT_A,
    TENANT_B,
    JwksServer,
    SigningKey,
    TokenForge,
    key_set_for,
    validation_settings,
)

NOW = 1_700_000_000
AUTHORITY = "https://login.example.test"
V1_BASE = "https://sts.example.test"


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("key-a")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return SigningKey.generate("key-b")


@pytest.fixture(scope="session")
def tenant_b_key() -> SigningKey:
    return SigningKey.generate("key-tenant-b")


@pytest.fixture
def forge(signing_key: SigningKey) -> TokenForge:
    return TokenForge(signing_key, authority=AUTHORITY, v1_issuer_base=V1_BASE, clock=lambda: NOW)


@pytest.fixture
def settings():
    return validation_settings(AUTHORITY, v1_issuer_base=V1_BASE)


@pytest.fixture
def keys(signing_key: SigningKey, tenant_b_key: SigningKey):
    template = f"{AUTHORITY}/{{tenantid}}/v2.0"
    return key_set_for({TENANT_A: [signing_key], TENANT_B: [tenant_b_key]}, key_issuer=template)


@pytest.fixture
def now() -> int:
    return NOW


@pytest.fixture
async def jwks_server(signing_key: SigningKey) -> AsyncIterator[JwksServer]:
    """A local discovery and JWKS server holding ``signing_key`` for tenant A."""
    server = JwksServer({TENANT_A: [signing_key]})
    await server.start()
    yield server
    await server.stop()
