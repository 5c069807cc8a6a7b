from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from verifier.app import SERVER_LIMITS, STATE, create_app
from verifier.testing import TENANT_A, TENANT_B, JwksServer, SigningKey, TokenForge, verifier_settings

ORIGINAL = {"X-Original-Method": "GET", "X-Original-URI": "/api/projects?page=1"}


@pytest.fixture(scope="session")
def key_a() -> SigningKey:
    return SigningKey.generate("tenant-a-key-1")


@pytest.fixture(scope="session")
def key_b() -> SigningKey:
    return SigningKey.generate("tenant-b-key-1")


@pytest.fixture(scope="session")
def attacker_key() -> SigningKey:
    return SigningKey.generate("attacker-key")


@pytest.fixture
async def jwks_server(key_a: SigningKey, key_b: SigningKey) -> AsyncIterator[JwksServer]:
    server = JwksServer({TENANT_A: [key_a], TENANT_B: [key_b]})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def forge(jwks_server: JwksServer, key_a: SigningKey) -> TokenForge:
    return TokenForge(key_a, authority=jwks_server.base_url, v1_issuer_base=f"{jwks_server.base_url}/sts")


async def wait_ready(client: TestClient) -> None:
    async with asyncio.timeout(5.0):
        while True:
            async with client.get("/readyz") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.02)


VerifierFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def start_verifier(aiohttp_server, aiohttp_client, jwks_server: JwksServer) -> VerifierFactory:
    """Start the real verifier app over HTTP on 127.0.0.1, trusting the local JWKS server."""

    async def start(
        *, ready: bool = True, app_kwargs: dict[str, Any] | None = None, **settings: Any
    ) -> TestClient:
        app = create_app(verifier_settings(jwks_server.base_url, **settings), **(app_kwargs or {}))
        server = await aiohttp_server(app, **SERVER_LIMITS)
        client = await aiohttp_client(server)
        if ready:
            await wait_ready(client)
        client.app_state = app[STATE]  # type: ignore[attr-defined]
        return client

    return start


@pytest.fixture
async def verifier(start_verifier: VerifierFactory) -> TestClient:
    return await start_verifier(tenants=(TENANT_A,))
