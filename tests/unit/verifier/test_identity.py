"""The identity header contract: value encoding, signing and checking (verifier/core/identity.py)."""

from __future__ import annotations

import random
import string
from urllib.parse import quote

import pytest

from verifier.core.identity import (
    HEADER_NAME,
    HEADER_ROLES,
    HEADER_SIGNATURE,
    Principal,
    SignatureError,
    encode_list,
    encode_value,
    principal_from_headers,
    signed_principal_headers,
    verify_signature,
)

KEY = b"k" * 32
TRICKY = [
    "",
    "plain",
    "José Núñez",
    "a,b",
    "a b",
    "100%",
    "line\r\nX-Roles: Admin",
    "\u2028",
    "ü,ß x",
    "~_.-",
]


def _principal(**overrides: object) -> Principal:
    fields: dict[str, object] = {
        "oid": "00000000-0000-4000-8000-000000000001",
        "tid": "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "principal_type": "user",
        "auth_source": "bearer",
        "name": "Alice",
        "roles": ("Reader",),
        "scopes": ("user.read",),
    }
    fields.update(overrides)
    return Principal(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", TRICKY)
def test_encoded_values_are_what_percent_encoding_gives_and_never_carry_control_characters(value: str):
    encoded = encode_value(value)
    assert encoded == quote(value, safe=" !#$&'()*+-./:;=?@[]^_`{|}~,")
    assert encoded.isascii() and "\r" not in encoded and "\n" not in encoded


def test_the_fast_path_for_plain_values_encodes_exactly_like_quote_on_random_strings():
    rng = random.Random(7)
    alphabet = string.printable + "éß€%\u2028,"
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert encode_value(value) == quote(value, safe=" !#$&'()*+-./:;=?@[]^_`{|}~,")
        assert encode_list((value,), ",") == quote(value, safe="!#$&'()*+-./:;=?@[]^_`{|}~")


def test_list_items_cannot_smuggle_the_separator():
    assert encode_list(("a,b", "c d"), ",") == "a%2Cb,c%20d"
    assert encode_list(("x y", "z"), " ") == "x%20y z"


def test_principal_survives_the_round_trip_through_signed_headers():
    principal = _principal(name="José, Jr", roles=("A,b", "Reader"), scopes=("user.read", "x y"))
    headers = signed_principal_headers(principal, key=KEY, method="GET", uri="/api/me?x=1", now=1000)
    verify_signature(headers, keys=(KEY,), method="GET", uri="/api/me?x=1", now=1010)
    back = principal_from_headers(headers)
    assert (back.name, back.roles, back.scopes) == ("José, Jr", ("A,b", "Reader"), ("user.read", "x y"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h.__setitem__(HEADER_ROLES, "Admin"), "bad_identity_signature"),
        (lambda h: h.__setitem__(HEADER_NAME, "Mallory"), "bad_identity_signature"),
        (lambda h: h.pop(HEADER_SIGNATURE), "missing_identity_signature"),
        (lambda h: h.__setitem__(HEADER_SIGNATURE, "v1;t=1000"), "malformed_identity_signature"),
        (lambda h: h.__setitem__(HEADER_SIGNATURE, "v2;t=1000;sig=x"), "malformed_identity_signature"),
    ],
)
def test_a_changed_identity_header_is_refused_with_its_reason(change, reason: str):
    headers = signed_principal_headers(_principal(), key=KEY, method="GET", uri="/api/me", now=1000)
    change(headers)
    with pytest.raises(SignatureError) as raised:
        verify_signature(headers, keys=(KEY,), method="GET", uri="/api/me", now=1001)
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    ("method", "uri", "now", "reason"),
    [
        ("POST", "/api/me", 1001, "bad_identity_signature"),
        ("GET", "/api/projects", 1001, "bad_identity_signature"),
        ("GET", "/api/me", 1031, "stale_identity_signature"),
        ("GET", "/api/me", 990, "stale_identity_signature"),
    ],
)
def test_a_signature_vouches_only_for_its_own_request_and_time(method: str, uri: str, now: int, reason: str):
    headers = signed_principal_headers(_principal(), key=KEY, method="GET", uri="/api/me", now=1000)
    with pytest.raises(SignatureError) as raised:
        verify_signature(headers, keys=(KEY,), method=method, uri=uri, now=now, max_age=30)
    assert raised.value.reason == reason


def test_the_previous_key_is_accepted_during_a_rotation_and_an_unknown_key_is_not():
    headers = signed_principal_headers(_principal(), key=KEY, method="GET", uri="/api/me", now=1000)
    verify_signature(headers, keys=(b"n" * 32, KEY), method="GET", uri="/api/me", now=1000)
    with pytest.raises(SignatureError):
        verify_signature(headers, keys=(b"n" * 32,), method="GET", uri="/api/me", now=1000)
