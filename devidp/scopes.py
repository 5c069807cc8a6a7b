"""How a ``scope`` parameter turns into one resource and the permissions the client may have on it.

Pure functions of (tenant, client, scope string). Entra's rules, as devidp applies them:

* ``openid profile email offline_access`` are OpenID Connect scopes and travel with any one resource;
* ``<App ID URI or appId>/<value>`` names a scope of that resource; a bare value names a Microsoft
  Graph scope (devidp knows only ``User.Read`` there);
* one request, one resource (AADSTS700022), except that a refresh naming several gets a token for
  the first;
* ``/.default`` means every permission the client was granted on that resource;
* a scope the resource does not expose is AADSTS650053; one it exposes but the client was not
  granted (API permissions with admin consent, or ``preAuthorizedApplications``) needs consent
  (AADSTS65001), which devidp does not ask for interactively.
"""

from __future__ import annotations

from dataclasses import dataclass

from devidp import errors
from devidp.model import OIDC_SCOPES, Application, Tenant

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_IDENTIFIERS = frozenset({GRAPH_APP_ID, "https://graph.microsoft.com"})
GRAPH_SCOPES = ("User.Read",)


@dataclass(frozen=True, slots=True)
class ScopeGrant:
    """The outcome of resolving a delegated ``scope`` parameter."""

    oidc: frozenset[str]
    resource: Application | None  # None: Microsoft Graph (what Entra issues for OIDC-only requests)
    resource_identifier: str  # as the client named it; the v1 ``aud``
    values: tuple[str, ...]  # scope values granted, in the resource's own spelling

    @property
    def resource_app_id(self) -> str:
        return self.resource.app_id if self.resource else GRAPH_APP_ID

    def qualified(self) -> str:
        """The ``scope`` member of a token response, as Entra lists it."""
        if self.resource is not None:
            return " ".join(f"{self.resource_identifier}/{v}" for v in self.values)
        return " ".join([*self.values, *sorted(self.oidc - {"offline_access"})])


def granted_scopes(tenant: Tenant, client: Application, resource: Application) -> frozenset[str]:
    if client.app_id == resource.app_id:
        return frozenset(s.value for s in resource.scopes if s.is_enabled)
    values: set[str] = set()
    for rra in client.required_resource_access:
        if rra.resource_app_id == resource.app_id:
            values.update(rra.scopes)
    for pre in resource.pre_authorized_applications:
        if pre.app_id == client.app_id:
            values.update(pre.scopes)
    return frozenset(v for v in values if resource.scope(v) is not None)


def granted_app_roles(client: Application, resource: Application) -> tuple[str, ...]:
    values: set[str] = set()
    for rra in client.required_resource_access:
        if rra.resource_app_id == resource.app_id:
            values.update(rra.roles)
    return tuple(
        sorted(
            r.value
            for r in resource.app_roles
            if r.value in values and r.is_enabled and "Application" in r.allowed_member_types
        )
    )


def _split(token: str) -> tuple[str, str] | None:
    if "/" not in token:
        return None
    identifier, value = token.rsplit("/", 1)
    return identifier, value


def resolve_delegated(
    tenant: Tenant,
    client: Application,
    scope: str,
    *,
    on_token_endpoint: bool,
    first_resource_wins: bool = False,
) -> ScopeGrant:
    tokens = scope.split()
    if not tokens:
        raise errors.MISSING_PARAMETER(name="scope")
    oidc = frozenset(t.lower() for t in tokens if t.lower() in OIDC_SCOPES)
    named: list[tuple[str, str]] = []  # (identifier, value)
    for token in tokens:
        if token.lower() in OIDC_SCOPES:
            continue
        split = _split(token)
        if split is None:
            named.append((GRAPH_APP_ID, token))
        elif not split[0] or not split[1]:
            raise errors.INVALID_SCOPE(scope=token)
        else:
            named.append(split)

    if not named:
        if not oidc - {"offline_access"}:
            raise errors.INVALID_SCOPE(scope=scope)
        return ScopeGrant(oidc, None, GRAPH_APP_ID, GRAPH_SCOPES)

    def resource_key(identifier: str) -> str:
        if identifier in GRAPH_IDENTIFIERS:
            return GRAPH_APP_ID
        app = tenant.resource(identifier)
        return app.app_id if app else identifier

    identifiers = {resource_key(i) for i, _ in named}
    if len(identifiers) > 1:
        if not first_resource_wins:
            raise errors.MULTIPLE_RESOURCES(scope=scope)
        # Entra's refresh grant: scopes of several resources give a token for the first one.
        first = resource_key(named[0][0])
        named = [(i, v) for i, v in named if resource_key(i) == first]
    identifier = named[0][0]
    if identifier in GRAPH_IDENTIFIERS:
        values = []
        for _, value in named:
            match = [g for g in GRAPH_SCOPES if g.lower() == value.lower()]
            if value == ".default":
                match = list(GRAPH_SCOPES)
            if not match:
                raise errors.SCOPE_NOT_EXPOSED(
                    client_name=client.display_name, scope=value, resource=GRAPH_APP_ID
                )
            values += [m for m in match if m not in values]
        return ScopeGrant(
            oidc, None, GRAPH_APP_ID if identifier == GRAPH_APP_ID else identifier, tuple(values)
        )

    resource = tenant.resource(identifier)
    if resource is None:
        raise errors.RESOURCE_NOT_FOUND(resource=identifier, tenant=tenant.id)
    granted = granted_scopes(tenant, client, resource)
    values = []
    for _, value in named:
        if value == ".default":
            values += sorted(v for v in granted if v not in values)
            continue
        exposed = resource.scope(value)
        if exposed is None:
            raise errors.SCOPE_NOT_EXPOSED(
                client_name=client.display_name, scope=value, resource=resource.app_id
            )
        if exposed.value not in granted:
            consent = (
                errors.CONSENT_REQUIRED_ON_TOKEN_ENDPOINT if on_token_endpoint else errors.CONSENT_REQUIRED
            )
            raise consent(client_id=client.app_id, client_name=client.display_name)
        if exposed.value not in values:
            values.append(exposed.value)
    return ScopeGrant(oidc, resource, identifier, tuple(values))


def resolve_application(
    tenant: Tenant, client: Application, scope: str
) -> tuple[Application, str, tuple[str, ...]]:
    """client_credentials: exactly one ``<resource>/.default``; returns (resource, identifier, roles)."""
    tokens = scope.split()
    if not tokens:
        raise errors.MISSING_PARAMETER(name="scope")
    if len(tokens) != 1 or not tokens[0].endswith("/.default"):
        raise errors.DEFAULT_SCOPE_REQUIRED(scope=scope)
    identifier = tokens[0][: -len("/.default")]
    resource = tenant.resource(identifier)
    if resource is None:
        raise errors.RESOURCE_NOT_FOUND(resource=identifier, tenant=tenant.id)
    return resource, identifier, granted_app_roles(client, resource)
