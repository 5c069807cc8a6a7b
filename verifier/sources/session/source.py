"""The session source itself: the flow from a request's cookie to a decision (see the package's
docstring), and how the production one is put together."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from aiohttp import web

from verifier.core.decision import Decision, OriginalRequest
from verifier.core.forwarded_routes import ForwardedTokenRoute, needs_forwarded_token
from verifier.core.id_tokens import SignInSession, read_sign_in_session
from verifier.core.reasons import Reason, TokenRejected
from verifier.core.session_cookies import (
    cookie_header,
    session_cookie_time,
    session_cookie_value,
    session_ticket_id,
)
from verifier.keys.provider import with_key_refetch
from verifier.keys.upstream import UpstreamMetrics
from verifier.sources.access_token import TokenAuthenticator
from verifier.sources.credential_source import CredentialSource, SessionEnder
from verifier.sources.csrf import HEADER_CSRF_TOKEN, CsrfGuard, CsrfRejected, SpentTokenStore, redis_client
from verifier.sources.session.oauth2_proxy import OAuth2ProxyClient, SessionLookup
from verifier.sources.session.rejected import SessionRejected
from verifier.sources.session.settings import SessionSourceSettings
from verifier.sources.session.store import (
    ENDED,
    SESSION_START_KEEP_SECONDS,
    SessionRegistry,
    StoredSessions,
)
from verifier.sources.session_cache import (
    RememberedSession,
    SessionCache,
    SessionCacheMetrics,
    SessionEndBroadcast,
    cache_key,
)

log = logging.getLogger(__name__)


class SessionSource(CredentialSource, SessionEnder):
    """The oauth2-proxy session as a credential source for ``/verify`` (``source="session"``).

    Consulted only when the request has no ``Authorization`` header (the bearer source comes first)
    and carries the session cookie. The flow, each step failing closed:

    1. oauth2-proxy's ``/oauth2/auth`` turns the cookie into an access token (401 ``no_session``,
       403 ``session_forbidden``, 503 ``session_backend_unavailable``, 500 ``session_token_missing``),
       and Redis says when the sign-in began (401 ``session_expired`` past the absolute lifetime,
       401 ``session_ended`` once its Entra session or its user's sessions were ended); a sign-in seen
       for the first time is recorded with the time oauth2-proxy wrote its cookie at the callback and
       the ``sid`` and ``oid`` of its ID token (:class:`SessionRegistry`); a live session found
       within the last few seconds is taken from :class:`SessionCache` instead;
    2. that token is validated and the route policy applied exactly as for a bearer token;
    3. for an unsafe method, the CSRF checks (403 ``csrf_*``; 503 ``csrf_store_unavailable``);
    4. an allowed answer carries a fresh ``X-CSRF-Token`` for the SPA's next unsafe request.

    A ``Set-Cookie`` from oauth2-proxy (a refreshed or cleared session) rides along on every answer,
    allowed or not, so the browser never keeps presenting a cookie oauth2-proxy has replaced.
    """

    name = "session"

    def __init__(
        self,
        client: OAuth2ProxyClient,
        csrf: CsrfGuard,
        registry: SessionRegistry,
        stored: StoredSessions,
        cache: SessionCache | None = None,
        broadcast: SessionEndBroadcast | None = None,
        *,
        fresh_routes: tuple[ForwardedTokenRoute, ...] = (),
    ) -> None:
        self.client = client
        #: Requests the session is read afresh for, never from memory: the critical ones, whose token
        #: the API re-validates (VERIFIER_REVALIDATED_ROUTES). A step-up sign-in keeps the cookie and
        #: changes the token in it; a remembered copy would keep refusing the step-up it asked for.
        self.fresh_routes = fresh_routes
        self.csrf = csrf
        self.registry = registry
        self.stored = stored
        self.cache = cache if cache is not None else SessionCache(0)
        self.broadcast = broadcast

    async def start(self) -> None:
        """Start hearing other tasks' sign-outs (inside the running event loop)."""
        if self.broadcast is not None:
            self.broadcast.start()

    def present(self, request: web.Request) -> bool:
        return bool(self.client.cookies_from(request.headers.getall("Cookie", ())))

    async def check_credentials(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        # One instant for the whole decision: the session's age, the remembered copy and the CSRF
        # token are all judged as of the request's arrival.
        now = int(tokens.clock())
        cookies = self.client.cookies_from(request.headers.getall("Cookie", ()))
        key = cache_key(cookie_header(cookies))
        max_age = self.client.settings.max_age_seconds
        fresh = needs_forwarded_token(original.method, original.uri, self.fresh_routes)
        remembered = None if fresh else self.cache.get(key, now=now, max_age=max_age)
        if remembered is not None:
            decision = await tokens.check_token(remembered.access_token, original, source="session")
            if decision.allowed:
                return await self._with_csrf(request, original, decision, remembered.binding, now=now)
            # The remembered token no longer passes (it expired, or the route refuses it): ask
            # oauth2-proxy, which refreshes an expired token, and let its answer decide.
            self.cache.forget(key)
        try:
            lookup = await self.client.lookup(cookies)
            started = await self._started_at(lookup, cookies, tokens, now=now)
        except SessionRejected as rejected:
            if rejected.reason is Reason.NO_SESSION:
                rejected = await self._confirmed_gone(cookies, rejected)
            return Decision.reject(rejected, source=self.name, headers=_set_cookie(rejected.set_cookie))
        except TokenRejected as rejected:
            log.warning("the session's ID token was refused: %s", rejected.reason)
            return Decision.reject(rejected, source=self.name)
        if started == ENDED:
            ended = SessionRejected(Reason.SESSION_ENDED, "the session was ended without its cookie")
            return await self._sign_out(cookies, lookup.binding, ended)
        if now - started >= max_age:
            expired = SessionRejected(Reason.SESSION_EXPIRED, f"signed in more than {max_age} s ago")
            return await self._sign_out(cookies, lookup.binding, expired)
        decision = await tokens.check_token(lookup.access_token, original, source="session")
        if decision.allowed:
            if lookup.set_cookie is None:
                self.cache.remember(key, RememberedSession(lookup.access_token, lookup.binding, started))
            decision = await self._with_csrf(request, original, decision, lookup.binding, now=now)
        return decision.with_headers(*_set_cookie(lookup.set_cookie))

    async def end(self, cookie_headers: Iterable[str]) -> None:
        """The browser with these ``Cookie`` headers is signing out (nginx asks before it passes the
        sign-out on): no task answers for that session from memory any more, whatever the spelling
        of the cookie that presents it."""
        cookies = self.client.cookies_from(cookie_headers)
        if cookies:
            await self._end(self.client.binding_of(cookies))

    async def end_sign_in(self, sid: str) -> int:
        """The identity provider ended its sign-in session ``sid`` (front-channel logout): end every
        session of it, on every task, and any recorded later; how many were ended."""
        return await self._end_all(await self.registry.end_sign_in(sid, keep_seconds=self._keep_seconds))

    async def end_user(self, oid: str, *, now: int) -> int:
        """End every session of user ``oid`` begun before ``now``, on every task; how many."""
        return await self._end_all(
            await self.registry.end_user(oid, now=now, keep_seconds=self._keep_seconds)
        )

    async def _end_all(self, bindings: list[bytes]) -> int:
        """Tell every task the sessions the registry has just ended; how many."""
        for binding in bindings:
            await self._end(binding)
        return len(bindings)

    @property
    def _keep_seconds(self) -> int:
        return self.client.settings.max_age_seconds + SESSION_START_KEEP_SECONDS

    async def _end(self, binding: bytes) -> None:
        if self.broadcast is not None:
            await self.broadcast.announce(binding)
        else:
            self.cache.end(binding)

    async def _confirmed_gone(
        self, cookies: Sequence[tuple[str, str]], refused: SessionRejected
    ) -> SessionRejected:
        """oauth2-proxy's "no session", once Redis confirms it: a session that is still stored was
        not read (a store fault, oauth2-proxy without the keep-sessions patch), so the answer is 503
        and its cookie deletion is dropped; the same cookie works again when the store answers."""
        name = self.client.settings.cookie_name
        ticket_id = session_ticket_id(session_cookie_value(cookies, name), name)
        if ticket_id is None:
            return refused
        try:
            if not await self.stored.holds(ticket_id):
                if await self.registry.started_at(self.client.binding_of(cookies)) == ENDED:
                    # Ended by sid or oid: oauth2-proxy's session was deleted then; say so.
                    return SessionRejected(
                        Reason.SESSION_ENDED, "the session was ended", set_cookie=refused.set_cookie
                    )
                return refused
        except SessionRejected as unavailable:
            return unavailable
        log.warning("oauth2-proxy refused a session that is still stored; kept (answered 503)")
        return SessionRejected(
            Reason.SESSION_BACKEND_UNAVAILABLE, "oauth2-proxy could not read a session that is still stored"
        )

    async def _with_csrf(
        self,
        request: web.Request,
        original: OriginalRequest,
        decision: Decision,
        binding: bytes,
        *,
        now: int,
    ) -> Decision:
        """An allowed decision after the CSRF checks, with the next ``X-CSRF-Token``; or the refusal."""
        try:
            await self.csrf.check(original.method, request.headers, binding, now=now)
        except CsrfRejected as rejected:
            rejected.oid = decision.oid
            return Decision.reject(rejected, source=self.name)
        return decision.with_headers((HEADER_CSRF_TOKEN, self.csrf.mint(binding, now=now)))

    async def _started_at(
        self,
        lookup: SessionLookup,
        cookies: Sequence[tuple[str, str]],
        tokens: TokenAuthenticator,
        *,
        now: int,
    ) -> int:
        """When this sign-in began, or :data:`ENDED`; recorded if no task has seen it yet.

        A new sign-in began when oauth2-proxy wrote its first cookie at the callback (the cookie's
        signed time, never later than now), not at its first request: a cookie left unused after
        sign-in does not live longer for it.
        """
        started = await self.registry.started_at(lookup.binding)
        if started is not None:
            return started
        sign_in = await self._sign_in_of(lookup, tokens)
        value = session_cookie_value(cookies, self.client.settings.cookie_name)
        written = session_cookie_time(value)
        start = now if written is None else min(now, written)
        recorded = await self.registry.register(
            lookup.binding,
            ticket_id=session_ticket_id(value, self.client.settings.cookie_name),
            oid=sign_in.oid,
            sid=sign_in.sid,
            start=start,
            keep_seconds=self._keep_seconds,
        )
        if not sign_in.sid:
            log.warning("a session's ID token names no sid: only sign-out here or everywhere ends it")
        return recorded

    async def _sign_in_of(self, lookup: SessionLookup, tokens: TokenAuthenticator) -> SignInSession:
        """Who signed in and in which Entra session, from the session's verified ID token."""
        if not lookup.id_token:
            raise SessionRejected(
                Reason.SESSION_TOKEN_MISSING,
                "oauth2-proxy answered without the session's ID token; is set_authorization_header set?",
            )
        id_token = lookup.id_token
        return await with_key_refetch(
            tokens.keys,
            lambda keys: read_sign_in_session(id_token, keys, tokens.settings),
            refetch_when_tenant_unloaded=True,
        )

    async def _sign_out(
        self, cookies: Sequence[tuple[str, str]], binding: bytes, why: SessionRejected
    ) -> Decision:
        """401 for ``why`` (expired, ended), the session signed out at oauth2-proxy, its deleting
        cookie."""
        await self._end(binding)
        cleared = await self.client.sign_out(cookies)
        return Decision.reject(why, source=self.name, headers=_set_cookie(cleared))

    async def close(self) -> None:
        if self.broadcast is not None:
            await self.broadcast.close()
        await self.client.close()
        await self.csrf.store.close()


def _set_cookie(value: str | None) -> tuple[tuple[str, str], ...]:
    """The ``Set-Cookie`` header oauth2-proxy asked to pass on, if any."""
    return (("Set-Cookie", value),) if value else ()


class SessionSourceMetrics(UpstreamMetrics, SessionCacheMetrics, Protocol):
    """The service's metrics, as far as the session source reports to them."""


def build_session_source(
    settings: SessionSourceSettings,
    *,
    metrics: SessionSourceMetrics | None = None,
    clock: Callable[[], float] = time.time,
    fresh_routes: tuple[ForwardedTokenRoute, ...] = (),
) -> SessionSource:
    """The production session source: pooled HTTP to oauth2-proxy, pooled Redis for spent tokens.

    Nothing connects here; both pools open on first use inside the running event loop (the spent CSRF
    tokens, the sign-in records and the sign-out announcements share one Redis pool; the
    listener starts with the app, :meth:`SessionSource.start`). ``metrics`` (the app's) gets the upstream
    latencies and the remembered-session hits and misses. ``fresh_routes``: see :class:`SessionSource`.
    """
    redis = redis_client(settings.redis_url)
    cache = SessionCache(
        settings.session.cache_seconds, settings.session.cache_size, clock=clock, metrics=metrics
    )
    return SessionSource(
        OAuth2ProxyClient(settings.session, metrics=metrics),
        CsrfGuard(settings.csrf, SpentTokenStore(redis, metrics=metrics)),
        SessionRegistry(redis, metrics=metrics),
        StoredSessions(redis, metrics=metrics),
        cache,
        SessionEndBroadcast(redis, cache),
        fresh_routes=fresh_routes,
    )
