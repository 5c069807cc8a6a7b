"""Token contents shaped like Entra's: pure functions of (who, for whom, settings, now).

v1 and v2 access tokens differ exactly where Entra's do: issuer (``<base>/{tid}/`` like
``https://sts.windows.net/{tid}/`` versus ``<base>/{tid}/v2.0``), audience (the identifier the client
used, typically the App ID URI, versus the resource's client id), ``appid``/``appidacr`` versus
``azp``/``azpacr``, ``ver``, and the v1-only ``upn``/``unique_name``/``amr``. The resource's
``api.requestedAccessTokenVersion`` decides; ID tokens from the v2 endpoint are always v2.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from devidp.auth_context import NO_CONDITIONS, SignInConditions
from devidp.keys import b64url
from devidp.model import Application, Lifetimes, Tenant, User
from devidp.scopes import ScopeGrant

GRAPH_V1_AUDIENCE = "00000003-0000-0000-c000-000000000000"


@dataclass(frozen=True, slots=True)
class IssueContext:
    base_url: str
    tenant: Tenant
    lifetimes: Lifetimes
    pairwise_salt: str
    now: int


def v2_issuer(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/v2.0"


def v1_issuer(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/"


def pairwise_sub(salt: str, tenant_id: str, app_id: str, oid: str) -> str:
    """A subject unique per user and application, so two apps cannot correlate a user by ``sub``."""
    digest = hashlib.sha256(f"{salt}|{tenant_id}|{app_id}|{oid}".encode()).digest()
    return b64url(digest)


def client_info(user: User, tenant_id: str) -> str:
    raw = json.dumps({"uid": user.id, "utid": tenant_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _opaque(n: int = 24) -> str:
    # Entra's aio/rh/uti are opaque service values; random ones keep clients from relying on them.
    return secrets.token_urlsafe(n)


def user_roles(user: User, app: Application) -> list[str]:
    values = {a.app_role for a in user.app_role_assignments if a.resource_app_id == app.app_id}
    return sorted(
        r.value
        for r in app.app_roles
        if r.value in values and r.is_enabled and "User" in r.allowed_member_types
    )


def _group_claims(ctx: IssueContext, user: User, app: Application | None) -> dict[str, Any]:
    if app is None or app.group_membership_claims == "None" or not user.groups:
        return {}
    if len(user.groups) > ctx.tenant.groups_overage_limit:
        # The overage indicator: no `groups`, a pointer to where the full list can be read instead.
        return {
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {
                "src1": {
                    "endpoint": f"https://graph.windows.net/{ctx.tenant.id}/users/{user.id}/getMemberObjects",
                }
            },
        }
    return {"groups": list(user.groups)}


def _times(ctx: IssueContext, lifetime: int) -> dict[str, int]:
    return {"iat": ctx.now, "nbf": ctx.now, "exp": ctx.now + lifetime}


def _login_hint(user: User, tenant_id: str) -> str:
    # Entra's login_hint is opaque and stable per account; derived here so it is both.
    return b64url(hashlib.sha256(f"login_hint|{tenant_id}|{user.id}".encode()).digest())


def _optional_user_claims(
    ctx: IssueContext,
    user: User,
    app: Application | None,
    optional: frozenset[str],
    *,
    auth_time: int,
    sid: str,
) -> dict[str, Any]:
    """The optional claims of Entra's reference that devidp has values for, when configured."""
    out: dict[str, Any] = {}
    if "acct" in optional:
        out["acct"] = 0  # a member of the tenant; devidp has no guests
    if "auth_time" in optional:
        out["auth_time"] = auth_time
    if "login_hint" in optional:
        out["login_hint"] = _login_hint(user, ctx.tenant.id)
    if "sid" in optional:
        out["sid"] = sid
    wids_by_groups = app is not None and app.group_membership_claims in ("All", "DirectoryRole")
    if ("wids" in optional or wids_by_groups) and user.directory_role_template_ids:
        out["wids"] = list(user.directory_role_template_ids)
    if "xms_pdl" in optional and user.preferred_data_location:
        out["xms_pdl"] = user.preferred_data_location
    if "xms_pl" in optional and user.preferred_language:
        out["xms_pl"] = user.preferred_language
    if "xms_tpl" in optional and ctx.tenant.preferred_language:
        out["xms_tpl"] = ctx.tenant.preferred_language
    return out


def user_access_token(
    ctx: IssueContext,
    user: User,
    client: Application,
    grant: ScopeGrant,
    *,
    confidential: bool,
    auth_time: int,
    sid: str,
    lifetime: int,
    ipaddr: str = "",
    conditions: SignInConditions = NO_CONDITIONS,
) -> dict[str, Any]:
    resource = grant.resource
    version = resource.requested_access_token_version if resource else 1
    tid = ctx.tenant.id
    acr = "1" if confidential else "0"
    profile = "profile" in grant.oidc
    optional = resource.optional_claims.access_token if resource else frozenset()
    properties = resource.optional_claims.access_token_properties if resource else frozenset()
    claims: dict[str, Any] = {}
    if version == 2:
        claims.update(
            aud=resource.app_id if resource else GRAPH_V1_AUDIENCE, iss=v2_issuer(ctx.base_url, tid)
        )
    else:
        claims.update(
            aud=grant.resource_identifier if resource else GRAPH_V1_AUDIENCE, iss=v1_issuer(ctx.base_url, tid)
        )
    claims.update(_times(ctx, lifetime))
    # The resource owns its access token: it opts in to opportunistic contexts and to xms_cc.
    acrs = conditions.acrs(opportunistic="acrs" in optional)
    if acrs:
        claims["acrs"] = acrs
    capabilities = conditions.client_capabilities()
    if capabilities and "xms_cc" in optional:
        claims["xms_cc"] = capabilities
    claims["aio"] = _opaque()
    if version == 2:
        claims.update(azp=client.app_id, azpacr=acr)
    else:
        claims.update(acr="1", amr=["pwd"], appid=client.app_id, appidacr=acr)
        if user.surname:
            claims["family_name"] = user.surname
        if user.given_name:
            claims["given_name"] = user.given_name
    # Entra: `email` is in a member's access token only as a configured optional claim.
    if "email" in optional and user.mail:
        claims["email"] = user.mail
    claims.update(_group_claims(ctx, user, resource))
    # Entra emits `idtyp` in user tokens only with the optional claim's include_user_token.
    if ("idtyp", "include_user_token") in properties:
        claims["idtyp"] = "user"
    if ipaddr and (version == 1 or "ipaddr" in optional):
        claims["ipaddr"] = ipaddr  # in every v1 access token; an optional claim in v2
    claims.update(_optional_user_claims(ctx, user, resource, optional, auth_time=auth_time, sid=sid))
    # `name` and `preferred_username` need the profile scope (access-token claims reference).
    if profile:
        claims["name"] = user.display_name
    claims["oid"] = user.id
    if version == 2 and profile:
        claims["preferred_username"] = user.user_principal_name
    claims["rh"] = _opaque()
    roles = user_roles(user, resource) if resource else []
    if roles:
        claims["roles"] = roles
    # Graph tokens list the OIDC scopes beside User.Read, as Entra's do.
    scp = list(grant.values) if resource else [*sorted(grant.oidc - {"offline_access"}), *grant.values]
    claims["scp"] = " ".join(scp)
    claims["sub"] = pairwise_sub(ctx.pairwise_salt, tid, client.app_id, user.id)
    claims["tid"] = tid
    if version == 1:
        claims["unique_name"] = user.user_principal_name
        claims["upn"] = user.user_principal_name
    elif "upn" in optional:
        claims["upn"] = user.user_principal_name
    claims["uti"] = _opaque(16)
    claims["ver"] = "2.0" if version == 2 else "1.0"
    return dict(sorted(claims.items()))


def app_access_token(
    ctx: IssueContext,
    client: Application,
    resource: Application,
    identifier: str,
    roles: tuple[str, ...],
    *,
    lifetime: int,
) -> dict[str, Any]:
    version = resource.requested_access_token_version
    tid = ctx.tenant.id
    claims: dict[str, Any] = {}
    if version == 2:
        claims.update(aud=resource.app_id, iss=v2_issuer(ctx.base_url, tid))
    else:
        claims.update(aud=identifier, iss=v1_issuer(ctx.base_url, tid))
    claims.update(_times(ctx, lifetime))
    claims["aio"] = _opaque()
    if version == 2:
        claims.update(azp=client.app_id, azpacr="1")
    else:
        claims.update(appid=client.app_id, appidacr="1")
    if "idtyp" in resource.optional_claims.access_token:
        claims["idtyp"] = "app"
    claims["oid"] = client.service_principal_id
    claims["rh"] = _opaque()
    if roles:
        claims["roles"] = list(roles)
    claims["sub"] = client.service_principal_id
    claims["tid"] = tid
    claims["uti"] = _opaque(16)
    claims["ver"] = "2.0" if version == 2 else "1.0"
    return claims


def id_token(
    ctx: IssueContext,
    user: User,
    client: Application,
    grant: ScopeGrant,
    *,
    nonce: str | None,
    auth_time: int,
    sid: str,
) -> dict[str, Any]:
    tid = ctx.tenant.id
    profile = "profile" in grant.oidc
    claims: dict[str, Any] = {"aud": client.app_id, "iss": v2_issuer(ctx.base_url, tid)}
    claims.update(_times(ctx, ctx.lifetimes.id_token_seconds))
    claims["aio"] = _opaque()
    optional = client.optional_claims.id_token
    if ("email" in grant.oidc or "email" in optional) and user.mail:
        claims["email"] = user.mail
    if "family_name" in optional and user.surname:
        claims["family_name"] = user.surname
    if "given_name" in optional and user.given_name:
        claims["given_name"] = user.given_name
    claims.update(_group_claims(ctx, user, client))
    claims.update(_optional_user_claims(ctx, user, client, optional - {"sid"}, auth_time=auth_time, sid=sid))
    if profile:
        claims["name"] = user.display_name
    if nonce:
        claims["nonce"] = nonce
    # ID-token claims reference: `oid` needs the profile scope, like name and preferred_username.
    if profile:
        claims["oid"] = user.id
        claims["preferred_username"] = user.user_principal_name
    claims["rh"] = _opaque()
    roles = user_roles(user, client)
    if roles:
        claims["roles"] = roles
    claims["sid"] = sid
    claims["sub"] = pairwise_sub(ctx.pairwise_salt, tid, client.app_id, user.id)
    claims["tid"] = tid
    if "upn" in optional:
        claims["upn"] = user.user_principal_name
    claims["uti"] = _opaque(16)
    claims["ver"] = "2.0"
    return claims


def new_session_id() -> str:
    return str(uuid.uuid4())
