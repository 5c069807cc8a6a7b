"""Signing keys, built once from a JWKS document into ready-to-use public key objects.

Pure: a JWKS ``dict`` in, an immutable :class:`TenantKeys` out. Key objects are built when the key
set is loaded, not per token, so the hot path never parses a JWK (that parse costs more than the RSA
verification itself).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import InvalidKeyError

log = logging.getLogger(__name__)

#: Keys below this size are refused when the JWKS is loaded (NIST SP 800-131A; Entra uses 2048).
MIN_RSA_BITS = 2048
#: Placeholder Entra puts in a v2 key's ``issuer``; the token's ``tid`` replaces it.
TENANT_TEMPLATE = "{tenantid}"


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    public_key: RSAPublicKey
    #: The key's own ``issuer`` (Entra v2 keys carry ``https://login.microsoftonline.com/{tenantid}/v2.0``);
    #: empty when the JWKS does not pin the key to an issuer.
    issuer: str = ""


@dataclass(frozen=True, slots=True)
class TenantKeys:
    """The usable signing keys of one tenant, by ``kid``."""

    tenant_id: str
    keys: Mapping[str, VerificationKey] = field(default_factory=dict)

    def get(self, kid: str) -> VerificationKey | None:
        return self.keys.get(kid)


@dataclass(frozen=True, slots=True)
class KeySet:
    """Every configured tenant's keys. A tenant absent from ``tenants`` has no keys loaded yet."""

    tenants: Mapping[str, TenantKeys] = field(default_factory=dict)

    def for_tenant(self, tenant_id: str) -> TenantKeys | None:
        return self.tenants.get(tenant_id)

    def with_tenant(self, tenant_keys: TenantKeys) -> KeySet:
        return KeySet({**self.tenants, tenant_keys.tenant_id: tenant_keys})


class JwksError(ValueError):
    """The JWKS document is unusable as a whole (not an object, no ``keys`` list)."""


def tenant_keys_from_jwks(tenant_id: str, jwks: Mapping[str, Any]) -> TenantKeys:
    """Build :class:`TenantKeys` from a JWKS document.

    Only RSA signature keys with a ``kid`` are kept; a key that declares an ``alg`` other than RS256,
    a ``use`` other than ``sig``, is too short or cannot be read is skipped (logged), because one odd
    key must not take the whole tenant down. Private parts, ``x5c`` and ``x5t`` are ignored: only
    ``n`` and ``e`` make the key. Raises :class:`JwksError` when the document has no ``keys`` list.
    """
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise JwksError("JWKS document is not an object with a 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for entry in jwks["keys"]:
        key = _verification_key(entry)
        if key is not None and key.kid not in keys:
            keys[key.kid] = key
    return TenantKeys(tenant_id, keys)


def _verification_key(entry: object) -> VerificationKey | None:
    if not isinstance(entry, Mapping):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        return None
    if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
        log.debug("skipping JWKS key %r: not an RS256 signature key", kid)
        return None
    n, e = entry.get("n"), entry.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        return None
    try:
        public_key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": e})
    except (InvalidKeyError, ValueError) as exc:
        log.warning("skipping JWKS key %r: %s", kid, exc)
        return None
    if not isinstance(public_key, RSAPublicKey) or public_key.key_size < MIN_RSA_BITS:
        log.warning("skipping JWKS key %r: RSA keys shorter than %d bits are refused", kid, MIN_RSA_BITS)
        return None
    issuer = entry.get("issuer", "")
    if not isinstance(issuer, str):
        return None
    return VerificationKey(kid=kid, public_key=public_key, issuer=issuer)
