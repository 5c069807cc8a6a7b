"""devidp configuration: what a tenant administrator would set in Entra, as TOML.

Key names follow the Entra application manifest and Microsoft Graph (``appId``, ``identifierUris``,
``api.oauth2PermissionScopes``, ``spa.redirectUris``, ...) so that ``docs/entra-setup.md`` can map
every setting one to one. The file is validated once, at start-up: every problem is collected with
its place in the file (``tenants[0].applications[2].spa.redirectUris[1]``) and reported together, and
the request path never re-checks configuration. What it builds is :mod:`devidp.model`.
"""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devidp.auth_context import AUTH_CONTEXT_ID
from devidp.model import (
    DEFAULT_GROUPS_OVERAGE_LIMIT,
    AdminSettings,
    Application,
    AppRole,
    AppRoleAssignment,
    AuthenticationContext,
    DevIdpConfig,
    Lifetimes,
    OptionalClaims,
    PermissionScope,
    PreAuthorizedApplication,
    RequiredResourceAccess,
    ServerSettings,
    SigningSettings,
    Tenant,
    User,
    derived_id,
)
from service_runtime.config_error import ConfigError

GROUP_MEMBERSHIP_CLAIMS = ("None", "SecurityGroup", "All", "DirectoryRole", "ApplicationGroup")
#: Optional claims of Entra's optional-claims reference that a registration may list. devidp emits
#: those it has data for; the rest are accepted and, like Entra when a value is missing, omitted.
#: Any ``xms_*`` name is accepted as well.
SUPPORTED_OPTIONAL_CLAIMS = frozenset(
    {
        "acct",
        "acrs",
        "auth_time",
        "ctry",
        "email",
        "family_name",
        "fwd",
        "given_name",
        "groups",
        "idtyp",
        "in_corp",
        "ipaddr",
        "login_hint",
        "onprem_sid",
        "pwd_exp",
        "pwd_url",
        "sid",
        "tenant_ctry",
        "tenant_region_scope",
        "upn",
        "verified_primary_email",
        "verified_secondary_email",
        "vnet",
        "wids",
    }
)
#: ``additionalProperties`` values Entra documents for optional claims.
OPTIONAL_CLAIM_PROPERTIES = frozenset(
    {
        "include_user_token",  # idtyp: also in user tokens
        "include_externally_authenticated_upn",  # upn
        "include_externally_authenticated_upn_without_hash",  # upn
        "sam_account_name",  # groups
        "dns_domain_and_sam_account_name",
        "netbios_domain_and_sam_account_name",
        "emit_as_roles",
        "cloud_displayname",
        "use_guid",  # login_hint
    }
)

# --------------------------------------------------------------------------------------------------
# Loading and validation


class _Reader:
    """Walks the parsed TOML, collecting problems with their dotted place instead of raising."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def table(self, value: Any, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.problem(
                    f"{where}.{key}" if where else key,
                    f"unknown key (expected one of: {', '.join(sorted(allowed))})",
                )
        return value

    def array_of_tables(self, value: Any, where: str) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self.problem(where, "expected an array of tables")
            return []
        return value

    def each_table(
        self, value: Any, where: str, allowed: Sequence[str]
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each table of an array of tables with its own dotted place (``where[i]``), keys checked."""
        for i, item in enumerate(self.array_of_tables(value, where)):
            yield f"{where}[{i}]", self.table(item, f"{where}[{i}]", allowed)

    def string(
        self, t: Mapping[str, Any], key: str, where: str, *, required: bool = False, default: str = ""
    ) -> str:
        if key not in t:
            if required:
                self.problem(f"{where}.{key}", "is required")
            return default
        value = t[key]
        if not isinstance(value, str):
            self.problem(f"{where}.{key}", f"expected a string, got {type(value).__name__}")
            return default
        if required and not value:
            self.problem(f"{where}.{key}", "must not be empty")
        return value

    def one_of(self, value: str, where: str, allowed: Sequence[str]) -> str:
        """``value``, with a problem recorded unless it is one of ``allowed``."""
        if value not in allowed:
            self.problem(where, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value

    def boolean(self, t: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = t.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{where}.{key}", f"expected true or false, got {value!r}")
            return default
        return value

    def integer(
        self,
        t: Mapping[str, Any],
        key: str,
        where: str,
        default: int,
        *,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{where}.{key}", f"expected an integer, got {value!r}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
            self.problem(f"{where}.{key}", f"must be {bound}, got {value}")
            return default
        return value

    def strings(self, t: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = t.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{where}.{key}", "expected an array of strings")
            return ()
        return tuple(value)

    def guids(self, t: Mapping[str, Any], key: str, where: str, what: str) -> tuple[str, ...]:
        """An array of GUIDs, each one that is not named by its index and ``what`` it should be."""
        values = self.strings(t, key, where)
        for j, value in enumerate(values):
            if not _is_guid(value):
                self.problem(f"{where}.{key}[{j}]", f"{value!r} is not {what} (GUID)")
        return values

    def guid(self, t: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
        value = self.string(t, key, where, required=required)
        if value and not _is_guid(value):
            self.problem(f"{where}.{key}", f"{value!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
        return value.lower()


def _is_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: A URL's host and port as a Content-Security-Policy source accepts them. The logout page lists the
#: front-channel logout URLs' origins in its frame-src, so anything else there could add directives.
_PLAIN_NETLOC = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def _check_redirect_uri(r: _Reader, uri: str, where: str, platform: str, what: str = "redirect URIs") -> None:
    parts = urlsplit(uri)
    if parts.fragment:
        r.problem(where, f"{uri!r}: {what} may not contain a fragment")
    if platform == "publicClient":
        if not parts.scheme:
            r.problem(where, f"{uri!r} is not an absolute URI")
        return
    if parts.scheme not in ("https", "http") or not parts.netloc:
        r.problem(where, f"{uri!r} is not an absolute http(s) URL")
    elif parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        r.problem(where, f"{uri!r}: Entra accepts http {what} only for localhost")


def _front_channel_logout_url(r: _Reader, web_section: Mapping[str, Any], where: str) -> str:
    """``web.logoutUrl``: checked like a web redirect URI, and with a host a CSP source can name."""
    url = r.string(web_section, "logoutUrl", where)
    if not url:
        return ""
    before = len(r.problems)
    _check_redirect_uri(r, url, f"{where}.logoutUrl", "web", "front-channel logout URLs")
    if len(r.problems) == before and not _PLAIN_NETLOC.match(urlsplit(url).netloc):
        r.problem(
            f"{where}.logoutUrl",
            f"{url!r}: the host must be a plain host name or address with an optional port "
            "(no user information), for example https://app.example/signout",
        )
    return url


_TOP_KEYS = ("server", "lifetimes", "signing", "admin", "tenants")
_APP_KEYS = (
    "appId",
    "displayName",
    "servicePrincipalId",
    "identifierUris",
    "api",
    "appRoles",
    "spa",
    "web",
    "publicClient",
    "isFallbackPublicClient",
    "groupMembershipClaims",
    "optionalClaims",
    "passwordCredentials",
    "requiredResourceAccess",
    "postLogoutRedirectUris",
)


def config_from_mapping(data: Mapping[str, Any], source: str = "<config>") -> DevIdpConfig:
    """Build and validate a configuration from parsed TOML.

    Raises :class:`ConfigError` listing every problem found.
    """
    r = _Reader()
    top = r.table(data, "", _TOP_KEYS)

    s = r.table(top.get("server"), "server", ("host", "port", "public_url", "tls_cert", "tls_key"))
    server = ServerSettings(
        host=r.string(s, "host", "server", default="127.0.0.1"),
        port=r.integer(s, "port", "server", 8900, maximum=65535),
        public_url=r.string(s, "public_url", "server").rstrip("/"),
        tls_cert=r.string(s, "tls_cert", "server"),
        tls_key=r.string(s, "tls_key", "server"),
    )
    if server.public_url and urlsplit(server.public_url).scheme not in ("http", "https"):
        r.problem("server.public_url", f"{server.public_url!r} is not an http(s) URL")
    if bool(server.tls_cert) != bool(server.tls_key):
        r.problem("server", "tls_cert and tls_key must be set together")

    lt = r.table(top.get("lifetimes"), "lifetimes", tuple(Lifetimes.__dataclass_fields__))
    defaults = Lifetimes()
    fixed = ("access_token_seconds", "random_seed")
    lifetimes = Lifetimes(
        access_token_seconds=(
            r.integer(lt, "access_token_seconds", "lifetimes", 3600, minimum=1)
            if "access_token_seconds" in lt
            else None
        ),
        random_seed=r.integer(lt, "random_seed", "lifetimes", 0) if "random_seed" in lt else None,
        **{
            name: r.integer(lt, name, "lifetimes", getattr(defaults, name), minimum=1)
            for name in Lifetimes.__dataclass_fields__
            if name not in fixed
        },
    )

    sg = r.table(top.get("signing"), "signing", ("key_file", "pairwise_salt", "rotation_seconds"))
    signing = SigningSettings(
        key_file=r.string(sg, "key_file", "signing"),
        pairwise_salt=r.string(sg, "pairwise_salt", "signing", default="devidp-pairwise"),
        rotation_seconds=r.integer(sg, "rotation_seconds", "signing", 0),
    )
    ad = r.table(top.get("admin"), "admin", ("enabled",))
    admin = AdminSettings(enabled=r.boolean(ad, "enabled", "admin", False))

    tenants_raw = r.array_of_tables(top.get("tenants"), "tenants")
    if not tenants_raw:
        r.problem("tenants", "at least one [[tenants]] entry is required")
    tenants = tuple(_tenant(r, t, f"tenants[{i}]") for i, t in enumerate(tenants_raw))
    _check_tenants(r, tenants)

    if r.problems:
        raise ConfigError(source, r.problems)
    return DevIdpConfig(tenants=tenants, server=server, lifetimes=lifetimes, signing=signing, admin=admin)


#: The edge origin the app registrations of devidp/example.toml name (``make run``'s).
EXAMPLE_APP_ORIGIN = "https://localhost:8443"


def move_app_origin(text: str, origin: str) -> str:
    """devidp/example.toml's text with its apps' URLs on the edge moved to the edge at ``origin``.

    The file registers ``https://localhost:8443/...`` (redirect URIs, post-logout URIs and the BFF's
    front-channel ``logoutUrl``); an edge on another port (the tests, a second compose project)
    needs its own origin there, exactly as a real app registration would. Nothing else is changed:
    URLs on other origins, such as the sign-out test app's on 127.0.0.1:8981, stay.
    """
    origin = origin.rstrip("/")
    if origin == EXAMPLE_APP_ORIGIN:
        return text
    moved = text.replace(EXAMPLE_APP_ORIGIN + "/", origin + "/")
    return moved.replace(f'"{EXAMPLE_APP_ORIGIN}"', f'"{origin}"')


def load_config(path: str | Path, *, app_origin: str | None = None) -> DevIdpConfig:
    """The configuration in ``path``; ``app_origin`` moves its apps' redirect URIs (move_app_origin)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(move_app_origin(text, app_origin) if app_origin else text)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc
    return config_from_mapping(data, str(path))


def _tenant(r: _Reader, t: Mapping[str, Any], where: str) -> Tenant:
    t = r.table(
        t,
        where,
        (
            "id",
            "displayName",
            "domain",
            "groupsOverageLimit",
            "preferredLanguage",
            "authenticationContexts",
            "applications",
            "users",
        ),
    )
    tid = r.guid(t, "id", where)
    apps_raw = r.array_of_tables(t.get("applications"), f"{where}.applications")
    users_raw = r.array_of_tables(t.get("users"), f"{where}.users")
    contexts = _authentication_contexts(r, t, where)
    context_ids = tuple(c.id for c in contexts)
    return Tenant(
        id=tid,
        display_name=r.string(t, "displayName", where, default="devidp tenant"),
        domain=r.string(t, "domain", where),
        applications=tuple(
            _application(r, a, f"{where}.applications[{i}]", tid) for i, a in enumerate(apps_raw)
        ),
        users=tuple(_user(r, u, f"{where}.users[{i}]", tid, context_ids) for i, u in enumerate(users_raw)),
        groups_overage_limit=r.integer(
            t, "groupsOverageLimit", where, DEFAULT_GROUPS_OVERAGE_LIMIT, minimum=1
        ),
        preferred_language=r.string(t, "preferredLanguage", where),
        authentication_contexts=contexts,
    )


def _authentication_contexts(
    r: _Reader, t: Mapping[str, Any], where: str
) -> tuple[AuthenticationContext, ...]:
    contexts: list[AuthenticationContext] = []
    for w, c in r.each_table(
        t.get("authenticationContexts"),
        f"{where}.authenticationContexts",
        ("id", "displayName", "description"),
    ):
        context_id = r.string(c, "id", w, required=True)
        if context_id and not AUTH_CONTEXT_ID.match(context_id):
            r.problem(f"{w}.id", f"{context_id!r} is not an authentication context id (c1 to c99)")
        elif context_id in (known.id for known in contexts):
            r.problem(f"{w}.id", f"duplicate authentication context {context_id!r}")
        contexts.append(
            AuthenticationContext(
                id=context_id,
                display_name=r.string(c, "displayName", w, required=True),
                description=r.string(c, "description", w),
            )
        )
    return tuple(contexts)


def _application(r: _Reader, a: Mapping[str, Any], where: str, tid: str) -> Application:
    a = r.table(a, where, _APP_KEYS)
    app_id = r.guid(a, "appId", where)
    api = r.table(
        a.get("api"),
        f"{where}.api",
        ("oauth2PermissionScopes", "requestedAccessTokenVersion", "preAuthorizedApplications"),
    )
    scopes = _permission_scopes(r, api, where, app_id)
    roles = _app_roles(r, a, where, app_id)
    version = _requested_access_token_version(r, api, where)
    pre = _pre_authorized_applications(r, api, where, scopes)
    platforms, logout_url = _redirect_uris_by_platform(r, a, where)
    gmc = _group_membership_claims(r, a, where)
    optional, properties = _optional_claims(r, a, where)
    secrets = _client_secrets(r, a, where)
    rra = _required_resource_access(r, a, where)
    post_logout = r.strings(a, "postLogoutRedirectUris", where)
    for j, uri in enumerate(post_logout):
        _check_redirect_uri(r, uri, f"{where}.postLogoutRedirectUris[{j}]", "web")
    identifier_uris = r.strings(a, "identifierUris", where)
    for j, uri in enumerate(identifier_uris):
        if not urlsplit(uri).scheme:
            r.problem(f"{where}.identifierUris[{j}]", f"{uri!r} is not a URI (for example api://<appId>)")
    return Application(
        app_id=app_id,
        display_name=r.string(a, "displayName", where, default=app_id),
        service_principal_id=r.guid(a, "servicePrincipalId", where, required=False)
        or derived_id(tid, app_id, "sp"),
        identifier_uris=identifier_uris,
        scopes=tuple(scopes),
        app_roles=tuple(roles),
        requested_access_token_version=version,
        pre_authorized_applications=tuple(pre),
        spa_redirect_uris=platforms["spa"],
        web_redirect_uris=platforms["web"],
        public_client_redirect_uris=platforms["publicClient"],
        post_logout_redirect_uris=post_logout,
        logout_url=logout_url,
        is_fallback_public_client=r.boolean(a, "isFallbackPublicClient", where, False),
        group_membership_claims=gmc,
        optional_claims=OptionalClaims(
            access_token=optional["accessToken"],
            id_token=optional["idToken"],
            access_token_properties=properties["accessToken"],
            id_token_properties=properties["idToken"],
        ),
        client_secrets=tuple(secrets),
        required_resource_access=tuple(rra),
    )


def _permission_scopes(r: _Reader, api: Mapping[str, Any], where: str, app_id: str) -> list[PermissionScope]:
    scopes = []
    for w, sc in r.each_table(
        api.get("oauth2PermissionScopes"),
        f"{where}.api.oauth2PermissionScopes",
        ("id", "value", "type", "adminConsentDisplayName", "isEnabled"),
    ):
        value = r.string(sc, "value", w, required=True)
        if value and (" " in value or value.startswith(".")):
            r.problem(f"{w}.value", f"{value!r}: scope values may not contain spaces or start with '.'")
        scope_type = r.one_of(r.string(sc, "type", w, default="User"), f"{w}.type", ("User", "Admin"))
        scopes.append(
            PermissionScope(
                id=r.guid(sc, "id", w, required=False) or derived_id(app_id, "scope", value),
                value=value,
                type=scope_type,
                admin_consent_display_name=r.string(sc, "adminConsentDisplayName", w),
                is_enabled=r.boolean(sc, "isEnabled", w, True),
            )
        )
    return scopes


def _app_roles(r: _Reader, a: Mapping[str, Any], where: str, app_id: str) -> list[AppRole]:
    roles = []
    for w, ro in r.each_table(
        a.get("appRoles"),
        f"{where}.appRoles",
        ("id", "value", "displayName", "allowedMemberTypes", "isEnabled", "description"),
    ):
        value = r.string(ro, "value", w, required=True)
        members = r.strings(ro, "allowedMemberTypes", w) or ("User",)
        for member in members:
            r.one_of(member, f"{w}.allowedMemberTypes", ("User", "Application"))
        roles.append(
            AppRole(
                id=r.guid(ro, "id", w, required=False) or derived_id(app_id, "role", value),
                value=value,
                display_name=r.string(ro, "displayName", w, default=value),
                allowed_member_types=members,
                is_enabled=r.boolean(ro, "isEnabled", w, True),
            )
        )
    return roles


def _requested_access_token_version(r: _Reader, api: Mapping[str, Any], where: str) -> int:
    version = api.get("requestedAccessTokenVersion", 1)
    if version is None:
        version = 1
    if version not in (1, 2) or isinstance(version, bool):
        r.problem(f"{where}.api.requestedAccessTokenVersion", f"expected 1 or 2, got {version!r}")
        version = 1
    return int(version)


def _pre_authorized_applications(
    r: _Reader, api: Mapping[str, Any], where: str, scopes: Sequence[PermissionScope]
) -> list[PreAuthorizedApplication]:
    pre = []
    for w, p in r.each_table(
        api.get("preAuthorizedApplications"),
        f"{where}.api.preAuthorizedApplications",
        ("appId", "delegatedPermissionIds"),
    ):
        wanted = r.strings(p, "delegatedPermissionIds", w)
        values = set()
        for j, ident in enumerate(wanted):
            match = [s.value for s in scopes if s.id == ident.lower() or s.value == ident]
            if not match:
                r.problem(
                    f"{w}.delegatedPermissionIds[{j}]", f"{ident!r} is not a scope id or value of this API"
                )
            values.update(match)
        pre.append(PreAuthorizedApplication(app_id=r.guid(p, "appId", w), scopes=frozenset(values)))
    return pre


def _redirect_uris_by_platform(
    r: _Reader, a: Mapping[str, Any], where: str
) -> tuple[dict[str, tuple[str, ...]], str]:
    """The redirect URIs of each platform, and the web platform's front-channel logout URL."""
    platforms: dict[str, tuple[str, ...]] = {}
    logout_url = ""
    for platform in ("spa", "web", "publicClient"):
        allowed = ("redirectUris", "logoutUrl") if platform == "web" else ("redirectUris",)
        section = r.table(a.get(platform), f"{where}.{platform}", allowed)
        uris = r.strings(section, "redirectUris", f"{where}.{platform}")
        for j, uri in enumerate(uris):
            _check_redirect_uri(r, uri, f"{where}.{platform}.redirectUris[{j}]", platform)
        platforms[platform] = uris
        if platform == "web":
            logout_url = _front_channel_logout_url(r, section, f"{where}.web")
    return platforms, logout_url


def _group_membership_claims(r: _Reader, a: Mapping[str, Any], where: str) -> str:
    gmc = r.string(a, "groupMembershipClaims", where, default="None")
    if gmc not in GROUP_MEMBERSHIP_CLAIMS:
        r.problem(
            f"{where}.groupMembershipClaims",
            f"expected one of {', '.join(GROUP_MEMBERSHIP_CLAIMS)}, got {gmc!r}",
        )
    return gmc


def _optional_claims(
    r: _Reader, a: Mapping[str, Any], where: str
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[tuple[str, str]]]]:
    oc = r.table(a.get("optionalClaims"), f"{where}.optionalClaims", ("accessToken", "idToken", "saml2Token"))
    optional: dict[str, frozenset[str]] = {}
    properties: dict[str, frozenset[tuple[str, str]]] = {}
    for kind in ("accessToken", "idToken"):
        names = set()
        pairs = set()
        for w, c in r.each_table(
            oc.get(kind),
            f"{where}.optionalClaims.{kind}",
            ("name", "essential", "source", "additionalProperties"),
        ):
            name = r.string(c, "name", w, required=True)
            if name and name not in SUPPORTED_OPTIONAL_CLAIMS and not name.startswith("xms_"):
                r.problem(
                    f"{w}.name",
                    f"{name!r} is not an optional claim of Entra's reference "
                    f"(known: {', '.join(sorted(SUPPORTED_OPTIONAL_CLAIMS))}, xms_*)",
                )
            for j, prop in enumerate(r.strings(c, "additionalProperties", w)):
                if prop not in OPTIONAL_CLAIM_PROPERTIES:
                    r.problem(
                        f"{w}.additionalProperties[{j}]",
                        f"{prop!r} is not an additional property Entra documents "
                        f"(known: {', '.join(sorted(OPTIONAL_CLAIM_PROPERTIES))})",
                    )
                pairs.add((name, prop))
            names.add(name)
        optional[kind] = frozenset(names)
        properties[kind] = frozenset(pairs)
    return optional, properties


def _client_secrets(r: _Reader, a: Mapping[str, Any], where: str) -> list[str]:
    secrets = []
    for w, pc in r.each_table(
        a.get("passwordCredentials"), f"{where}.passwordCredentials", ("displayName", "secretText")
    ):
        secret = r.string(pc, "secretText", w, required=True)
        if secret and len(secret) < 16:
            r.problem(f"{w}.secretText", "must be at least 16 characters")
        secrets.append(secret)
    return secrets


def _required_resource_access(r: _Reader, a: Mapping[str, Any], where: str) -> list[RequiredResourceAccess]:
    rra = []
    for w, rr in r.each_table(
        a.get("requiredResourceAccess"),
        f"{where}.requiredResourceAccess",
        ("resourceAppId", "scopes", "roles"),
    ):
        rra.append(
            RequiredResourceAccess(
                resource_app_id=r.guid(rr, "resourceAppId", w),
                scopes=frozenset(r.strings(rr, "scopes", w)),
                roles=frozenset(r.strings(rr, "roles", w)),
            )
        )
    return rra


def _user(r: _Reader, u: Mapping[str, Any], where: str, tid: str, context_ids: Sequence[str]) -> User:
    u = r.table(
        u,
        where,
        (
            "id",
            "userPrincipalName",
            "displayName",
            "givenName",
            "surname",
            "mail",
            "password",
            "accountEnabled",
            "groups",
            "generatedGroupCount",
            "appRoleAssignments",
            "directoryRoleTemplateIds",
            "preferredLanguage",
            "preferredDataLocation",
            "stepUpCode",
            "stepUpContexts",
        ),
    )
    oid = r.guid(u, "id", where)
    upn = r.string(u, "userPrincipalName", where, required=True)
    if upn and "@" not in upn:
        r.problem(f"{where}.userPrincipalName", f"{upn!r} is not of the form name@domain")
    directory_roles = r.guids(u, "directoryRoleTemplateIds", where, "a role template id")
    groups = list(r.guids(u, "groups", where, "a group object id"))
    # devidp-only convenience: a user in hundreds of groups without listing hundreds of GUIDs.
    generated = r.integer(u, "generatedGroupCount", where, 0, maximum=5000)
    groups += [derived_id(tid, "group", str(n)) for n in range(generated)]
    assignments = []
    raw = u.get("appRoleAssignments", [])
    if not isinstance(raw, list):
        r.problem(f"{where}.appRoleAssignments", "expected an array of tables")
        raw = []
    for j, a in enumerate(raw):
        w = f"{where}.appRoleAssignments[{j}]"
        a = r.table(a, w, ("resourceAppId", "appRole"))
        assignments.append(
            AppRoleAssignment(
                resource_app_id=r.guid(a, "resourceAppId", w),
                app_role=r.string(a, "appRole", w, required=True),
            )
        )
    step_up_code, step_up_contexts = _step_up(r, u, where, context_ids)
    return User(
        id=oid,
        user_principal_name=upn,
        display_name=r.string(u, "displayName", where, required=True),
        password=r.string(u, "password", where, required=True),
        given_name=r.string(u, "givenName", where),
        surname=r.string(u, "surname", where),
        mail=r.string(u, "mail", where),
        account_enabled=r.boolean(u, "accountEnabled", where, True),
        groups=tuple(groups),
        app_role_assignments=tuple(assignments),
        directory_role_template_ids=tuple(role.lower() for role in directory_roles),
        preferred_language=r.string(u, "preferredLanguage", where),
        preferred_data_location=r.string(u, "preferredDataLocation", where),
        step_up_code=step_up_code,
        step_up_contexts=step_up_contexts,
    )


def _step_up(
    r: _Reader, u: Mapping[str, Any], where: str, context_ids: Sequence[str]
) -> tuple[str, frozenset[str]]:
    """The user's step-up code and the contexts it satisfies (unset: all the tenant's)."""
    code = r.string(u, "stepUpCode", where)
    if code and (len(code) < 6 or code != code.strip()):
        r.problem(f"{where}.stepUpCode", "must be at least 6 characters, without surrounding spaces")
    if "stepUpContexts" not in u:
        return code, frozenset(context_ids) if code else frozenset()
    contexts = r.strings(u, "stepUpContexts", where)
    if contexts and not code:
        r.problem(f"{where}.stepUpContexts", "needs stepUpCode: the code the step-up page asks this user for")
    for j, context_id in enumerate(contexts):
        if context_id not in context_ids:
            defined = ", ".join(context_ids) or "none"
            r.problem(
                f"{where}.stepUpContexts[{j}]",
                f"{context_id!r} is not an authenticationContexts id of this tenant (defined: {defined})",
            )
    return code, frozenset(contexts)


def _check_tenants(r: _Reader, tenants: Sequence[Tenant]) -> None:
    seen_tenants: set[str] = set()
    for i, t in enumerate(tenants):
        where = f"tenants[{i}]"
        if t.id in seen_tenants:
            r.problem(f"{where}.id", f"duplicate tenant id {t.id}")
        seen_tenants.add(t.id)
        app_ids: dict[str, int] = {}
        uris: set[str] = set()
        for j, app in enumerate(t.applications):
            if app.app_id in app_ids:
                r.problem(
                    f"{where}.applications[{j}].appId",
                    f"duplicate appId (also applications[{app_ids[app.app_id]}])",
                )
            app_ids[app.app_id] = j
            for uri in app.identifier_uris:
                if uri in uris:
                    r.problem(
                        f"{where}.applications[{j}].identifierUris", f"{uri!r} is used by another application"
                    )
                uris.add(uri)
            values = [s.value.lower() for s in app.scopes]
            if len(values) != len(set(values)):
                r.problem(
                    f"{where}.applications[{j}].api.oauth2PermissionScopes", "scope values must be unique"
                )
            if len({ro.value for ro in app.app_roles}) != len(app.app_roles):
                r.problem(f"{where}.applications[{j}].appRoles", "app role values must be unique")
        for j, app in enumerate(t.applications):
            for k, rr in enumerate(app.required_resource_access):
                w = f"{where}.applications[{j}].requiredResourceAccess[{k}]"
                res = t.application(rr.resource_app_id) if rr.resource_app_id else None
                if res is None:
                    if rr.resource_app_id:
                        r.problem(f"{w}.resourceAppId", f"no application {rr.resource_app_id} in this tenant")
                    continue
                for sc in sorted(rr.scopes):
                    if res.scope(sc) is None:
                        r.problem(f"{w}.scopes", f"{sc!r} is not a scope exposed by {res.display_name}")
                for ro in sorted(rr.roles):
                    role = res.role(ro)
                    if role is None or "Application" not in role.allowed_member_types:
                        r.problem(
                            f"{w}.roles",
                            f"{ro!r} is not an app role of {res.display_name} "
                            "that allows member type Application",
                        )
            for k, pre in enumerate(app.pre_authorized_applications):
                if pre.app_id and t.application(pre.app_id) is None:
                    r.problem(
                        f"{where}.applications[{j}].api.preAuthorizedApplications[{k}].appId",
                        f"no application {pre.app_id} in this tenant",
                    )
        names: set[str] = set()
        oids: set[str] = set()
        for j, user in enumerate(t.users):
            w = f"{where}.users[{j}]"
            if user.user_principal_name.lower() in names:
                r.problem(f"{w}.userPrincipalName", "duplicate userPrincipalName")
            names.add(user.user_principal_name.lower())
            if user.id in oids:
                r.problem(f"{w}.id", "duplicate user object id")
            oids.add(user.id)
            for k, asg in enumerate(user.app_role_assignments):
                res = t.application(asg.resource_app_id) if asg.resource_app_id else None
                if res is None:
                    if asg.resource_app_id:
                        r.problem(
                            f"{w}.appRoleAssignments[{k}].resourceAppId",
                            f"no application {asg.resource_app_id} in this tenant",
                        )
                    continue
                role = res.role(asg.app_role)
                if role is None or "User" not in role.allowed_member_types:
                    r.problem(
                        f"{w}.appRoleAssignments[{k}].appRole",
                        f"{asg.app_role!r} is not an app role of {res.display_name} assignable to users",
                    )
