"""The ALB key fetch against a real HTTP key server on 127.0.0.1, and the source through the verifier app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from tests.support.app_clients import AppClients
from tests.support.token_forge import ManualClock, validation_settings
from tests.unit.verifier_session import conftest as session_fixtures
from verifier.core.alb_token import ALB_HEADER, AlbRejected
from verifier.core.identity import principal_from_headers, verify_signature
from verifier.core.jwk import KeySet
from verifier.core.policy import RoutePolicy, RouteRule
from verifier.core.reasons import Reason
from verifier.keys.alb_keys import AlbKeyCache
from verifier.keys.provider import StaticKeys
from verifier.service.app import create_app
from verifier.service.metrics import VerifierMetrics
from verifier.service.settings import VerifierSettings
from verifier.sources.alb import AlbSource, build_alb_source
from verifier.sources.csrf import CsrfGuard, CsrfSettings, SpentTokenStore, derive_csrf_key

from .forge import KID, NOW, TENANT, AlbForge, pem_of, settings

IDENTITY_KEY = bytes(range(32))
#: The public origin the CSRF checks compare Origin with.
PUBLIC = "https://app.example.com"

# The session tests' real Redis (a server per module, a flushed client per test), used here by name.
redis_server = session_fixtures.redis_server
redis = session_fixtures.redis
OTHER_KID = "0b7e1c2d-3f40-4a5b-8c6d-7e8f90a1b2c3"


@dataclass
class KeyServer:
    """Serves PEMs at /<kid>, like public-keys.auth.elb.<region>.amazonaws.com."""

    keys: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    delay: float = 0.0
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        kid = request.match_info["kid"]
        self.hits.append(kid)
        if self.delay:
            await asyncio.sleep(self.delay)
        if kid not in self.keys:
            return web.Response(status=404, text="no such key")
        return web.Response(body=self.keys[kid], content_type="application/x-pem-file")

    @property
    def template(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/{{kid}}"


@pytest.fixture
def forge() -> AlbForge:
    return AlbForge()


@pytest.fixture
async def key_server(forge: AlbForge) -> AsyncIterator[KeyServer]:
    served = KeyServer(keys={KID: pem_of(forge.key)})
    app = web.Application()
    app.router.add_get("/{kid}", served.handle)
    served.server = TestServer(app, host="127.0.0.1")
    await served.server.start_server()
    yield served
    await served.server.close()


@pytest.fixture
async def cache_for() -> AsyncIterator[Callable[..., AlbKeyCache]]:
    caches: list[AlbKeyCache] = []

    def build(template: str, **overrides: Any) -> AlbKeyCache:
        clock = overrides.pop("monotonic", time.monotonic)
        cache = AlbKeyCache(settings(key_url_template=template, **overrides), monotonic=clock)
        caches.append(cache)
        return cache

    yield build
    for cache in caches:
        await cache.close()


def assert_refused_403(response: ClientResponse, reason: str) -> None:
    """Refused with 403 and ``reason`` (a CSRF refusal: no challenge), and no identity handed on."""
    assert response.status == 403
    assert response.headers["X-Auth-Reason"] == reason
    assert "X-Identity-Signature" not in response.headers and "WWW-Authenticate" not in response.headers


def assert_refused_401(response: ClientResponse, reason: str) -> None:
    """Refused with 401 and ``reason``, and no identity of any kind handed on."""
    assert response.status == 401
    assert response.headers["X-Auth-Reason"] == reason
    assert "X-Identity-Signature" not in response.headers and "X-User-Oid" not in response.headers


async def test_key_is_fetched_once_and_then_served_from_the_cache(
    key_server: KeyServer, cache_for: Callable[..., AlbKeyCache], forge: AlbForge
) -> None:
    cache = cache_for(key_server.template)
    first = await cache.get(KID)
    second = await cache.get(KID)
    assert first.public_numbers() == forge.public_key.public_numbers()
    assert second is first
    assert key_server.hits == [KID]


async def test_a_hundred_concurrent_requests_for_a_new_kid_cause_one_fetch(
    key_server: KeyServer, cache_for: Callable[..., AlbKeyCache]
) -> None:
    key_server.delay = 0.05
    cache = cache_for(key_server.template)
    keys = await asyncio.gather(*(cache.get(KID) for _ in range(100)))
    assert len({id(k) for k in keys}) == 1
    assert key_server.hits == [KID]


async def test_unknown_kid_is_refused_and_not_fetched_again_during_the_cooldown(
    key_server: KeyServer, cache_for: Callable[..., AlbKeyCache]
) -> None:
    clock = ManualClock(100.0)
    cache = cache_for(key_server.template, monotonic=clock)
    for _ in range(5):
        with pytest.raises(AlbRejected) as caught:
            await cache.get(OTHER_KID)
        assert caught.value.reason == Reason.ALB_KEYS_UNAVAILABLE
    assert key_server.hits == [OTHER_KID]
    clock.advance(61)
    with pytest.raises(AlbRejected):
        await cache.get(OTHER_KID)
    assert key_server.hits == [OTHER_KID, OTHER_KID]


async def test_fetches_of_new_kids_are_rationed_per_minute(
    key_server: KeyServer, cache_for: Callable[..., AlbKeyCache]
) -> None:
    clock = ManualClock(100.0)
    cache = cache_for(key_server.template, monotonic=clock, max_new_kids_per_minute=3)
    kids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(10)]
    for kid in kids:
        with pytest.raises(AlbRejected) as caught:
            await cache.get(kid)
        assert caught.value.reason == Reason.ALB_KEYS_UNAVAILABLE
    assert key_server.hits == kids[:3]
    # The real key is rationed too while the budget is spent, and fetched once the minute has passed.
    with pytest.raises(AlbRejected):
        await cache.get(KID)
    clock.advance(60)
    assert await cache.get(KID) is not None
    assert key_server.hits == [*kids[:3], KID]


async def test_key_endpoint_answering_garbage_or_another_curve_is_keys_unavailable(
    key_server: KeyServer, cache_for: Callable[..., AlbKeyCache]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key_server.keys[OTHER_KID] = pem_of(ec.generate_private_key(ec.SECP384R1()))
    garbage = "11111111-2222-4333-8444-555555555555"
    key_server.keys[garbage] = b"<html>not a key</html>"
    cache = cache_for(key_server.template)
    for kid in (OTHER_KID, garbage):
        with pytest.raises(AlbRejected) as caught:
            await cache.get(kid)
        assert caught.value.reason == Reason.ALB_KEYS_UNAVAILABLE


async def test_key_server_down_is_keys_unavailable(cache_for: Callable[..., AlbKeyCache]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = cache_for(f"http://127.0.0.1:{port}/{{kid}}")
    with pytest.raises(AlbRejected) as caught:
        await cache.get(KID)
    assert caught.value.reason == Reason.ALB_KEYS_UNAVAILABLE


# --- through the verifier app ------------------------------------------------------------------------


URI = "/api/me?x=1"

VerifierFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def csrf(redis: Redis) -> CsrfGuard:
    """The session source's guard, as the verifier shares it with the ALB source: a real Redis."""
    return CsrfGuard(
        CsrfSettings(key=derive_csrf_key(IDENTITY_KEY), public_origin=PUBLIC), SpentTokenStore(redis)
    )


@pytest.fixture
async def verifier(csrf: CsrfGuard) -> AsyncIterator[VerifierFactory]:
    clients = AppClients()

    async def build(template: str, *, policy: RoutePolicy | None = None) -> TestClient[Any, Any]:
        metrics = VerifierMetrics()
        verifier_settings = VerifierSettings(
            validation=validation_settings("http://127.0.0.1", tenants=(TENANT,)),
            identity_key=IDENTITY_KEY,
            route_policy=policy or RoutePolicy(),
        )
        source = build_alb_source(settings(key_url_template=template), csrf=csrf, metrics=metrics)
        app = create_app(
            verifier_settings,
            sources=(source,),
            keys=StaticKeys(KeySet()),
            metrics=metrics,
            clock=lambda: NOW,
        )
        return await clients.start(app)

    yield build
    await clients.close()


async def ask(client: TestClient[Any, Any], token: str | None, method: str = "GET", **extra: str) -> Any:
    headers = {"X-Original-Method": method, "X-Original-URI": URI, **extra}
    if token is not None:
        headers[ALB_HEADER] = token
    response = await client.get("/verify", headers=headers)
    await response.read()
    return response


async def test_valid_alb_header_is_answered_200_with_signed_alb_identity(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    client = await verifier(key_server.template)
    response = await ask(client, forge.token())
    assert response.status == 200
    assert response.headers["X-Auth-Source"] == "alb"
    assert response.headers["X-Principal-Type"] == "user"
    assert response.headers["X-User-Oid"] == forge.payload()["sub"]
    assert response.headers["X-User-Tid"] == TENANT
    assert response.headers["X-Roles"] == response.headers["X-Scopes"] == ""
    assert response.headers["Cache-Control"] == "no-store"
    verify_signature(response.headers, keys=(IDENTITY_KEY,), method="GET", uri=URI, now=NOW)
    principal = principal_from_headers(response.headers)
    assert (principal.auth_source, principal.name, principal.email) == (
        "alb",
        "Ada Lovelace",
        "ada@example.com",
    )


async def test_self_signed_header_with_another_key_and_signer_is_401_and_fetches_no_key(
    key_server: KeyServer, verifier: VerifierFactory
) -> None:
    client = await verifier(key_server.template)
    attacker = AlbForge()
    token = attacker.token(
        header=attacker.header(
            signer="arn:aws:elasticloadbalancing:eu-west-1:999999999999:loadbalancer/app/evil/0123456789abcdef"
        )
    )
    response = await ask(client, token)
    assert response.status == 401
    assert await response.read() == b""
    assert response.headers["X-Auth-Reason"] == "alb_bad_signer"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "X-Identity-Signature" not in response.headers
    assert key_server.hits == []


async def test_self_signed_header_copying_the_signer_is_401_bad_signature(
    key_server: KeyServer, verifier: VerifierFactory
) -> None:
    client = await verifier(key_server.template)
    response = await ask(client, AlbForge().token())  # our signer, iss, client and kid; another key
    assert_refused_401(response, "alb_bad_signature")


async def test_traversal_kid_is_refused_before_any_fetch(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    client = await verifier(key_server.template)
    response = await ask(client, forge.token(header=forge.header(kid="../../admin")))
    assert_refused_401(response, "alb_bad_kid")
    assert key_server.hits == []


async def test_key_server_down_is_401_keys_unavailable_never_200(
    verifier: VerifierFactory, forge: AlbForge
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await verifier(f"http://127.0.0.1:{port}/{{kid}}")
    for _ in range(3):
        response = await ask(client, forge.token())
        assert_refused_401(response, "alb_keys_unavailable")


async def test_two_alb_headers_are_refused_as_malformed(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    client = await verifier(key_server.template)
    from multidict import CIMultiDict

    headers = CIMultiDict({"X-Original-Method": "GET", "X-Original-URI": URI})
    headers.add(ALB_HEADER, forge.token())
    headers.add(ALB_HEADER, forge.token())
    response = await client.get("/verify", headers=headers)
    assert_refused_401(response, "alb_malformed")


async def test_route_needing_a_role_refuses_an_alb_user_with_403(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    policy = RoutePolicy((RouteRule(prefix="/api", roles=frozenset({"Reader"})),))
    client = await verifier(key_server.template, policy=policy)
    response = await ask(client, forge.token())
    assert response.status == 403
    assert response.headers["X-Auth-Reason"] == "insufficient_role"


async def test_bearer_header_wins_over_the_alb_header(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    client = await verifier(key_server.template)
    response = await ask(client, forge.token(), Authorization="Bearer not-a-token")
    assert_refused_401(response, "malformed_token")
    assert key_server.hits == []


def test_alb_source_is_a_credential_source(csrf: CsrfGuard) -> None:
    from verifier.sources.credential_source import CredentialSource

    assert isinstance(AlbSource(settings(), AlbKeyCache(settings()), csrf), CredentialSource)


# --- CSRF: a browser signed in at the ALB passes the same checks as a session ------------------------


async def test_an_unsafe_alb_request_needs_the_same_origin_and_a_csrf_token_spent_once(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    client = await verifier(key_server.template)
    safe = await ask(client, forge.token())
    assert safe.status == 200
    token = safe.headers["X-CSRF-Token"]
    # A cross-site form post carries the ALB's cookie, so the ALB adds its header: refused.
    forged = await ask(
        client, forge.token(), "POST", Origin="https://evil.example", **{"X-CSRF-Token": token}
    )
    assert_refused_403(forged, "csrf_origin_mismatch")
    missing = await ask(client, forge.token(), "POST", Origin=PUBLIC)
    assert_refused_403(missing, "csrf_token_missing")
    allowed = await ask(client, forge.token(), "POST", Origin=PUBLIC, **{"X-CSRF-Token": token})
    assert allowed.status == 200
    assert allowed.headers["X-CSRF-Token"] != token
    replayed = await ask(client, forge.token(), "DELETE", Origin=PUBLIC, **{"X-CSRF-Token": token})
    assert_refused_403(replayed, "csrf_token_spent")


async def test_an_alb_csrf_token_is_bound_to_its_user(
    key_server: KeyServer, verifier: VerifierFactory, forge: AlbForge
) -> None:
    client = await verifier(key_server.template)
    mallory = (await ask(client, forge.token(payload={**forge.payload(), "sub": "mallory"}))).headers[
        "X-CSRF-Token"
    ]
    refused = await ask(client, forge.token(), "PUT", Origin=PUBLIC, **{"X-CSRF-Token": mallory})
    assert_refused_403(refused, "csrf_token_bad_mac")
