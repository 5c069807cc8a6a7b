"""What the caller may do: dependencies that read like the policy.

    @router.post("/projects", dependencies=[
        Depends(require_roles("Writer", "Admin")),
        Depends(require_scopes("user.write", allow_app_tokens=True)),
    ])

Each factory takes the accepted values ("any of") and returns a dependency that yields the
:class:`Principal` or raises 403 with a stable reason and the values it required. They compose by
listing several; each one depends on :func:`current_principal`, which FastAPI solves once per request.

Semantics worth knowing:

- Roles (``roles`` claim) are the permissions of users *and* of applications (app roles granted to a
  service principal), so :func:`require_roles` applies to both.
- Scopes (``scp``) exist only on delegated (user) tokens. :func:`require_scopes` therefore refuses
  app-only tokens (reason ``app_token_not_allowed``) unless the endpoint says ``allow_app_tokens=True``,
  which means "app tokens are governed by the role check declared next to this one". Failing closed by
  default keeps a lone ``require_scopes`` from opening an endpoint to every daemon in the tenant.
- Authentication context (step-up): :func:`require_auth_context` reads ``acrs`` and ``xms_cc`` from
  the access token the API re-validates itself (the signed headers do not carry them), so it stands
  only on endpoints that re-validate. Without the context, a client that declared ``cp1`` gets
  Entra's claims challenge (401 ``insufficient_claims``) and steps up; any other client gets 403
  ``auth_context_required``. App-only tokens pass on their role: no interactive sign-in can satisfy
  a context for a daemon, so Conditional Access does not apply to them either.
- Groups: when a user is in too many groups Entra sends an overage marker instead of the list. This API
  never calls Microsoft Graph to expand it, so :func:`require_groups` answers 403 ``groups_overage``
  (the remedy is an app role or a group assigned to the app registration, which keeps tokens small).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from fastapi_app.authentication import current_principal
from fastapi_app.errors import Forbidden, StepUpRequired
from fastapi_app.refusals import ApiReason, declare
from fastapi_app.revalidation import revalidated_principal
from fastapi_app.settings import AUTH_CONTEXT_ID
from verifier.core.identity import Principal

#: ``async``: the checks do no I/O, so they run on the event loop instead of a thread-pool trip each.
PrincipalDependency = Callable[..., Awaitable[Principal]]
#: The client capability that means "I answer claims challenges" ("the only currently known value").
CLAIMS_CHALLENGE_CAPABILITY = "cp1"
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def _named(dependency: PrincipalDependency, name: str, values: tuple[str, ...]) -> PrincipalDependency:
    # A readable name shows up in tracebacks and FastAPI's dependency graph.
    dependency.__name__ = f"{name}({', '.join(values)})"
    dependency.__qualname__ = dependency.__name__
    return dependency


def require_roles(*roles: str) -> PrincipalDependency:
    """The caller (user or application) holds at least one of ``roles``."""
    required = tuple(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not set(principal.roles).intersection(required):
            raise Forbidden(ApiReason.MISSING_ROLE, required)
        return principal

    return declare(_named(dependency, "require_roles", required), {403: [ApiReason.MISSING_ROLE]})


def require_scopes(*scopes: str, allow_app_tokens: bool = False) -> PrincipalDependency:
    """A delegated token carries at least one of ``scopes``; app-only tokens see the docstring above."""
    required = tuple(scopes)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.principal_type == "app":
            if allow_app_tokens:
                return principal
            raise Forbidden(ApiReason.APP_TOKEN_NOT_ALLOWED, required)
        if not set(principal.scopes).intersection(required):
            raise Forbidden(ApiReason.MISSING_SCOPE, required)
        return principal

    refusals = [ApiReason.MISSING_SCOPE] + ([] if allow_app_tokens else [ApiReason.APP_TOKEN_NOT_ALLOWED])
    return declare(_named(dependency, "require_scopes", required), {403: refusals})


def require_groups(*group_ids: str) -> PrincipalDependency:
    """The caller is a member of at least one of ``group_ids`` (object ids, compared case-insensitively).

    With no ids nobody passes: an unconfigured group list closes the endpoint rather than opening it.
    """
    required = tuple(group_id.lower() for group_id in group_ids)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.groups_overage:
            raise Forbidden(ApiReason.GROUPS_OVERAGE, required)
        if not {group.lower() for group in principal.groups}.intersection(required):
            raise Forbidden(ApiReason.MISSING_GROUP, required)
        return principal

    refusals = [ApiReason.GROUPS_OVERAGE, ApiReason.MISSING_GROUP]
    return declare(_named(dependency, "require_groups", required), {403: refusals})


def require_auth_context(context: str) -> PrincipalDependency:
    """The user's sign-in satisfied Conditional Access authentication context ``context`` (``acrs``);
    see the module's docstring for who gets the claims challenge and who a plain 403."""
    if not AUTH_CONTEXT_ID.fullmatch(context):
        raise ValueError(f"{context!r} is not an authentication context id (c1 to c99)")

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(revalidated_principal)]
    ) -> Principal:
        if principal.principal_type == "app" or context in principal.auth_contexts:
            return principal
        if CLAIMS_CHALLENGE_CAPABILITY in principal.client_capabilities:
            settings: Any = request.app.state.settings
            raise StepUpRequired(context, settings.authorization_url)
        raise Forbidden(ApiReason.AUTH_CONTEXT_REQUIRED, (context,))

    refusals = {401: [ApiReason.INSUFFICIENT_CLAIMS], 403: [ApiReason.AUTH_CONTEXT_REQUIRED]}
    return declare(_named(dependency, "require_auth_context", (context,)), refusals)
