"""The pure ALB token rules: shape, header, ES256 signature and the principal."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.core.alb_token import (
    P256_ORDER,
    AlbRejected,
    AlbToken,
    alb_principal,
    check_alb_token,
    load_alb_public_key,
    verify_alb_signature,
)
from verifier.core.reasons import Reason

from .forge import ARN, CLIENT, ISSUER, KID, NOW, TENANT, AlbForge, padded, pem_of, settings


def validate(token: str, key: ec.EllipticCurvePublicKey, now: float = NOW):
    parsed = check_alb_token(token, settings(), now)
    verify_alb_signature(parsed, key)
    return alb_principal(parsed, settings())


def reason_of(token: str, key: ec.EllipticCurvePublicKey, now: float = NOW) -> Reason:
    with pytest.raises(AlbRejected) as caught:
        validate(token, key, now)
    return caught.value.reason


@pytest.fixture
def forge() -> AlbForge:
    return AlbForge()


def test_padded_alb_token_is_accepted_with_sub_as_oid_and_configured_tenant(forge: AlbForge) -> None:
    token = forge.token()
    assert "=" in token  # the ALB's padding quirk is what is under test
    principal = validate(token, forge.public_key)
    assert principal.oid == forge.payload()["sub"]
    assert principal.subject == forge.payload()["sub"]
    assert principal.tid == TENANT
    assert principal.principal_type == "user"
    assert principal.auth_source == "alb"
    assert principal.client_id == CLIENT
    assert principal.name == "Ada Lovelace"
    assert principal.email == "ada@example.com"
    assert principal.roles == principal.scopes == principal.groups == ()
    assert principal.expires_at == NOW + 120


def test_unpadded_token_is_accepted_too(forge: AlbForge) -> None:
    assert validate(forge.token(pad=False), forge.public_key).auth_source == "alb"


def test_oid_claim_wins_over_sub_and_preferred_username_over_email(forge: AlbForge) -> None:
    oid = "9a8b7c6d-0000-4000-8000-000000000001"
    token = forge.token(payload=forge.payload(oid=oid, preferred_username="ada@contoso.com"))
    principal = validate(token, forge.public_key)
    assert (principal.oid, principal.email) == (oid, "ada@contoso.com")


def test_signature_is_checked_over_the_segments_as_sent_with_padding(forge: AlbForge) -> None:
    # Signed over the unpadded text but sent padded: not what the ALB signed.
    unpadded_token = forge.token(pad=False)
    h, p, s = unpadded_token.split(".")
    repadded = ".".join(segment + "=" * (-len(segment) % 4) for segment in (h, p, s))
    assert repadded != unpadded_token
    assert reason_of(repadded, forge.public_key) == Reason.ALB_BAD_SIGNATURE


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("count", [1, 2])
def test_padding_that_the_length_does_not_call_for_is_malformed(
    forge: AlbForge, segment: int, count: int
) -> None:
    parts = forge.token(pad=False).split(".")
    if (len(parts[segment]) + count) % 4 == 0:
        parts[segment] += "=" * (count + 4)  # the right count plus a spare block
    else:
        parts[segment] += "=" * count
    assert reason_of(".".join(parts), forge.public_key) == Reason.ALB_MALFORMED


def test_too_much_padding_is_malformed(forge: AlbForge) -> None:
    h, p, s = forge.token().split(".")
    assert reason_of(f"{h}====.{p}.{s}", forge.public_key) == Reason.ALB_MALFORMED


def test_standard_base64_alphabet_is_malformed(forge: AlbForge) -> None:
    h, p, s = forge.token().split(".")
    assert reason_of(f"{h}.{p}.+{s[1:]}", forge.public_key) == Reason.ALB_MALFORMED
    assert reason_of(f"{h}.{p}./{s[1:]}", forge.public_key) == Reason.ALB_MALFORMED


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d.e", "..", "é.b.c", "x" * (16 * 1024 + 1)],
    ids=["empty", "two", "five", "empty-segments", "non-ascii", "too-large"],
)
def test_tokens_of_the_wrong_shape_are_malformed(forge: AlbForge, token: str) -> None:
    assert reason_of(token, forge.public_key) == Reason.ALB_MALFORMED


def test_header_that_is_not_a_json_object_is_malformed(forge: AlbForge) -> None:
    _, p, s = forge.token().split(".")
    assert reason_of(f"{padded(b'[1]')}.{p}.{s}", forge.public_key) == Reason.ALB_MALFORMED


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384", "PS256", None, 7])
def test_every_alg_but_es256_is_refused(forge: AlbForge, alg: object) -> None:
    token = forge.token(header=forge.header(alg=alg))  # alg=None drops the parameter
    assert reason_of(token, forge.public_key) == Reason.ALB_UNSUPPORTED_ALG


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit"])
def test_header_parameters_that_name_keys_are_refused(forge: AlbForge, name: str) -> None:
    token = forge.token(header=forge.header(**{name: "https://attacker.example/key"}))
    assert reason_of(token, forge.public_key) == Reason.ALB_MALFORMED


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "c2f80c8b-c05c-4068-af14-17299f7896b1/../x",
        "c2f80c8b-c05c-4068-af14-17299f7896b1?x=1",
        "c2f80c8b-c05c-4068-af14-17299f7896b1%2f",
        "C2F80C8B-C05C-4068-AF14-17299F7896B1",
        "c2f80c8b-c05c-4068-af14-17299f7896b",
        "",
        None,
        12,
    ],
)
def test_kid_that_is_not_a_uuid_is_refused_as_bad_kid(forge: AlbForge, kid: object) -> None:
    token = forge.token(header=forge.header(kid=kid))
    assert reason_of(token, forge.public_key) == Reason.ALB_BAD_KID


@pytest.mark.parametrize(
    "signer",
    [
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/other-alb/50dc6c495c0c9188",
        ARN + " ",
        ARN.upper(),
        None,
    ],
)
def test_signer_other_than_the_pinned_arn_is_refused(forge: AlbForge, signer: str | None) -> None:
    token = forge.token(header=forge.header(signer=signer))
    assert reason_of(token, forge.public_key) == Reason.ALB_BAD_SIGNER


def test_foreign_issuer_is_refused(forge: AlbForge) -> None:
    token = forge.token(
        header=forge.header(iss=ISSUER.replace(TENANT, "11111111-2222-4333-8444-555555555555"))
    )
    assert reason_of(token, forge.public_key) == Reason.ALB_BAD_ISSUER


def test_foreign_client_is_refused(forge: AlbForge) -> None:
    token = forge.token(header=forge.header(client="another-client"))
    assert reason_of(token, forge.public_key) == Reason.ALB_BAD_CLIENT


def test_expired_token_is_refused_after_the_leeway(forge: AlbForge) -> None:
    token = forge.token(header=forge.header(exp=NOW - 30))
    assert validate(token, forge.public_key).auth_source == "alb"  # within the 60 s leeway
    assert reason_of(forge.token(header=forge.header(exp=NOW - 60)), forge.public_key) == Reason.ALB_EXPIRED


@pytest.mark.parametrize("exp", ["1800000120", True, None])
def test_exp_that_is_not_a_number_is_malformed(forge: AlbForge, exp: object) -> None:
    token = forge.token(header=forge.header(exp=exp))
    assert reason_of(token, forge.public_key) == Reason.ALB_MALFORMED


def test_header_rules_are_checked_before_the_signature(forge: AlbForge) -> None:
    token = forge.token(header=forge.header(signer="arn:x"), signature=bytes(64))
    assert reason_of(token, forge.public_key) == Reason.ALB_BAD_SIGNER


def test_tampered_payload_is_refused_as_bad_signature(forge: AlbForge) -> None:
    h, _, s = forge.token().split(".")
    forged = padded(json.dumps(forge.payload(sub="someone-else")).encode())
    assert reason_of(f"{h}.{forged}.{s}", forge.public_key) == Reason.ALB_BAD_SIGNATURE


def test_self_signed_token_with_another_key_is_refused(forge: AlbForge) -> None:
    attacker = AlbForge()
    assert reason_of(attacker.token(), forge.public_key) == Reason.ALB_BAD_SIGNATURE


def test_psychic_signature_r_s_zero_is_refused(forge: AlbForge) -> None:
    assert reason_of(forge.token(signature=bytes(64)), forge.public_key) == Reason.ALB_BAD_SIGNATURE


@pytest.mark.parametrize("which", ["r", "s"])
def test_r_or_s_of_zero_or_at_least_the_order_is_refused(forge: AlbForge, which: str) -> None:
    token = forge.token()
    parsed = check_alb_token(token, settings(), NOW)
    r = int.from_bytes(parsed.signature[:32], "big")
    s = int.from_bytes(parsed.signature[32:], "big")
    for bad in (0, P256_ORDER, P256_ORDER + (r if which == "r" else s)):
        if bad >= 2**256:
            continue
        new_r, new_s = (bad, s) if which == "r" else (r, bad)
        forged = AlbToken(
            kid=parsed.kid,
            exp=parsed.exp,
            payload=parsed.payload,
            signing_input=parsed.signing_input,
            signature=new_r.to_bytes(32, "big") + new_s.to_bytes(32, "big"),
        )
        with pytest.raises(AlbRejected) as caught:
            verify_alb_signature(forged, forge.public_key)
        assert caught.value.reason == Reason.ALB_BAD_SIGNATURE


def test_high_s_twin_of_a_valid_signature_is_a_valid_ecdsa_signature(forge: AlbForge) -> None:
    # (r, n - s) verifies for the same message: accepted, as documented (the ALB does not normalize s).
    token = forge.token()
    parsed = check_alb_token(token, settings(), NOW)
    r = int.from_bytes(parsed.signature[:32], "big")
    s = int.from_bytes(parsed.signature[32:], "big")
    twin = AlbToken(
        kid=parsed.kid,
        exp=parsed.exp,
        payload=parsed.payload,
        signing_input=parsed.signing_input,
        signature=r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big"),
    )
    verify_alb_signature(twin, forge.public_key)


@pytest.mark.parametrize("length", [0, 63, 65, 72])
def test_signature_of_the_wrong_length_is_refused(forge: AlbForge, length: int) -> None:
    token = forge.token(signature=b"\x01" * length) if length else forge.token().rsplit(".", 1)[0] + ".AA=="
    assert reason_of(token, forge.public_key) == Reason.ALB_BAD_SIGNATURE


def test_der_encoded_signature_is_refused(forge: AlbForge) -> None:
    from cryptography.hazmat.primitives import hashes

    unsigned = forge.token().rsplit(".", 1)[0]
    der = forge.key.sign(unsigned.encode(), ec.ECDSA(hashes.SHA256()))
    assert reason_of(f"{unsigned}.{padded(der)}", forge.public_key) == Reason.ALB_BAD_SIGNATURE


def test_key_on_another_curve_is_refused(forge: AlbForge) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert reason_of(forge.token(), p384) == Reason.ALB_BAD_SIGNATURE
    with pytest.raises(ValueError):
        load_alb_public_key(pem_of(ec.generate_private_key(ec.SECP384R1())))


def test_pem_that_is_not_a_key_is_refused() -> None:
    with pytest.raises(ValueError):
        load_alb_public_key(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    forge = AlbForge()
    assert isinstance(load_alb_public_key(pem_of(forge.key)), ec.EllipticCurvePublicKey)


@pytest.mark.parametrize("payload", [{"name": "no sub"}, {"sub": ""}, {"sub": 5}, {"sub": "x", "email": 1}])
def test_payload_without_a_sub_string_or_with_bad_types_is_malformed(
    forge: AlbForge, payload: dict[str, object]
) -> None:
    assert reason_of(forge.token(payload=payload), forge.public_key) == Reason.ALB_MALFORMED


def test_kid_is_used_as_given_for_the_key_lookup(forge: AlbForge) -> None:
    assert check_alb_token(forge.token(), settings(), NOW).kid == KID
    assert settings().key_url(KID) == f"https://public-keys.auth.elb.eu-west-1.amazonaws.com/{KID}"
    with pytest.raises(ValueError):
        settings().key_url("../x")


def test_padding_helper_matches_what_the_alb_sends() -> None:
    assert padded(b"ab") == base64.urlsafe_b64encode(b"ab").decode() == "YWI="
