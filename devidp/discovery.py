"""OpenID discovery documents, JWKS and user-realm discovery, at Entra's own paths.

* ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/discovery/v2.0/keys`` (v2);
* ``/{tenant}/.well-known/openid-configuration`` and ``/{tenant}/discovery/keys`` (v1);
* ``/common/...`` and ``/organizations/...`` variants carry the ``{tenantid}`` issuer template, as
  Entra's multi-tenant documents do;
* ``/common/userrealm/{username}`` answers "managed" for the tenants' domains (MSAL asks before ROPC).

Like Entra, the v2 document does not advertise ``code_challenge_methods_supported``. The documents
list what Entra's list (``private_key_jwt``, the hybrid response types, ``kerberos_endpoint``, v1's
``check_session_iframe``), even where devidp does not implement it, so a client that reads them sees
what it would see in production.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devidp import claims, errors, pages
from devidp.errors import EntraError
from devidp.http import html, json_error, json_ok, runtime

Handler = Callable[[web.Request], Awaitable[web.Response]]

COMMON = "common"
#: Path segments that name no tenant: their documents carry the ``{tenantid}`` issuer template.
MULTI_TENANT = frozenset({COMMON, "organizations"})
TENANT_TEMPLATE = "{tenantid}"
#: The claims both versions' documents list first; then each adds its own, as Entra's lists do.
_COMMON_CLAIMS = [
    "sub",
    "iss",
    "cloud_instance_name",
    "cloud_instance_host_name",
    "cloud_graph_host_name",
    "msgraph_host",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "acr",
]
_V2_CLAIMS = [
    *_COMMON_CLAIMS,
    "nonce",
    "preferred_username",
    "name",
    "tid",
    "ver",
    "at_hash",
    "c_hash",
    "email",
]
_V1_CLAIMS = [*_COMMON_CLAIMS, "amr", "nonce", "email", "given_name", "family_name", "nickname"]


def openid_document(base: str, tenant_segment: str, issuer_tenant: str, *, v2: bool) -> dict[str, Any]:
    """Entra's v2 (``v2=True``) or v1 OpenID configuration, with the keys in Entra's order."""
    t = f"{base}/{tenant_segment}"
    oauth2 = f"{t}/oauth2/v2.0" if v2 else f"{t}/oauth2"
    document: dict[str, Any] = {
        "token_endpoint": f"{oauth2}/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{t}/discovery/v2.0/keys" if v2 else f"{t}/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": (
            ["code", "id_token", "code id_token", "id_token token"]
            if v2
            else ["code", "id_token", "code id_token", "token id_token", "token"]
        ),
        "scopes_supported": ["openid", "profile", "email", "offline_access"] if v2 else ["openid"],
        "issuer": (claims.v2_issuer if v2 else claims.v1_issuer)(base, issuer_tenant),
    }
    if v2:
        document["request_uri_parameter_supported"] = False
        document["userinfo_endpoint"] = f"{base}/oidc/userinfo"
        document["authorization_endpoint"] = f"{oauth2}/authorize"
        document["device_authorization_endpoint"] = f"{oauth2}/devicecode"
    else:
        document["microsoft_multi_refresh_token"] = True
        document["authorization_endpoint"] = f"{oauth2}/authorize"
        document["check_session_iframe"] = f"{oauth2}/checksession"
        document["userinfo_endpoint"] = f"{t}/openid/userinfo"
    document |= {
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{oauth2}/logout",
        "claims_supported": _V2_CLAIMS if v2 else _V1_CLAIMS,
        "tenant_region_scope": None if tenant_segment in MULTI_TENANT else "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "kerberos_endpoint": f"{t}/kerberos",
    }
    return document


def _resolve(request: web.Request) -> tuple[str, str]:
    """(path segment to use in URLs, tenant id for the issuer); an unknown tenant raises AADSTS90002."""
    name = request.match_info["tenant"]
    if name.lower() in MULTI_TENANT:
        return name.lower(), TENANT_TEMPLATE
    tenant = runtime(request).config.tenant(name)
    if tenant is None:
        raise errors.TENANT_NOT_FOUND(tenant=name)
    return tenant.id, tenant.id


def _tenant_document(*, v2: bool, keys: bool) -> Handler:
    """The handler for one version's OpenID configuration (``keys=False``) or JWKS."""

    async def handler(request: web.Request) -> web.Response:
        try:
            segment, issuer_tenant = _resolve(request)
        except EntraError as error:
            return json_error(request, error)
        rt = runtime(request)
        if not keys:
            return json_ok(openid_document(rt.base_url, segment, issuer_tenant, v2=v2), cache=True)
        # v2 keys carry the multi-tenant issuer template, as Entra's do; v1 keys carry none.
        key_issuer = claims.v2_issuer(rt.base_url, TENANT_TEMPLATE) if v2 else None
        return json_ok(rt.keys.jwks(key_issuer), cache=True)

    return handler


async def user_realm(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    domain = username.rsplit("@", 1)[-1].lower() if "@" in username else ""
    rt = runtime(request)
    known = any(t.domain.lower() == domain for t in rt.config.tenants if t.domain)
    return json_ok(
        {
            "ver": "1.0",
            "account_type": "Managed" if known else "Unknown",
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }
    )


async def error_lookup(request: web.Request) -> web.Response:
    code = request.query.get("code", "")
    shown = code if code.isdigit() else "unknown"
    return html(
        pages.message(f"AADSTS{shown}", "See Microsoft's error code reference for AADSTS" + shown + ".")
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(
        "/{tenant}/v2.0/.well-known/openid-configuration", _tenant_document(v2=True, keys=False)
    )
    app.router.add_get("/{tenant}/.well-known/openid-configuration", _tenant_document(v2=False, keys=False))
    app.router.add_get("/{tenant}/discovery/v2.0/keys", _tenant_document(v2=True, keys=True))
    app.router.add_get("/{tenant}/discovery/keys", _tenant_document(v2=False, keys=True))
    app.router.add_get("/common/userrealm/{username}", user_realm)
    app.router.add_get("/error", error_lookup)
