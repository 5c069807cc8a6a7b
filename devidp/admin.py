"""Development-only controls, off unless ``[admin] enabled = true`` (or ``--enable-admin``).

They live under ``/_devidp/admin/``, a prefix no Entra path uses, answer only loopback callers, and
exist so tests can do what an Entra administrator would do in the portal: rotate signing keys,
revoke a user's sessions (Graph ``revokeSignInSessions``), disable or change a user.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from aiohttp import web

from devidp.http import runtime
from devidp.model import AppRoleAssignment, User, derived_id

PREFIX = "/_devidp/admin"
_CHANGEABLE = {
    "accountEnabled",
    "displayName",
    "mail",
    "password",
    "groups",
    "generatedGroupCount",
    "appRoleAssignments",
    "givenName",
    "surname",
}


@web.middleware
async def loopback_only(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(PREFIX + "/"):
        try:
            remote_is_loopback = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            remote_is_loopback = False
        if not remote_is_loopback:
            return web.json_response(
                {"error": "forbidden", "reason": "admin endpoints answer loopback only"}, status=403
            )
    return await handler(request)


def _user_summary(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "mail": user.mail,
        "accountEnabled": user.account_enabled,
        "groupCount": len(user.groups),
        "appRoleAssignments": [
            {"resourceAppId": a.resource_app_id, "appRole": a.app_role} for a in user.app_role_assignments
        ],
    }


async def rotate_keys(request: web.Request) -> web.Response:
    rt = runtime(request)
    announced = request.query.get("announced", "true") != "false"
    new = rt.keys.rotate(announced=announced)
    return web.json_response(
        {"kid": new.kid, "upcoming": rt.keys.upcoming.kid, "published": [k.kid for k in rt.keys.published]}
    )


def _find_user(request: web.Request) -> tuple[str, User] | web.Response:
    rt = runtime(request)
    tenant = rt.config.tenant(request.match_info["tenant"])
    if tenant is None:
        return web.json_response({"error": "not_found", "reason": "unknown tenant"}, status=404)
    user = tenant.user_by_id(request.match_info["oid"].lower()) or tenant.user_by_name(
        request.match_info["oid"]
    )
    if user is None:
        return web.json_response({"error": "not_found", "reason": "unknown user"}, status=404)
    return tenant.id, user


async def revoke_sessions(request: web.Request) -> web.Response:
    found = _find_user(request)
    if isinstance(found, web.Response):
        return found
    tenant_id, user = found
    revoked = runtime(request).store.revoke_user(tenant_id, user.id)
    return web.json_response({"revoked": revoked, "user": user.id})


async def change_user(request: web.Request) -> web.Response:
    found = _find_user(request)
    if isinstance(found, web.Response):
        return found
    tenant_id, user = found
    try:
        patch = await request.json()
    except ValueError:
        return web.json_response({"error": "bad_request", "reason": "body must be JSON"}, status=400)
    if not isinstance(patch, dict) or not set(patch) <= _CHANGEABLE:
        return web.json_response(
            {"error": "bad_request", "reason": "changeable fields: " + ", ".join(sorted(_CHANGEABLE))},
            status=400,
        )
    changes: dict[str, Any] = {}
    try:
        for key, value in patch.items():
            if key == "accountEnabled":
                changes["account_enabled"] = _typed(value, bool, key)
            elif key in ("displayName", "mail", "password", "givenName", "surname"):
                field = {"displayName": "display_name", "givenName": "given_name"}.get(key, key)
                changes[field] = _typed(value, str, key)
            elif key == "groups":
                changes["groups"] = tuple(_typed(g, str, key) for g in _typed(value, list, key))
            elif key == "generatedGroupCount":
                count = _typed(value, int, key)
                changes["groups"] = tuple(derived_id(tenant_id, "group", str(n)) for n in range(count))
            elif key == "appRoleAssignments":
                changes["app_role_assignments"] = tuple(
                    AppRoleAssignment(
                        _typed(a["resourceAppId"], str, key).lower(), _typed(a["appRole"], str, key)
                    )
                    for a in _typed(value, list, key)
                )
    except (TypeError, KeyError) as exc:
        return web.json_response({"error": "bad_request", "reason": str(exc)}, status=400)
    updated = dataclasses.replace(user, **changes)
    rt = runtime(request)
    rt.replace_user(tenant_id, updated)
    if not updated.account_enabled:
        # Disabling an account in Entra also ends what it holds.
        rt.store.revoke_user(tenant_id, user.id)
    return web.json_response(_user_summary(updated))


def _typed(value: Any, kind: type, key: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key}: expected {kind.__name__}")
    return value


def add_routes(app: web.Application) -> None:
    app.middlewares.append(loopback_only)
    app.router.add_post(f"{PREFIX}/keys/rotate", rotate_keys)
    app.router.add_post(f"{PREFIX}/tenants/{{tenant}}/users/{{oid}}/revoke", revoke_sessions)
    app.router.add_patch(f"{PREFIX}/tenants/{{tenant}}/users/{{oid}}", change_user)
