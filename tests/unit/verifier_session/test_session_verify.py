"""/verify with the session source: a real oauth2-proxy, a real redis-server, the verifier's own app.

The requests are shaped as nginx's ``auth_request`` subrequest sends them: ``X-Original-Method`` and
``X-Original-URI`` name the browser's request, and ``Cookie``, ``Origin``, ``Sec-Fetch-Site`` and
``X-CSRF-Token`` pass through from the browser.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from tests.support.token_forge import ManualClock, TokenForge
from verifier.core.identity import principal_from_headers, verify_signature
from verifier.core.session_cookies import session_binding
from verifier.service.app import STATE
from verifier.sources.csrf import derive_csrf_key, verify_token
from verifier.sources.session.source import SessionSource

from .conftest import (
    IDENTITY_KEY,
    NAME,
    PUBLIC,
    URI,
    IdentityProvider,
    OAuth2Proxy,
    RedisServer,
    VerifyClient,
    free_port,
    start_redis,
)


async def verify(
    client: TestClient[Any, Any], method: str, cookie: str | None, **headers: str
) -> ClientResponse:
    sent = {"X-Original-Method": method, "X-Original-URI": URI, "X-Request-ID": "req-1"}
    if cookie is not None:
        sent["Cookie"] = f"theme=dark; {NAME}={cookie}"
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    response = await client.get("/verify", headers=sent)
    await response.read()
    return response


def browser(token: str | None = None) -> dict[str, str]:
    headers = {"Origin": PUBLIC, "Sec_Fetch_Site": "same-origin"}
    if token is not None:
        headers["X_CSRF_Token"] = token
    return headers


async def reason_of(response: ClientResponse) -> str:
    assert await response.read() == b"", "a refusal has no body (nginx would close the connection)"
    return response.headers["X-Auth-Reason"]


async def assert_refused_without_challenge(response: ClientResponse, status: int, reason: str) -> None:
    """A CSRF (or backend) refusal: no RFC 6750 challenge, the reason in X-Auth-Reason and the body."""
    assert response.status == status
    assert await response.read() == b""
    assert response.headers["X-Auth-Reason"] == reason
    assert "WWW-Authenticate" not in response.headers
    assert_no_identity(response)


def upstream_count(client: TestClient[Any, Any], upstream: str, result: str) -> float:
    registry: CollectorRegistry = client.app[STATE].metrics.registry
    labels = {"upstream": upstream, "result": result}
    return registry.get_sample_value("verifier_upstream_duration_seconds_count", labels) or 0.0


def assert_no_identity(response: ClientResponse) -> None:
    assert "X-Identity-Signature" not in response.headers
    assert "X-User-Oid" not in response.headers
    assert "X-CSRF-Token" not in response.headers


async def test_session_get_is_allowed_with_signed_session_identity_and_a_csrf_token(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(oauth2_proxy.url)
    response = await verify(client, "GET", cookie)
    assert response.status == 200
    verify_signature(response.headers, keys=(IDENTITY_KEY,), method="GET", uri=URI, now=int(time.time()))
    principal = principal_from_headers(response.headers)
    assert (principal.auth_source, principal.oid) == ("session", "11111111-1111-4111-8111-111111111111")
    assert "Set-Cookie" not in response.headers
    token = response.headers["X-CSRF-Token"]
    verified = verify_token(
        token, key=derive_csrf_key(IDENTITY_KEY), binding=session_binding(cookie), now=int(time.time())
    )
    assert 590 <= verified.expires_at - time.time() <= 600


async def test_unsafe_request_without_csrf_token_is_refused_403_csrf_token_missing(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(oauth2_proxy.url)
    response = await verify(client, "POST", cookie, **browser())
    await assert_refused_without_challenge(response, 403, "csrf_token_missing")


async def test_csrf_token_is_accepted_once_and_each_answer_carries_the_next_one(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(oauth2_proxy.url)
    first = (await verify(client, "GET", cookie)).headers["X-CSRF-Token"]
    post = await verify(client, "POST", cookie, **browser(first))
    assert post.status == 200
    assert post.headers["X-Auth-Source"] == "session"
    second = post.headers["X-CSRF-Token"]
    assert second != first
    replay = await verify(client, "DELETE", cookie, **browser(first))
    await assert_refused_without_challenge(replay, 403, "csrf_token_spent")
    assert (await verify(client, "PUT", cookie, **browser(second))).status == 200
    registry: CollectorRegistry = client.app[STATE].metrics.registry
    labels = {"source": "session", "outcome": "forbidden", "reason": "csrf_token_spent"}
    assert registry.get_sample_value("verifier_decisions_total", labels) == 1.0
    assert upstream_count(client, "oauth2_proxy", "ok") == 4
    # Four reads of the sign-in's start time (the first one misses and records the sign-in), two
    # tokens spent; the replayed one refused.
    assert upstream_count(client, "redis", "ok") == 4 + 1 + 2
    assert upstream_count(client, "redis", "refused") == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": "https://evil.example", "Sec_Fetch_Site": "cross-site"}, "csrf_origin_mismatch"),
        ({"Origin": PUBLIC, "Sec_Fetch_Site": "same-site"}, "csrf_cross_site"),
        ({"Sec_Fetch_Site": "cross-site"}, "csrf_cross_site"),
        ({"Origin": "null"}, "csrf_origin_mismatch"),
    ],
)
async def test_cross_site_unsafe_request_is_refused_and_its_token_stays_unspent(
    oauth2_proxy: OAuth2Proxy,
    forge: TokenForge,
    verifier: VerifyClient,
    headers: dict[str, str],
    reason: str,
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(oauth2_proxy.url)
    token = (await verify(client, "GET", cookie)).headers["X-CSRF-Token"]
    refused = await verify(client, "POST", cookie, X_CSRF_Token=token, **headers)
    await assert_refused_without_challenge(refused, 403, reason)
    assert (await verify(client, "POST", cookie, **browser(token))).status == 200


async def test_csrf_token_from_another_sign_in_is_refused_as_bad_mac(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    mine = await oauth2_proxy.sign_in(access_token=forge.mint())
    theirs = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(oauth2_proxy.url)
    their_token = (await verify(client, "GET", theirs)).headers["X-CSRF-Token"]
    response = await verify(client, "POST", mine, **browser(their_token))
    await assert_refused_without_challenge(response, 403, "csrf_token_bad_mac")


async def test_refreshed_session_cookie_is_handed_back_once_and_earlier_csrf_tokens_still_fit(
    oauth2_proxy: OAuth2Proxy,
    idp: tuple[IdentityProvider, TestServer],
    forge: TokenForge,
    verifier: VerifyClient,
) -> None:
    old_cookie = await oauth2_proxy.sign_in(age=120, access_token=forge.mint(), refresh_token="rt-1")
    idp[0].next_access_token = forge.mint(forge.user_claims(name="Alice Refreshed"))
    client = await verifier(oauth2_proxy.url)
    refreshed = await verify(client, "GET", old_cookie)
    assert refreshed.status == 200
    assert principal_from_headers(refreshed.headers).name == "Alice Refreshed"
    set_cookies = refreshed.headers.getall("Set-Cookie")
    assert len(set_cookies) == 1 and set_cookies[0].startswith(f"{NAME}=")
    assert "HttpOnly" in set_cookies[0] and "Secure" in set_cookies[0]
    new_cookie = set_cookies[0].split(";", 1)[0].split("=", 1)[1]
    token = refreshed.headers["X-CSRF-Token"]
    post = await verify(client, "POST", new_cookie, **browser(token))
    assert post.status == 200
    assert "Set-Cookie" not in post.headers


async def test_request_with_a_session_oauth2_proxy_does_not_know_is_401_no_session_with_clearing_cookie(
    oauth2_proxy: OAuth2Proxy, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    response = await verify(client, "GET", "djIuZm9yZ2Vk|1800000000|bm90LWEtc2lnbmF0dXJl")
    assert response.status == 401
    assert await reason_of(response) == "no_session"
    assert response.headers["Set-Cookie"].startswith(f"{NAME}=;")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="no_session"'
    )
    assert upstream_count(client, "oauth2_proxy", "refused") == 1
    assert_no_identity(response)


async def test_session_with_an_expired_access_token_is_401_with_the_token_reason(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    expired = forge.mint(forge.user_claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200))
    cookie = await oauth2_proxy.sign_in(access_token=expired)
    client = await verifier(oauth2_proxy.url)
    response = await verify(client, "POST", cookie, **browser("v1.irrelevant"))
    assert (response.status, await reason_of(response)) == (401, "expired")
    assert_no_identity(response)


async def test_oauth2_proxy_down_is_503_session_backend_unavailable(verifier: VerifyClient) -> None:
    client = await verifier(f"http://127.0.0.1:{free_port()}")
    response = await verify(client, "GET", "djIuYQ|1800000000|c2ln")
    await assert_refused_without_challenge(response, 503, "session_backend_unavailable")
    assert upstream_count(client, "oauth2_proxy", "error") == 1


async def test_verifier_redis_down_refuses_session_requests_with_503_safe_or_not(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    # The verifier's Redis holds each sign-in's start time (the absolute lifetime) as well as spent
    # CSRF tokens: without it no session request can be judged. In a deployment it is the same Redis
    # as oauth2-proxy's, so sessions are down with it anyway.
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(oauth2_proxy.url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    get = await verify(client, "GET", cookie)
    await assert_refused_without_challenge(get, 503, "session_backend_unavailable")
    post = await verify(client, "POST", cookie, **browser("v1.irrelevant"))
    await assert_refused_without_challenge(post, 503, "session_backend_unavailable")
    assert upstream_count(client, "redis", "error") == 2


async def test_bearer_token_wins_over_a_cookie_and_needs_no_csrf_token(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(forge.user_claims(name="Session User")))
    client = await verifier(oauth2_proxy.url)
    bearer = forge.mint(forge.user_claims(name="Bearer User"))
    response = await verify(client, "POST", cookie, Authorization=f"Bearer {bearer}")
    assert response.status == 200
    principal = principal_from_headers(response.headers)
    assert (principal.auth_source, principal.name) == ("bearer", "Bearer User")
    assert "X-CSRF-Token" not in response.headers


async def test_cookies_without_the_session_cookie_are_missing_token(
    oauth2_proxy: OAuth2Proxy, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    response = await client.get(
        "/verify",
        headers={"X-Original-Method": "GET", "X-Original-URI": URI, "Cookie": f"theme=dark; {NAME}_csrf=x"},
    )
    assert (response.status, await reason_of(response)) == (401, "missing_token")


async def test_session_store_down_is_503_and_the_cookie_is_not_deleted_then_the_session_works_again(
    oauth2_proxy_with_own_redis: tuple[OAuth2Proxy, RedisServer],
    forge: TokenForge,
    verifier: VerifyClient,
    tmp_path: Path,
) -> None:
    # oauth2-proxy answers a session it cannot load with 401 and a Set-Cookie that deletes the cookie;
    # while its store is down that would sign the user out for good.
    proxy, store = oauth2_proxy_with_own_redis
    cookie = await proxy.sign_in(access_token=forge.mint())
    client = await verifier(proxy.url)
    assert (await verify(client, "GET", cookie)).status == 200
    sessions = {key: await proxy.redis.get(key) for key in await proxy.redis.keys("*")}
    assert sessions
    store.stop()
    during = await verify(client, "GET", cookie)
    await assert_refused_without_challenge(during, 503, "session_backend_unavailable")
    assert "Set-Cookie" not in during.headers
    # The store comes back on the same address with the same data, and so does the session.
    (tmp_path / "revived").mkdir()
    revived = start_redis(tmp_path / "revived", port=store.port)
    try:
        writer = Redis.from_url(revived.url)
        for key, value in sessions.items():
            await writer.set(key, value, ex=3600)
        await writer.aclose()
        after = await verify(client, "GET", cookie)
        assert after.status == 200
        assert principal_from_headers(after.headers).auth_source == "session"
    finally:
        revived.stop()


async def test_unknown_session_with_the_store_up_is_still_401_no_session_with_the_clearing_cookie(
    oauth2_proxy_with_own_redis: tuple[OAuth2Proxy, RedisServer], verifier: VerifyClient
) -> None:
    # The control for the test above: the readiness check changes nothing while the store answers.
    proxy, _ = oauth2_proxy_with_own_redis
    client = await verifier(proxy.url)
    response = await verify(client, "GET", "djIuYWJj.ZGVm|1800000000|c2ln")
    assert (response.status, await reason_of(response)) == (401, "no_session")
    assert response.headers["Set-Cookie"].startswith(f"{NAME}=;")


class ForgetfulOAuth2Proxy:
    """oauth2-proxy as it answers when its store read failed (upstream, unpatched): 401 with a
    cookie-deleting Set-Cookie for every session, while its readiness probe says the store is back,
    which is the race the verifier must not lose."""

    async def auth(self, request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"Set-Cookie": f"{NAME}=; Path=/; Max-Age=0; Secure"})

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")


@pytest.fixture
async def forgetful_oauth2_proxy() -> AsyncIterator[str]:
    app = web.Application()
    fake = ForgetfulOAuth2Proxy()
    app.router.add_get("/oauth2/auth", fake.auth)
    app.router.add_get("/ready", fake.ready)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_a_refusal_of_a_session_that_is_still_stored_is_503_and_never_deletes_the_cookie(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient, forgetful_oauth2_proxy: str
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())  # stored in the shared Redis
    client = await verifier(forgetful_oauth2_proxy)
    response = await verify(client, "GET", cookie)
    await assert_refused_without_challenge(response, 503, "session_backend_unavailable")
    assert "Set-Cookie" not in response.headers
    # Once the session is really gone, the same refusal is passed on: 401 and the deletion.
    for key in await oauth2_proxy.redis.keys(f"{NAME}-*"):
        await oauth2_proxy.redis.delete(key)
    gone = await verify(client, "GET", cookie)
    assert (gone.status, await reason_of(gone)) == (401, "no_session")
    assert gone.headers["Set-Cookie"].startswith(f"{NAME}=;")


async def test_a_refusal_is_503_when_redis_cannot_say_whether_the_session_is_stored(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient, forgetful_oauth2_proxy: str
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await verifier(forgetful_oauth2_proxy, f"redis://127.0.0.1:{free_port()}/0")
    response = await verify(client, "GET", cookie)
    await assert_refused_without_challenge(response, 503, "session_backend_unavailable")
    assert "Set-Cookie" not in response.headers


async def _answer(client: TestClient[Any, Any], method: str, uri: str, **headers: str) -> ClientResponse:
    sent = {"X-Original-Method": method, "X-Original-URI": uri}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    response = await client.get("/verify", headers=sent)
    await response.read()
    return response


@pytest.mark.parametrize(
    ("method", "uri", "forwarded"),
    [
        ("DELETE", "/api/projects/0b1c2d3e-0000-4000-8000-000000000001", True),
        ("PUT", "/api/admin/settings", True),
        ("PUT", "/api/admin/settings?x=1", True),
        ("DELETE", "/api/other/../projects/0b1c2d3e", True),
        ("GET", "/api/projects/0b1c2d3e-0000-4000-8000-000000000001", False),
        ("GET", "/api/admin/settings", False),
        ("PATCH", "/api/projects/0b1c2d3e", False),
        ("POST", "/api/projects", False),
        ("GET", "/api/me", False),
        ("GET", "/", False),
        ("DELETE", "/api/projects/0b1c2d3e/extra", False),
    ],
)
async def test_access_token_is_in_the_answer_only_for_the_endpoints_that_revalidate_it(
    oauth2_proxy: OAuth2Proxy,
    forge: TokenForge,
    verifier: VerifyClient,
    method: str,
    uri: str,
    forwarded: bool,
) -> None:
    session_token = forge.mint(forge.user_claims(name="Session User"))
    cookie = await oauth2_proxy.sign_in(access_token=session_token)
    client = await verifier(oauth2_proxy.url)
    bearer_token = forge.mint(forge.user_claims(name="Bearer User"))
    bearer = await _answer(client, method, uri, Authorization=f"Bearer {bearer_token}")
    assert bearer.status == 200
    assert bearer.headers.get("X-Forwarded-Access-Token") == (bearer_token if forwarded else None)
    safe = await _answer(client, "GET", "/api/me", Cookie=f"{NAME}={cookie}")
    session = await _answer(
        client, method, uri, Cookie=f"{NAME}={cookie}", **browser(safe.headers["X-CSRF-Token"])
    )
    assert session.status == 200
    assert session.headers.get("X-Forwarded-Access-Token") == (session_token if forwarded else None)


async def test_a_session_ends_its_max_age_after_first_use_however_often_it_was_used_or_refreshed(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    # oauth2-proxy resets a session's creation time on every refresh, so its cookie_expire is no
    # absolute lifetime; the verifier counts from the first request it saw for the sign-in.
    clock = ManualClock(time.time())
    cookie = await oauth2_proxy.sign_in(
        access_token=forge.mint(forge.user_claims(exp=int(time.time()) + 7200))
    )
    client = await verifier(oauth2_proxy.url, max_age_seconds=600, clock=clock)
    for _ in range(3):
        assert (await verify(client, "GET", cookie)).status == 200
        clock.advance(200)
    # 600 s after the first request (and it was in use all along): over.
    response = await verify(client, "GET", cookie)
    assert (response.status, await reason_of(response)) == (401, "session_expired")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="session_expired"'
    )
    # The browser is told to drop the cookie, and oauth2-proxy no longer has the session (nor its
    # refresh token): even with the clock turned back it is gone.
    assert response.headers["Set-Cookie"].startswith(f"{NAME}=;")
    fresh_clock_client = await verifier(oauth2_proxy.url, max_age_seconds=600)
    after = await verify(fresh_clock_client, "GET", cookie)
    assert (after.status, await reason_of(after)) == (401, "no_session")


async def test_a_new_sign_in_gets_its_own_lifetime(
    oauth2_proxy: OAuth2Proxy,
    forge: TokenForge,
    verifier: VerifyClient,
    idp: tuple[IdentityProvider, TestServer],
) -> None:
    clock = ManualClock(time.time())
    client = await verifier(oauth2_proxy.url, max_age_seconds=600, clock=clock)
    token = forge.mint(forge.user_claims(exp=int(time.time()) + 7200))
    # Older than oauth2-proxy's refresh period: its first request refreshes it.
    idp[0].next_access_token = token
    first = await oauth2_proxy.sign_in(age=599, access_token=token, refresh_token="rt-1")
    second = await oauth2_proxy.sign_in(access_token=token)
    assert (await verify(client, "GET", first)).status == 200
    assert (await verify(client, "GET", second)).status == 200
    clock.advance(2)
    assert (await reason_of(await verify(client, "GET", first))) == "session_expired"
    assert (await verify(client, "GET", second)).status == 200


async def test_a_session_counts_from_its_sign_in_not_from_its_first_request(
    oauth2_proxy: OAuth2Proxy,
    forge: TokenForge,
    verifier: VerifyClient,
    idp: tuple[IdentityProvider, TestServer],
) -> None:
    # Signed in 11 minutes ago (the callback wrote the cookie then), never used since: its first
    # request is past a 10-minute lifetime, and the session is signed out at oauth2-proxy.
    client = await verifier(oauth2_proxy.url, max_age_seconds=600)
    idp[0].next_access_token = forge.mint()
    cookie = await oauth2_proxy.sign_in(age=660, access_token=forge.mint(), refresh_token="rt-1")
    response = await verify(client, "GET", cookie)
    assert (response.status, await reason_of(response)) == (401, "session_expired")
    assert response.headers["Set-Cookie"].startswith(f"{NAME}=;")
    assert await oauth2_proxy.redis.keys(f"{NAME}-*") == []


# --- remembered sessions (verifier/sources/session_cache.py) -------------------------------------


def session_source_of(client: TestClient[Any, Any]) -> SessionSource:
    sources = [s for s in client.app[STATE].sources if isinstance(s, SessionSource)]
    assert len(sources) == 1
    return sources[0]


async def until(condition: Callable[[], bool], failure: str, *, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.01)


async def hearing_sign_outs(client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """The client once its verifier has subscribed to the sign-out channel (it remembers nothing
    before)."""
    cache = session_source_of(client).cache
    await until(lambda: cache.listening, "the verifier never subscribed to the sign-out channel")
    return client


def cache_count(client: TestClient[Any, Any], result: str) -> float:
    registry: CollectorRegistry = client.app[STATE].metrics.registry
    return registry.get_sample_value("verifier_session_cache_total", {"result": result}) or 0.0


async def end_session(client: TestClient[Any, Any], cookie: str) -> int:
    """What nginx does on /oauth2/sign_out before passing it on to oauth2-proxy."""
    response = await client.get("/session-ended", headers={"Cookie": f"theme=dark; {NAME}={cookie}"})
    await response.read()
    return response.status


async def signed_in_with_two_tasks(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> tuple[str, TestClient[Any, Any], TestClient[Any, Any]]:
    """A signed-in session's cookie and two verifier tasks that remember sessions for a minute and
    hear each other's sign-outs."""
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    task_a = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=60))
    task_b = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=60))
    return cookie, task_a, task_b


async def sign_out_through(task: TestClient[Any, Any], cookie: str, oauth2_proxy: OAuth2Proxy) -> None:
    """nginx's sign-out on ``task``: first the verifier (answered once every task has been told),
    then oauth2-proxy deletes the session."""
    assert await end_session(task, cookie) == 204
    await oauth2_proxy.sign_out(cookie)


async def test_a_remembered_session_asks_oauth2_proxy_and_redis_once_and_still_checks_every_request(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=5))
    first = await verify(client, "GET", cookie)
    assert first.status == 200
    for _ in range(3):
        again = await verify(client, "GET", cookie)
        assert again.status == 200
        # Signed afresh for each request, with a fresh CSRF token for the same sign-in.
        verify_signature(again.headers, keys=(IDENTITY_KEY,), method="GET", uri=URI, now=int(time.time()))
        assert principal_from_headers(again.headers).auth_source == "session"
        verify_token(
            again.headers["X-CSRF-Token"],
            key=derive_csrf_key(IDENTITY_KEY),
            binding=session_binding(cookie),
            now=int(time.time()),
        )
    assert upstream_count(client, "oauth2_proxy", "ok") == 1
    # The sign-in's start time, once: read (a miss) and recorded.
    assert upstream_count(client, "redis", "ok") == 2
    assert (cache_count(client, "miss"), cache_count(client, "hit")) == (1, 3)
    # Unsafe requests from memory still spend their CSRF token in Redis, exactly once.
    token = first.headers["X-CSRF-Token"]
    assert (await verify(client, "POST", cookie, **browser(token))).status == 200
    replay = await verify(client, "POST", cookie, **browser(token))
    await assert_refused_without_challenge(replay, 403, "csrf_token_spent")
    assert upstream_count(client, "oauth2_proxy", "ok") == 1


async def test_a_critical_request_reads_the_session_afresh_and_never_from_memory(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    # A step-up sign-in keeps the cookie and changes the token behind it: the requests whose token
    # the API re-validates (deleting a project here) must carry the token as it is now.
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=60))
    token = (await verify(client, "GET", cookie)).headers["X-CSRF-Token"]
    for _ in range(2):
        response = await client.get(
            "/verify",
            headers={
                "X-Original-Method": "DELETE",
                "X-Original-URI": "/api/projects/0b1c2d3e-0000-4000-8000-000000000001",
                "Cookie": f"{NAME}={cookie}",
                **{k.replace("_", "-"): v for k, v in browser(token).items()},
            },
        )
        await response.read()
        assert response.status == 200
        assert response.headers["X-Forwarded-Access-Token"]
        token = response.headers["X-CSRF-Token"]
    assert upstream_count(client, "oauth2_proxy", "ok") == 3
    assert (cache_count(client, "miss"), cache_count(client, "hit")) == (1, 0)
    # Every other request is still answered from memory.
    assert (await verify(client, "GET", cookie)).status == 200
    assert upstream_count(client, "oauth2_proxy", "ok") == 3
    assert cache_count(client, "hit") == 1


async def test_a_cookie_that_differs_by_one_byte_is_not_taken_from_memory(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=5))
    assert (await verify(client, "GET", cookie)).status == 200
    # Same ticket, forged MAC: oauth2-proxy is asked, and refuses it. Its session is still stored, so
    # the refusal is not passed on as a sign-out (no cookie deletion): 503, never 200 from memory.
    payload, stamp, mac = cookie.split("|")
    forged = "|".join((payload, stamp, ("A" if mac[0] != "A" else "B") + mac[1:]))
    response = await verify(client, "GET", forged)
    await assert_refused_without_challenge(response, 503, "session_backend_unavailable")
    assert "Set-Cookie" not in response.headers
    assert upstream_count(client, "oauth2_proxy", "ok") == 1
    assert upstream_count(client, "oauth2_proxy", "refused") == 1


async def test_sign_out_through_one_task_ends_the_remembered_session_on_every_task_at_once(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie, task_a, task_b = await signed_in_with_two_tasks(oauth2_proxy, forge, verifier)
    for task in (task_a, task_b, task_a, task_b):
        assert (await verify(task, "GET", cookie)).status == 200
    assert cache_count(task_b, "hit") == 1
    await sign_out_through(task_a, cookie, oauth2_proxy)
    for task in (task_b, task_a):
        response = await verify(task, "GET", cookie)
        assert (response.status, await reason_of(response)) == (401, "no_session")
    assert cache_count(task_b, "hit") == 1


async def test_sign_out_ends_every_spelling_of_the_session_that_oauth2_proxy_reads_on_every_task(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie, task_a, task_b = await signed_in_with_two_tasks(oauth2_proxy, forge, verifier)
    # Spellings oauth2-proxy reads as the same session (Go's Request.Cookie takes the first cookie of
    # the name; a stray chunk, a quoted value or other cookies change nothing for it) but whose bytes
    # differ from the one the browser signs out with.
    spellings = [
        f"{NAME}={cookie}; {NAME}_0=stray",
        f'other=1; {NAME}="{cookie}"; {NAME}=second',
        f"{NAME}={cookie}",
    ]
    for spelling in spellings * 2:
        assert (await verify(task_b, "GET", None, Cookie=spelling)).status == 200
    assert cache_count(task_b, "hit") >= 3
    await sign_out_through(task_a, cookie, oauth2_proxy)
    for spelling in spellings:
        response = await verify(task_b, "GET", None, Cookie=spelling)
        assert (response.status, await reason_of(response)) == (401, "no_session"), spelling


async def test_a_session_ended_without_a_broadcast_is_refused_within_the_cache_lifetime(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=2))
    assert (await verify(client, "GET", cookie)).status == 200
    # Deleted from Redis behind the verifier's back (by hand, or by oauth2-proxy after a revoked
    # refresh token): no announcement.
    ended_at = time.monotonic()
    for key in await oauth2_proxy.redis.keys(f"{NAME}-*"):
        await oauth2_proxy.redis.delete(key)
    statuses: list[int] = []
    while True:
        response = await verify(client, "GET", cookie)
        statuses.append(response.status)
        if response.status != 200:
            break
        assert time.monotonic() - ended_at < 2 + 0.5, "still answered from memory past the cache lifetime"
        await asyncio.sleep(0.1)
    assert (response.status, await reason_of(response)) == (401, "no_session")
    assert statuses[0] == 200  # it was answered from memory for a while: the bound is what is tested
    assert cache_count(client, "hit") >= 1


async def test_an_ended_cookie_is_not_remembered_again_by_a_lookup_that_was_in_flight(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
    client = await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=60))
    assert await end_session(client, cookie) == 204
    # oauth2-proxy has not deleted it yet (the sign-out is on its way): allowed, not remembered.
    for _ in range(2):
        assert (await verify(client, "GET", cookie)).status == 200
    assert upstream_count(client, "oauth2_proxy", "ok") == 2
    assert len(session_source_of(client).cache) == 0


async def test_a_verifier_that_cannot_hear_sign_outs_answers_nothing_from_memory(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient, tmp_path: Path
) -> None:
    own_redis = start_redis(tmp_path)
    try:
        cookie = await oauth2_proxy.sign_in(access_token=forge.mint())
        client = await hearing_sign_outs(await verifier(oauth2_proxy.url, own_redis.url, cache_seconds=60))
        assert (await verify(client, "GET", cookie)).status == 200
        assert len(session_source_of(client).cache) == 1
        own_redis.stop()
        cache = session_source_of(client).cache
        await until(lambda: not cache.listening, "the verifier did not notice Redis going away")
        assert len(cache) == 0
        # Its Redis is gone: the sign-in's start time cannot be read, so the answer is 503, not 200
        # from memory.
        response = await verify(client, "GET", cookie)
        await assert_refused_without_challenge(response, 503, "session_backend_unavailable")
    finally:
        own_redis.stop()


async def test_a_remembered_session_is_not_used_past_its_absolute_lifetime(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    clock = ManualClock(time.time())
    cookie = await oauth2_proxy.sign_in(
        access_token=forge.mint(forge.user_claims(exp=int(time.time()) + 7200))
    )
    client = await hearing_sign_outs(
        await verifier(oauth2_proxy.url, max_age_seconds=3, clock=clock, cache_seconds=60)
    )
    assert (await verify(client, "GET", cookie)).status == 200
    clock.advance(2)
    assert (await verify(client, "GET", cookie)).status == 200
    assert cache_count(client, "hit") == 1
    clock.advance(1)
    response = await verify(client, "GET", cookie)
    assert (response.status, await reason_of(response)) == (401, "session_expired")
    assert response.headers["Set-Cookie"].startswith(f"{NAME}=;")


async def test_a_remembered_token_that_no_longer_passes_sends_the_request_to_oauth2_proxy(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    clock = ManualClock(time.time())
    # Expired 50 s ago: still inside the 60 s leeway, for 10 more seconds.
    expired = int(time.time()) - 50
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(forge.user_claims(exp=expired)))
    client = await hearing_sign_outs(await verifier(oauth2_proxy.url, clock=clock, cache_seconds=60))
    assert (await verify(client, "GET", cookie)).status == 200
    # Past the leeway, well within the cache's lifetime: the remembered token fails, so oauth2-proxy
    # is asked (it would refresh; this session has no refresh token and hands back the same token,
    # which is refused with its own reason).
    clock.advance(15)
    response = await verify(client, "GET", cookie)
    assert (response.status, await reason_of(response)) == (401, "expired")
    assert cache_count(client, "hit") == 1
    assert upstream_count(client, "oauth2_proxy", "ok") == 2
    assert len(session_source_of(client).cache) == 0
