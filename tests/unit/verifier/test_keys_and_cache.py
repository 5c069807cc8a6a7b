"""Building key sets from JWKS documents, and the verified-token cache."""

from __future__ import annotations

import pytest

from tests.support.token_forge import TENANT_A, SigningKey
from verifier.core.identity import Principal
from verifier.core.jwk import JwksError, tenant_keys_from_jwks
from verifier.sources.access_token import VerifiedIdentity, VerifiedTokenCache, token_digest


def test_jwks_keys_are_built_once_into_public_key_objects_with_their_issuer(signing_key):
    jwk = signing_key.jwk(issuer="https://login.example/{tenantid}/v2.0")
    jwk["x5c"] = ["MIIC..."]
    keys = tenant_keys_from_jwks(TENANT_A, {"keys": [jwk]})
    key = keys.get("key-a")
    assert key is not None
    assert key.public_key.public_numbers() == signing_key.private_key.public_key().public_numbers()
    assert key.issuer == "https://login.example/{tenantid}/v2.0"


def test_unusable_jwks_entries_are_skipped(signing_key):
    good = signing_key.jwk()
    short = SigningKey.generate("short", bits=1024).jwk()
    entries = [
        {**good, "kid": "enc", "use": "enc"},
        {**good, "kid": "hs", "alg": "HS256"},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        {**good, "kid": ""},
        {**good, "kid": "garbage", "n": "!!"},
        short,
        "not a key",
        good,
    ]
    keys = tenant_keys_from_jwks(TENANT_A, {"keys": entries})
    assert list(keys.keys) == ["key-a"]


def test_private_parts_in_a_jwks_entry_are_ignored(signing_key):
    jwk = signing_key.jwk()
    jwk["d"] = "AQAB"  # a bogus private exponent: only n and e may be used
    key = tenant_keys_from_jwks(TENANT_A, {"keys": [jwk]}).get("key-a")
    assert key is not None and not hasattr(key.public_key, "private_numbers")


@pytest.mark.parametrize("document", [{}, {"keys": {}}, []])
def test_jwks_without_a_keys_list_is_refused(document):
    with pytest.raises(JwksError):
        tenant_keys_from_jwks(TENANT_A, document)


def principal(expires_at: int) -> VerifiedIdentity:
    return VerifiedIdentity(
        Principal(oid="o", tid="t", principal_type="user", auth_source="bearer", expires_at=expires_at)
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_cached_principal_lives_at_most_five_minutes():
    clock = Clock(1000.0)
    cache = VerifiedTokenCache(10, clock=clock)
    cache.put(token_digest("t"), principal(expires_at=100_000))
    clock.now += 299
    assert cache.get(token_digest("t")) is not None
    clock.now += 2
    assert cache.get(token_digest("t")) is None


def test_cached_principal_never_outlives_its_token():
    clock = Clock(1000.0)
    cache = VerifiedTokenCache(10, clock=clock)
    cache.put(token_digest("t"), principal(expires_at=1030))
    clock.now = 1029
    assert cache.get(token_digest("t")) is not None
    clock.now = 1030
    assert cache.get(token_digest("t")) is None


def test_token_already_past_exp_is_not_cached():
    cache = VerifiedTokenCache(10, clock=Clock(2000.0))
    cache.put(token_digest("t"), principal(expires_at=1990))  # still inside the validation leeway
    assert cache.get(token_digest("t")) is None


def test_cache_size_is_bounded():
    cache = VerifiedTokenCache(3, clock=Clock(1000.0))
    for i in range(10):
        cache.put(token_digest(str(i)), principal(expires_at=5000))
    assert sum(cache.get(token_digest(str(i))) is not None for i in range(10)) == 3


def test_cache_size_zero_disables_caching():
    cache = VerifiedTokenCache(0, clock=Clock(1000.0))
    cache.put(token_digest("t"), principal(expires_at=5000))
    assert cache.get(token_digest("t")) is None
