"""Token string in, :class:`Decision` out: the verified-token cache, the keys and the pure validation.

:meth:`TokenAuthenticator.check_token` is the one call every credential source uses once it holds an
access token: the bearer source with the ``Authorization`` header's token, the session source with
the token oauth2-proxy hands back (``source="session"``).

The verified-token cache makes steady traffic with the same token cost no RSA work. It is keyed by
the SHA-256 of the token (the token itself is never kept), valued by the principal it proved, for
min(exp - now, 5 minutes). Only successful validations are stored, so a flood of invalid tokens
cannot evict good entries; the size bound caps memory against a flood of *valid* tokens.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from cachetools import TLRUCache

from verifier.core.access_tokens import ValidationSettings
from verifier.core.decision import Decision, OriginalRequest
from verifier.core.identity import AuthSource, Principal, principal_headers
from verifier.core.policy import RoutePolicy
from verifier.core.reasons import Reason, Rejection, TokenRejected
from verifier.keys.provider import KeyProvider, verify_with_key_refetch

DEFAULT_TOKEN_CACHE_SIZE = 100_000
#: A verified token is cached for at most this long, even if it lives longer.
TOKEN_CACHE_MAX_TTL_SECONDS = 300


class CacheCounter(Protocol):
    def inc(self) -> None: ...


class TokenCacheMetrics(Protocol):
    """The service's metrics, as far as the cache reports to them (pre-bound counters: the hot path)."""

    cache_hit: CacheCounter
    cache_miss: CacheCounter


class VerifiedIdentity:
    """A validated principal with its identity header values encoded once (they are the same for
    every request with the token; only the signature differs per request)."""

    __slots__ = ("headers", "principal")

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.headers: dict[str, str] = principal_headers(principal)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class VerifiedTokenCache:
    def __init__(
        self,
        maxsize: int = DEFAULT_TOKEN_CACHE_SIZE,
        *,
        max_ttl: float = TOKEN_CACHE_MAX_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_ttl = max_ttl
        self._clock = clock
        self._enabled = maxsize > 0
        self._cache: TLRUCache[bytes, VerifiedIdentity] = TLRUCache(
            maxsize=max(maxsize, 1), ttu=self._expires, timer=clock
        )

    def _expires(self, _key: bytes, identity: VerifiedIdentity, now: float) -> float:
        return min(float(identity.principal.expires_at), now + self.max_ttl)

    def get(self, digest: bytes) -> VerifiedIdentity | None:
        if not self._enabled:
            return None
        return self._cache.get(digest)

    def put(self, digest: bytes, identity: VerifiedIdentity) -> None:
        """Remember a *successfully validated* token. Never call this for a failure."""
        if self._enabled and identity.principal.expires_at > self._clock():
            self._cache[digest] = identity


@dataclass(slots=True)
class TokenAuthenticator:
    """The token rules, the keys, the cache and the route policy every credential source shares."""

    settings: ValidationSettings
    keys: KeyProvider
    _: KW_ONLY
    cache: VerifiedTokenCache
    metrics: TokenCacheMetrics
    policy: RoutePolicy = field(default_factory=RoutePolicy)
    clock: Callable[[], float] = time.time

    async def _identity(self, token: str, source: AuthSource) -> VerifiedIdentity:
        if len(token) > self.settings.max_token_bytes:
            # Before hashing or parsing: a huge token costs nothing but this comparison.
            raise TokenRejected(
                Reason.TOKEN_TOO_LARGE,
                f"tokens longer than {self.settings.max_token_bytes} bytes are refused",
            )
        digest = token_digest(token)
        cached = self.cache.get(digest)
        if cached is not None:
            self.metrics.cache_hit.inc()
            if cached.principal.auth_source == source:
                return cached
            return VerifiedIdentity(cached.principal.with_source(source))
        self.metrics.cache_miss.inc()
        principal = await verify_with_key_refetch(token, self.keys, self.settings, self.clock, source=source)
        identity = VerifiedIdentity(principal)
        self.cache.put(digest, identity)
        return identity

    async def check_token(self, token: str, original: OriginalRequest, *, source: AuthSource) -> Decision:
        """Validate ``token`` and apply the route policy to ``original``: allow or reject, as ``source``."""
        try:
            identity = await self._identity(token, source)
            self.policy.check(identity.principal, original.method, original.uri)
        except Rejection as rejection:
            return Decision.reject(rejection, source=source)
        return Decision.allow(identity.principal, identity_headers=identity.headers, access_token=token)
