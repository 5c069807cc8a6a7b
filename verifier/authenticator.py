"""Token string in, :class:`Decision` out: the cache, the JWKS and the pure validation together.

:meth:`TokenAuthenticator.decide` is the one call every credential source uses once it holds an
access token: the bearer source with the ``Authorization`` header's token, the session source with
the token oauth2-proxy hands back (``source="session"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from verifier.decision import Decision, OriginalRequest
from verifier.identity import AuthSource, Principal
from verifier.keys import KeySet
from verifier.metrics import VerifierMetrics
from verifier.policy import RoutePolicy
from verifier.reasons import Reason, Rejection, TokenRejected, UnknownKid
from verifier.settings import ValidationSettings
from verifier.token_cache import VerifiedIdentity, VerifiedTokenCache, token_digest
from verifier.tokens import verify_access_token


class KeyProvider(Protocol):
    """Where keys come from; :class:`verifier.jwks.JwksCache` in production."""

    @property
    def keys(self) -> KeySet: ...

    async def refetch_for_unknown_kid(self, tenant_id: str, kid: str) -> bool: ...


class TokenAuthenticator:
    def __init__(
        self,
        settings: ValidationSettings,
        keys: KeyProvider,
        *,
        cache: VerifiedTokenCache,
        metrics: VerifierMetrics,
        policy: RoutePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.cache = cache
        self.metrics = metrics
        self.policy = policy if policy is not None else RoutePolicy()
        self.clock = clock

    async def authenticate(self, token: str, *, source: AuthSource = "bearer") -> Principal:
        """The principal ``token`` proves; raises :class:`TokenRejected`.

        A cache hit costs a SHA-256 and a dict lookup. On a miss the token is validated in full; a
        ``kid`` the tenant's key set lacks triggers at most one (rate-limited, shared) JWKS refetch.
        Only successes are cached.
        """
        return (await self._identity(token, source)).principal

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
        try:
            principal = verify_access_token(token, self.keys.keys, self.settings, self.clock(), source=source)
        except UnknownKid as exc:
            if not await self.keys.refetch_for_unknown_kid(exc.tenant_id, exc.kid):
                raise
            principal = verify_access_token(token, self.keys.keys, self.settings, self.clock(), source=source)
        identity = VerifiedIdentity(principal)
        self.cache.put(digest, identity)
        return identity

    async def decide(self, token: str, original: OriginalRequest, *, source: AuthSource) -> Decision:
        """Validate ``token`` and apply the route policy to ``original``: allow or reject, as ``source``."""
        try:
            identity = await self._identity(token, source)
            self.policy.check(identity.principal, original.method, original.uri)
        except Rejection as rejection:
            return Decision.reject(rejection, source=source)
        return Decision.allow(identity.principal, identity_headers=identity.headers, access_token=token)
