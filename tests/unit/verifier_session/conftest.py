"""Fixtures for the session source and CSRF tests: a real redis-server and a real oauth2-proxy.

oauth2-proxy runs with the same session flags as the stack (``--session-store-type=redis
--set-xauthrequest --pass-access-token``, cookie ``__Host-oauth2_proxy``). The sessions it serves are
written into Redis exactly as oauth2-proxy writes one after a sign-in (see ``oauth2_proxy_cookie.py``),
so no browser is needed. Its token endpoint, used only for refreshes, is a small local server standing
in for the identity provider.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from tests.prerequisites import missing, require_program

from .oauth2_proxy_cookie import Ticket, session_state

NAME = "__Host-oauth2_proxy"
COOKIE_SECRET = "0123456789abcdef0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]


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

    async def sign_in(self, *, age: int = 0, access_token: str = "at-live", refresh_token: str = "") -> str:
        """Store a session as oauth2-proxy does after a sign-in ``age`` seconds ago; return the cookie."""
        now = int(time.time())
        ticket = Ticket.new(NAME)
        state = session_state(
            created_at=now - age,
            expires_on=now + 3600,
            access_token=access_token,
            refresh_token=refresh_token,
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
    ]


@pytest.fixture
async def oauth2_proxy(
    idp: tuple[IdentityProvider, TestServer], redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> AsyncIterator[OAuth2Proxy]:
    _, server = idp
    port = free_port()
    argv = oauth2_proxy_argv(port, f"http://127.0.0.1:{server.port}", redis_server.url)
    process = launch(argv, tmp_path / "oauth2-proxy.log")
    try:
        await asyncio.to_thread(wait_for_port, port)
        yield OAuth2Proxy(url=f"http://127.0.0.1:{port}", redis=redis)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)


@pytest.fixture
async def oauth2_proxy_with_own_redis(
    idp: tuple[IdentityProvider, TestServer], tmp_path: Path
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
        yield OAuth2Proxy(url=f"http://127.0.0.1:{port}", redis=client), own
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
        await client.aclose()
        own.stop()
