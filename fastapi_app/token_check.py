"""The default :class:`~fastapi_app.revalidation.TokenRevalidator`: the verifier's own validation code.

Token validation is :func:`verifier.tokens.verify_access_token`, a pure function of (token, keys,
settings, now), and keys come from the verifier's :class:`~verifier.jwks.JwksCache` (any
:class:`~verifier.authenticator.KeyProvider` will do), so the API and the verifier cannot disagree
about what a valid token is. Nothing is cached here: the point of re-validating is to check again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi_app.revalidation import RevalidationUnavailable, TokenRejected
from fastapi_app.settings import ApiSettings
from verifier.authenticator import KeyProvider
from verifier.identity import Principal
from verifier.jwks import JwksCache
from verifier.keys import KeySet
from verifier.reasons import Reason, UnknownKid
from verifier.reasons import TokenRejected as VerifierTokenRejected
from verifier.settings import ValidationSettings
from verifier.tokens import parse_compact_jws, verify_access_token


class StaticKeys:
    """A fixed key set (a :class:`KeyProvider`): for tests, and for deployments that pin keys."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    async def refetch_for_unknown_kid(self, tenant_id: str, kid: str) -> bool:
        tenant_keys = self.keys.for_tenant(tenant_id)
        return tenant_keys is not None and tenant_keys.get(kid) is not None


class VerifierRevalidator:
    def __init__(
        self,
        settings: ValidationSettings,
        keys: KeyProvider,
        *,
        clock: Callable[[], float] = time.time,
        jwks: JwksCache | None = None,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._clock = clock
        self._jwks = jwks

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> VerifierRevalidator:
        """Keys from a JWKS cache of the API's own, configured from the same ``VERIFIER_*`` variables."""
        if settings.revalidation is None:
            raise ValueError("re-validation is not configured (VERIFIER_TENANT_IDS, VERIFIER_AUDIENCES)")
        jwks = JwksCache(
            settings.revalidation,
            refresh_seconds=settings.jwks_refresh_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            ca_file=settings.jwks_ca_file,
        )
        return cls(settings.revalidation, jwks, jwks=jwks)

    async def start(self) -> None:
        if self._jwks is not None:
            await self._jwks.start()

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    def _verify(self, token: str) -> Principal:
        return verify_access_token(token, self._keys.keys, self._settings, self._clock(), source="bearer")

    async def revalidate(self, token: str) -> Principal:
        try:
            return self._verify(token)
        except UnknownKid as exc:
            tenant_id, kid = exc.tenant_id, exc.kid
        except VerifierTokenRejected as exc:
            if exc.reason != Reason.KEYS_UNAVAILABLE:
                raise TokenRejected(str(exc.reason)) from None
            # Raised only after the library checked the token's shape, kid and allow-listed tenant.
            parsed = parse_compact_jws(token, max_bytes=self._settings.max_token_bytes)
            tenant_id, kid = parsed.payload["tid"], parsed.header["kid"]
        # Keys rotate, and a fresh process may not hold them yet: one (rate-limited) fetch, then decide.
        try:
            await self._keys.refetch_for_unknown_kid(tenant_id, kid)
            return self._verify(token)
        except VerifierTokenRejected as exc:
            if exc.reason == Reason.KEYS_UNAVAILABLE:
                raise RevalidationUnavailable("the tenant's signing keys could not be loaded") from None
            raise TokenRejected(str(exc.reason)) from None
