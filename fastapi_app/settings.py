"""FastAPI settings: one dataclass, built and validated once at start-up.

Every problem in the environment is collected and reported together with the variable's name, so a
misconfigured deployment fails at boot with the full list instead of one error per restart. Nothing
on the request path re-reads the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service_runtime.config_error import ConfigError
from service_runtime.env import EnvReader
from service_runtime.tls import ServerTls, server_tls_from_env
from service_runtime.tracing import TracingSettings, tracing_settings
from verifier.core.access_tokens import ValidationSettings, validation_settings_from_env
from verifier.core.identity import decode_identity_key
from verifier.core.jose import GUID

MIN_SIGNING_KEY_BYTES = 32
DEFAULT_DATABASE_PATH = "run/api.sqlite3"
TRACING_OFF = TracingSettings(enabled=False, service_name="api")
#: The schemes ``API_DATABASE_URL`` accepts, and the async driver each one is served by. The plain
#: forms are what Secrets Manager and libpq tools hold; the driver forms are SQLAlchemy's spelling.
_DATABASE_SCHEMES = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def decode_signing_key(text: str) -> bytes:
    """The HMAC key for the identity signature, from the IDENTITY_SIGNING_KEY text.

    Decoding is the verifier's own :func:`verifier.core.identity.decode_identity_key` (base64url when the
    value looks like it, else the UTF-8 text), so the signer and this checker cannot disagree about
    the key bytes. Raises ``ValueError`` with a message that never contains the key.
    """
    key = decode_identity_key(text)
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise ValueError(
            f"is too short: it decodes to {len(key)} bytes; at least {MIN_SIGNING_KEY_BYTES} are required "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return key


def database_url_for_sqlite(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path`` (relative paths stay relative to the cwd)."""
    return f"sqlite+aiosqlite:///{path}"


#: Conditional Access authentication context ids: c1 to c99.
AUTH_CONTEXT_ID = re.compile(r"c[1-9][0-9]?")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the API needs to run. Build with :meth:`from_env` or directly in tests."""

    #: Current key first, then the previous one during a rotation.
    signing_keys: tuple[bytes, ...] = field(repr=False)
    #: SQLAlchemy URL with its async driver: ``postgresql+asyncpg://...`` or ``sqlite+aiosqlite:///path``.
    database_url: str = field(repr=False)
    #: The OpenAPI page's sign-in: authority (``https://login.microsoftonline.com/<tenant>``), the
    #: public client that signs in with PKCE, and the API's scope prefix (``api://<app id>``).
    authority_url: str
    openapi_client_id: str
    scope_prefix: str
    host: str = "127.0.0.1"
    port: int = 8000
    identity_max_age: int = 30
    #: Groups whose members may read the project report (any of them). Empty: nobody may.
    report_group_ids: tuple[str, ...] = ()
    max_body_bytes: int = 65536
    #: True: one access line per request. False (the default, behind nginx, which logs every request
    #: with its id, status and oid): lines only for answers of status 400 and above, with their reason.
    access_log: bool = False
    #: uvicorn worker processes: as many as the task has vCPUs (1 locally).
    workers: int = 1
    log_level: str = "info"
    #: Token rules for re-validating the forwarded access token (the verifier's ``VERIFIER_*``
    #: variables). None: re-validation is not configured and endpoints that demand it answer 503.
    revalidation: ValidationSettings | None = None
    #: Extra CA bundle for fetching discovery documents and JWKS (``VERIFIER_CA_FILE``).
    jwks_ca_file: Path | None = None
    jwks_refresh_seconds: float = 43_200.0
    jwks_min_refetch_seconds: float = 60.0
    #: The verifier of this task, which ends sessions for "sign out everywhere" (``/sessions/end``).
    #: Every container of a task shares localhost (ECS awsvpc, compose's task namespace).
    verifier_url: str = "http://127.0.0.1:9000"
    #: The Conditional Access authentication context critical actions need (step-up), or None for
    #: none. ``API_STEP_UP_AUTH_CONTEXT`` defaults to ``c1``: a tenant without a policy on ``c1``
    #: issues it when asked, so the default costs such a tenant one redirect and nothing else.
    step_up_auth_context: str | None = None
    #: TLS (mutual with a client CA) on the API's port; None: plain HTTP (service_runtime.tls).
    tls: ServerTls | None = None
    #: OpenTelemetry traces (service_runtime.tracing): off unless an OTLP endpoint is set.
    tracing: TracingSettings = TRACING_OFF

    @property
    def authorization_url(self) -> str:
        return f"{self.authority_url}/oauth2/v2.0/authorize"

    @property
    def authority_origin(self) -> str:
        """``https://host[:port]`` of the authority: the one other origin the docs page may reach."""
        parts = urlsplit(self.authority_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def token_url(self) -> str:
        return f"{self.authority_url}/oauth2/v2.0/token"

    def scope(self, name: str) -> str:
        return f"{self.scope_prefix}/{name}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        """Validate every variable; raise :class:`ConfigError` listing all problems at once."""
        reader = _EnvReader(env)
        problems = reader.problems

        keys: list[bytes] = []
        current = reader.raw("IDENTITY_SIGNING_KEY")
        if current is None:
            problems.append("IDENTITY_SIGNING_KEY is required (the verifier signs identity headers with it)")
        else:
            keys.extend(reader.key("IDENTITY_SIGNING_KEY", current))
        previous = reader.raw("IDENTITY_SIGNING_KEY_PREVIOUS")
        if previous is not None:
            keys.extend(reader.key("IDENTITY_SIGNING_KEY_PREVIOUS", previous))

        values: dict[str, Any] = {
            "host": reader.ip_host("API_HOST", "127.0.0.1"),
            "port": reader.integer("API_PORT", 8000, 1, 65535),
            "database_url": reader.database_url(
                "API_DATABASE_URL", Path(reader.text("API_DATABASE_PATH", DEFAULT_DATABASE_PATH))
            ),
            "identity_max_age": reader.integer("API_IDENTITY_MAX_AGE_SECONDS", 30, 1, 300),
            "authority_url": reader.https_url("API_AUTHORITY_URL"),
            "openapi_client_id": reader.guid("API_OPENAPI_CLIENT_ID"),
            "scope_prefix": reader.scope_prefix("API_SCOPE_PREFIX"),
            "report_group_ids": reader.guid_list("API_REPORT_GROUP_IDS"),
            "max_body_bytes": reader.integer("API_MAX_BODY_BYTES", 65536, 1024, 10 * 1024 * 1024),
            "access_log": reader.boolean("API_ACCESS_LOG", False),
            "workers": reader.integer("API_WORKERS", 1, 1, 64),
            "log_level": reader.choice("API_LOG_LEVEL", "info", _LOG_LEVELS),
            "verifier_url": reader.base_url("API_VERIFIER_URL", "http://127.0.0.1:9000"),
            "step_up_auth_context": reader.auth_context("API_STEP_UP_AUTH_CONTEXT", "c1"),
            "tls": server_tls_from_env(reader, "API"),
        }
        values["tracing"], tracing_problems = tracing_settings(env, "api")
        problems.extend(tracing_problems)
        # Re-validation reads the verifier's own variables with the verifier's own reader, so the two
        # cannot drift apart; it is configured when either of its mandatory variables is present.
        if reader.raw("VERIFIER_TENANT_IDS") or reader.raw("VERIFIER_AUDIENCES"):
            values["revalidation"] = validation_settings_from_env(reader)
            values["jwks_ca_file"] = reader.existing_file("VERIFIER_CA_FILE", "a PEM CA bundle")
            values["jwks_refresh_seconds"] = float(
                reader.integer("VERIFIER_JWKS_REFRESH_SECONDS", 43_200, 60, 7 * 86_400)
            )
            values["jwks_min_refetch_seconds"] = float(
                reader.integer("VERIFIER_JWKS_MIN_REFETCH_SECONDS", 60, 1, 86_400)
            )
        if problems:
            raise ConfigError("the API's environment", problems)
        return cls(signing_keys=tuple(keys), **values)


def database_url_from_env(env: Mapping[str, str]) -> str:
    """Only the database URL (the migration step needs nothing else); ConfigError when it is bad."""
    reader = _EnvReader(env)
    sqlite_default = Path(reader.text("API_DATABASE_PATH", DEFAULT_DATABASE_PATH))
    url = reader.database_url("API_DATABASE_URL", sqlite_default)
    if reader.problems:
        raise ConfigError("the API's environment", reader.problems)
    return url


class _EnvReader(EnvReader):
    """The shared reader, plus the API's own kinds of value."""

    def database_url(self, name: str, default_sqlite_path: Path) -> str:
        """``name``'s URL with the async driver in its scheme; unset: SQLite at ``default_sqlite_path``.

        libpq's ``sslmode`` (what the database secret holds, and what ``psql`` reads) becomes asyncpg's
        ``ssl``, which takes the same mode names. Problems never repeat the URL: it holds a password.
        """
        text = self.env.get(name, "").strip()
        if not text:
            return database_url_for_sqlite(default_sqlite_path)
        try:
            url = make_url(text)
        except ArgumentError:
            self.problem(f"{name} is not a database URL (expected postgresql://user:password@host/db)")
            return text
        driver = _DATABASE_SCHEMES.get(url.drivername)
        if driver is None:
            self.problem(
                f"{name} has the scheme {url.drivername[:30]!r}; expected postgresql:// (or "
                "postgresql+asyncpg://) or sqlite+aiosqlite:///path"
            )
            return text
        url = url.set(drivername=driver)
        if driver.startswith("postgresql"):
            if not url.host or not url.database:
                self.problem(f"{name} must name a host and a database (postgresql://user@host/db)")
            query = dict(url.query)
            if "sslmode" in query:
                query.setdefault("ssl", query.pop("sslmode"))
                url = url.set(query=query)
        elif not url.database or url.database == ":memory:":
            # Every connection of the pool would see its own empty in-memory database.
            self.problem(f"{name} must name a SQLite file (sqlite+aiosqlite:///path/to/api.sqlite3)")
        return url.render_as_string(hide_password=False)

    def key(self, name: str, text: str) -> list[bytes]:
        try:
            return [decode_signing_key(text)]
        except ValueError as exc:
            self.problem(f"{name} {exc}")
            return []

    def https_url(self, name: str) -> str:
        text = self.env.get(name, "").strip().rstrip("/")
        if not text:
            self.problem(
                f"{name} is required (the authority the docs page signs in with, "
                "e.g. https://login.microsoftonline.com/<tenant id>)"
            )
            return ""
        parts = urlsplit(text)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            self.problem(f"{name} must be an https URL without query or fragment, got {text[:80]!r}")
        return text

    def guid(self, name: str) -> str:
        return self.matching(name, GUID, "a GUID", required="an application (client) id, a GUID")

    def guid_list(self, name: str) -> tuple[str, ...]:
        items = tuple(item.strip() for item in self.env.get(name, "").split(",") if item.strip())
        bad = [item for item in items if not GUID.match(item.lower())]
        if bad:
            self.problem(f"{name} must be a comma-separated list of group object ids (GUIDs)")
        return tuple(item.lower() for item in items)

    def scope_prefix(self, name: str) -> str:
        text = self.env.get(name, "").strip().rstrip("/")
        if not text:
            self.problem(f"{name} is required (the API's App ID URI, e.g. api://<app id>)")
        elif not (text.startswith("api://") or text.startswith("https://")) or " " in text:
            self.problem(f"{name} must be an App ID URI such as api://<app id>, got {text[:80]!r}")
        return text

    def auth_context(self, name: str, default: str) -> str | None:
        """An authentication context id (``c1`` to ``c99``), or None for ``none``."""
        text = self.env.get(name, default).strip().lower()
        if text == "none":
            return None
        if not AUTH_CONTEXT_ID.fullmatch(text):
            self.problem(f"{name} must be an authentication context id (c1 to c99) or none: {text[:20]!r}")
        return text
