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

from verifier.identity import Principal
from verifier.settings import DEFAULT_TOKEN_CACHE_SIZE, TOKEN_CACHE_MAX_TTL_SECONDS


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
        self._cache: TLRUCache[bytes, Principal] = TLRUCache(
            maxsize=max(maxsize, 1), ttu=self._expires, timer=clock
        )

    def _expires(self, _key: bytes, principal: Principal, now: float) -> float:
        return min(float(principal.expires_at), now + self.max_ttl)

    def get(self, digest: bytes) -> Principal | None:
        if not self._enabled:
            return None
        return self._cache.get(digest)

    def put(self, digest: bytes, principal: Principal) -> None:
        """Remember a *successfully validated* token. Never call this for a failure."""
        if self._enabled and principal.expires_at > self._clock():
            self._cache[digest] = principal

    def __len__(self) -> int:
        return len(self._cache)
