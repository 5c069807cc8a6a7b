"""CSRF defence for cookie-authenticated requests.

A browser attaches the session cookie to every request to our site, including requests a hostile
page makes it send, so a cookie alone cannot prove that our own SPA made an unsafe request. Two
independent checks run on every unsafe method (anything but GET, HEAD, OPTIONS) that arrives with a session
cookie; bearer-token requests need neither, because no browser attaches an ``Authorization`` header on
its own.

1. **Where the request came from.** ``Origin``, when present, must be exactly the public origin of the
   site; ``Sec-Fetch-Site``, when present, must be ``same-origin``. Browsers set both and pages cannot
   forge them; a client that sends neither still has to pass the token check.
2. **A token only our pages can read.** Every successful session-authenticated response carries a
   fresh ``X-CSRF-Token``; an unsafe request must send one back. The token is::

       v1.<nonce>.<expires unix seconds>.<mac>

   with ``nonce`` 16 random bytes and ``mac`` HMAC-SHA256 over the session binding, nonce and expiry
   (both base64url without padding). Binding to the session means a token read from one sign-in is
   worthless with another; the expiry keeps a leaked token short-lived; and single use (the spent
   nonce is recorded in Redis until the token would have expired anyway) means a token that leaks
   through a log or a referrer cannot be replayed.

The decisions (:func:`check_request_origin`, :func:`mint_token`, :func:`verify_token`) are pure
functions of their inputs and the clock value they are given; :class:`SpentTokenStore` is the Redis
I/O, and :class:`CsrfGuard` runs them in order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.asyncio import Redis
from redis.exceptions import RedisError

from verifier.core.reasons import Reason, Rejection
from verifier.keys.upstream import UpstreamMetrics, timed_upstream

log = logging.getLogger(__name__)

HEADER_CSRF_TOKEN = "X-CSRF-Token"
HEADER_ORIGIN = "Origin"
HEADER_SEC_FETCH_SITE = "Sec-Fetch-Site"

#: Methods that must not change state (RFC 9110 section 9.2.1). Every other method, including ones we
#: have never heard of, is treated as unsafe: the list of what is allowed is the short one.
SAFE_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"})

TOKEN_VERSION = "v1"
DEFAULT_TTL_SECONDS = 600
MIN_KEY_BYTES = 32
NONCE_BYTES = 16
#: A real token is about 90 characters; anything far longer is refused before any parsing work.
MAX_TOKEN_CHARS = 256
SPENT_KEY_PREFIX = "csrf:spent:"

_MAC_CONTEXT = b"eba-csrf-v1"
_HKDF_INFO = b"eba-verifier-csrf-key-v1"


class CsrfRejected(Rejection):
    """An unsafe cookie-authenticated request failed a CSRF check. Answer 403, never 200.

    ``reason`` is one of the ``csrf_*`` :class:`Reason` codes; ``detail`` never holds the token.
    """


class CsrfStoreUnavailable(CsrfRejected):
    """The spent-token store could not be asked. Refusing is the only safe answer: without it a token
    could be replayed."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.CSRF_STORE_UNAVAILABLE, detail)


# --- keys -------------------------------------------------------------------------------------------


def derive_csrf_key(identity_signing_key: bytes) -> bytes:
    """The CSRF MAC key, derived from ``IDENTITY_SIGNING_KEY`` with HKDF-SHA256.

    Deriving rather than configuring a second secret means one less secret to provision and rotate;
    the distinct HKDF ``info`` keeps the two uses apart, so a CSRF MAC can never be mistaken for an
    identity signature or the other way round. Rotating the signing key invalidates outstanding CSRF
    tokens, which live only minutes anyway.
    """
    if len(identity_signing_key) < MIN_KEY_BYTES:
        raise ValueError(f"the identity signing key must be at least {MIN_KEY_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(identity_signing_key)


# --- origin -----------------------------------------------------------------------------------------


def normalize_origin(url: str) -> str:
    """``scheme://host[:port]`` as browsers serialise it in ``Origin`` (RFC 6454): lower-case scheme and
    host, default port dropped, no path. Raises :class:`ValueError` for anything that is not an
    http(s) origin, so a mistyped setting fails at start-up instead of refusing every request."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) origin such as https://app.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} must be an origin only: scheme, host and optional port")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_unsafe_method(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


def check_request_origin(*, origin: str | None, sec_fetch_site: str | None, public_origin: str) -> None:
    """Refuse an unsafe request whose browser-set headers show another origin.

    ``public_origin`` is already normalised (:func:`normalize_origin`). An absent header proves nothing
    either way (older browsers, non-browser clients) and is left to the token check. ``Origin: null``
    (sandboxed frames, some redirects) is refused: it cannot be shown to be ours.
    """
    if origin is not None and origin.strip().lower() != public_origin:
        raise CsrfRejected(Reason.CSRF_ORIGIN_MISMATCH, "Origin is not this site's origin")
    # Only "same-origin" is ours: "same-site" is a sibling subdomain, "cross-site" an attacker's page,
    # "none" a user-initiated navigation, which never carries an unsafe method from our SPA.
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() != "same-origin":
        raise CsrfRejected(Reason.CSRF_CROSS_SITE, f"Sec-Fetch-Site is {sec_fetch_site.strip()[:20]!r}")


# --- tokens -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsrfToken:
    """A token that passed :func:`verify_token`: its nonce (for the spent store) and expiry."""

    nonce: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    # Python's decoder silently skips characters outside the alphabet; validate=True refuses them, so a
    # token has exactly one spelling and cannot be varied to dodge the spent store.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(key: bytes, binding: bytes, nonce: str, expires_at: int) -> bytes:
    message = b"\n".join((_MAC_CONTEXT, binding.hex().encode(), nonce.encode(), str(expires_at).encode()))
    return hmac.new(key, message, hashlib.sha256).digest()


def mint_token(*, key: bytes, binding: bytes, now: int, ttl: int, nonce: bytes | None = None) -> str:
    """A fresh token bound to ``binding`` (see :func:`verifier.sources.session.session_binding`), valid for
    ``ttl`` seconds from ``now``. ``nonce`` is for tests; production draws 16 random bytes."""
    nonce_text = _b64(nonce if nonce is not None else secrets.token_bytes(NONCE_BYTES))
    expires_at = now + ttl
    return f"{TOKEN_VERSION}.{nonce_text}.{expires_at}.{_b64(_mac(key, binding, nonce_text, expires_at))}"


def verify_token(token: str | None, *, key: bytes, binding: bytes, now: int) -> CsrfToken:
    """Check shape, MAC and expiry, in that order; raise :class:`CsrfRejected` naming the first failure.

    The MAC is checked before the expiry so that nothing about a forged token, not even whether its
    claimed expiry has passed, is reported differently from any other forgery.
    """
    if token is None or not token.strip():
        raise CsrfRejected(Reason.CSRF_TOKEN_MISSING, f"unsafe request without {HEADER_CSRF_TOKEN}")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise CsrfRejected(Reason.CSRF_TOKEN_MALFORMED, "token is not v1.<nonce>.<expiry>.<mac>")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION:
        raise CsrfRejected(Reason.CSRF_TOKEN_MALFORMED, "token is not v1.<nonce>.<expiry>.<mac>")
    _, nonce_text, expiry_text, mac_text = parts
    if not expiry_text.isdigit() or len(expiry_text) > 12:
        raise CsrfRejected(Reason.CSRF_TOKEN_MALFORMED, "token expiry is not a unix time")
    try:
        nonce = _unb64(nonce_text)
        given_mac = _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise CsrfRejected(Reason.CSRF_TOKEN_MALFORMED, "token parts are not base64url") from None
    # Re-encoding must give back the same text: base64 has several spellings of the same bytes (unused
    # trailing bits), and a second spelling would be a second spent-store key for one nonce.
    if len(nonce) != NONCE_BYTES or _b64(nonce) != nonce_text or _b64(given_mac) != mac_text:
        raise CsrfRejected(Reason.CSRF_TOKEN_MALFORMED, "token nonce or mac has the wrong length")
    expires_at = int(expiry_text)
    if not hmac.compare_digest(_mac(key, binding, nonce_text, expires_at), given_mac):
        raise CsrfRejected(Reason.CSRF_TOKEN_BAD_MAC, "token was not issued for this session")
    if now >= expires_at:
        raise CsrfRejected(Reason.CSRF_TOKEN_EXPIRED, f"token expired {now - expires_at}s ago")
    return CsrfToken(nonce=nonce_text, expires_at=expires_at)


# --- spent tokens (Redis) ---------------------------------------------------------------------------


def spent_key(nonce: str) -> str:
    # Hashed so the key space has a fixed shape whatever a future token version puts in a nonce.
    return SPENT_KEY_PREFIX + hashlib.sha256(nonce.encode("ascii")).hexdigest()


class SpentTokenStore:
    """Records spent nonces in Redis so each token is accepted once.

    ``SET key 1 NX EX ttl`` is one atomic command: of two requests racing with the same token exactly
    one wins, across every verifier task sharing the Redis. The key expires when the token would have,
    so the store never grows beyond the tokens spent in the last ``ttl`` seconds.
    """

    def __init__(self, redis: Redis, *, metrics: UpstreamMetrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics

    async def spend(self, token: CsrfToken, *, now: int) -> None:
        remaining = max(1, token.expires_at - now)
        with timed_upstream(self._metrics, "redis") as call:
            try:
                first_use = await self._redis.set(spent_key(token.nonce), b"1", nx=True, ex=remaining)
            except (RedisError, OSError, TimeoutError) as exc:
                raise CsrfStoreUnavailable(f"spent-token store unreachable ({type(exc).__name__})") from None
            call.result = "ok" if first_use else "refused"
        if not first_use:
            raise CsrfRejected(Reason.CSRF_TOKEN_SPENT, "token was already used")

    async def close(self) -> None:
        await self._redis.aclose()


def redis_client(url: str, *, timeout_seconds: float = 1.0) -> Redis:
    """A pooled asyncio Redis client with short timeouts: a slow store must fail a request quickly
    (closed), not hold nginx's subrequest open."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
    )


# --- the whole check --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsrfSettings:
    key: bytes = field(repr=False)
    public_origin: str
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"the CSRF key must be at least {MIN_KEY_BYTES} bytes")
        if self.ttl_seconds < 1:
            raise ValueError("the CSRF token lifetime must be at least 1 second")
        if normalize_origin(self.public_origin) != self.public_origin:
            raise ValueError("public_origin must be normalised with normalize_origin()")


class CsrfGuard:
    """Runs the CSRF checks for one cookie-authenticated request and mints the next token."""

    def __init__(self, settings: CsrfSettings, store: SpentTokenStore) -> None:
        self.settings = settings
        self.store = store

    def mint(self, binding: bytes, *, now: int) -> str:
        return mint_token(key=self.settings.key, binding=binding, now=now, ttl=self.settings.ttl_seconds)

    async def check(self, method: str, headers: Mapping[str, str], binding: bytes, *, now: int) -> None:
        """Raise :class:`CsrfRejected` unless ``method`` is safe or the request passes every check.

        The cheap header checks come first, Redis last, so a forged request never costs a round trip
        and never spends anything.
        """
        if not is_unsafe_method(method):
            return
        check_request_origin(
            origin=headers.get(HEADER_ORIGIN),
            sec_fetch_site=headers.get(HEADER_SEC_FETCH_SITE),
            public_origin=self.settings.public_origin,
        )
        token = verify_token(headers.get(HEADER_CSRF_TOKEN), key=self.settings.key, binding=binding, now=now)
        await self.store.spend(token, now=now)
