"""``/{tenant}/oauth2/v2.0/token`` and ``/devicecode``: the grants, their client rules and their errors.

Client authentication follows Entra: ``client_secret_basic`` or ``client_secret_post``; a code
redeemed for a web redirect URI needs the secret (AADSTS7000218), one for a SPA redirect URI must
come cross-origin (AADSTS9002327) and must not carry a secret; ``isFallbackPublicClient`` apps may
use the password and device-code grants without one.

Cross-origin redemption (a browser's ``Origin`` header) is for the SPA platform only: a code or
refresh token issued for a web or public-client redirect URI, and every other grant, is refused with
AADSTS9002326 when a browser sends it, as Entra does. Token responses answer CORS for the calling
origin without credentials, so the browser can read both tokens and errors.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import jwt
from aiohttp import web
from multidict import MultiDictProxy

from devidp import claims, errors
from devidp.auth_context import parse_claims
from devidp.errors import EntraError
from devidp.http import json_error, json_ok, runtime
from devidp.keys import b64url
from devidp.model import Application, Tenant, User
from devidp.runtime import Redemption, Runtime
from devidp.scopes import GRAPH_APP_ID, resolve_application, resolve_delegated
from devidp.state import DeviceAuthorization, RefreshFamily

GRANT_CODE = "authorization_code"
GRANT_REFRESH = "refresh_token"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_PASSWORD = "password"
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

SecretRule = Literal["required", "forbidden", "optional"]
Form = MultiDictProxy[str]


@dataclass(frozen=True, slots=True)
class ClientAuth:
    app: Application
    secret_presented: bool


async def read_form(request: web.Request) -> Form:
    if request.content_type != "application/x-www-form-urlencoded":
        raise errors.MALFORMED_REQUEST()
    form = await request.post()
    for key in form:
        if len(form.getall(key)) > 1:  # RFC 6749 3.2: parameters must not repeat
            raise errors.MALFORMED_REQUEST()
    return form  # type: ignore[return-value]


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        client_id, _, secret = raw.partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.MALFORMED_REQUEST() from exc
    # RFC 6749 2.3.1: both parts are form-url-encoded before base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def find_client(tenant: Tenant, client_id: str) -> Application:
    if not client_id:
        raise errors.MISSING_PARAMETER(name="client_id")
    client = tenant.application(client_id)
    if client is None:
        raise errors.UNKNOWN_CLIENT(client_id=client_id, tenant=tenant.id)
    return client


def identify_client(request: web.Request, tenant: Tenant, form: Form) -> tuple[Application, str | None]:
    """The client named by the request and the secret it presented (not yet checked)."""
    basic = _basic_credentials(request)
    form_id = form.get("client_id", "")
    if basic is not None:
        if form_id and form_id != basic[0]:
            raise errors.MALFORMED_REQUEST()
        if form.get("client_secret"):
            raise errors.MALFORMED_REQUEST()  # one authentication method per request
        return find_client(tenant, basic[0]), basic[1]
    return find_client(tenant, form_id), form.get("client_secret") or None


def check_secret(client: Application, secret: str | None, rule: SecretRule) -> ClientAuth:
    if secret is not None:
        if not client.client_secrets or rule == "forbidden":
            raise errors.PUBLIC_CLIENT_SENT_SECRET()
        if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in client.client_secrets):
            raise errors.INVALID_CLIENT_SECRET(client_id=client.app_id)
        return ClientAuth(client, True)
    if rule == "required":
        raise errors.CLIENT_SECRET_REQUIRED()
    return ClientAuth(client, False)


def _required(form: Form, name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise errors.MISSING_PARAMETER(name=name)
    return value


def _check_cross_origin(request: web.Request, *, spa: bool) -> None:
    """Entra's rule: SPA-platform grants must come from a browser (cross-origin), nothing else may."""
    origin = request.headers.get("Origin")
    if spa and not origin:
        raise errors.SPA_REQUIRES_CORS()
    if origin and not spa:
        # Entra names the origin it saw; it is the caller's own header, cut short so it cannot bloat the body.
        raise errors.CROSS_ORIGIN_NOT_SPA(origin=origin[:200])


def _pkce_matches(verifier: str, challenge: str) -> bool:
    if not 43 <= len(verifier) <= 128:
        return False
    computed = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return hmac.compare_digest(computed, challenge)


# -- grants --------------------------------------------------------------------------------------------
# Every grant first authenticates its client; a user grant then redeems what it was given (a code, a
# refresh token, a device code, a password, an assertion) for a Redemption, and all of them mint the
# tokens the same way.


def _authenticate(
    request: web.Request, client: Application, secret: str | None, rule: SecretRule, *, spa: bool
) -> ClientAuth:
    auth = check_secret(client, secret, rule)
    _check_cross_origin(request, spa=spa)
    return auth


def _enabled_user(tenant: Tenant, user_id: str) -> User:
    user = tenant.user_by_id(user_id)
    if user is None or not user.account_enabled:
        raise errors.USER_DISABLED()
    return user


def _public_client_rule(client: Application) -> SecretRule:
    return "optional" if client.is_fallback_public_client else "required"


def _with_token_claims(tenant: Tenant, redemption: Redemption, form: Form) -> Redemption:
    """The redemption with the token request's own ``claims`` applied (MSAL sends the client's
    capabilities on every request): they add to what the sign-in established, and a context it did
    not satisfy needs the user (AADSTS50076)."""
    conditions = redemption.conditions.with_token_request(
        parse_claims(form.get("claims", "")),
        tenant.protected_contexts,
        resource=redemption.grant.resource_identifier,
    )
    return dataclasses.replace(redemption, conditions=conditions)


def _mint(
    rt: Runtime, tenant: Tenant, auth: ClientAuth, redemption: Redemption, request: web.Request, form: Form
) -> tuple[dict[str, Any], RefreshFamily | None]:
    return rt.user_token_response(
        tenant,
        auth.app,
        _with_token_claims(tenant, redemption, form),
        confidential=auth.secret_presented,
        want_client_info=form.get("client_info") == "1",
        ipaddr=request.remote or "",
    )


def grant_authorization_code(rt: Runtime, tenant: Tenant, form: Form, request: web.Request) -> dict[str, Any]:
    client, secret = identify_client(request, tenant, form)
    code_value = _required(form, "code")
    redirect_uri = _required(form, "redirect_uri")
    code = rt.store.code(code_value)
    if code is None:
        raise errors.CODE_MALFORMED()
    if code.tenant_id != tenant.id or code.client_id != client.app_id:
        raise errors.GRANT_FOR_OTHER_CLIENT()
    rule: SecretRule = {"web": "required", "spa": "forbidden"}.get(code.platform, "optional")  # type: ignore[assignment]
    auth = _authenticate(request, client, secret, rule, spa=code.platform == "spa")
    if code.redeemed:
        # A second redemption means the code leaked: revoke what the first one was given.
        rt.store.revoke_family(code.family_id)
        raise errors.CODE_REDEEMED()
    if rt.clock() >= code.expires_at:
        raise errors.CODE_EXPIRED()
    if redirect_uri != code.redirect_uri:
        raise errors.TOKEN_REDIRECT_URI_MISMATCH()
    if code.code_challenge and not _pkce_matches(form.get("code_verifier", ""), code.code_challenge):
        raise errors.PKCE_MISMATCH()
    user = _enabled_user(tenant, code.user_id)
    code.redeemed = True
    redemption = Redemption(
        user,
        code.grant,
        code.auth_time,
        code.sid,
        nonce=code.nonce,
        public=code.platform != "web",
        spa=code.platform == "spa",
        conditions=code.conditions,
    )
    body, family = _mint(rt, tenant, auth, redemption, request, form)
    code.family_id = family.id if family else None
    return body


def grant_refresh_token(rt: Runtime, tenant: Tenant, form: Form, request: web.Request) -> dict[str, Any]:
    client, secret = identify_client(request, tenant, form)
    record = rt.store.refresh_record(_required(form, "refresh_token"))
    family = rt.store.family(record.family_id) if record else None
    if record is None or family is None:
        raise errors.CODE_MALFORMED()
    if family.tenant_id != tenant.id or family.client_id != client.app_id:
        raise errors.GRANT_FOR_OTHER_CLIENT()
    rule: SecretRule = ("forbidden" if family.spa else "optional") if family.public else "required"
    auth = _authenticate(request, client, secret, rule, spa=family.spa)
    if family.revoked:
        raise errors.GRANT_REVOKED()
    # Entra does not revoke a refresh token when it is used: a new one comes back, and the old one
    # stays valid until it expires (the client is expected to keep the newest). So two concurrent
    # refreshes of one session both succeed.
    if rt.clock() >= record.expires_at:
        raise errors.REFRESH_TOKEN_EXPIRED()
    user = _enabled_user(tenant, family.user_id)
    grant = family.grant
    if form.get("scope"):
        # One refresh token serves every resource the client may reach (Entra's multi-resource RT).
        grant = resolve_delegated(
            tenant, client, form["scope"], on_token_endpoint=True, first_resource_wins=True
        )
        grant = dataclasses.replace(grant, oidc=grant.oidc | {"offline_access"})
    redemption = Redemption(
        user, grant, family.auth_time, family.sid, family=family, conditions=family.conditions
    )
    body, _ = _mint(rt, tenant, auth, redemption, request, form)
    return body


def grant_client_credentials(rt: Runtime, tenant: Tenant, form: Form, request: web.Request) -> dict[str, Any]:
    client, secret = identify_client(request, tenant, form)
    _authenticate(request, client, secret, "required", spa=False)
    resource, identifier, roles = resolve_application(tenant, client, form.get("scope", ""))
    return rt.app_token_response(tenant, client, resource, identifier, roles)


def grant_password(rt: Runtime, tenant: Tenant, form: Form, request: web.Request) -> dict[str, Any]:
    client, secret = identify_client(request, tenant, form)
    auth = _authenticate(request, client, secret, _public_client_rule(client), spa=False)
    username = _required(form, "username")
    password = _required(form, "password")
    scope = _required(form, "scope")
    user = tenant.user_by_name(username)
    if user is None:
        raise errors.USER_NOT_FOUND(name=username, tenant=tenant.id)
    if not hmac.compare_digest(password.encode(), user.password.encode()):
        raise errors.BAD_CREDENTIALS()
    if not user.account_enabled:
        raise errors.USER_DISABLED()
    grant = resolve_delegated(tenant, client, scope, on_token_endpoint=True)
    redemption = Redemption(user, grant, rt.now(), claims.new_session_id(), public=not auth.secret_presented)
    body, _ = _mint(rt, tenant, auth, redemption, request, form)
    return body


def grant_device_code(rt: Runtime, tenant: Tenant, form: Form, request: web.Request) -> dict[str, Any]:
    client, secret = identify_client(request, tenant, form)
    auth = _authenticate(request, client, secret, _public_client_rule(client), spa=False)
    device = rt.store.device(_required(form, "device_code"))
    if device is None:
        raise errors.BAD_VERIFICATION_CODE()
    if device.tenant_id != tenant.id or device.client_id != client.app_id:
        raise errors.GRANT_FOR_OTHER_CLIENT()
    if device.redeemed:
        raise errors.CODE_REDEEMED()
    if rt.clock() >= device.expires_at:
        raise errors.DEVICE_CODE_EXPIRED()
    if device.user_id is None:
        raise errors.AUTHORIZATION_PENDING()
    user = _enabled_user(tenant, device.user_id)
    device.redeemed = True
    redemption = Redemption(
        user, device.grant, device.auth_time, claims.new_session_id(), public=not auth.secret_presented
    )
    body, _ = _mint(rt, tenant, auth, redemption, request, form)
    return body


def grant_on_behalf_of(rt: Runtime, tenant: Tenant, form: Form, request: web.Request) -> dict[str, Any]:
    client, secret = identify_client(request, tenant, form)
    _authenticate(request, client, secret, "required", spa=False)
    assertion = _required(form, "assertion")
    if form.get("requested_token_use") != "on_behalf_of":
        raise errors.MISSING_PARAMETER(name="requested_token_use")
    scope = _required(form, "scope")
    try:
        incoming = rt.decode_own_token(assertion)
    except jwt.ExpiredSignatureError as exc:
        raise errors.ASSERTION_EXPIRED() from exc
    except jwt.InvalidTokenError as exc:
        raise errors.ASSERTION_INVALID(
            reason="The assertion is not a token signed by this tenant's keys."
        ) from exc
    issuers = {claims.v1_issuer(rt.base_url, tenant.id), claims.v2_issuer(rt.base_url, tenant.id)}
    if incoming.get("tid") != tenant.id or incoming.get("iss") not in issuers:
        raise errors.ASSERTION_INVALID(reason="The assertion was issued by another tenant.")
    if incoming.get("aud") != client.app_id and incoming.get("aud") not in client.identifier_uris:
        raise errors.ASSERTION_AUDIENCE_MISMATCH()
    if "scp" not in incoming or incoming.get("idtyp") == "app":
        raise errors.ASSERTION_INVALID(
            reason="The on-behalf-of flow needs a user token; an application token was presented."
        )
    user = tenant.user_by_id(str(incoming.get("oid", "")))
    if user is None:
        raise errors.ASSERTION_INVALID(reason="The assertion's user is not in this tenant.")
    if not user.account_enabled:
        raise errors.USER_DISABLED()
    grant = resolve_delegated(tenant, client, scope, on_token_endpoint=True)
    redemption = Redemption(
        user,
        grant,
        int(incoming.get("auth_time", incoming.get("iat", rt.now()))),
        str(incoming.get("sid") or claims.new_session_id()),
    )
    # devidp answers on-behalf-of without client_info, whatever the request asks.
    body, _ = rt.user_token_response(
        tenant,
        client,
        _with_token_claims(tenant, redemption, form),
        confidential=True,
        want_client_info=False,
        ipaddr=request.remote or "",
    )
    return body


Grant = Callable[[Runtime, Tenant, Form, web.Request], dict[str, Any]]
GRANTS: dict[str, Grant] = {
    GRANT_CODE: grant_authorization_code,
    GRANT_REFRESH: grant_refresh_token,
    GRANT_CLIENT_CREDENTIALS: grant_client_credentials,
    GRANT_PASSWORD: grant_password,
    GRANT_DEVICE_CODE: grant_device_code,
    GRANT_JWT_BEARER: grant_on_behalf_of,
}


MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations"})


def _tenant_of_grant(rt: Runtime, form: Form) -> Tenant:
    """The tenant a request to ``/common`` or ``/organizations`` lands in, as Entra resolves it.

    A code, refresh token or device code belongs to the tenant that issued it; a password grant
    goes to the tenant of the user name's domain. Nothing else names a tenant (AADSTS50059).
    """
    grant_type = form.get("grant_type", "")
    tenant_id = ""
    if grant_type == GRANT_CODE:
        code = rt.store.code(form.get("code", ""))
        tenant_id = code.tenant_id if code else ""
    elif grant_type == GRANT_REFRESH:
        record = rt.store.refresh_record(form.get("refresh_token", ""))
        family = rt.store.family(record.family_id) if record else None
        tenant_id = family.tenant_id if family else ""
    elif grant_type == GRANT_DEVICE_CODE:
        device = rt.store.device(form.get("device_code", ""))
        tenant_id = device.tenant_id if device else ""
    elif grant_type == GRANT_PASSWORD and "@" in form.get("username", ""):
        tenant_id = form["username"].rsplit("@", 1)[1]
    tenant = rt.config.tenant(tenant_id) if tenant_id else None
    if tenant is None:
        raise errors.NO_TENANT_INFORMATION()
    return tenant


async def token_endpoint(request: web.Request) -> web.Response:
    rt = runtime(request)
    try:
        form = await read_form(request)
        segment = request.match_info["tenant"]
        if segment.lower() in MULTI_TENANT_SEGMENTS and rt.config.tenant(segment) is None:
            tenant = _tenant_of_grant(rt, form)
        else:
            tenant = rt.tenant(segment)
        grant_type = _required(form, "grant_type")
        grant = GRANTS.get(grant_type)
        if grant is None:
            raise errors.UNSUPPORTED_GRANT_TYPE(grant=grant_type)
        return _with_cors(request, json_ok(grant(rt, tenant, form, request)))
    except EntraError as error:
        return _with_cors(request, json_error(request, error))


async def devicecode_endpoint(request: web.Request) -> web.Response:
    rt = runtime(request)
    try:
        tenant = rt.tenant(request.match_info["tenant"])
        form = await read_form(request)
        client = find_client(tenant, form.get("client_id", ""))
        grant = resolve_delegated(tenant, client, form.get("scope", ""), on_token_endpoint=True)
        lifetimes = rt.config.lifetimes
        device = DeviceAuthorization(
            tenant_id=tenant.id,
            client_id=client.app_id,
            grant=grant,
            user_code=rt.store.new_user_code(),
            expires_at=rt.clock() + lifetimes.device_code_seconds,
        )
        device_code = rt.store.add_device(device)
        uri = f"{rt.base_url}/devicelogin"
        return json_ok(
            {
                "user_code": device.user_code,
                "device_code": device_code,
                "verification_uri": uri,
                "expires_in": lifetimes.device_code_seconds,
                "interval": lifetimes.device_code_interval_seconds,
                "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                f"{device.user_code} to authenticate.",
            }
        )
    except EntraError as error:
        return json_error(request, error)


async def v1_endpoint(request: web.Request) -> web.Response:
    return json_error(request, errors.V1_ENDPOINT())


def _graph_user(rt: Runtime, authorization: str) -> tuple[dict[str, Any], User] | None:
    """The claims and user of a valid Graph token in the Authorization header, or None."""
    if not authorization.lower().startswith("bearer "):
        return None
    try:
        token = rt.decode_own_token(authorization[7:].strip())
    except jwt.InvalidTokenError:
        return None
    tenant = rt.config.tenant(str(token.get("tid", "")))
    user = tenant.user_by_id(str(token.get("oid", ""))) if tenant else None
    # Entra's userinfo is a Microsoft Graph endpoint: it takes Graph tokens only.
    if token.get("aud") != GRAPH_APP_ID or user is None or "scp" not in token:
        return None
    return token, user


async def userinfo_endpoint(request: web.Request) -> web.Response:
    found = _graph_user(runtime(request), request.headers.get("Authorization", ""))
    if found is None:
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store"}
        return web.json_response({"error": "invalid_token"}, status=401, headers=challenge)
    token, user = found
    body = {"sub": token["sub"], "name": user.display_name}
    if user.surname:
        body["family_name"] = user.surname
    if user.given_name:
        body["given_name"] = user.given_name
    if user.mail and "email" in str(token.get("scp", "")).split():
        body["email"] = user.mail
    return json_ok(body)


#: An Origin header as browsers send it (scheme://host[:port]); anything else gets no CORS answer.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]{1,253}$")

#: What browser clients send: MSAL.js's telemetry headers, and Swagger UI's X-Requested-With.
_ALLOWED_HEADERS = (
    "Content-Type, client-request-id, x-client-sku, x-client-ver, x-client-os, x-client-cpu, "
    "x-ms-lib-capability, x-client-current-telemetry, x-client-last-telemetry, x-app-name, x-app-ver, "
    "X-Requested-With"
)


def _cors_headers(request: web.Request) -> dict[str, str]:
    """CORS for the calling origin, never with credentials: the token endpoint takes no cookies.

    Errors carry it too, so a browser app can read why its redemption was refused (AADSTS9002326).
    """
    origin = request.headers.get("Origin", "")
    if not _ORIGIN.match(origin):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _with_cors(request: web.Request, response: web.Response) -> web.Response:
    response.headers.update(_cors_headers(request))
    return response


async def token_preflight(request: web.Request) -> web.Response:
    cors = _cors_headers(request)
    if not cors:
        return web.Response(status=204)
    return web.Response(
        status=204,
        headers={
            **cors,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Max-Age": "86400",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token_endpoint)
    app.router.add_route("OPTIONS", "/{tenant}/oauth2/v2.0/token", token_preflight)
    app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", devicecode_endpoint)
    app.router.add_route("*", "/{tenant}/oauth2/token", v1_endpoint)
    app.router.add_route("*", "/{tenant}/oauth2/authorize", v1_endpoint)
    app.router.add_route("GET", "/oidc/userinfo", userinfo_endpoint)
    app.router.add_route("POST", "/oidc/userinfo", userinfo_endpoint)
    # The v1 discovery document's userinfo_endpoint.
    app.router.add_route("GET", "/{tenant}/openid/userinfo", userinfo_endpoint)
    app.router.add_route("POST", "/{tenant}/openid/userinfo", userinfo_endpoint)
