"""devidp's model of a tenant: its app registrations, users, groups and role assignments, and the
server's own settings, as :mod:`devidp.config` reads them from the TOML file. Frozen: the request
path only reads them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})

#: Entra's limit of groups in a JWT before it switches to the overage indicator.
DEFAULT_GROUPS_OVERAGE_LIMIT = 200
# Namespace for ids devidp derives (service principal object ids, generated groups), so they are
# stable across restarts without having to be written into the file.
_DERIVED_NS = uuid.UUID("0d3c6a52-8f0e-4b7a-9a51-6a8f3e2b1c90")


@dataclass(frozen=True, slots=True)
class PermissionScope:
    id: str
    value: str
    type: str = "User"
    admin_consent_display_name: str = ""
    is_enabled: bool = True


@dataclass(frozen=True, slots=True)
class AppRole:
    id: str
    value: str
    display_name: str
    allowed_member_types: tuple[str, ...]
    is_enabled: bool = True


@dataclass(frozen=True, slots=True)
class PreAuthorizedApplication:
    app_id: str
    scopes: frozenset[str]  # scope values


@dataclass(frozen=True, slots=True)
class RequiredResourceAccess:
    """A row of the portal's "API permissions" page, with admin consent granted."""

    resource_app_id: str
    scopes: frozenset[str]  # delegated permissions (scope values)
    roles: frozenset[str]  # application permissions (app role values)


@dataclass(frozen=True, slots=True)
class OptionalClaims:
    """Token configuration > optional claims: the names, and (name, additional property) pairs."""

    access_token: frozenset[str] = frozenset()
    id_token: frozenset[str] = frozenset()
    access_token_properties: frozenset[tuple[str, str]] = frozenset()
    id_token_properties: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Application:
    app_id: str
    display_name: str
    service_principal_id: str
    identifier_uris: tuple[str, ...] = ()
    scopes: tuple[PermissionScope, ...] = ()
    app_roles: tuple[AppRole, ...] = ()
    requested_access_token_version: int = 1
    pre_authorized_applications: tuple[PreAuthorizedApplication, ...] = ()
    spa_redirect_uris: tuple[str, ...] = ()
    web_redirect_uris: tuple[str, ...] = ()
    public_client_redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    #: ``web.logoutUrl``, the portal's "Front-channel logout URL": loaded in a hidden iframe, with
    #: ``?sid=``, when a user signs out of a session in which they signed in to this app.
    logout_url: str = ""
    is_fallback_public_client: bool = False
    group_membership_claims: str = "None"
    optional_claims: OptionalClaims = field(default_factory=OptionalClaims)
    client_secrets: tuple[str, ...] = ()
    required_resource_access: tuple[RequiredResourceAccess, ...] = ()

    @property
    def is_confidential(self) -> bool:
        return bool(self.client_secrets)

    def scope(self, value: str) -> PermissionScope | None:
        return next((s for s in self.scopes if s.value.lower() == value.lower() and s.is_enabled), None)

    def role(self, value: str) -> AppRole | None:
        return next((r for r in self.app_roles if r.value == value and r.is_enabled), None)

    def all_redirect_uris(self) -> tuple[str, ...]:
        return self.spa_redirect_uris + self.web_redirect_uris + self.public_client_redirect_uris


@dataclass(frozen=True, slots=True)
class AuthenticationContext:
    """A Conditional Access authentication context the tenant publishes (Graph's
    authenticationContextClassReference), protected here by one policy: step-up."""

    id: str  # c1 .. c99
    display_name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class AppRoleAssignment:
    resource_app_id: str
    app_role: str


@dataclass(frozen=True, slots=True)
class User:
    id: str
    user_principal_name: str
    display_name: str
    password: str
    given_name: str = ""
    surname: str = ""
    mail: str = ""
    account_enabled: bool = True
    groups: tuple[str, ...] = ()
    app_role_assignments: tuple[AppRoleAssignment, ...] = ()
    directory_role_template_ids: tuple[str, ...] = ()  # Entra roles (``wids``)
    preferred_language: str = ""  # ``xms_pl``
    preferred_data_location: str = ""  # ``xms_pdl``
    #: devidp-only stand-in for multifactor authentication: the code the step-up page asks for,
    #: and the authentication contexts completing it satisfies. No code: the user cannot step up.
    step_up_code: str = ""
    step_up_contexts: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    display_name: str
    domain: str
    applications: tuple[Application, ...]
    users: tuple[User, ...]
    groups_overage_limit: int = DEFAULT_GROUPS_OVERAGE_LIMIT
    preferred_language: str = ""  # the organization's, ``xms_tpl``
    authentication_contexts: tuple[AuthenticationContext, ...] = ()

    @property
    def protected_contexts(self) -> frozenset[str]:
        """The contexts a Conditional Access policy (here: step-up) protects."""
        return frozenset(c.id for c in self.authentication_contexts)

    def authentication_context(self, context_id: str) -> AuthenticationContext | None:
        return next((c for c in self.authentication_contexts if c.id == context_id), None)

    def application(self, app_id: str) -> Application | None:
        return next((app for app in self.applications if app.app_id.lower() == app_id.lower()), None)

    def resource(self, identifier: str) -> Application | None:
        """The app whose appId or one of whose identifierUris is ``identifier``."""
        return next(
            (
                app
                for app in self.applications
                if app.app_id.lower() == identifier.lower() or identifier in app.identifier_uris
            ),
            None,
        )

    def user_by_name(self, name: str) -> User | None:
        return next((u for u in self.users if u.user_principal_name.lower() == name.lower()), None)

    def user_by_id(self, oid: str) -> User | None:
        return next((u for u in self.users if u.id == oid), None)


#: Entra's default access-token lifetime: "a random value ranging between 60-90 minutes".
DEFAULT_ACCESS_TOKEN_LIFETIME_RANGE = (3600, 5400)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    #: None: Entra's default, a random lifetime in DEFAULT_ACCESS_TOKEN_LIFETIME_RANGE per token
    #: (drawn from ``random_seed`` when set, so tests can fix the sequence). A number: a token
    #: lifetime policy that fixes it.
    access_token_seconds: int | None = None
    id_token_seconds: int = 3600
    refresh_token_seconds: int = 86400
    code_seconds: int = 600
    device_code_seconds: int = 900
    device_code_interval_seconds: int = 5
    session_seconds: int = 28800
    random_seed: int | None = None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8900
    public_url: str = ""  # empty: derived from host/port/TLS
    tls_cert: str = ""
    tls_key: str = ""


@dataclass(frozen=True, slots=True)
class SigningSettings:
    key_file: str = ""  # empty: a fresh key per start
    pairwise_salt: str = "devidp-pairwise"
    #: Scheduled key rollover: every this many seconds the announced next key becomes the signing
    #: key and a new one is announced. 0: only by the admin endpoint.
    rotation_seconds: int = 0


@dataclass(frozen=True, slots=True)
class AdminSettings:
    enabled: bool = False


@dataclass(frozen=True, slots=True)
class DevIdpConfig:
    tenants: tuple[Tenant, ...]
    server: ServerSettings = field(default_factory=ServerSettings)
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    signing: SigningSettings = field(default_factory=SigningSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)

    def tenant(self, name: str) -> Tenant | None:
        """A tenant by id or by verified domain, as Entra accepts either in its paths."""
        name = name.lower()
        return next((t for t in self.tenants if name in (t.id.lower(), t.domain.lower() or None)), None)

    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        scheme = "https" if self.server.tls_cert else "http"
        return f"{scheme}://{self.server.host}:{self.server.port}"


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_DERIVED_NS, "/".join(parts)))
