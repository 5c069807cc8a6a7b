"""Where verification keys come from, and the one refetch-and-retry for a key not held yet.

Entra rotates its signing keys, and a fresh process may not hold them yet. Both the verifier and the
API's re-validation therefore validate through :func:`with_key_refetch`: validate; if the token
names a key the process lacks, ask the provider for one (rate-limited, shared) refetch of that
tenant's keys, and validate once more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from verifier.core.access_tokens import ValidationSettings, verify_access_token
from verifier.core.identity import AuthSource, Principal
from verifier.core.jwk import KeySet
from verifier.core.reasons import KeyNotHeld, UnknownKid

T = TypeVar("T")


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


async def with_key_refetch(
    keys: KeyProvider, verify: Callable[[KeySet], T], *, refetch_when_tenant_unloaded: bool = False
) -> T:
    """``verify(keys.keys)``, with at most one refetch when the token's key is not held.

    An unknown ``kid`` always asks for a refetch. A tenant with no keys loaded at all asks only when
    ``refetch_when_tenant_unloaded``: the verifier's own background loop is already fetching those
    (and ``/readyz`` says so), while the API fetches only on demand.
    """
    try:
        return verify(keys.keys)
    except KeyNotHeld as exc:
        if not isinstance(exc, UnknownKid) and not refetch_when_tenant_unloaded:
            raise
        # Whether or not the refetch found the key, the second validation tells what is true now
        # (a tenant's keys may have arrived without this kid: then the answer is ``unknown_kid``).
        await keys.refetch_for_unknown_kid(exc.tenant_id, exc.kid)
    return verify(keys.keys)


async def verify_with_key_refetch(
    token: str,
    keys: KeyProvider,
    settings: ValidationSettings,
    clock: Callable[[], float],
    *,
    source: AuthSource = "bearer",
    refetch_when_tenant_unloaded: bool = False,
) -> Principal:
    """:func:`verify_access_token` through :func:`with_key_refetch`."""
    return await with_key_refetch(
        keys,
        lambda key_set: verify_access_token(token, key_set, settings, clock(), source=source),
        refetch_when_tenant_unloaded=refetch_when_tenant_unloaded,
    )
