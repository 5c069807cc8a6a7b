"""The session source: a browser's oauth2-proxy cookie turned into an access token.

A browser signed in through oauth2-proxy holds only an opaque session cookie; the tokens stay in
oauth2-proxy's Redis session store. For a request that carries that cookie and no bearer token the
verifier asks oauth2-proxy's ``/oauth2/auth`` endpoint (over localhost, run with ``--set-xauthrequest
--pass-access-token``), which answers

* ``202 Accepted`` with ``X-Auth-Request-Access-Token`` (plus ``Set-Cookie`` when it refreshed the
  session) for a live session,
* ``401`` when there is no valid session (with a clearing ``Set-Cookie`` when the cookie was bad or a
  refresh failed for good),
* ``403`` when one of its own ``allowed_*`` constraints refuses the user.

The access token it returns is then validated exactly like a bearer token by the caller; this module
never trusts it on oauth2-proxy's word.

Only the session cookie (and the ``<name>_<n>`` chunks oauth2-proxy uses when a cookie-store session is
too big for one cookie) is forwarded: the rest of the browser's cookies are none of oauth2-proxy's
business and may belong to other applications on the site.

Failure is closed: oauth2-proxy unreachable, slow, or answering anything unexpected means the request
is refused with ``session_backend_unavailable`` (status 503: it is not the user's fault and it passes;
nginx reads the status and reason from the verifier's answer and repeats them), never allowed.

A session store outage must not sign anyone out. oauth2-proxy as built here (``oauth2-proxy/patches``)
answers a session it could not read for a store fault with 503, keeping the session and the cookie;
upstream oauth2-proxy answers it like "this cookie names no session", with 401 and a ``Set-Cookie``
that deletes the cookie (and a ``DEL`` of the session). The verifier does not rely on the patch: before
it passes a 401 on, it asks Redis itself whether the session the cookie names is still stored
(:class:`StoredSessions`, one ``EXISTS``) and checks oauth2-proxy's readiness probe (``/ready``, which
pings its session store). A session still stored, or a store that does not answer, makes the answer
503 ``session_backend_unavailable`` and the deleting ``Set-Cookie`` is dropped, so the browser keeps
the cookie and the same session works again once the store is back.

Sessions end a fixed time after sign-in (``max_age_seconds``, one hour by default), however often they
are refreshed. oauth2-proxy cannot do this: its ``cookie_expire`` counts from the session's creation
time, and every refresh saves the session with a new one, so on its own a session lives as long as the
refresh token does (90 days at Entra by default). The verifier records when it first saw each sign-in
(keyed by the session's binding, which survives refreshes, see :func:`session_binding`) in Redis, and
once ``max_age_seconds`` have passed it signs the session out at oauth2-proxy (deleting it from
Redis, so the refresh token is gone with it) and answers 401 ``session_expired`` with oauth2-proxy's
deleting ``Set-Cookie``. The clock starts at the first request after the callback, seconds after the
user signed in at the identity provider. Entra's Conditional Access sign-in frequency can shorten
this further; the edge does not rely on it, since not every tenant has it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from verifier.core.decision import Decision, OriginalRequest
from verifier.core.reasons import Reason, Rejection
from verifier.keys.http_client import HttpClientOptions, LazyHttpClient
from verifier.keys.upstream import UpstreamMetrics, timed_upstream
from verifier.sources.access_token import TokenAuthenticator
from verifier.sources.credential_source import CredentialSource, SessionEnder
from verifier.sources.csrf import (
    HEADER_CSRF_TOKEN,
    CsrfGuard,
    CsrfRejected,
    CsrfSettings,
    SpentTokenStore,
    redis_client,
)
from verifier.sources.session_cache import (
    DEFAULT_SESSION_CACHE_SECONDS,
    DEFAULT_SESSION_CACHE_SIZE,
    RememberedSession,
    SessionCache,
    SessionCacheMetrics,
    SessionEndBroadcast,
    cache_key,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_COOKIE_NAME = "__Host-oauth2_proxy"
DEFAULT_OAUTH2_PROXY_URL = "http://127.0.0.1:4180"
AUTH_PATH = "/oauth2/auth"
SIGN_OUT_PATH = "/oauth2/sign_out"
#: The default absolute session lifetime, counted from the first request after sign-in.
DEFAULT_SESSION_MAX_AGE_SECONDS = 3600
#: How long a sign-in's start time is kept past its lifetime. An expired session is signed out at
#: once; the margin only matters if that sign-out failed and the session stayed in use, and must
#: outlast any retry so the session is never taken for a new one.
SESSION_START_KEEP_SECONDS = 24 * 3600
SESSION_START_KEY_PREFIX = "eba:session-start:"
#: oauth2-proxy's readiness probe: 200 only when its session store answers a ping.
READY_PATH = "/ready"
#: The probe runs after a full /oauth2/auth round trip and must fit in nginx's time budget with it.
READY_TIMEOUT_SECONDS = 1.0
HEADER_ACCESS_TOKEN = "X-Auth-Request-Access-Token"

#: oauth2-proxy splits a cookie-store session into at most a handful of 4 KB chunks; more than this is
#: not something it wrote.
MAX_COOKIE_CHUNKS = 16
#: Upper bound on what is forwarded to oauth2-proxy, so a hostile client cannot make the verifier
#: relay megabytes of cookie.
MAX_FORWARDED_COOKIE_BYTES = 16 * 1024
#: Entra access tokens with many claims run to several KB; aiohttp's default 8 KB header limit would
#: turn a legitimate large token into a backend error.
MAX_RESPONSE_HEADER_BYTES = 64 * 1024


class SessionRejected(Rejection):
    """No usable session. ``reason`` is one of the ``session_*`` codes; ``set_cookie`` is a
    ``Set-Cookie`` value oauth2-proxy sent with its refusal (it clears a broken cookie) that should
    still reach the browser.
    """

    def __init__(self, reason: Reason, detail: str, *, set_cookie: str | None = None) -> None:
        super().__init__(reason, detail)
        self.set_cookie = set_cookie


# --- pure parts -------------------------------------------------------------------------------------


def _is_cookie_text(text: str) -> bool:
    # RFC 6265 cookie-octets are printable ASCII without space, '"', ',', ';' and '\'; being a little
    # more lenient (oauth2-proxy's Go parser is) is fine as long as nothing can break the header we
    # build: no control characters, no ';'.
    return text.isascii() and text.isprintable() and ";" not in text


def is_cookie_name(name: str) -> bool:
    """A cookie name the verifier can forward and match: non-empty printable ASCII, no ``;``, ``=``
    or space."""
    return bool(name) and _is_cookie_text(name) and "=" not in name and " " not in name


def parse_cookie_header(headers: Iterable[str]) -> list[tuple[str, str]]:
    """``name=value`` pairs from one or more ``Cookie`` header values, in order.

    Hand-written because :class:`http.cookies.SimpleCookie` drops the whole header at the first
    pair it dislikes, while browsers and oauth2-proxy (Go's ``net/http``) skip just that pair; the
    verifier must see the same cookies oauth2-proxy will. Malformed pairs are skipped.
    """
    pairs: list[tuple[str, str]] = []
    for header in headers:
        for item in header.split(";"):
            name, sep, value = item.strip().partition("=")
            name = name.strip()
            value = value.strip()
            if not sep or not name or not _is_cookie_text(name) or "=" in name or " " in name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if not _is_cookie_text(value) or " " in value:
                continue
            pairs.append((name, value))
    return pairs


def session_cookies(cookie_headers: Iterable[str], name: str) -> tuple[tuple[str, str], ...]:
    """The session cookie and its chunks (``name``, ``name_0``, ``name_1``, ...) from ``Cookie`` headers.

    The first occurrence of each name wins, as in Go's ``Request.Cookie``, so the cookie the verifier
    binds CSRF tokens to is the one oauth2-proxy reads. Chunks are taken from ``_0`` upward and stop
    at the first gap, as oauth2-proxy joins them. Empty when the request carries no session cookie.
    """
    first: dict[str, str] = {}
    for cookie_name, value in parse_cookie_header(cookie_headers):
        first.setdefault(cookie_name, value)
    found: list[tuple[str, str]] = []
    if first.get(name):
        found.append((name, first[name]))
    for index in range(MAX_COOKIE_CHUNKS):
        chunk = f"{name}_{index}"
        if not first.get(chunk):
            break
        found.append((chunk, first[chunk]))
    return tuple(found)


def session_cookie_value(cookies: Sequence[tuple[str, str]], name: str) -> str:
    """The session cookie's value as oauth2-proxy reads it: the whole cookie if present, else the
    chunks joined in order."""
    for cookie_name, value in cookies:
        if cookie_name == name:
            return value
    return "".join(value for _, value in cookies)


def session_binding(cookie_value: str) -> bytes:
    """A stable, secret-free identifier of the sign-in a session cookie belongs to.

    oauth2-proxy's cookie value is ``<base64 payload>|<unix time>|<HMAC>`` (``pkg/encryption``
    ``SignedValue``). With the Redis session store the payload is the encoded session *ticket*
    ``v2.<ticket id>.<ticket secret>`` (``pkg/sessions/persistence/ticket.go``). A refresh re-saves the
    session under the same ticket, so only the time and MAC change; a new sign-in after sign-out gets
    a new random ticket. Hashing just the payload therefore yields a binding that survives refreshes
    and changes with the sign-in. It is hashed so the binding can be used freely (in a MAC, in a log
    correlation) without ever exposing the ticket secret that decrypts the session.

    A value without that shape (a cookie-store session) is bound as a whole: it still works, only a
    refresh then invalidates outstanding CSRF tokens.
    """
    parts = cookie_value.split("|")
    stable = parts[0] if len(parts) == 3 and parts[0] else cookie_value
    return hashlib.sha256(b"oauth2-proxy-session\n" + stable.encode("utf-8")).digest()


#: oauth2-proxy's ticket ids: ``<cookie name>-<16 random bytes in hex>`` (``newTicket``).
_TICKET_ID_SUFFIX = re.compile(r"[0-9a-f]{32}")


def _raw_b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_ticket_id(cookie_value: str, cookie_name: str) -> str | None:
    """The Redis key under which oauth2-proxy keeps the session this cookie names, or None when the
    value is no session ticket (then no stored session can belong to it).

    The cookie's first field is the base64 ticket ``v2.<base64 id>.<base64 secret>`` (see
    :func:`session_binding`); only the id is read, never the secret. The value comes from the
    network and becomes a Redis key, so anything but ``<cookie name>-<32 hex digits>`` is refused.
    The MAC is not checked here (the verifier does not hold the cookie secret): this only ever asks
    whether such a session exists.
    """
    parts = cookie_value.split("|")
    if len(parts) != 3 or len(parts[0]) > 512:
        return None
    try:
        fields = _raw_b64decode(parts[0]).decode("ascii").split(".")
        if len(fields) != 3 or fields[0] != "v2":
            return None
        ticket_id = _raw_b64decode(fields[1]).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    prefix = cookie_name + "-"
    if not ticket_id.startswith(prefix) or not _TICKET_ID_SUFFIX.fullmatch(ticket_id[len(prefix) :]):
        return None
    return ticket_id


def cookie_header(cookies: Sequence[tuple[str, str]]) -> str:
    """The ``Cookie`` header the verifier sends oauth2-proxy: the session cookie and its chunks."""
    return "; ".join(f"{name}={value}" for name, value in cookies)


def cookie_name_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].partition("=")[0].strip()


def pick_session_set_cookie(set_cookies: Iterable[str], name: str) -> str | None:
    """The one ``Set-Cookie`` to hand back to the browser: the last one for the session cookie.

    nginx copies it with ``auth_request_set $v $upstream_http_set_cookie``, and that variable holds
    only the *first* ``Set-Cookie`` line on nginx 1.22 (later versions join repeated lines with
    ", ", which is no valid Set-Cookie either), so the verifier must send exactly one. With the Redis
    store oauth2-proxy only ever sets the one ticket cookie; the last line is the one a browser would
    end up with.
    """
    chosen: str | None = None
    for value in set_cookies:
        if cookie_name_of(value) == name and "\r" not in value and "\n" not in value:
            chosen = value
    return chosen


# --- I/O: oauth2-proxy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionSettings:
    oauth2_proxy_url: str = DEFAULT_OAUTH2_PROXY_URL
    cookie_name: str = DEFAULT_COOKIE_NAME
    timeout_seconds: float = 2.0
    max_connections: int = 64
    #: The absolute session lifetime, from the first request after sign-in.
    max_age_seconds: int = DEFAULT_SESSION_MAX_AGE_SECONDS
    #: How long a live session is remembered (:mod:`verifier.sources.session_cache`); 0 turns it off.
    cache_seconds: int = DEFAULT_SESSION_CACHE_SECONDS
    cache_size: int = DEFAULT_SESSION_CACHE_SIZE

    def __post_init__(self) -> None:
        if self.max_age_seconds < 1:
            raise ValueError("max_age_seconds must be positive")
        if self.cache_seconds < 0 or self.cache_size < 1:
            raise ValueError("cache_seconds must not be negative and cache_size must be positive")
        if not self.oauth2_proxy_url.startswith(("http://", "https://")):
            raise ValueError("oauth2_proxy_url must be an http(s) URL such as http://127.0.0.1:4180")
        if not is_cookie_name(self.cookie_name):
            raise ValueError("cookie_name must be a cookie name such as __Host-oauth2_proxy")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")

    @property
    def auth_url(self) -> str:
        return self.oauth2_proxy_url.rstrip("/") + AUTH_PATH

    @property
    def ready_url(self) -> str:
        return self.oauth2_proxy_url.rstrip("/") + READY_PATH

    @property
    def sign_out_url(self) -> str:
        return self.oauth2_proxy_url.rstrip("/") + SIGN_OUT_PATH


@dataclass(frozen=True, slots=True)
class SessionLookup:
    """A live session: the access token to validate, the CSRF binding, and the ``Set-Cookie`` (if
    oauth2-proxy refreshed the session) to return to the browser."""

    access_token: str
    binding: bytes
    set_cookie: str | None = None


class OAuth2ProxyClient:
    """Looks sessions up at oauth2-proxy over a pooled HTTP client with short timeouts."""

    def __init__(
        self,
        settings: SessionSettings,
        http: aiohttp.ClientSession | None = None,
        *,
        metrics: UpstreamMetrics | None = None,
    ) -> None:
        self.settings = settings
        # The shared client never remembers cookies: it serves every user's requests, and a jar
        # would send one user's refreshed session cookie along with the next user's request.
        self._http = LazyHttpClient(
            HttpClientOptions.failing_fast(
                settings.timeout_seconds,
                max_connections=settings.max_connections,
                keepalive_seconds=30,
                max_field_size=MAX_RESPONSE_HEADER_BYTES,
            ),
            http,
        )
        self._metrics = metrics

    async def close(self) -> None:
        await self._http.close()

    def cookies_from(self, cookie_headers: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """The session cookie(s) in a request's ``Cookie`` headers; empty when there are none."""
        return session_cookies(cookie_headers, self.settings.cookie_name)

    def binding_of(self, cookies: Sequence[tuple[str, str]]) -> bytes:
        """The sign-in these session cookies belong to (:func:`session_binding` of the value
        oauth2-proxy reads)."""
        return session_binding(session_cookie_value(cookies, self.settings.cookie_name))

    async def lookup(self, cookies: Sequence[tuple[str, str]]) -> SessionLookup:
        """Ask oauth2-proxy about the session in ``cookies``; raise :class:`SessionRejected` if none."""
        if not cookies:
            raise SessionRejected(Reason.NO_SESSION, "no session cookie")
        header = cookie_header(cookies)
        if len(header) > MAX_FORWARDED_COOKIE_BYTES:
            raise SessionRejected(Reason.NO_SESSION, "session cookie is larger than oauth2-proxy sets")
        binding = self.binding_of(cookies)
        status, set_cookie, access_token = await self._ask(header)
        if status == 401:
            if not await self._session_store_ready():
                # The 401 (and its deleting Set-Cookie) says only that the store could not be read.
                raise SessionRejected(
                    Reason.SESSION_BACKEND_UNAVAILABLE, "oauth2-proxy's session store does not answer"
                )
            raise SessionRejected(Reason.NO_SESSION, "oauth2-proxy has no session", set_cookie=set_cookie)
        if status == 403:
            raise SessionRejected(
                Reason.SESSION_FORBIDDEN, "oauth2-proxy refused the session", set_cookie=set_cookie
            )
        if status not in (200, 202):
            raise SessionRejected(Reason.SESSION_BACKEND_UNAVAILABLE, f"oauth2-proxy answered {status}")
        if not access_token:
            # oauth2-proxy runs without --pass-access-token, or the path is a skip-auth route that it
            # answers without a session: either way there is nothing to validate.
            raise SessionRejected(
                Reason.SESSION_TOKEN_MISSING,
                f"oauth2-proxy answered {status} without {HEADER_ACCESS_TOKEN}; is --pass-access-token set?",
            )
        return SessionLookup(access_token=access_token, binding=binding, set_cookie=set_cookie)

    async def sign_out(self, cookies: Sequence[tuple[str, str]]) -> str | None:
        """End the session at oauth2-proxy (it deletes it from its store); its deleting ``Set-Cookie``.

        None when oauth2-proxy could not be asked: the caller refuses the request anyway, and asks
        again on the next one.
        """
        try:
            async with self._http.get().get(
                self.settings.sign_out_url, headers={"Cookie": cookie_header(cookies)}, allow_redirects=False
            ) as response:
                await response.read()
                return pick_session_set_cookie(
                    response.headers.getall("Set-Cookie", ()), self.settings.cookie_name
                )
        except (aiohttp.ClientError, TimeoutError, OSError):
            log.warning("could not sign an expired session out at oauth2-proxy")
            return None

    async def _session_store_ready(self) -> bool:
        """oauth2-proxy's ``/ready``: whether its session store answers. Asked only after a 401, so a
        live session costs nothing extra; an unreachable oauth2-proxy counts as not ready."""
        try:
            async with self._http.get().get(
                self.settings.ready_url,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=min(READY_TIMEOUT_SECONDS, self.settings.timeout_seconds)
                ),
            ) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _ask(self, cookie_header: str) -> tuple[int, str | None, str]:
        """One ``/oauth2/auth`` round trip: status, the session ``Set-Cookie`` and the access token."""
        with timed_upstream(self._metrics, "oauth2_proxy") as call:
            try:
                async with self._http.get().get(
                    self.settings.auth_url,
                    headers={"Cookie": cookie_header, "Accept": "application/json"},
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    set_cookie = pick_session_set_cookie(
                        response.headers.getall("Set-Cookie", ()), self.settings.cookie_name
                    )
                    access_token = response.headers.get(HEADER_ACCESS_TOKEN, "").strip()
                    # Drain the (tiny) body so the connection goes back to the pool for the next request.
                    await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise SessionRejected(
                    Reason.SESSION_BACKEND_UNAVAILABLE, f"oauth2-proxy did not answer ({type(exc).__name__})"
                ) from None
            call.result = "ok" if status in (200, 202) else "refused" if status in (401, 403) else "error"
        return status, set_cookie, access_token


# --- I/O: when each sign-in began ------------------------------------------------------------------------


#: Read the start time, or store ``now`` if there is none yet; one atomic round trip. A script rather
#: than ``SET NX GET``, which Redis accepts only from 7.0 on (ElastiCache may run 6.x).
_START_SCRIPT = """
local started = redis.call('GET', KEYS[1])
if started then return started end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""


async def _repeatable_redis_call(
    metrics: UpstreamMetrics | None, store: str, command: Callable[[], Awaitable[T]]
) -> T:
    """One Redis command that is safe to send twice, timed as the ``redis`` upstream.

    A pooled connection Redis closed (a restart, an idle timeout) fails once and is dropped from the
    pool; one more try on a fresh connection tells that apart from an outage. Any other failure, or a
    second one, is 503 ``session_backend_unavailable`` naming ``store``.
    """
    with timed_upstream(metrics, "redis") as call:
        try:
            try:
                result = await command()
            except RedisConnectionError:
                result = await command()
        except (RedisError, OSError, TimeoutError) as exc:
            raise SessionRejected(
                Reason.SESSION_BACKEND_UNAVAILABLE, f"{store} unreachable ({type(exc).__name__})"
            ) from None
        call.result = "ok"
    return result


class SessionStartStore:
    """When the verifier first saw each sign-in, in Redis, shared by every verifier task.

    The first request of a sign-in stores its time, every later one reads it back, and two tasks
    racing on the first request agree on one value (the script runs atomically, and only ever stores
    the first value, so it is safe to repeat).
    """

    def __init__(self, redis: Redis, *, metrics: UpstreamMetrics | None = None) -> None:
        self._metrics = metrics
        self._script = redis.register_script(_START_SCRIPT)

    async def started_at(self, binding: bytes, *, now: int, keep_seconds: int) -> int:
        key = SESSION_START_KEY_PREFIX + binding.hex()
        stored = await _repeatable_redis_call(
            self._metrics,
            "session start store",
            lambda: self._script(keys=[key], args=[now, keep_seconds]),
        )
        return int(stored)


class StoredSessions:
    """Whether oauth2-proxy's session store still holds a session: read-only, one ``EXISTS``.

    oauth2-proxy answers "this cookie names no session" and "I could not read the store" alike, with
    401 and a cookie-deleting ``Set-Cookie``; a deletion passed on while the session still exists signs
    the user out for good. So before the verifier passes such a refusal on it asks Redis itself.
    """

    def __init__(self, redis: Redis, *, metrics: UpstreamMetrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics

    async def holds(self, ticket_id: str) -> bool:
        found = await _repeatable_redis_call(
            self._metrics, "session store", lambda: self._redis.exists(ticket_id)
        )
        return bool(found)


# --- the credential source ---------------------------------------------------------------------------


class SessionSource(CredentialSource, SessionEnder):
    """The oauth2-proxy session as a credential source for ``/verify`` (``source="session"``).

    Consulted only when the request has no ``Authorization`` header (the bearer source comes first)
    and carries the session cookie. The flow, each step failing closed:

    1. oauth2-proxy's ``/oauth2/auth`` turns the cookie into an access token (401 ``no_session``,
       403 ``session_forbidden``, 503 ``session_backend_unavailable``, 500 ``session_token_missing``),
       and Redis says when the sign-in began (401 ``session_expired`` past the absolute lifetime);
       a live session found within the last few seconds is taken from :class:`SessionCache` instead;
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
        starts: SessionStartStore,
        stored: StoredSessions,
        cache: SessionCache | None = None,
        broadcast: SessionEndBroadcast | None = None,
    ) -> None:
        self.client = client
        self.csrf = csrf
        self.starts = starts
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
        cookies = self.client.cookies_from(request.headers.getall("Cookie", ()))
        key = cache_key(cookie_header(cookies))
        max_age = self.client.settings.max_age_seconds
        remembered = self.cache.get(key, now=int(tokens.clock()), max_age=max_age)
        if remembered is not None:
            decision = await tokens.check_token(remembered.access_token, original, source="session")
            if decision.allowed:
                return await self._with_csrf(request, original, decision, remembered.binding, tokens)
            # The remembered token no longer passes (it expired, or the route refuses it): ask
            # oauth2-proxy, which refreshes an expired token, and let its answer decide.
            self.cache.forget(key)
        try:
            lookup = await self.client.lookup(cookies)
            started = await self._started_at(lookup, now=int(tokens.clock()))
        except SessionRejected as rejected:
            if rejected.reason is Reason.NO_SESSION:
                rejected = await self._confirmed_gone(cookies, rejected)
            return Decision.reject(rejected, source=self.name, headers=_set_cookie(rejected.set_cookie))
        if int(tokens.clock()) - started >= max_age:
            return await self._expire(cookies, lookup.binding, max_age)
        decision = await tokens.check_token(lookup.access_token, original, source="session")
        if decision.allowed:
            if lookup.set_cookie is None:
                self.cache.remember(key, RememberedSession(lookup.access_token, lookup.binding, started))
            decision = await self._with_csrf(request, original, decision, lookup.binding, tokens)
        return decision.with_headers(*_set_cookie(lookup.set_cookie))

    async def end(self, cookie_headers: Iterable[str]) -> None:
        """The browser with these ``Cookie`` headers is signing out (nginx asks before it passes the
        sign-out on): no task answers for that session from memory any more, whatever the spelling
        of the cookie that presents it."""
        cookies = self.client.cookies_from(cookie_headers)
        if cookies:
            await self._end(self.client.binding_of(cookies))

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
        tokens: TokenAuthenticator,
    ) -> Decision:
        """An allowed decision after the CSRF checks, with the next ``X-CSRF-Token``; or the refusal."""
        now = int(tokens.clock())
        try:
            await self.csrf.check(original.method, request.headers, binding, now=now)
        except CsrfRejected as rejected:
            rejected.oid = decision.oid
            return Decision.reject(rejected, source=self.name)
        return decision.with_headers((HEADER_CSRF_TOKEN, self.csrf.mint(binding, now=now)))

    async def _started_at(self, lookup: SessionLookup, *, now: int) -> int:
        """When this sign-in began (stored now if this is its first request)."""
        keep = self.client.settings.max_age_seconds + SESSION_START_KEEP_SECONDS
        return await self.starts.started_at(lookup.binding, now=now, keep_seconds=keep)

    async def _expire(self, cookies: Sequence[tuple[str, str]], binding: bytes, max_age: int) -> Decision:
        """401 ``session_expired``, the session signed out at oauth2-proxy, its deleting cookie."""
        await self._end(binding)
        cleared = await self.client.sign_out(cookies)
        expired = SessionRejected(Reason.SESSION_EXPIRED, f"signed in more than {max_age} s ago")
        return Decision.reject(expired, source=self.name, headers=_set_cookie(cleared))

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


@dataclass(frozen=True, slots=True)
class SessionSourceSettings:
    """Everything the session source needs: where oauth2-proxy and Redis are, and the CSRF rules."""

    session: SessionSettings
    csrf: CsrfSettings
    #: May carry a password: kept out of repr so settings can be logged.
    redis_url: str = field(repr=False)


def build_session_source(
    settings: SessionSourceSettings,
    *,
    metrics: SessionSourceMetrics | None = None,
    clock: Callable[[], float] = time.time,
) -> SessionSource:
    """The production session source: pooled HTTP to oauth2-proxy, pooled Redis for spent tokens.

    Nothing connects here; both pools open on first use inside the running event loop (the spent CSRF
    tokens, the sign-in start times and the sign-out announcements share one Redis pool; the
    listener starts with the app, :meth:`SessionSource.start`). ``metrics`` (the app's) gets the upstream
    latencies and the remembered-session hits and misses.
    """
    redis = redis_client(settings.redis_url)
    cache = SessionCache(
        settings.session.cache_seconds, settings.session.cache_size, clock=clock, metrics=metrics
    )
    return SessionSource(
        OAuth2ProxyClient(settings.session, metrics=metrics),
        CsrfGuard(settings.csrf, SpentTokenStore(redis, metrics=metrics)),
        SessionStartStore(redis, metrics=metrics),
        StoredSessions(redis, metrics=metrics),
        cache,
        SessionEndBroadcast(redis, cache),
    )
