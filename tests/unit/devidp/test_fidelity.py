"""devidp behaves where Entra's reference pages say Entra behaves, one test per documented behaviour.

Each test names the behaviour and the page it comes from (docs/devidp.md has the same table). They
pin the places where an older devidp was kinder or stricter than Entra, so that code relying on a
claim Entra does not send, a single signing key, or refresh-token revocation fails here too.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest

from devidp.app import create_app
from devidp.config import config_from_mapping
from devidp.keys import KeyRing
from devidp.runtime import RUNTIME
from service_runtime.config_error import ConfigError
from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    API,
    API_URI,
    BFF,
    DAEMON,
    POSTMAN,
    TENANT,
    RunningIdp,
    assert_entra_error,
    bff_authorize_url,
    example_mapping,
    redirect_params,
    sign_in,
    unverified,
    validate_as_resource_server,
)

ALICE_UPN = "alice@contoso-dev.example"
Start = Callable[..., RunningIdp]


def _api(data: dict[str, Any]) -> dict[str, Any]:
    return data["tenants"][0]["applications"][0]


def _ropc(idp: RunningIdp, scope: str, *, tenant: str = TENANT, user: str = ALICE_UPN) -> dict[str, Any]:
    r = idp.token(
        forms.password(user, user.split("@")[0] + "-password", scope),
        tenant=tenant,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def _bff_tokens(idp: RunningIdp, scope: str, **authorize: str) -> dict[str, Any]:
    s = idp.session()
    page = sign_in(idp, s, bff_authorize_url(idp, scope, **authorize), pick=ALICE)
    code = redirect_params(page)["code"]
    r = idp.token(forms.bff_code_redemption(code))
    assert r.status_code == 200, r.text
    return r.json()


def _with_optional_claims(access: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        _api(data)["optionalClaims"] = {"accessToken": access}

    return edit


# -- 1. email ------------------------------------------------------------------------------------------


def test_access_token_has_email_only_when_the_email_optional_claim_is_configured(start_idp: Start) -> None:
    """Optional claims reference: `email` for a managed (member) user must be requested as an optional
    claim; the access token of a new registration has none, v1 or v2."""
    plain = _ropc(start_idp(), f"openid profile email {API_URI}/user.read")
    assert "email" not in unverified(plain["access_token"])

    configured = start_idp(_with_optional_claims([{"name": "email"}]))
    token = _ropc(configured, f"openid profile {API_URI}/user.read")["access_token"]
    assert unverified(token)["email"] == ALICE_UPN


# -- 2. idtyp ------------------------------------------------------------------------------------------


def test_idtyp_is_in_user_tokens_only_with_include_user_token(start_idp: Start) -> None:
    """Optional claims reference: `idtyp` is emitted in app-only tokens; user tokens get it only with
    the additional property `include_user_token`."""
    idp = start_idp()  # the example API configures idtyp without additional properties
    user = unverified(_ropc(idp, f"profile {API_URI}/user.read")["access_token"])
    assert "idtyp" not in user
    app = idp.token(forms.daemon_credentials()).json()
    assert unverified(app["access_token"])["idtyp"] == "app"

    with_user = start_idp(
        _with_optional_claims([{"name": "idtyp", "additionalProperties": ["include_user_token"]}])
    )
    assert unverified(_ropc(with_user, f"{API_URI}/user.read")["access_token"])["idtyp"] == "user"


# -- 3. signing keys -----------------------------------------------------------------------------------


def test_jwks_publishes_several_keys_and_the_signing_key_is_not_the_first(idp: RunningIdp) -> None:
    """Signing key rollover: Entra publishes several keys at once and any of them may sign; a
    validator must pick the key by `kid`, never the first one."""
    keys = idp.session().get(idp.url(f"/{TENANT}/discovery/v2.0/keys"), timeout=10).json()["keys"]
    token = _ropc(idp, f"{API_URI}/user.read")["access_token"]
    kids = [k["kid"] for k in keys]
    assert len(kids) >= 2 and len(set(kids)) == len(kids)
    assert _header(token)["kid"] in kids[1:]


def test_key_rollover_by_schedule_signs_with_the_announced_key(upcoming_key, shared_key) -> None:
    """Signing key rollover: the next key is published before it signs; after the rollover the
    previous key stays published, so tokens signed before it still validate."""
    now = [1_000_000.0]
    ring = KeyRing(shared_key, upcoming=upcoming_key, clock=lambda: now[0], rotation_seconds=3600)
    assert ring.current is shared_key and [k.kid for k in ring.published] == [
        upcoming_key.kid,
        shared_key.kid,
    ]
    now[0] += 3599
    assert ring.current is shared_key
    now[0] += 1
    assert ring.current is upcoming_key
    assert [k.kid for k in ring.published][1:] == [upcoming_key.kid, shared_key.kid]


def test_unannounced_rollover_needs_a_jwks_refetch_on_unknown_kid(start_idp: Start) -> None:
    """Signing key rollover (emergency): a token may be signed with a key the cached JWKS does not
    hold; validators must refetch the JWKS when they meet an unknown `kid`."""
    idp = start_idp(admin=True)
    cached = {k["kid"] for k in idp.session().get(idp.url(f"/{TENANT}/discovery/v2.0/keys")).json()["keys"]}
    r = idp.session().post(idp.url("/_devidp/admin/keys/rotate?announced=false"), timeout=10)
    assert r.status_code == 200
    token = _ropc(idp, f"{API_URI}/user.read")["access_token"]
    assert _header(token)["kid"] not in cached
    assert validate_as_resource_server(idp, token, audience=API)["aud"] == API  # after a refetch


# -- 4. refresh tokens ---------------------------------------------------------------------------------


def test_refresh_token_is_not_revoked_when_used_and_concurrent_refreshes_succeed(idp: RunningIdp) -> None:
    """Refresh tokens: "Refresh tokens aren't revoked when used to acquire new access tokens"; a used
    one stays valid until it expires, so two refreshes of one session at once both succeed."""
    first = _bff_tokens(idp, f"openid offline_access {API_URI}/user.read")
    data = forms.bff_refresh(first["refresh_token"])
    second = idp.token(data)
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: idp.token(data), range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert idp.token({**data, "refresh_token": second.json()["refresh_token"]}).status_code == 200


# -- 5. profile scope ----------------------------------------------------------------------------------


def test_name_preferred_username_and_id_token_oid_need_the_profile_scope(idp: RunningIdp) -> None:
    """Access- and ID-token claims references: `name`, `preferred_username` (and in ID tokens `oid`)
    are sent only when the profile scope was requested."""
    without = _bff_tokens(idp, f"openid {API_URI}/user.read")
    access, id_claims = unverified(without["access_token"]), unverified(without["id_token"])
    assert "name" not in access and "preferred_username" not in access and access["oid"] == ALICE
    assert "oid" not in id_claims and "name" not in id_claims and "preferred_username" not in id_claims
    with_profile = _bff_tokens(idp, f"openid profile {API_URI}/user.read")
    access, id_claims = unverified(with_profile["access_token"]), unverified(with_profile["id_token"])
    assert access["name"] == "Alice Reader" and access["preferred_username"] == ALICE_UPN
    assert id_claims["oid"] == ALICE and id_claims["preferred_username"] == ALICE_UPN


# -- 6. Microsoft Graph tokens -------------------------------------------------------------------------


def test_graph_token_does_not_validate_as_a_jwt_but_graph_accepts_it(idp: RunningIdp) -> None:
    """Access tokens: tokens for Microsoft APIs use a special format that will not validate as a JWT;
    only the API they are for reads them (here devidp's userinfo, which is Graph's)."""
    token = _ropc(idp, "openid profile User.Read")["access_token"]
    assert "nonce" in _header(token)
    with pytest.raises(jwt.InvalidSignatureError):
        validate_as_resource_server(idp, token, audience="00000003-0000-0000-c000-000000000000", version=1)
    r = idp.session().get(idp.url("/oidc/userinfo"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "Alice Reader"


# -- 7. sid and x5t ------------------------------------------------------------------------------------


def test_sid_is_an_optional_claim_of_access_tokens_and_x5t_is_v1_only(start_idp: Start) -> None:
    """Access-token claims: `sid` is an optional claim; the `x5t` header is in v1.0 tokens only
    (v2.0 access and ID tokens carry `kid` alone)."""
    idp = start_idp()
    tokens = _bff_tokens(idp, f"openid profile {API_URI}/user.read")
    assert "sid" not in unverified(tokens["access_token"])
    assert "x5t" not in _header(tokens["access_token"]) and "x5t" not in _header(tokens["id_token"])
    assert unverified(tokens["id_token"])["sid"]

    def v1_with_sid(data: dict[str, Any]) -> None:
        _api(data)["api"]["requestedAccessTokenVersion"] = 1
        _api(data)["optionalClaims"] = {"accessToken": [{"name": "sid"}]}

    v1 = start_idp(v1_with_sid)
    token = _bff_tokens(v1, f"openid {API_URI}/user.read")["access_token"]
    assert _header(token)["x5t"] == _header(token)["kid"]
    assert unverified(token)["sid"]


# -- 8. lifetime ---------------------------------------------------------------------------------------


def test_default_access_token_lifetime_is_random_between_60_and_90_minutes(start_idp: Start) -> None:
    """Configurable token lifetimes: the default access-token lifetime is a random value between
    60 and 90 minutes; `random_seed` fixes the sequence and a set lifetime fixes the value."""

    def seeded(data: dict[str, Any]) -> None:
        data["lifetimes"]["random_seed"] = 42

    lifetimes = [_ropc(start_idp(seeded), f"{API_URI}/user.read")["expires_in"] for _ in range(2)]
    idp = start_idp(seeded)
    tokens = [_ropc(idp, f"{API_URI}/user.read") for _ in range(6)]
    seen = [t["expires_in"] for t in tokens]
    expected = random.Random(42)
    assert seen == [expected.randint(3600, 5400) for _ in range(6)]
    assert lifetimes == seen[:1] * 2  # the same seed, the same first lifetime
    assert len(set(seen)) > 1
    for t in tokens:
        claims = unverified(t["access_token"])
        assert claims["exp"] - claims["iat"] == t["expires_in"] == t["ext_expires_in"]

    def fixed(data: dict[str, Any]) -> None:
        data["lifetimes"]["access_token_seconds"] = 1234

    assert _ropc(start_idp(fixed), f"{API_URI}/user.read")["expires_in"] == 1234


# -- 9. ipaddr -----------------------------------------------------------------------------------------


def test_v1_access_token_carries_ipaddr(start_idp: Start) -> None:
    """Access-token claims: `ipaddr`, the address the user authenticated from, is in v1.0 tokens
    (an optional claim for v2.0)."""

    def v1(data: dict[str, Any]) -> None:
        _api(data)["api"]["requestedAccessTokenVersion"] = 1

    claims = unverified(_ropc(start_idp(v1), f"{API_URI}/user.read")["access_token"])
    assert claims["ipaddr"] == "127.0.0.1"
    assert "ipaddr" not in unverified(_ropc(start_idp(), f"{API_URI}/user.read")["access_token"])


# -- 10. errors ----------------------------------------------------------------------------------------


def test_error_description_trailer_is_separated_by_crlf(idp: RunningIdp) -> None:
    """Error responses: `error_description` ends with Trace ID, Correlation ID and Timestamp, each on
    its own CRLF-separated line."""
    r = idp.token(
        {"grant_type": "client_credentials", "client_id": DAEMON, "client_secret": "wrong-secret-x"}
    )
    body = assert_entra_error(r, 401, "invalid_client", 7000215)
    lines = body["error_description"].split("\r\n")
    assert lines[1:] == [
        f"Trace ID: {body['trace_id']}",
        f"Correlation ID: {body['correlation_id']}",
        f"Timestamp: {body['timestamp']}",
    ]


def test_two_resources_are_700022_and_a_refresh_naming_two_gets_the_first(idp: RunningIdp) -> None:
    """Error code reference: AADSTS700022 InvalidMultipleResourcesScope; a refresh request with
    scopes of several resources gets a token for the first resource."""
    r = idp.token(forms.password(ALICE_UPN, "alice-password", f"{API_URI}/user.read User.Read"))
    assert_entra_error(r, 400, "invalid_scope", 700022)
    first = _bff_tokens(idp, f"openid offline_access {API_URI}/user.read")
    refreshed = idp.token(forms.bff_refresh(first["refresh_token"], scope=f"{API_URI}/user.write User.Read"))
    assert refreshed.status_code == 200, refreshed.text
    assert unverified(refreshed.json()["access_token"])["aud"] == API
    assert refreshed.json()["scope"] == f"{API_URI}/user.write"


def test_unknown_device_code_is_bad_verification_code(idp: RunningIdp) -> None:
    """Device code flow: a device_code the token endpoint does not recognise is `bad_verification_code`."""
    r = idp.token(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": POSTMAN,
            "device_code": "not-a-device-code",
        }
    )
    assert_entra_error(r, 400, "bad_verification_code", 70000)


# -- 11. multi-tenant endpoints and discovery ----------------------------------------------------------


def test_organizations_discovery_and_multi_tenant_token_endpoints_answer(idp: RunningIdp) -> None:
    """OpenID Connect: `/organizations` and `/common` serve discovery with the `{tenantid}` issuer;
    the token endpoint there resolves the tenant from the user or grant; with nothing naming a tenant
    it is AADSTS50059."""
    s = idp.session()
    doc = s.get(idp.url("/organizations/v2.0/.well-known/openid-configuration"), timeout=10)
    assert doc.status_code == 200
    assert doc.json()["issuer"] == f"{idp.base_url}/{{tenantid}}/v2.0"
    for segment in ("common", "organizations"):
        token = _ropc(idp, f"{API_URI}/user.read", tenant=segment)["access_token"]
        assert unverified(token)["tid"] == TENANT
    r = idp.token(
        forms.daemon_credentials(),
        tenant="common",
    )
    assert_entra_error(r, 400, "invalid_request", 50059)


def test_discovery_documents_list_what_entra_lists(idp: RunningIdp) -> None:
    """Published discovery documents: v2 lists the hybrid response types, `private_key_jwt` and
    `kerberos_endpoint`; v1 adds `check_session_iframe`, `userinfo_endpoint` and the cloud claims."""
    s = idp.session()
    v2 = s.get(idp.url(f"/{TENANT}/v2.0/.well-known/openid-configuration"), timeout=10).json()
    assert v2["response_types_supported"] == ["code", "id_token", "code id_token", "id_token token"]
    assert "private_key_jwt" in v2["token_endpoint_auth_methods_supported"]
    assert v2["kerberos_endpoint"] == f"{idp.base_url}/{TENANT}/kerberos"
    v1 = s.get(idp.url(f"/{TENANT}/.well-known/openid-configuration"), timeout=10).json()
    assert v1["check_session_iframe"] == f"{idp.base_url}/{TENANT}/oauth2/checksession"
    assert v1["userinfo_endpoint"] == f"{idp.base_url}/{TENANT}/openid/userinfo"
    assert {"cloud_instance_name", "cloud_graph_host_name", "msgraph_host"} <= set(v1["claims_supported"])
    assert v1["kerberos_endpoint"] == f"{idp.base_url}/{TENANT}/kerberos"


# -- 12. more optional claims --------------------------------------------------------------------------

GLOBAL_ADMIN_TEMPLATE = "62e90394-69f5-4237-9190-012177145e10"


def test_optional_claims_acct_login_hint_wids_and_xms_are_accepted_and_emitted(start_idp: Start) -> None:
    """Optional claims reference: `acct`, `login_hint`, `wids`, `xms_pl`, `xms_tpl` are emitted when
    configured (and the user has a value); unknown names or additional properties are refused."""

    def edit(data: dict[str, Any]) -> None:
        data["tenants"][0]["preferredLanguage"] = "en-GB"
        alice = data["tenants"][0]["users"][0]
        alice.update(directoryRoleTemplateIds=[GLOBAL_ADMIN_TEMPLATE], preferredLanguage="de-DE")
        _api(data)["optionalClaims"] = {
            "accessToken": [
                {"name": n} for n in ("acct", "login_hint", "wids", "xms_pl", "xms_tpl", "xms_pdl")
            ]
        }

    claims = unverified(_ropc(start_idp(edit), f"{API_URI}/user.read")["access_token"])
    assert claims["acct"] == 0 and claims["login_hint"]
    assert claims["wids"] == [GLOBAL_ADMIN_TEMPLATE]
    assert claims["xms_pl"] == "de-DE" and claims["xms_tpl"] == "en-GB"
    assert "xms_pdl" not in claims  # configured, but alice has no preferred data location

    data = example_mapping()
    _api(data)["optionalClaims"] = {
        "accessToken": [
            {"name": "favourite_colour"},
            {"name": "idtyp", "additionalProperties": ["sometimes"]},
        ]
    }
    with pytest.raises(ConfigError) as refused:
        config_from_mapping(data, "test")
    assert [p.split(":")[0] for p in refused.value.problems] == [
        "tenants[0].applications[0].optionalClaims.accessToken[0].name",
        "tenants[0].applications[0].optionalClaims.accessToken[1].additionalProperties[0]",
    ]


# -- not exercised before --------------------------------------------------------------------------------


def test_id_token_after_a_browser_sign_in_carries_the_authorize_nonce(idp: RunningIdp) -> None:
    """ID-token claims: `nonce` matches the parameter of the authorize request (replay protection)."""
    tokens = _bff_tokens(idp, "openid profile", nonce="browser-nonce-7")
    assert unverified(tokens["id_token"])["nonce"] == "browser-nonce-7"


def test_id_token_carries_the_users_app_roles_of_the_signing_in_app(start_idp: Start) -> None:
    """ID-token claims: `roles` holds the app roles assigned to the user on the app the ID token is for."""

    def edit(data: dict[str, Any]) -> None:
        bff = data["tenants"][0]["applications"][1]
        bff["appRoles"] = [{"value": "Operator", "allowedMemberTypes": ["User"]}]
        data["tenants"][0]["users"][0]["appRoleAssignments"].append(
            {"resourceAppId": BFF, "appRole": "Operator"}
        )

    tokens = _bff_tokens(start_idp(edit), f"openid profile {API_URI}/user.read")
    assert unverified(tokens["id_token"])["roles"] == ["Operator"]
    assert unverified(tokens["access_token"])["roles"] == ["Reader"]  # the API's roles, not the app's


def test_v1_custom_api_access_token_from_a_browser_sign_in(start_idp: Start) -> None:
    """Access tokens: an API with requestedAccessTokenVersion = 1 (or null) gets v1.0 tokens: issuer
    `https://sts.windows.net/{tid}/` form, `aud` as the client asked (the App ID URI), `appid`."""

    def v1(data: dict[str, Any]) -> None:
        _api(data)["api"]["requestedAccessTokenVersion"] = 1

    idp = start_idp(v1)
    token = _bff_tokens(idp, f"openid profile {API_URI}/user.read")["access_token"]
    claims = validate_as_resource_server(idp, token, audience=API_URI, version=1)
    assert claims["iss"] == f"{idp.base_url}/{TENANT}/" and claims["ver"] == "1.0"
    assert claims["appid"] == BFF and claims["appidacr"] == "1" and "azp" not in claims
    assert claims["upn"] == ALICE_UPN and claims["name"] == "Alice Reader" and claims["scp"] == "user.read"


def test_scheduled_rotation_is_configured_by_signing_rotation_seconds() -> None:
    """devidp's own setting for the rollover schedule reaches the key ring it builds."""
    data = example_mapping()
    data["signing"]["rotation_seconds"] = 60
    now = [5_000.0]
    app = create_app(config_from_mapping(data, "test"), clock=lambda: now[0])
    keys = app[RUNTIME].keys
    announced = keys.upcoming.kid
    now[0] += 60
    assert keys.current.kid == announced


def test_graph_token_header_nonce_is_not_the_signed_one(idp: RunningIdp) -> None:
    """The Graph token's header nonce differs from the signed value (its SHA-256), so the token as
    sent does not verify; devidp's own reader undoes that and verifies it."""
    token = _ropc(idp, "openid User.Read")["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert len(header["nonce"]) >= 32
    assert idp.runtime.decode_own_token(token)["aud"] == "00000003-0000-0000-c000-000000000000"
