"""Fixtures for the session source and CSRF tests: a real redis-server and a real oauth2-proxy.

oauth2-proxy runs with the same session flags as the stack (``--session-store-type=redis
--set-xauthrequest --pass-access-token --set-authorization-header``, cookie ``__Host-oauth2_proxy``).
The sessions it serves are written into Redis exactly as oauth2-proxy writes one after a sign-in
(see ``oauth2_proxy_cookie.py``), so no browser is needed, each with an ID token signed by
:func:`forge`'s key for the sign-in the access token names. Its token endpoint, used only for
refreshes, is a small local server standing in for the identity provider.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from fastapi_app.revalidation import REVALIDATED_ROUTES
from tests.prerequisites import missing, require_program
from tests.support.app_clients import AppClients
from tests.support.token_forge import (
    SigningKey,
    TokenForge,
    b64url_decode_json,
    key_set_for,
    validation_settings,
)
from verifier.core.forwarded_routes import parse_routes
from verifier.keys.provider import StaticKeys
from verifier.service.app import create_app
from verifier.service.metrics import VerifierMetrics
from verifier.service.settings import VerifierSettings
from verifier.sources.csrf import CsrfSettings, derive_csrf_key
from verifier.sources.session.settings import SessionSettings, SessionSourceSettings
from verifier.sources.session.source import build_session_source

from .oauth2_proxy_cookie import Ticket, session_state

NAME = "__Host-oauth2_proxy"
COOKIE_SECRET = "0123456789abcdef0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]
#: The identity provider the session tests' tokens come from.
AUTHORITY = "https://login.example.test"


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("session-test-key")


@pytest.fixture
def forge(signing_key: SigningKey) -> TokenForge:
    return TokenForge(signing_key, authority=AUTHORITY, v1_issuer_base=f"{AUTHORITY}/sts")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_redis(workdir: Path, *, port: int | None = None) -> RedisServer:
    binary = require_program("redis-server", "redis-server")
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
    except RuntimeError:
        process.kill()
        raise
    return RedisServer(port, process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    await client.flushdb()
    yield client
    await client.aclose()


def oauth2_proxy_binary() -> str:
    candidate = os.environ.get("OAUTH2_PROXY_BIN") or str(REPO / ".cache" / "bin" / "oauth2-proxy")
    if not os.access(candidate, os.X_OK):
        missing(f"the oauth2-proxy binary {candidate}", "scripts/setup.sh builds it")
    return candidate


@dataclass
class IdentityProvider:
    """The token endpoint oauth2-proxy refreshes sessions against."""

    grants: list[dict[str, str]] = field(default_factory=list)
    #: What a refresh hands out as the new access token.
    next_access_token: str = "at-refreshed"

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.grants.append({k: str(v) for k, v in form.items()})
        if form.get("refresh_token") == "rt-revoked":
            return web.json_response({"error": "invalid_grant", "error_description": "revoked"}, status=400)
        return web.json_response(
            {
                "access_token": self.next_access_token,
                "refresh_token": "rt-next",
                "expires_in": 3600,
                "token_type": "Bearer",
            }
        )


@dataclass
class OAuth2Proxy:
    url: str
    redis: Redis
    #: Signs each session's ID token (the sign-in's ``oid``, ``tid`` and a ``sid``).
    forge: TokenForge

    async def sign_in(
        self,
        *,
        age: int = 0,
        access_token: str = "at-live",
        refresh_token: str = "",
        id_token: str | None = None,
        sid: str | None = None,
    ) -> str:
        """Store a session as oauth2-proxy does after a sign-in ``age`` seconds ago; return the cookie.

        Its ID token is ``id_token``, or one of :attr:`forge` for the user and tenant of
        ``access_token`` (when that is a JWT) in Entra session ``sid`` (a new one when None).
        """
        now = int(time.time())
        ticket = Ticket.new(NAME)
        if id_token is None:
            id_token = self.forge.id_token(**_sign_in_claims(access_token), **({"sid": sid} if sid else {}))
        state = session_state(
            created_at=now - age,
            expires_on=now + 3600,
            access_token=access_token,
            refresh_token=refresh_token,
            id_token=id_token,
        )
        await self.redis.set(ticket.ticket_id, ticket.encrypt(state), ex=3600)
        return ticket.cookie_value(COOKIE_SECRET, now - age)

    async def sign_out(self, cookie: str) -> None:
        """oauth2-proxy's own sign-out: it deletes the session from Redis and clears the cookie."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                self.url + "/oauth2/sign_out", headers={"Cookie": f"{NAME}={cookie}"}, allow_redirects=False
            ) as response,
        ):
            await response.read()
            assert response.status == 302, response.status


def _sign_in_claims(access_token: str) -> dict[str, str]:
    """The ``oid`` and ``tid`` an access token names (unverified: the test made it), if it is a JWT."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return {}
    claims = b64url_decode_json(parts[1])
    return {name: claims[name] for name in ("oid", "tid") if isinstance(claims.get(name), str)}


@pytest.fixture
async def idp() -> AsyncIterator[tuple[IdentityProvider, TestServer]]:
    provider = IdentityProvider()
    app = web.Application()
    app.router.add_post("/token", provider.token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield provider, server
    await server.close()


def launch(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)


def oauth2_proxy_argv(port: int, issuer: str, redis_url: str) -> list[str]:
    return [
        oauth2_proxy_binary(),
        f"--http-address=127.0.0.1:{port}",
        "--provider=oidc",
        f"--oidc-issuer-url={issuer}/",
        "--skip-oidc-discovery",
        f"--login-url={issuer}/authorize",
        f"--redeem-url={issuer}/token",
        f"--oidc-jwks-url={issuer}/jwks",
        "--client-id=bff-test-client",
        "--client-secret=bff-test-secret",
        f"--cookie-secret={COOKIE_SECRET}",
        f"--cookie-name={NAME}",
        "--cookie-secure=true",
        "--cookie-refresh=1m",
        "--cookie-expire=1h",
        "--session-store-type=redis",
        f"--redis-connection-url={redis_url}",
        "--email-domain=*",
        "--upstream=static://202",
        "--set-xauthrequest",
        "--pass-access-token",
        "--set-authorization-header",
    ]


@pytest.fixture
async def oauth2_proxy(
    idp: tuple[IdentityProvider, TestServer],
    redis_server: RedisServer,
    redis: Redis,
    forge: TokenForge,
    tmp_path: Path,
) -> AsyncIterator[OAuth2Proxy]:
    _, server = idp
    port = free_port()
    argv = oauth2_proxy_argv(port, f"http://127.0.0.1:{server.port}", redis_server.url)
    process = launch(argv, tmp_path / "oauth2-proxy.log")
    try:
        await asyncio.to_thread(wait_for_port, port)
        yield OAuth2Proxy(url=f"http://127.0.0.1:{port}", redis=redis, forge=forge)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)


@pytest.fixture
async def oauth2_proxy_with_own_redis(
    idp: tuple[IdentityProvider, TestServer], forge: TokenForge, tmp_path: Path
) -> AsyncIterator[tuple[OAuth2Proxy, RedisServer]]:
    """oauth2-proxy over a Redis of its own, which a test may stop (and the shared one stays up)."""
    _, server = idp
    own = start_redis(tmp_path)
    client = Redis.from_url(own.url)
    port = free_port()
    process = launch(
        oauth2_proxy_argv(port, f"http://127.0.0.1:{server.port}", own.url), tmp_path / "o2p.log"
    )
    try:
        await asyncio.to_thread(wait_for_port, port)
        yield OAuth2Proxy(url=f"http://127.0.0.1:{port}", redis=client, forge=forge), own
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
        await client.aclose()
        own.stop()


IDENTITY_KEY = b"identity-signing-key-for-tests-0123456789"
PUBLIC = "https://localhost:8443"
URI = "/api/projects/7?view=full"


VerifyClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def verifier(
    signing_key: SigningKey, redis_server: RedisServer
) -> AsyncIterator[Callable[..., Awaitable[TestClient[Any, Any]]]]:
    """Build a verifier app with the session source against ``oauth2_proxy_url`` and ``redis_url``."""
    clients = AppClients()

    async def build(
        oauth2_proxy_url: str,
        redis_url: str | None = None,
        *,
        max_age_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
        cache_seconds: int = 0,
    ) -> TestClient[Any, Any]:
        template = f"{AUTHORITY}/{{tenantid}}/v2.0"
        keys = StaticKeys(
            key_set_for({"7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b": [signing_key]}, key_issuer=template)
        )
        settings = VerifierSettings(
            validation=validation_settings(AUTHORITY),
            identity_key=IDENTITY_KEY,
            # As every deployment sets VERIFIER_REVALIDATED_ROUTES: the API's own list.
            revalidated_routes=parse_routes(", ".join(REVALIDATED_ROUTES))[0],
        )
        metrics = VerifierMetrics()
        source = build_session_source(
            SessionSourceSettings(
                session=SessionSettings(
                    oauth2_proxy_url=oauth2_proxy_url,
                    cookie_name=NAME,
                    max_age_seconds=max_age_seconds,
                    # Off unless a test is about it: the others count what oauth2-proxy is asked.
                    cache_seconds=cache_seconds,
                ),
                csrf=CsrfSettings(key=derive_csrf_key(IDENTITY_KEY), public_origin=PUBLIC),
                redis_url=redis_url or redis_server.url,
            ),
            metrics=metrics,
            clock=clock,
            fresh_routes=settings.revalidated_routes,
        )
        app = create_app(settings, sources=[source], keys=keys, metrics=metrics, clock=clock)
        return await clients.start(app)

    yield build
    await clients.close()
