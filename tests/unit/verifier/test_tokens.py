"""The pure validation: every reason code, v1/v2, tenants, leeway edges, user vs app."""

from __future__ import annotations

import json

import pytest

from tests.support.token_forge import (
    API_APP_ID_URI,
    API_CLIENT_ID,
    DAEMON_CLIENT_ID,
    DROP,
    SPA_CLIENT_ID,
    TENANT_A,
    TENANT_B,
    SigningKey,
    TokenForge,
    b64json,
    b64url,
    key_set_for,
    validation_settings,
)
from verifier.core.access_tokens import verify_access_token
from verifier.core.jwk import KeySet
from verifier.core.reasons import Reason, TokenRejected, UnknownKid

AUTHORITY = "https://login.example.test"
V1_BASE = "https://sts.example.test"


def reject_reason(token, keys, settings, now) -> Reason:
    with pytest.raises(TokenRejected) as info:
        verify_access_token(token, keys, settings, now)
    return info.value.reason


def test_valid_v2_user_token_yields_user_principal_with_all_identity_fields(forge, keys, settings, now):
    principal = verify_access_token(forge.mint(), keys, settings, now)
    assert principal.oid == "11111111-1111-4111-8111-111111111111"
    assert principal.tid == TENANT_A
    assert principal.principal_type == "user"
    assert principal.auth_source == "bearer"
    assert principal.name == "Alice Example"
    assert principal.email == "alice@contoso-dev.example"
    assert principal.scopes == ("user.read", "user.write")
    assert principal.roles == ("Reader",)
    assert principal.client_id == SPA_CLIENT_ID
    assert principal.expires_at == now + 3600
    assert principal.groups_overage is False


def test_valid_app_only_token_yields_app_principal_with_roles_and_no_scopes(forge, keys, settings, now):
    principal = verify_access_token(forge.mint(forge.app_claims()), keys, settings, now)
    assert principal.principal_type == "app"
    assert principal.roles == ("Reader", "Writer")
    assert principal.scopes == ()
    assert principal.client_id == DAEMON_CLIENT_ID


def test_source_argument_is_carried_into_the_principal(forge, keys, settings, now):
    assert verify_access_token(forge.mint(), keys, settings, now, source="session").auth_source == "session"


# --- issuer versions ----------------------------------------------------------------------------------


def test_v1_token_is_accepted_when_v1_issuers_are_enabled(forge, keys, now):
    settings = validation_settings(AUTHORITY, v1_issuer_base=V1_BASE, versions=("v1", "v2"))
    principal = verify_access_token(forge.mint(forge.v1_user_claims()), keys, settings, now)
    assert principal.email == "alice@contoso-dev.example"
    assert principal.client_id == SPA_CLIENT_ID


def test_v1_token_is_rejected_with_issuer_version_not_allowed_when_only_v2_is_enabled(
    forge, keys, settings, now
):
    assert (
        reject_reason(forge.mint(forge.v1_user_claims()), keys, settings, now)
        is Reason.ISSUER_VERSION_NOT_ALLOWED
    )


def test_v2_token_is_rejected_with_issuer_version_not_allowed_when_only_v1_is_enabled(forge, keys, now):
    settings = validation_settings(AUTHORITY, v1_issuer_base=V1_BASE, versions=("v1",))
    assert reject_reason(forge.mint(), keys, settings, now) is Reason.ISSUER_VERSION_NOT_ALLOWED


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/v2.0",
        f"{AUTHORITY}/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/v2.0/",
        f"{AUTHORITY}/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        f"{AUTHORITY}/common/extra/v2.0",
        "",
    ],
)
def test_unknown_issuer_is_rejected_with_bad_issuer(forge, keys, settings, now, iss):
    reason = reject_reason(forge.mint(forge.user_claims(iss=iss)), keys, settings, now)
    assert reason is (Reason.BAD_CLAIM_TYPE if iss == "" else Reason.BAD_ISSUER)


def test_key_pinned_to_another_issuer_is_rejected_with_bad_issuer(forge, signing_key, settings, now):
    keys = key_set_for({TENANT_A: [signing_key]}, key_issuer="https://other.example/{tenantid}/v2.0")
    assert reject_reason(forge.mint(), keys, settings, now) is Reason.BAD_ISSUER


def test_key_without_issuer_template_accepts_the_configured_issuer(forge, signing_key, settings, now):
    keys = key_set_for({TENANT_A: [signing_key]})
    assert verify_access_token(forge.mint(), keys, settings, now).tid == TENANT_A


def test_v1_token_is_accepted_under_a_v2_key_issuer_template_of_the_same_tenant(forge, keys, now):
    # Entra signs v1 and v2 tokens with the same keys, published with the v2 template.
    settings = validation_settings(AUTHORITY, v1_issuer_base=V1_BASE, versions=("v1",))
    assert verify_access_token(forge.mint(forge.v1_user_claims()), keys, settings, now).tid == TENANT_A


# --- tenants ------------------------------------------------------------------------------------------


def test_token_of_a_tenant_outside_the_allow_list_is_rejected_with_tenant_not_allowed(
    forge, keys, settings, tenant_b_key, now
):
    other = TokenForge(tenant_b_key, authority=AUTHORITY, tenant_id=TENANT_B, clock=lambda: now)
    assert reject_reason(other.mint(), keys, settings, now) is Reason.TENANT_NOT_ALLOWED


def test_second_tenant_is_accepted_with_its_own_keys_when_allowed(keys, tenant_b_key, now):
    settings = validation_settings(AUTHORITY, tenants=(TENANT_A, TENANT_B))
    other = TokenForge(tenant_b_key, authority=AUTHORITY, tenant_id=TENANT_B, clock=lambda: now)
    assert verify_access_token(other.mint(), keys, settings, now).tid == TENANT_B


def test_second_tenant_token_signed_with_first_tenants_key_is_unknown_kid(forge, keys, now):
    settings = validation_settings(AUTHORITY, tenants=(TENANT_A, TENANT_B))
    token = forge.mint(forge.user_claims(tid=TENANT_B, iss=forge.v2_issuer(TENANT_B)))
    with pytest.raises(UnknownKid) as info:
        verify_access_token(token, keys, settings, now)
    assert info.value.tenant_id == TENANT_B and info.value.kid == "key-a"


def test_issuer_of_one_tenant_with_tid_of_another_is_rejected_with_tenant_mismatch(forge, keys, now):
    settings = validation_settings(AUTHORITY, tenants=(TENANT_A, TENANT_B))
    token = forge.mint(forge.user_claims(iss=forge.v2_issuer(TENANT_B)))
    assert reject_reason(token, keys, settings, now) is Reason.TENANT_MISMATCH


def test_tenant_with_no_loaded_keys_is_rejected_with_keys_unavailable(forge, settings, now):
    assert reject_reason(forge.mint(), KeySet(), settings, now) is Reason.KEYS_UNAVAILABLE


# --- audience -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("aud", [API_APP_ID_URI, API_CLIENT_ID])
def test_both_audience_forms_are_accepted_when_configured(forge, keys, settings, now, aud):
    assert verify_access_token(forge.mint(forge.user_claims(aud=aud)), keys, settings, now).oid


def test_other_audience_is_rejected_with_bad_audience(forge, keys, settings, now):
    token = forge.mint(forge.user_claims(aud="api://someone-else"))
    assert reject_reason(token, keys, settings, now) is Reason.BAD_AUDIENCE


def test_audience_list_holding_ours_is_rejected_with_audience_list(forge, keys, settings, now):
    token = forge.mint(forge.user_claims(aud=[API_APP_ID_URI]))
    assert reject_reason(token, keys, settings, now) is Reason.AUDIENCE_LIST


# --- time and leeway ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": -59}, None),  # exp 59 s ago: inside the 60 s leeway
        ({"exp": -60}, Reason.EXPIRED),  # exactly at the leeway edge: expired
        ({"exp": -3600}, Reason.EXPIRED),
        ({"nbf": 60}, None),  # nbf 60 s ahead: inside the leeway
        ({"nbf": 61}, Reason.NOT_YET_VALID),
        ({"iat": 60}, None),
        ({"iat": 61}, Reason.NOT_YET_VALID),
    ],
)
def test_exp_nbf_and_iat_honour_the_leeway_edges(forge, keys, settings, now, claims, expected):
    token = forge.mint(forge.user_claims(**{k: now + v for k, v in claims.items()}))
    if expected is None:
        assert verify_access_token(token, keys, settings, now).oid
    else:
        assert reject_reason(token, keys, settings, now) is expected


def test_zero_leeway_rejects_a_token_one_second_past_exp(forge, keys, now):
    settings = validation_settings(AUTHORITY, leeway=0)
    token = forge.mint(forge.user_claims(exp=now - 1))
    assert reject_reason(token, keys, settings, now) is Reason.EXPIRED
    assert verify_access_token(forge.mint(forge.user_claims(exp=now + 1)), keys, settings, now).oid


def test_fractional_exp_is_accepted_as_a_number(forge, keys, settings, now):
    assert verify_access_token(
        forge.mint(forge.user_claims(exp=now + 10.5)), keys, settings, now
    ).expires_at == (now + 10)


# --- required claims and types ------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "nbf", "iat", "oid", "sub"])
def test_missing_required_claim_is_rejected_with_missing_claim(forge, keys, settings, now, claim):
    token = forge.mint(forge.user_claims(**{claim: DROP}))
    with pytest.raises(TokenRejected) as info:
        verify_access_token(token, keys, settings, now)
    assert info.value.reason is Reason.MISSING_CLAIM
    assert repr(claim) in info.value.detail


def test_missing_tid_is_rejected_with_missing_claim(forge, keys, settings, now):
    assert reject_reason(forge.mint(forge.user_claims(tid=DROP)), keys, settings, now) is Reason.MISSING_CLAIM


@pytest.mark.parametrize(
    "override",
    [
        {"exp": "1700003600"},
        {"exp": True},
        {"nbf": None},
        {"iat": [1]},
        {"oid": 12},
        {"oid": ""},
        {"sub": None},
        {"aud": 5},
        {"scp": ["user.read"]},
        {"roles": "Reader"},
        {"roles": ["Reader", 1]},
        {"groups": "g1"},
        {"azp": 1},
        {"name": {"x": 1}},
        {"idtyp": "device"},
    ],
)
def test_claim_of_the_wrong_type_is_rejected_with_bad_claim_type(forge, keys, settings, now, override):
    assert (
        reject_reason(forge.mint(forge.user_claims(**override)), keys, settings, now) is Reason.BAD_CLAIM_TYPE
    )


def test_tid_of_the_wrong_type_is_rejected_with_bad_claim_type(forge, keys, settings, now):
    assert reject_reason(forge.mint(forge.user_claims(tid=7)), keys, settings, now) is Reason.BAD_CLAIM_TYPE


def test_token_with_neither_scp_nor_roles_is_rejected_with_no_scp_or_roles(forge, keys, settings, now):
    token = forge.mint(forge.user_claims(scp=DROP, roles=DROP))
    assert reject_reason(token, keys, settings, now) is Reason.NO_SCP_OR_ROLES


def test_empty_scp_and_roles_count_as_absent(forge, keys, settings, now):
    token = forge.mint(forge.user_claims(scp="", roles=[]))
    assert reject_reason(token, keys, settings, now) is Reason.NO_SCP_OR_ROLES


def test_id_token_with_nonce_is_rejected_with_id_token(forge, keys, settings, now):
    token = forge.mint(forge.user_claims(nonce="n-0S6_WzA2Mj", aud=API_CLIENT_ID))
    assert reject_reason(token, keys, settings, now) is Reason.ID_TOKEN


def test_id_token_shape_without_client_and_scopes_is_rejected_with_id_token(forge, keys, settings, now):
    claims = forge.user_claims(aud=API_CLIENT_ID, scp=DROP, roles=DROP, azp=DROP, azpacr=DROP, idtyp=DROP)
    assert reject_reason(forge.mint(claims), keys, settings, now) is Reason.ID_TOKEN


# --- classification -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"idtyp": "app"}, "app"),
        ({"idtyp": "user", "scp": DROP}, "user"),  # idtyp wins over the roles-only shape
        ({"idtyp": DROP, "scp": DROP}, "app"),  # roles without scp
        ({"idtyp": DROP, "oid": "same", "sub": "same"}, "app"),  # oid == sub
        ({"idtyp": DROP}, "user"),
    ],
)
def test_user_and_app_classification(forge, keys, settings, now, overrides, expected):
    token = forge.mint(forge.user_claims(**overrides))
    assert verify_access_token(token, keys, settings, now).principal_type == expected


def test_groups_overage_reference_sets_groups_overage(forge, keys, settings, now):
    claims = forge.user_claims(_claim_names={"groups": "src1"}, _claim_sources={"src1": {"endpoint": "x"}})
    principal = verify_access_token(forge.mint(claims), keys, settings, now)
    assert principal.groups_overage is True and principal.groups == ()


def test_groups_are_carried_into_the_principal(forge, keys, settings, now):
    principal = verify_access_token(forge.mint(forge.user_claims(groups=["g1", "g2"])), keys, settings, now)
    assert principal.groups == ("g1", "g2")


# --- shape, header, signature -------------------------------------------------------------------------


def test_token_over_16_kib_is_rejected_with_token_too_large(keys, settings, now):
    assert reject_reason("a" * (16 * 1024 + 1), keys, settings, now) is Reason.TOKEN_TOO_LARGE


@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c.d", "a..c", ".b.c", "é.b.c", "..", "a.b.c.d.e.f"])
def test_token_not_of_three_segments_is_rejected_with_malformed_token(keys, settings, now, token):
    assert reject_reason(token, keys, settings, now) is Reason.MALFORMED_TOKEN


def test_five_segment_jwe_is_rejected_with_jwe_not_supported(keys, settings, now):
    token = ".".join([b64json({"alg": "RSA-OAEP", "enc": "A256GCM"}), "a", "b", "c", "d"])
    assert reject_reason(token, keys, settings, now) is Reason.JWE_NOT_SUPPORTED


@pytest.mark.parametrize("part", [0, 1, 2])
@pytest.mark.parametrize("bad", ["!!!!", "ab+c", "ab/c", "abc=", "a", "ab$"])
def test_non_base64url_segment_is_rejected_with_bad_base64(forge, keys, settings, now, part, bad):
    segments = forge.mint().split(".")
    segments[part] = bad
    assert reject_reason(".".join(segments), keys, settings, now) is Reason.BAD_BASE64


def test_non_canonical_base64url_trailing_bits_are_rejected_with_bad_base64(forge, keys, settings, now):
    header, payload, _signature = forge.mint().split(".")
    # 'B' carries a non-zero bit where canonical base64url must have zeros (2 chars mod 4).
    sig_bytes = b"\x00" * 255 + b"\x00"
    canonical = b64url(sig_bytes)
    assert canonical.endswith("A")
    tampered = canonical[:-1] + "B"
    assert reject_reason(f"{header}.{payload}.{tampered}", keys, settings, now) is Reason.BAD_BASE64


@pytest.mark.parametrize(
    "header_b64",
    [b64url(b"not json"), b64url(b"[1,2]"), b64url(b'{"alg":'), b64url(b"\xff\xfe")],
)
def test_header_that_is_not_a_json_object_is_rejected_with_bad_json(forge, keys, settings, now, header_b64):
    _, payload, signature = forge.mint().split(".")
    assert reject_reason(f"{header_b64}.{payload}.{signature}", keys, settings, now) is Reason.BAD_JSON


def test_payload_that_is_not_a_json_object_is_rejected_with_bad_json(forge, keys, settings, now):
    header, _, signature = forge.mint().split(".")
    token = f"{header}.{b64url(json.dumps([1]).encode())}.{signature}"
    assert reject_reason(token, keys, settings, now) is Reason.BAD_JSON


@pytest.mark.parametrize(
    "alg", ["none", "None", "HS256", "HS384", "HS512", "ES256", "PS256", "RS384", "RS512", "", 7]
)
def test_alg_other_than_rs256_is_rejected_with_unsupported_alg(forge, keys, settings, now, alg):
    token = forge.mint(header=forge.header(alg=alg))
    assert reject_reason(token, keys, settings, now) is Reason.UNSUPPORTED_ALG


def test_missing_alg_is_rejected_with_unsupported_alg(forge, keys, settings, now):
    assert (
        reject_reason(forge.mint(header=forge.header(alg=DROP)), keys, settings, now)
        is Reason.UNSUPPORTED_ALG
    )


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
def test_key_bearing_header_is_rejected_with_forbidden_header(forge, keys, settings, now, name):
    token = forge.mint(header=forge.header(**{name: "https://attacker.example/key"}))
    assert reject_reason(token, keys, settings, now) is Reason.FORBIDDEN_HEADER


def test_crit_header_is_rejected_with_crit_not_supported(forge, keys, settings, now):
    token = forge.mint(header=forge.header(crit=["exp"], exp=1))
    assert reject_reason(token, keys, settings, now) is Reason.CRIT_NOT_SUPPORTED


@pytest.mark.parametrize("kid", [DROP, "", 5, None, ["key-a"]])
def test_missing_or_non_string_kid_is_rejected_with_missing_kid(forge, keys, settings, now, kid):
    assert reject_reason(forge.mint(header=forge.header(kid=kid)), keys, settings, now) is Reason.MISSING_KID


def test_unknown_kid_raises_unknown_kid_naming_tenant_and_kid(forge, keys, settings, now):
    token = forge.mint(header=forge.header(kid="rotated-key"))
    with pytest.raises(UnknownKid) as info:
        verify_access_token(token, keys, settings, now)
    assert (info.value.reason, info.value.tenant_id, info.value.kid) == (
        Reason.UNKNOWN_KID,
        TENANT_A,
        "rotated-key",
    )


def test_tampered_payload_is_rejected_with_bad_signature(forge, keys, settings, now):
    header, _, signature = forge.mint().split(".")
    payload = b64json(forge.user_claims(roles=["Admin"]))
    assert reject_reason(f"{header}.{payload}.{signature}", keys, settings, now) is Reason.BAD_SIGNATURE


def test_token_signed_by_another_key_under_a_known_kid_is_rejected_with_bad_signature(
    forge, keys, settings, now
):
    impostor = SigningKey.generate("key-a")
    assert reject_reason(forge.mint(key=impostor), keys, settings, now) is Reason.BAD_SIGNATURE


def test_truncated_signature_is_rejected_with_bad_signature(forge, keys, settings, now):
    header, payload, _signature = forge.mint().split(".")
    short = b64url(b"\x01" * 32)
    assert reject_reason(f"{header}.{payload}.{short}", keys, settings, now) is Reason.BAD_SIGNATURE


def test_rejections_after_payload_parse_carry_the_oid_for_logs(forge, keys, settings, now):
    token = forge.mint(forge.user_claims(aud="api://other"))
    with pytest.raises(TokenRejected) as info:
        verify_access_token(token, keys, settings, now)
    assert info.value.oid == "11111111-1111-4111-8111-111111111111"
    assert token not in str(info.value)


def test_rs256_token_with_empty_signature_is_rejected_with_bad_signature(forge, keys, settings, now):
    header, payload, _ = forge.mint().split(".")
    assert reject_reason(f"{header}.{payload}.", keys, settings, now) is Reason.BAD_SIGNATURE
