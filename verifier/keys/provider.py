"""Where verification keys come from, and the one refetch-and-retry for a key not held yet.

Entra rotates its signing keys, and a fresh process may not hold them yet. Both the verifier and the
API's re-validation therefore validate with :func:`verify_with_key_refetch`: validate; if the token
names a key the process lacks, ask the provider for one (rate-limited, shared) refetch of that
tenant's keys, and validate once more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from verifier.core.access_tokens import ValidationSettings, verify_access_token
from verifier.core.identity import AuthSource, Principal
from verifier.core.jwk import KeySet
from verifier.core.reasons import KeyNotHeld, UnknownKid


class KeyProvider(Protocol):
    """Where keys come from; :class:`verifier.keys.jwks.JwksCache` in production."""

    @property
    def keys(self) -> KeySet: ...

    async def refetch_for_unknown_kid(self, tenant_id: str, kid: str) -> bool: ...


class StaticKeys:
    """A fixed key set: for tests, and for deployments that pin keys. A refetch finds what it holds."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    async def refetch_for_unknown_kid(self, tenant_id: str, kid: str) -> bool:
        tenant_keys = self.keys.for_tenant(tenant_id)
        return tenant_keys is not None and tenant_keys.get(kid) is not None


async def verify_with_key_refetch(
    token: str,
    keys: KeyProvider,
    settings: ValidationSettings,
    clock: Callable[[], float],
    *,
    source: AuthSource = "bearer",
    refetch_when_tenant_unloaded: bool = False,
) -> Principal:
    """:func:`verify_access_token`, with at most one refetch when the token's key is not held.

    An unknown ``kid`` always asks for a refetch. A tenant with no keys loaded at all asks only when
    ``refetch_when_tenant_unloaded``: the verifier's own background loop is already fetching those
    (and ``/readyz`` says so), while the API fetches only on demand.
    """
    try:
        return verify_access_token(token, keys.keys, settings, clock(), source=source)
    except KeyNotHeld as exc:
        if not isinstance(exc, UnknownKid) and not refetch_when_tenant_unloaded:
            raise
        # Whether or not the refetch found the key, the second validation tells what is true now
        # (a tenant's keys may have arrived without this kid: then the answer is ``unknown_kid``).
        await keys.refetch_for_unknown_kid(exc.tenant_id, exc.kid)
    return verify_access_token(token, keys.keys, settings, clock(), source=source)
