"""JWKS storms and outages: one fetch per interval however many unknown kids arrive; keys survive an
identity provider outage; without keys the verifier is unready and refuses, never allows."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
from aiohttp.test_utils import TestClient

from tests.support.readiness import wait_ready
from tests.support.token_forge import TENANT_A, JwksServer, ManualClock, SigningKey, TokenForge

from .conftest import ORIGINAL


async def storm(client: TestClient, tokens: list[str], *, connections: int = 250) -> list[tuple[int, str]]:
    """Send every token to /verify at once, over many connections; (status, reason) per request."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(token: str) -> tuple[int, str]:
            headers = {**ORIGINAL, "Authorization": f"Bearer {token}"}
            async with session.get(client.make_url("/verify"), headers=headers) as response:
                if response.status == 200:
                    return 200, "ok"
                return response.status, response.headers.get("X-Auth-Reason", "")

        return await asyncio.gather(*(one(t) for t in tokens))


def fetch_count(client: TestClient, result: str) -> float:
    value = client.app_state.metrics.registry.get_sample_value(
        "verifier_jwks_fetch_total", {"result": result}
    )
    return value or 0.0


async def wait_for_failed_fetch(client: TestClient) -> None:
    """Until the verifier has tried its start-up fetch and counted it as failed (generous deadline)."""
    async with asyncio.timeout(30):
        while True:
            if fetch_count(client, "failure") >= 1:
                return
            await asyncio.sleep(0.02)


async def test_thousand_concurrent_requests_with_a_new_kid_cause_exactly_one_fetch(
    start_verifier, jwks_server: JwksServer, forge: TokenForge
):
    clock = ManualClock()
    client = await start_verifier(app_kwargs={"monotonic": clock})
    assert jwks_server.jwks_fetches == 1
    rotated = SigningKey.generate("rotated-key")
    jwks_server.keys[TENANT_A].append(rotated)
    jwks_server.delay = 0.3  # every request arrives while the one fetch is still under way
    clock.advance(61)
    distinct = [forge.mint(forge.user_claims(uti=uuid.uuid4().hex), key=rotated) for _ in range(50)]
    results = await storm(client, distinct * 20)
    assert len(results) == 1000
    assert set(results) == {(200, "ok")}
    assert jwks_server.jwks_fetches == 2
    assert fetch_count(client, "success") == 2


async def test_unknown_kids_cause_at_most_one_fetch_per_interval(
    start_verifier, jwks_server: JwksServer, forge: TokenForge, attacker_key: SigningKey
):
    clock = ManualClock()
    client = await start_verifier(app_kwargs={"monotonic": clock})
    jwks_server.delay = 0.1

    def random_kid_tokens(n: int) -> list[str]:
        return [forge.mint(header=forge.header(kid=uuid.uuid4().hex)) for _ in range(n)]

    # Inside the cooldown after the start-up fetch: no fetch at all.
    results = await storm(client, random_kid_tokens(300))
    assert set(results) == {(401, "unknown_kid")}
    assert jwks_server.jwks_fetches == 1

    # Interval over: a storm of different unknown kids shares one fetch.
    clock.advance(60)
    results = await storm(client, random_kid_tokens(300))
    assert set(results) == {(401, "unknown_kid")}
    assert jwks_server.jwks_fetches == 2

    # And the next storm right after it fetches nothing again.
    clock.advance(30)
    await storm(client, random_kid_tokens(100))
    assert jwks_server.jwks_fetches == 2


async def test_valid_tokens_still_pass_when_the_jwks_endpoint_goes_down_after_start(
    start_verifier, jwks_server: JwksServer, forge: TokenForge
):
    clock = ManualClock()
    client = await start_verifier(app_kwargs={"monotonic": clock})
    jwks_server.available = False
    clock.advance(3600)
    # A scheduled refresh fails: the keys already held are kept.
    assert await client.app_state.jwks.refresh(TENANT_A) is False
    assert fetch_count(client, "failure") == 1
    # An unknown kid during the outage tries once, fails, and is refused.
    assert await storm(client, [forge.mint(header=forge.header(kid="new-kid"))]) == [(401, "unknown_kid")]
    # Known keys keep working, for new tokens (no cache) as for old ones.
    tokens = [forge.mint(forge.user_claims(uti=uuid.uuid4().hex)) for _ in range(5)]
    assert set(await storm(client, tokens)) == {(200, "ok")}
    async with client.get("/readyz") as response:
        assert response.status == 200


async def test_before_any_keys_readyz_is_503_and_tokens_are_refused_never_allowed(
    start_verifier, jwks_server: JwksServer, forge: TokenForge
):
    jwks_server.available = False
    client = await start_verifier(ready=False)
    await wait_for_failed_fetch(client)
    async with client.get("/readyz") as response:
        assert response.status == 503
        assert await response.json() == {"status": "not_ready", "reason": "keys_unavailable"}
    async with client.get("/healthz") as response:
        assert response.status == 200
    results = await storm(client, [forge.mint(forge.user_claims(uti=str(i))) for i in range(20)])
    assert set(results) == {(401, "keys_unavailable")}
    assert jwks_server.discovery_fetches >= 1

    # The issuer comes back: the start-up retry loads the keys and the verifier turns ready.
    jwks_server.available = True
    await wait_ready(client)
    assert await storm(client, [forge.mint()]) == [(200, "ok")]


async def test_jwks_unreachable_at_all_keeps_the_verifier_unready(
    start_verifier, jwks_server: JwksServer, forge
):
    await jwks_server.stop()  # connection refused, not an error status
    client = await start_verifier(ready=False)
    await wait_for_failed_fetch(client)
    async with client.get("/readyz") as response:
        assert response.status == 503
    assert await storm(client, [forge.mint()]) == [(401, "keys_unavailable")]
