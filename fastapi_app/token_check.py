"""The default :class:`~fastapi_app.revalidation.TokenRevalidator`: the verifier's own validation code.

Token validation is the verifier's :func:`verifier.keys.provider.verify_with_key_refetch` (the pure
:func:`verifier.core.access_tokens.verify_access_token` with one refetch for a key not held yet), and
keys come from the verifier's :class:`~verifier.keys.jwks.JwksCache` (any
:class:`~verifier.keys.provider.KeyProvider` will do), so the API and the verifier cannot disagree
about what a valid token is. Nothing is cached here: the point of re-validating is to check again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi_app.revalidation import ForwardedTokenRejected, RevalidationUnavailable, TokenRevalidator
from fastapi_app.settings import ApiSettings
from verifier.core.access_tokens import ValidationSettings
from verifier.core.identity import Principal
from verifier.core.reasons import Reason, TokenRejected
from verifier.keys.jwks import JwksCache
from verifier.keys.provider import KeyProvider, StaticKeys, verify_with_key_refetch

__all__ = ["StaticKeys", "VerifierRevalidator"]


class VerifierRevalidator(TokenRevalidator):
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

    async def revalidate(self, token: str) -> Principal:
        try:
            return await verify_with_key_refetch(
                token, self._keys, self._settings, self._clock, refetch_when_tenant_unloaded=True
            )
        except TokenRejected as exc:
            if exc.reason == Reason.KEYS_UNAVAILABLE:
                raise RevalidationUnavailable("the tenant's signing keys could not be loaded") from None
            raise ForwardedTokenRejected(str(exc.reason)) from None
