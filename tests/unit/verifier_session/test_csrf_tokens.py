"""CSRF token minting and verification: pure functions of (token, key, binding, now)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from verifier.core.reasons import Reason
from verifier.sources.csrf import (
    MIN_KEY_BYTES,
    CsrfRejected,
    CsrfSettings,
    derive_csrf_key,
    mint_token,
    verify_token,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
BINDING = hashlib.sha256(b"session-a").digest()
OTHER_BINDING = hashlib.sha256(b"session-b").digest()
NOW = 1_800_000_000
TTL = 600


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reject_reason(token: str | None, *, key: bytes = KEY, binding: bytes = BINDING, now: int = NOW) -> str:
    with pytest.raises(CsrfRejected) as caught:
        verify_token(token, key=key, binding=binding, now=now)
    assert str(caught.value.reason) == caught.value.reason.value
    return caught.value.reason


def test_minted_token_verifies_and_reports_its_nonce_and_expiry() -> None:
    token = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL, nonce=b"\x01" * 16)
    verified = verify_token(token, key=KEY, binding=BINDING, now=NOW)
    assert verified.nonce == b64(b"\x01" * 16)
    assert verified.expires_at == NOW + TTL


def test_token_has_the_documented_v1_nonce_expiry_mac_shape() -> None:
    token = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL, nonce=b"\x02" * 16)
    version, nonce, expiry, mac = token.split(".")
    assert version == "v1"
    assert nonce == b64(b"\x02" * 16)
    assert expiry == str(NOW + TTL)
    message = b"\n".join((b"eba-csrf-v1", BINDING.hex().encode(), nonce.encode(), expiry.encode()))
    assert mac == b64(hmac.new(KEY, message, hashlib.sha256).digest())
    assert all(c.isalnum() or c in "-_." for c in token)


def test_two_minted_tokens_have_different_random_nonces() -> None:
    tokens = {mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL) for _ in range(50)}
    assert len({t.split(".")[1] for t in tokens}) == 50


def test_token_from_another_session_is_rejected_with_reason_bad_mac() -> None:
    token = mint_token(key=KEY, binding=OTHER_BINDING, now=NOW, ttl=TTL)
    assert reject_reason(token) == Reason.CSRF_TOKEN_BAD_MAC


def test_token_made_with_another_key_is_rejected_with_reason_bad_mac() -> None:
    token = mint_token(key=OTHER_KEY, binding=BINDING, now=NOW, ttl=TTL)
    assert reject_reason(token) == Reason.CSRF_TOKEN_BAD_MAC


def test_token_with_extended_expiry_is_rejected_with_reason_bad_mac() -> None:
    version, nonce, _, mac = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL).split(".")
    assert reject_reason(f"{version}.{nonce}.{NOW + 86400}.{mac}") == Reason.CSRF_TOKEN_BAD_MAC


def test_token_with_swapped_nonce_is_rejected_with_reason_bad_mac() -> None:
    version, _, expiry, mac = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL).split(".")
    assert reject_reason(f"{version}.{b64(b'x' * 16)}.{expiry}.{mac}") == Reason.CSRF_TOKEN_BAD_MAC


def test_token_with_flipped_mac_bit_is_rejected_with_reason_bad_mac() -> None:
    version, nonce, expiry, mac = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL).split(".")
    raw = bytearray(base64.urlsafe_b64decode(mac + "="))
    raw[0] ^= 1
    assert reject_reason(f"{version}.{nonce}.{expiry}.{b64(bytes(raw))}") == Reason.CSRF_TOKEN_BAD_MAC


def test_token_is_valid_until_one_second_before_its_expiry() -> None:
    token = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL)
    assert verify_token(token, key=KEY, binding=BINDING, now=NOW + TTL - 1).expires_at == NOW + TTL


def test_token_at_its_expiry_is_rejected_with_reason_expired() -> None:
    token = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL)
    assert reject_reason(token, now=NOW + TTL) == Reason.CSRF_TOKEN_EXPIRED
    assert reject_reason(token, now=NOW + 10 * TTL) == Reason.CSRF_TOKEN_EXPIRED


def test_forged_token_with_past_expiry_reports_bad_mac_not_expired() -> None:
    forged = f"v1.{b64(b'n' * 16)}.{NOW - 5}.{b64(b'm' * 32)}"
    assert reject_reason(forged) == Reason.CSRF_TOKEN_BAD_MAC


@pytest.mark.parametrize("absent", [None, "", "   "])
def test_absent_token_is_rejected_with_reason_missing(absent: str | None) -> None:
    assert reject_reason(absent) == Reason.CSRF_TOKEN_MISSING


def test_token_with_surrounding_whitespace_is_accepted() -> None:
    token = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL)
    assert verify_token(f"  {token} ", key=KEY, binding=BINDING, now=NOW).expires_at == NOW + TTL


def _malformed_cases() -> list[tuple[str, str]]:
    good = mint_token(key=KEY, binding=BINDING, now=NOW, ttl=TTL, nonce=b"\x03" * 16)
    _, nonce, expiry, mac = good.split(".")
    # A 16-byte value has 22 base64 characters whose last one carries 4 unused bits; changing those
    # bits gives another spelling of the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    alt_nonce = nonce[:-1] + alphabet[alphabet.index(nonce[-1]) + 1]
    assert base64.urlsafe_b64decode(alt_nonce + "==") == base64.urlsafe_b64decode(nonce + "==")
    return [
        ("wrong version", f"v2.{nonce}.{expiry}.{mac}"),
        ("three parts", f"v1.{nonce}.{expiry}"),
        ("five parts", f"{good}.extra"),
        ("empty nonce", f"v1..{expiry}.{mac}"),
        ("non-numeric expiry", f"v1.{nonce}.soon.{mac}"),
        ("negative expiry", f"v1.{nonce}.-{expiry}.{mac}"),
        ("huge expiry", f"v1.{nonce}.{'9' * 13}.{mac}"),
        ("padding in nonce", f"v1.{nonce}==.{expiry}.{mac}"),
        ("standard base64 alphabet", f"v1.{nonce[:-2]}+/.{expiry}.{mac}"),
        ("short nonce", f"v1.{b64(b'x' * 8)}.{expiry}.{mac}"),
        ("long nonce", f"v1.{b64(b'x' * 32)}.{expiry}.{mac}"),
        ("non-canonical nonce spelling", f"v1.{alt_nonce}.{expiry}.{mac}"),
        ("non-ascii", f"v1.{nonce}.{expiry}.{mac}\u00e9"),
        ("too long", f"v1.{nonce}.{expiry}.{mac}{'A' * 300}"),
        ("jwt-looking", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
    ]


@pytest.mark.parametrize(("case", "token"), _malformed_cases(), ids=[c for c, _ in _malformed_cases()])
def test_malformed_token_is_rejected_with_reason_malformed(case: str, token: str) -> None:
    assert reject_reason(token) == Reason.CSRF_TOKEN_MALFORMED, case


def test_rejection_detail_never_contains_the_token() -> None:
    token = mint_token(key=OTHER_KEY, binding=BINDING, now=NOW, ttl=TTL)
    with pytest.raises(CsrfRejected) as caught:
        verify_token(token, key=KEY, binding=BINDING, now=NOW)
    assert token not in str(caught.value)
    assert token.split(".")[1] not in str(caught.value)


def test_derived_key_is_deterministic_32_bytes_and_not_the_signing_key() -> None:
    signing_key = b"s" * 32
    derived = derive_csrf_key(signing_key)
    assert derived == derive_csrf_key(signing_key)
    assert len(derived) == 32
    assert derived != signing_key
    assert derived != hmac.new(signing_key, b"", hashlib.sha256).digest()


def test_different_signing_keys_derive_different_csrf_keys() -> None:
    assert derive_csrf_key(b"a" * 32) != derive_csrf_key(b"b" * 32)


def test_short_signing_key_is_refused_for_derivation() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_csrf_key(b"s" * (MIN_KEY_BYTES - 1))


def test_settings_refuse_short_key_zero_ttl_and_unnormalised_origin() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        CsrfSettings(key=b"x" * 31, public_origin="https://localhost:8443")
    with pytest.raises(ValueError, match="at least 1 second"):
        CsrfSettings(key=KEY, public_origin="https://localhost:8443", ttl_seconds=0)
    with pytest.raises(ValueError, match="normalised"):
        CsrfSettings(key=KEY, public_origin="https://LOCALHOST:8443/")
    assert CsrfSettings(key=KEY, public_origin="https://localhost:8443").ttl_seconds == 600
