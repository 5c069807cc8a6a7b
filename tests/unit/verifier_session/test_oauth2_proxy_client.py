"""The oauth2-proxy client against a real oauth2-proxy (and, for failures it cannot produce, a bad backend).

See ``conftest.py`` for how the real oauth2-proxy is run and given sessions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from verifier.core.reasons import Reason, http_status
from verifier.core.session_cookies import session_binding, session_cookies
from verifier.sources.session.oauth2_proxy import OAuth2ProxyClient, SessionLookup
from verifier.sources.session.rejected import SessionRejected
from verifier.sources.session.settings import SessionSettings

from .conftest import NAME, IdentityProvider, OAuth2Proxy, free_port
from .oauth2_proxy_cookie import Ticket


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., OAuth2ProxyClient]]:
    clients: list[OAuth2ProxyClient] = []

    def build(url: str, **kwargs: object) -> OAuth2ProxyClient:
        source = OAuth2ProxyClient(SessionSettings(oauth2_proxy_url=url, cookie_name=NAME, **kwargs))  # type: ignore[arg-type]
        clients.append(source)
        return source

    yield build
    for source in clients:
        await source.close()


async def lookup_reason(source: OAuth2ProxyClient, cookie_header: str) -> SessionRejected:
    with pytest.raises(SessionRejected) as caught:
        await source.lookup(source.cookies_from([cookie_header]))
    return caught.value


# --- against the real oauth2-proxy ------------------------------------------------------------------


async def test_live_session_yields_its_access_token_bound_to_the_ticket(
    oauth2_proxy: OAuth2Proxy, make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    id_token = oauth2_proxy.forge.id_token()
    cookie = await oauth2_proxy.sign_in(access_token="at-alice", id_token=id_token)
    source = make_client(oauth2_proxy.url)
    lookup = await source.lookup(source.cookies_from([f"theme=dark; {NAME}={cookie}"]))
    # The ID token comes as oauth2-proxy's set_authorization_header sends it (Authorization: Bearer).
    assert lookup == SessionLookup("at-alice", session_binding(cookie), None, id_token)


async def test_session_due_for_refresh_returns_the_new_token_and_cookie_with_the_same_binding(
    oauth2_proxy: OAuth2Proxy,
    idp: tuple[IdentityProvider, TestServer],
    make_client: Callable[..., OAuth2ProxyClient],
) -> None:
    cookie = await oauth2_proxy.sign_in(age=120, access_token="at-old", refresh_token="rt-first")
    source = make_client(oauth2_proxy.url)
    lookup = await source.lookup(source.cookies_from([f"{NAME}={cookie}"]))
    assert idp[0].grants == [{"grant_type": "refresh_token", "refresh_token": "rt-first"}]
    assert lookup.access_token == "at-refreshed"
    assert lookup.set_cookie is not None
    assert "HttpOnly" in lookup.set_cookie and "Secure" in lookup.set_cookie
    refreshed = session_cookies([lookup.set_cookie.split(";", 1)[0]], NAME)[0][1]
    assert refreshed != cookie
    # The refreshed cookie belongs to the same sign-in: CSRF tokens minted before the refresh still fit.
    assert session_binding(refreshed) == lookup.binding == session_binding(cookie)
    again = await source.lookup(((NAME, refreshed),))
    assert (again.access_token, again.set_cookie) == ("at-refreshed", None)


async def test_revoked_refresh_is_no_session_and_passes_back_the_clearing_cookie(
    oauth2_proxy: OAuth2Proxy, make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    cookie = await oauth2_proxy.sign_in(age=120, refresh_token="rt-revoked")
    rejected = await lookup_reason(make_client(oauth2_proxy.url), f"{NAME}={cookie}")
    assert rejected.reason == Reason.NO_SESSION
    assert http_status(rejected.reason) == 401
    assert rejected.set_cookie is not None and rejected.set_cookie.startswith(f"{NAME}=;")
    assert "Max-Age=0" in rejected.set_cookie


async def test_forged_cookie_is_no_session_with_a_clearing_cookie(
    oauth2_proxy: OAuth2Proxy, make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    forged = Ticket.new(NAME).cookie_value("another-secret-of-32-characters!", int(time.time()))
    rejected = await lookup_reason(make_client(oauth2_proxy.url), f"{NAME}={forged}")
    assert (rejected.reason, http_status(rejected.reason)) == (Reason.NO_SESSION, 401)
    assert rejected.set_cookie is not None and "Max-Age=0" in rejected.set_cookie


async def test_signed_cookie_whose_session_left_redis_is_no_session(
    oauth2_proxy: OAuth2Proxy, make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    cookie = await oauth2_proxy.sign_in()
    await oauth2_proxy.redis.flushdb()
    rejected = await lookup_reason(make_client(oauth2_proxy.url), f"{NAME}={cookie}")
    assert (rejected.reason, http_status(rejected.reason)) == (Reason.NO_SESSION, 401)


async def test_large_access_token_is_carried_whole(
    oauth2_proxy: OAuth2Proxy, make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    big = "eyJ" + "x" * 12_000
    cookie = await oauth2_proxy.sign_in(access_token=big)
    source = make_client(oauth2_proxy.url)
    assert (await source.lookup(((NAME, cookie),))).access_token == big


async def test_request_without_session_cookie_is_no_session_without_asking_anyone(
    make_client: Callable[..., OAuth2ProxyClient],
) -> None:
    rejected = await lookup_reason(make_client(f"http://127.0.0.1:{free_port()}"), "theme=dark")
    assert (rejected.reason, http_status(rejected.reason)) == (Reason.NO_SESSION, 401)


# --- failures a healthy oauth2-proxy does not produce -------------------------------------------------


@dataclass
class BadBackend:
    """An HTTP server on the oauth2-proxy address that answers /oauth2/auth however a test needs."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    seen_cookies: list[str] = field(default_factory=list)
    redirect_hits: int = 0

    async def auth(self, request: web.Request) -> web.Response:
        self.seen_cookies.append(request.headers.get("Cookie", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        response = web.Response(status=self.status, headers=self.headers)
        # Not Secure, so that a client-side cookie jar (which must not exist) would replay it over http.
        response.set_cookie(NAME, "refreshed|2|sig", path="/", httponly=True)
        response.set_cookie("backend_pref", "1", path="/")
        return response

    async def landing(self, request: web.Request) -> web.Response:
        self.redirect_hits += 1
        return web.Response(status=202, headers={"X-Auth-Request-Access-Token": "from-redirect"})


@pytest.fixture
async def bad_backend() -> AsyncIterator[tuple[BadBackend, str]]:
    backend = BadBackend()
    app = web.Application()
    app.router.add_get("/oauth2/auth", backend.auth)
    app.router.add_get("/elsewhere", backend.landing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield backend, f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.mark.parametrize("status", [500, 502, 503, 404, 400, 204])
async def test_unexpected_status_is_backend_unavailable_with_status_503(
    bad_backend: tuple[BadBackend, str], make_client: Callable[..., OAuth2ProxyClient], status: int
) -> None:
    backend, url = bad_backend
    backend.status = status
    backend.headers = {"X-Auth-Request-Access-Token": "at-should-not-be-used"}
    rejected = await lookup_reason(make_client(url), f"{NAME}=v|1|s")
    assert (rejected.reason, http_status(rejected.reason)) == (Reason.SESSION_BACKEND_UNAVAILABLE, 503)
    assert rejected.set_cookie is None


async def test_redirect_is_not_followed_and_is_backend_unavailable(
    bad_backend: tuple[BadBackend, str], make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    backend, url = bad_backend
    backend.status = 302
    backend.headers = {"Location": f"{url}/elsewhere"}
    rejected = await lookup_reason(make_client(url), f"{NAME}=v|1|s")
    assert rejected.reason == Reason.SESSION_BACKEND_UNAVAILABLE
    assert backend.redirect_hits == 0


async def test_slow_backend_times_out_as_backend_unavailable(
    bad_backend: tuple[BadBackend, str], make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    backend, url = bad_backend
    backend.status, backend.delay = 202, 5.0
    backend.headers = {"X-Auth-Request-Access-Token": "too-late"}
    started = time.monotonic()
    rejected = await lookup_reason(make_client(url, timeout_seconds=0.3), f"{NAME}=v|1|s")
    assert rejected.reason == Reason.SESSION_BACKEND_UNAVAILABLE
    assert time.monotonic() - started < 3.0


async def test_unreachable_backend_is_backend_unavailable(
    make_client: Callable[..., OAuth2ProxyClient],
) -> None:
    rejected = await lookup_reason(make_client(f"http://127.0.0.1:{free_port()}"), f"{NAME}=v|1|s")
    assert (rejected.reason, http_status(rejected.reason)) == (Reason.SESSION_BACKEND_UNAVAILABLE, 503)
    assert "v|1|s" not in str(rejected)


@pytest.mark.parametrize(
    ("answer", "reason", "status"),
    [
        pytest.param(202, Reason.SESSION_TOKEN_MISSING, 500, id="accepted-without-access-token"),
        pytest.param(403, Reason.SESSION_FORBIDDEN, 403, id="forbidden-by-oauth2-proxy"),
    ],
)
async def test_oauth2_proxy_answer_maps_to_its_session_reason_and_status(
    bad_backend: tuple[BadBackend, str],
    make_client: Callable[..., OAuth2ProxyClient],
    answer: int,
    reason: Reason,
    status: int,
) -> None:
    backend, url = bad_backend
    backend.status = answer
    rejected = await lookup_reason(make_client(url), f"{NAME}=v|1|s")
    assert (rejected.reason, http_status(rejected.reason)) == (reason, status)


async def test_only_session_cookies_are_forwarded_and_none_are_remembered_between_users(
    bad_backend: tuple[BadBackend, str], make_client: Callable[..., OAuth2ProxyClient]
) -> None:
    backend, url = bad_backend
    backend.status = 401
    source = make_client(url)
    await lookup_reason(source, f"tracking=1; {NAME}_0=aa; {NAME}=user-a|1|s; {NAME}_1=bb; pref=x")
    # The backend answered with a Set-Cookie for user A; user B's lookup must not carry it.
    await lookup_reason(source, f"{NAME}=user-b|1|s")
    assert backend.seen_cookies == [f"{NAME}=user-a|1|s; {NAME}_0=aa; {NAME}_1=bb", f"{NAME}=user-b|1|s"]


async def test_shared_client_session_given_by_the_app_is_used_and_not_closed(
    bad_backend: tuple[BadBackend, str],
) -> None:
    backend, url = bad_backend
    backend.status = 401
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        source = OAuth2ProxyClient(SessionSettings(oauth2_proxy_url=url, cookie_name=NAME), http=http)
        await lookup_reason(source, f"{NAME}=v|1|s")
        await source.close()
        assert not http.closed
    assert backend.seen_cookies == [f"{NAME}=v|1|s"]
