"""The verifier signs exactly the known-answer vector (tests/fixtures/identity_signature_v1.json).

Round trips through verifier.core.identity cannot notice a change of the wire format, since signer and
checker change together; this vector was computed outside the module and is shared with the API's
tests, so both sides are held to the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tests.fixtures import identity_signature_vector
from verifier.core.identity import (
    HEADER_SIGNATURE,
    SIGNED_HEADERS,
    Principal,
    SignatureError,
    decode_identity_key,
    principal_headers,
    sign_headers,
    signed_principal_headers,
    verify_signature,
)

VECTOR = identity_signature_vector()
KEY = bytes.fromhex(VECTOR["key_hex"])
P = VECTOR["principal"]
PRINCIPAL = Principal(
    oid=P["oid"],
    tid=P["tid"],
    principal_type=P["principal_type"],
    auth_source=P["auth_source"],
    client_id=P["client_id"],
    name=P["name"],
    email=P["email"],
    roles=tuple(P["roles"]),
    scopes=tuple(P["scopes"]),
    groups=tuple(P["groups"]),
    groups_overage=P["groups_overage"],
)


def test_the_environment_value_decodes_to_the_vector_key() -> None:
    assert decode_identity_key(VECTOR["identity_signing_key_env"]) == KEY


def test_the_vector_is_consistent_hmac_sha256_over_its_canonical_lines() -> None:
    canonical = "\n".join(VECTOR["canonical_lines"]).encode("utf-8")
    mac = base64.urlsafe_b64encode(hmac.new(KEY, canonical, hashlib.sha256).digest()).rstrip(b"=")
    assert VECTOR["signature"] == f"v1;t={VECTOR['timestamp']};sig={mac.decode()}"
    # The canonical lines name every signed header, lower-case, in the wire order.
    assert [line.split(":", 1)[0] for line in VECTOR["canonical_lines"][4:]] == [
        name.lower() for name in SIGNED_HEADERS
    ]


def test_principal_headers_encode_the_vector_values() -> None:
    assert principal_headers(PRINCIPAL) == VECTOR["headers"]


def test_sign_headers_produces_the_vector_signature() -> None:
    signature = sign_headers(
        VECTOR["headers"], key=KEY, method=VECTOR["method"], uri=VECTOR["uri"], now=VECTOR["timestamp"]
    )
    assert signature == VECTOR["signature"]


def test_signed_principal_headers_match_the_vector() -> None:
    signed = signed_principal_headers(
        PRINCIPAL, key=KEY, method=VECTOR["method"], uri=VECTOR["uri"], now=VECTOR["timestamp"]
    )
    assert signed == {**VECTOR["headers"], HEADER_SIGNATURE: VECTOR["signature"]}


def test_the_vector_signature_is_accepted_at_its_timestamp() -> None:
    headers = {**VECTOR["headers"], HEADER_SIGNATURE: VECTOR["signature"]}
    verify_signature(
        headers, keys=(KEY,), method=VECTOR["method"], uri=VECTOR["uri"], now=VECTOR["timestamp"]
    )


@pytest.mark.parametrize(
    ("method", "uri"), [("POST", VECTOR["uri"]), ("GET", "/api/me?view=full&note=a/b%20c")]
)
def test_the_vector_signature_does_not_vouch_for_another_method_or_uri(method: str, uri: str) -> None:
    headers = {**VECTOR["headers"], HEADER_SIGNATURE: VECTOR["signature"]}
    with pytest.raises(SignatureError) as refused:
        verify_signature(headers, keys=(KEY,), method=method, uri=uri, now=VECTOR["timestamp"])
    assert refused.value.reason == "bad_identity_signature"


def test_the_vector_signature_with_another_timestamp_is_refused() -> None:
    later = VECTOR["timestamp"] + 1
    moved = VECTOR["signature"].replace(f"t={VECTOR['timestamp']};", f"t={later};")
    headers = {**VECTOR["headers"], HEADER_SIGNATURE: moved}
    with pytest.raises(SignatureError) as refused:
        verify_signature(headers, keys=(KEY,), method=VECTOR["method"], uri=VECTOR["uri"], now=later)
    assert refused.value.reason == "bad_identity_signature"
