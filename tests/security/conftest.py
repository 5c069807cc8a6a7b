from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp.client import _RequestContextManager
from aiohttp.test_utils import TestClient

from stack.processes import ManagedProcess
from tests.security.edge import start_api, start_edge
from tests.support.readiness import wait_ready
from tests.support.token_forge import (
    TENANT_A,
    TENANT_B,
    TEST_IDENTITY_KEY,
    JwksServer,
    SigningKey,
    TokenForge,
    verifier_settings,
)
from verifier.service.app import SERVER_LIMITS, STATE, create_app

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
        client.server_port = server.port  # type: ignore[attr-defined]
        return client

    return start


@pytest.fixture
async def verifier(start_verifier: VerifierFactory) -> TestClient:
    return await start_verifier(tenants=(TENANT_A,))


# --- the same requests, to the verifier directly or through the real nginx edge -------------------


@dataclass
class Target:
    """Where a catalogue case sends its request: the verifier's /verify, or nginx's /api/."""

    kind: Literal["verifier", "nginx"]
    verifier: TestClient
    edge_url: str = ""

    @property
    def app_state(self) -> Any:
        return self.verifier.app_state  # type: ignore[attr-defined]

    def request(
        self, headers: list[tuple[str, str]], *, uri: str = ORIGINAL["X-Original-URI"]
    ) -> _RequestContextManager:
        """GET ``uri`` with ``headers`` (repeats kept): as nginx asks /verify, or through nginx."""
        if self.kind == "verifier":
            original = [("X-Original-Method", "GET"), ("X-Original-URI", uri)]
            return self.verifier.get("/verify", headers=original + headers)
        return self.verifier.session.get(self.edge_url + uri, headers=headers, allow_redirects=False)

    def decisions(self, reason: str) -> float:
        """How many decisions with ``reason`` the verifier has counted (any source, any outcome)."""
        return sum(
            sample.value
            for metric in self.app_state.metrics.registry.collect()
            for sample in metric.samples
            if sample.name == "verifier_decisions_total" and sample.labels.get("reason") == reason
        )

    def all_decisions(self) -> float:
        return sum(
            sample.value
            for metric in self.app_state.metrics.registry.collect()
            for sample in metric.samples
            if sample.name == "verifier_decisions_total"
        )


TargetFactory = Callable[..., Awaitable[Target]]


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """The real FastAPI app behind the edge, checking signatures with the test verifier's key."""
    api = start_api(tmp_path_factory.mktemp("api"), TEST_IDENTITY_KEY)
    try:
        yield api
    finally:
        api.stop()


def _target_factory(
    kind: Literal["verifier", "nginx"],
    start_verifier: VerifierFactory,
    request: pytest.FixtureRequest,
    tmp: Path,
) -> tuple[TargetFactory, list[ManagedProcess]]:
    api = request.getfixturevalue("api_server") if kind == "nginx" else None
    edges: list[ManagedProcess] = []

    async def start(**settings: Any) -> Target:
        client = await start_verifier(**settings)
        if api is None:
            return Target("verifier", client)
        edge, url = start_edge(
            tmp / f"edge-{len(edges)}",
            verifier_port=client.server_port,  # type: ignore[attr-defined]
            api_port=api.port,
        )
        edges.append(edge)
        return Target("nginx", client, url)

    return start, edges


def _serve_targets(
    kind: Literal["verifier", "nginx"],
    start_verifier: VerifierFactory,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Iterator[TargetFactory]:
    """Yield a factory of targets of ``kind``; stop the nginx edges it started afterwards."""
    start, edges = _target_factory(kind, start_verifier, request, tmp_path)
    yield start
    for edge in edges:
        edge.stop()


@pytest.fixture(params=["verifier", "nginx"])
def start_target(
    request: pytest.FixtureRequest, start_verifier: VerifierFactory, tmp_path: Path
) -> Iterator[TargetFactory]:
    """Start a verifier (settings as for ``start_verifier``) and address it directly or via nginx."""
    yield from _serve_targets(request.param, start_verifier, request, tmp_path)


@pytest.fixture
async def target(start_target: TargetFactory) -> Target:
    return await start_target(tenants=(TENANT_A,))


@pytest.fixture
async def verifier_only(start_verifier: VerifierFactory) -> Target:
    """For what only the verifier does (nginx answers these itself)."""
    return Target("verifier", await start_verifier(tenants=(TENANT_A,)))


@pytest.fixture
def start_nginx_target(
    request: pytest.FixtureRequest, start_verifier: VerifierFactory, tmp_path: Path
) -> Iterator[TargetFactory]:
    yield from _serve_targets("nginx", start_verifier, request, tmp_path)


@pytest.fixture
async def nginx_only(start_nginx_target: TargetFactory) -> Target:
    """For what only nginx does."""
    return await start_nginx_target(tenants=(TENANT_A,))
