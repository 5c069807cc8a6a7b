"""The verified-token cache: steady traffic with the same token costs no RSA work.

Keyed by the SHA-256 of the token (the token itself is never kept), valued by the
:class:`~verifier.identity.Principal` it proved, for min(exp - now, 5 minutes). Only successful
validations are stored, so a flood of invalid tokens cannot evict good entries; the size bound caps
memory against a flood of *valid* tokens.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from cachetools import TLRUCache

from verifier.identity import Principal, principal_headers
from verifier.settings import DEFAULT_TOKEN_CACHE_SIZE, TOKEN_CACHE_MAX_TTL_SECONDS


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

    def __len__(self) -> int:
        return len(self._cache)
