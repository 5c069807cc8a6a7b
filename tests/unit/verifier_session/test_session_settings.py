"""The session source's variables, and ``python -m verifier`` serving sessions from them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.config_problems import problems_naming
from tests.support.token_forge import TENANT_A, JwksServer, SigningKey, TokenForge
from verifier.core.session_cookies import session_binding
from verifier.service.settings import settings_from_env
from verifier.sources.csrf import derive_csrf_key, verify_token
from verifier.sources.session.settings import SessionSourceSettings

from .conftest import NAME, REPO, OAuth2Proxy, RedisServer, free_port, wait_for_port

IDENTITY_TEXT = "identity-signing-key-for-session-tests-0123456789"
BASE_ENV = {
    "VERIFIER_TENANT_IDS": TENANT_A,
    "VERIFIER_AUDIENCES": "api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57",
    "IDENTITY_SIGNING_KEY": IDENTITY_TEXT,
}


def values_of(session: SessionSourceSettings) -> tuple[str, str, str, str, int, int]:
    """What the session variables set, in the order the tests list them."""
    return (
        session.session.auth_url,
        session.session.cookie_name,
        session.redis_url,
        session.csrf.public_origin,
        session.csrf.ttl_seconds,
        session.session.max_age_seconds,
    )


def test_defaults_are_the_local_stack_and_the_csrf_key_is_derived_from_the_identity_key() -> None:
    session = settings_from_env(BASE_ENV).session
    assert session is not None
    assert values_of(session) == (
        "http://127.0.0.1:4180/oauth2/auth",
        "__Host-oauth2_proxy",
        "redis://127.0.0.1:6380/0",
        "https://localhost:8443",
        600,
        3600,
    )
    assert session.csrf.key == derive_csrf_key(IDENTITY_TEXT.encode())


def test_every_session_variable_is_read() -> None:
    env = {
        **BASE_ENV,
        "VERIFIER_OAUTH2_PROXY_URL": "http://127.0.0.1:14180/",
        "VERIFIER_SESSION_COOKIE_NAME": "_oauth2_proxy",
        "VERIFIER_REDIS_URL": "rediss://:pw@cache.internal:6379/2",
        "VERIFIER_PUBLIC_ORIGIN": "https://App.Example.com:443/",
        "VERIFIER_CSRF_TTL_SECONDS": "120",
        "VERIFIER_CSRF_KEY": "c" * 43,
        "VERIFIER_SESSION_MAX_AGE_SECONDS": "28800",
    }
    session = settings_from_env(env).session
    assert session is not None
    assert values_of(session) == (
        "http://127.0.0.1:14180/oauth2/auth",
        "_oauth2_proxy",
        "rediss://:pw@cache.internal:6379/2",
        "https://app.example.com",
        120,
        28800,
    )
    assert len(session.csrf.key) == 32 and session.csrf.key != derive_csrf_key(IDENTITY_TEXT.encode())


def test_settings_repr_shows_neither_the_csrf_key_nor_the_redis_password() -> None:
    env = {
        **BASE_ENV,
        "VERIFIER_REDIS_URL": "redis://:hunter2-password@cache:6379/0",
        "VERIFIER_CSRF_KEY": "k" * 40,
    }
    text = repr(settings_from_env(env))
    assert "hunter2" not in text
    assert "k" * 40 not in text
    assert repr(b"k" * 30)[2:-1] not in text


def test_all_session_variable_problems_are_reported_together_by_name() -> None:
    env = {
        **BASE_ENV,
        "VERIFIER_OAUTH2_PROXY_URL": "http://oauth2-proxy.example.com",
        "VERIFIER_SESSION_COOKIE_NAME": "bad;name",
        "VERIFIER_REDIS_URL": "http://:s3cret@redis",
        "VERIFIER_PUBLIC_ORIGIN": "https://app.example.com/path",
        "VERIFIER_CSRF_TTL_SECONDS": "5",
        "VERIFIER_CSRF_KEY": "short",
    }
    names = (
        "OAUTH2_PROXY_URL",
        "SESSION_COOKIE_NAME",
        "REDIS_URL",
        "PUBLIC_ORIGIN",
        "CSRF_TTL_SECONDS",
        "CSRF_KEY",
    )
    problems = problems_naming(env, (f"VERIFIER_{name}" for name in names))
    assert "s3cret" not in "\n".join(problems)


# --- the process --------------------------------------------------------------------------------------


@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[JwksServer, SigningKey]]:
    key = SigningKey.generate("process-key")
    server = JwksServer({TENANT_A: [key]})
    await server.start()
    yield server, key
    await server.stop()


def _start_verifier(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "verifier"], cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )


async def test_python_m_verifier_serves_sessions_with_csrf_from_its_environment(
    oauth2_proxy: OAuth2Proxy,
    redis_server: RedisServer,
    jwks_server: tuple[JwksServer, SigningKey],
    tmp_path: Path,
) -> None:
    server, key = jwks_server
    port, metrics_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")},
        **BASE_ENV,
        "VERIFIER_AUTHORITY": server.base_url,
        "VERIFIER_V1_ISSUER_BASE": f"{server.base_url}/sts",
        "VERIFIER_PORT": str(port),
        "VERIFIER_METRICS_PORT": str(metrics_port),
        "VERIFIER_OAUTH2_PROXY_URL": oauth2_proxy.url,
        "VERIFIER_SESSION_COOKIE_NAME": NAME,
        "VERIFIER_REDIS_URL": redis_server.url,
        "VERIFIER_PUBLIC_ORIGIN": "https://localhost:8443",
    }
    process = _start_verifier(env, tmp_path / "verifier.log")
    forge = TokenForge(key, authority=server.base_url, v1_issuer_base=f"{server.base_url}/sts")
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(), id_token=forge.id_token())
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_for_port, port, timeout=20)
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 10
            while (await http.get(f"{base}/readyz")).status != 200:
                assert time.monotonic() < deadline, "the verifier never loaded its keys"
                await asyncio.sleep(0.05)
            original = {"X-Original-Method": "GET", "X-Original-URI": "/api/me", "Cookie": f"{NAME}={cookie}"}
            async with http.get(f"{base}/verify", headers=original) as got:
                assert got.status == 200
                assert got.headers["X-Auth-Source"] == "session"
                token = got.headers["X-CSRF-Token"]
            verify_token(
                token,
                key=derive_csrf_key(IDENTITY_TEXT.encode()),
                binding=session_binding(cookie),
                now=int(time.time()),
            )
            post = {**original, "X-Original-Method": "POST", "Origin": "https://localhost:8443"}
            async with http.get(f"{base}/verify", headers=post) as refused:
                assert refused.status == 403
                assert refused.headers["X-Auth-Reason"] == "csrf_token_missing"
            async with http.get(f"{base}/verify", headers={**post, "X-CSRF-Token": token}) as allowed:
                assert allowed.status == 200
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
    log_text = (tmp_path / "verifier.log").read_text()
    assert cookie not in log_text and token not in log_text
    assert "csrf_token_missing" in log_text
