"""The /verify app over HTTP: identity headers and their signature, route policy 403s, health,
metrics, JSON decision logs, and extra credential sources."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service_runtime.logs import JsonFormatter
from tests.support.fake_sources import BrokenSource, HeaderTokenSource
from tests.support.token_forge import (
    TENANT_A,
    TEST_IDENTITY_KEY,
    JwksServer,
    SigningKey,
    TokenForge,
    verifier_settings,
)
from verifier.core.identity import principal_from_headers, verify_signature
from verifier.core.policy import policy_from_mapping
from verifier.service.app import SERVER_LIMITS, STATE, create_app, create_metrics_app

ORIGINAL = {"X-Original-Method": "POST", "X-Original-URI": "/api/projects/7?x=1"}


@pytest.fixture
def live_forge(jwks_server: JwksServer, signing_key: SigningKey) -> TokenForge:
    return TokenForge(signing_key, authority=jwks_server.base_url)


def check_signed_for_original(headers: Mapping[str, str]) -> None:
    """The identity headers carry a fresh signature over ``ORIGINAL``'s method and URI."""
    uri = ORIGINAL["X-Original-URI"]
    verify_signature(headers, keys=(TEST_IDENTITY_KEY,), method="POST", uri=uri, now=int(time.time()))


async def start(aiohttp_server, aiohttp_client, app: web.Application) -> TestClient:
    client = await aiohttp_client(await aiohttp_server(app, **SERVER_LIMITS))
    for _ in range(250):
        if (await client.get("/readyz")).status == 200:
            return client
        await asyncio.sleep(0.02)
    raise AssertionError("verifier did not become ready")


@pytest.fixture
async def client(aiohttp_server, aiohttp_client, jwks_server) -> TestClient:
    return await start(aiohttp_server, aiohttp_client, create_app(verifier_settings(jwks_server.base_url)))


async def test_allowed_request_gets_identity_headers_signed_over_method_and_uri(client, live_forge):
    headers = {**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"}
    async with client.get("/verify", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-User-Oid"] == "11111111-1111-4111-8111-111111111111"
        assert response.headers["X-User-Tid"] == TENANT_A
        assert response.headers["X-Principal-Type"] == "user"
        assert response.headers["X-Auth-Source"] == "bearer"
        assert response.headers["X-Scopes"] == "user.read user.write"
        assert response.headers["X-Roles"] == "Reader"
        assert response.headers["Cache-Control"] == "no-store"
        now = int(time.time())
        verify_signature(
            response.headers, keys=(TEST_IDENTITY_KEY,), method="POST", uri="/api/projects/7?x=1", now=now
        )
        principal = principal_from_headers(response.headers)
        assert principal.name == "Alice Example" and principal.email == "alice@contoso-dev.example"


async def test_identity_signature_does_not_vouch_for_another_uri(client, live_forge):
    from verifier.core.identity import SignatureError

    headers = {**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"}
    async with client.get("/verify", headers=headers) as response:
        with pytest.raises(SignatureError) as info:
            verify_signature(
                response.headers,
                keys=(TEST_IDENTITY_KEY,),
                method="POST",
                uri="/api/admin",
                now=int(time.time()),
            )
        assert info.value.reason == "bad_identity_signature"


async def test_second_request_with_the_same_token_is_a_cache_hit(client, live_forge):
    headers = {**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"}
    for _ in range(3):
        async with client.get("/verify", headers=headers) as response:
            assert response.status == 200
    registry = client.app[STATE].metrics.registry  # type: ignore[attr-defined]
    assert registry.get_sample_value("verifier_token_cache_total", {"result": "miss"}) == 1
    assert registry.get_sample_value("verifier_token_cache_total", {"result": "hit"}) == 2


async def test_missing_original_request_headers_are_refused_with_400(client, live_forge):
    async with client.get("/verify", headers={"Authorization": f"Bearer {live_forge.mint()}"}) as response:
        assert response.status == 400
        assert response.headers["X-Auth-Reason"] == "missing_original_request"
        # No body: nginx closes the keep-alive connection of an auth_request answer that has one.
        assert await response.read() == b""
        assert "X-User-Oid" not in response.headers


async def test_verify_answers_any_method_nginx_may_use(client, live_forge):
    headers = {**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"}
    async with client.post("/verify", headers=headers) as response:
        assert response.status == 200


async def test_healthz_is_always_ok(client):
    async with client.get("/healthz") as response:
        assert response.status == 200 and await response.json() == {"status": "ok"}


POLICY = {
    "route": [
        {"prefix": "/api/admin", "scopes": ["admin"], "roles": ["Admin"]},
        {"prefix": "/api/projects", "methods": ["POST"], "roles": ["Writer"]},
    ]
}


@pytest.fixture
async def policy_client(aiohttp_server, aiohttp_client, jwks_server) -> TestClient:
    settings = verifier_settings(jwks_server.base_url, route_policy=policy_from_mapping(POLICY))
    return await start(aiohttp_server, aiohttp_client, create_app(settings))


def bearer_request(method: str, uri: str, token: str) -> dict[str, str]:
    """The headers nginx sends /verify for ``method uri`` carrying ``token``."""
    return {"X-Original-Method": method, "X-Original-URI": uri, "Authorization": f"Bearer {token}"}


async def test_route_policy_denies_a_missing_scope_with_403_insufficient_scope(policy_client, live_forge):
    headers = bearer_request("GET", "/api/admin/settings", live_forge.mint())
    async with policy_client.get("/verify", headers=headers) as response:
        assert response.status == 403
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="api", error="insufficient_scope", '
            'error_description="insufficient_scope", scope="admin"'
        )
        assert response.headers["X-Auth-Reason"] == "insufficient_scope"
        assert response.headers["Content-Length"] == "0" and await response.read() == b""
        assert "X-User-Oid" not in response.headers


async def test_route_policy_denies_an_app_without_the_role_with_403_insufficient_role(
    policy_client, live_forge
):
    token = live_forge.mint(live_forge.app_claims(roles=["Reader"]))
    headers = bearer_request("POST", "/api/projects", token)
    async with policy_client.get("/verify", headers=headers) as response:
        assert response.status == 403
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="api", error="insufficient_scope", error_description="insufficient_role"'
        )
        assert response.headers["X-Auth-Reason"] == "insufficient_role"


async def test_route_policy_allows_the_holder_of_the_role(policy_client, live_forge):
    token = live_forge.mint(live_forge.app_claims(roles=["Writer"]))
    headers = bearer_request("POST", "/api/projects", token)
    async with policy_client.get("/verify", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Principal-Type"] == "app"


async def test_metrics_app_exports_the_four_metric_families(aiohttp_client, client, live_forge):
    await client.get("/verify", headers={**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"})
    await client.get("/verify", headers={**ORIGINAL, "Authorization": "Bearer eA.eA.eA"})
    metrics = await aiohttp_client(create_metrics_app(client.app[STATE].metrics))  # type: ignore[attr-defined]
    async with metrics.get("/metrics") as response:
        text = await response.text()
    assert 'verifier_verify_duration_seconds_count{outcome="allow",source="bearer"} 1.0' in text
    assert 'verifier_decisions_total{outcome="allow",reason="ok",source="bearer"} 1.0' in text
    assert 'verifier_decisions_total{outcome="deny",reason="bad_json",source="bearer"} 1.0' in text
    assert 'verifier_jwks_fetch_total{result="success"} 1.0' in text
    assert 'verifier_token_cache_total{result="miss"} 2.0' in text


async def test_refusals_are_logged_as_json_with_reason_request_id_and_oid_but_never_the_token(
    client, live_forge, caplog
):
    token = live_forge.mint(live_forge.user_claims(aud="api://other"))
    caplog.set_level(logging.INFO, logger="verifier.decision")
    headers = {**ORIGINAL, "Authorization": f"Bearer {token}", "X-Request-ID": "req-42", "Cookie": "s=secret"}
    headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with client.get("/verify", headers=headers) as response:
        assert response.status == 401
    records = [r for r in caplog.records if r.name == "verifier.decision"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    entry = json.loads(line)
    assert entry["reason"] == "bad_audience"
    assert entry["request_id"] == "req-42"
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["oid"] == "11111111-1111-4111-8111-111111111111"
    assert entry["path"] == "/api/projects/7"  # no query string
    assert token not in line and token.split(".")[1] not in line and "secret" not in line


async def test_successes_are_logged_only_at_debug_level(client, live_forge, caplog):
    caplog.set_level(logging.INFO, logger="verifier.decision")
    await client.get("/verify", headers={**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"})
    assert [r for r in caplog.records if r.name == "verifier.decision"] == []
    caplog.set_level(logging.DEBUG, logger="verifier.decision")
    await client.get("/verify", headers={**ORIGINAL, "Authorization": f"Bearer {live_forge.mint()}"})
    records = [r for r in caplog.records if r.name == "verifier.decision"]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG


async def test_extra_credential_source_reuses_token_validation_and_answers_as_session(
    aiohttp_server, aiohttp_client, jwks_server, live_forge
):
    source = HeaderTokenSource()
    app = create_app(verifier_settings(jwks_server.base_url), sources=[source, BrokenSource()])
    client = await start(aiohttp_server, aiohttp_client, app)
    # Every source is started with the app, whatever its class: not only the session source.
    assert source.started
    async with client.get("/verify", headers={**ORIGINAL, "X-Test-Session": live_forge.mint()}) as response:
        assert response.status == 200
        assert response.headers["X-Auth-Source"] == "session"
        assert response.headers["Set-Cookie"] == "s=refreshed; Secure; HttpOnly"
        check_signed_for_original(response.headers)
    async with client.get("/verify", headers={**ORIGINAL, "X-Test-Session": "eA.eA.eA"}) as response:
        assert response.status == 401
        assert response.headers["X-Auth-Reason"] == "bad_json"
    # A bearer token, when present, is judged first and alone.
    headers = {**ORIGINAL, "Authorization": "Basic x", "X-Test-Session": live_forge.mint()}
    async with client.get("/verify", headers=headers) as response:
        assert response.headers["X-Auth-Reason"] == "unsupported_scheme"
    # A source that fails fails closed.
    async with client.get("/verify", headers={**ORIGINAL, "X-Broken": "1"}) as response:
        assert response.status == 500
        assert response.headers["X-Auth-Reason"] == "internal_error"
        assert await response.read() == b""
    await client.close()
    assert source.closed


async def test_cache_hit_headers_equal_the_contract_encoding(client, live_forge):
    from verifier.core.identity import principal_from_headers as decode

    headers = {
        **ORIGINAL,
        "Authorization": f"Bearer {live_forge.mint(live_forge.user_claims(name='Zoë, Ünïcode'))}",
    }
    first = await client.get("/verify", headers=headers)  # miss
    second = await client.get("/verify", headers=headers)  # hit: pre-encoded values
    for name in ("X-User-Name", "X-User-Email", "X-Scopes", "X-Roles", "X-User-Oid"):
        assert first.headers[name] == second.headers[name]
    assert decode(second.headers).name == "Zoë, Ünïcode"
    check_signed_for_original(second.headers)
