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

from typing import Any

from aiohttp import web

from devidp import claims, errors, pages
from devidp.http import html, json_error, json_ok, runtime

COMMON = "common"
#: Path segments that name no tenant: their documents carry the ``{tenantid}`` issuer template.
MULTI_TENANT = frozenset({COMMON, "organizations"})
TENANT_TEMPLATE = "{tenantid}"
_CLAIMS_SUPPORTED = [
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
    "nonce",
    "preferred_username",
    "name",
    "tid",
    "ver",
    "at_hash",
    "c_hash",
    "email",
]


def v2_document(base: str, tenant_segment: str, issuer_tenant: str) -> dict[str, Any]:
    t = f"{base}/{tenant_segment}"
    return {
        "token_endpoint": f"{t}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{t}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": claims.v2_issuer(base, issuer_tenant),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{t}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{t}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{t}/oauth2/v2.0/logout",
        "claims_supported": _CLAIMS_SUPPORTED,
        "tenant_region_scope": None if tenant_segment in MULTI_TENANT else "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "kerberos_endpoint": f"{t}/kerberos",
    }


def v1_document(base: str, tenant_segment: str, issuer_tenant: str) -> dict[str, Any]:
    t = f"{base}/{tenant_segment}"
    return {
        "token_endpoint": f"{t}/oauth2/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{t}/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": claims.v1_issuer(base, issuer_tenant),
        "microsoft_multi_refresh_token": True,
        "authorization_endpoint": f"{t}/oauth2/authorize",
        "check_session_iframe": f"{t}/oauth2/checksession",
        "userinfo_endpoint": f"{t}/openid/userinfo",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{t}/oauth2/logout",
        "claims_supported": [
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
            "amr",
            "nonce",
            "email",
            "given_name",
            "family_name",
            "nickname",
        ],
        "tenant_region_scope": None if tenant_segment in MULTI_TENANT else "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "kerberos_endpoint": f"{t}/kerberos",
    }


def _resolve(request: web.Request) -> tuple[str, str] | web.Response:
    """(path segment to use in URLs, tenant id for the issuer) or an Entra error response."""
    name = request.match_info["tenant"]
    if name.lower() in MULTI_TENANT:
        return name.lower(), TENANT_TEMPLATE
    tenant = runtime(request).config.tenant(name)
    if tenant is None:
        return json_error(request, errors.tenant_not_found(name))
    return tenant.id, tenant.id


async def openid_configuration_v2(request: web.Request) -> web.Response:
    resolved = _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    return json_ok(v2_document(runtime(request).base_url, *resolved), cache=True)


async def openid_configuration_v1(request: web.Request) -> web.Response:
    resolved = _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    return json_ok(v1_document(runtime(request).base_url, *resolved), cache=True)


async def keys_v2(request: web.Request) -> web.Response:
    resolved = _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    rt = runtime(request)
    return json_ok(rt.keys.jwks(claims.v2_issuer(rt.base_url, TENANT_TEMPLATE)), cache=True)


async def keys_v1(request: web.Request) -> web.Response:
    resolved = _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    return json_ok(runtime(request).keys.jwks(None), cache=True)


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
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration_v2)
    app.router.add_get("/{tenant}/.well-known/openid-configuration", openid_configuration_v1)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", keys_v2)
    app.router.add_get("/{tenant}/discovery/keys", keys_v1)
    app.router.add_get("/common/userrealm/{username}", user_realm)
    app.router.add_get("/error", error_lookup)
