"""Settings: plain dataclasses, built from the environment once and validated all at once.

:class:`ValidationSettings` is what the pure token validation needs (FastAPI builds one too, from the
same ``VERIFIER_*`` variables, for its defense-in-depth re-validation). :class:`VerifierSettings`
adds what the service needs to run. :func:`settings_from_env` collects *every* problem with the
variable's name before giving up, so one start-up attempt shows everything that is wrong.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from verifier import csrf
from verifier.alb import GUID, AlbSettings, alb_settings_from_env
from verifier.policy import PolicyError, RoutePolicy, load_policy
from verifier.session import (
    DEFAULT_COOKIE_NAME,
    DEFAULT_OAUTH2_PROXY_URL,
    DEFAULT_SESSION_MAX_AGE_SECONDS,
    SessionSettings,
    SessionSourceSettings,
    is_cookie_name,
)

IssuerVersion = Literal["v1", "v2"]

ENV_PREFIX = "VERIFIER_"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_V1_ISSUER_BASE = "https://sts.windows.net"
DEFAULT_LEEWAY_SECONDS = 60
#: Entra access tokens are a few KiB even with many groups; 16 KiB bounds all parsing work.
MAX_TOKEN_BYTES = 16 * 1024
DEFAULT_TOKEN_CACHE_SIZE = 100_000
#: A verified token is cached for at most this long, even if it lives longer.
TOKEN_CACHE_MAX_TTL_SECONDS = 300
MIN_IDENTITY_KEY_BYTES = 32

_B64URL_KEY = re.compile(r"^[A-Za-z0-9_-]{43,}={0,2}$")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` lists each one, naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    """What a token must look like to be accepted; see :func:`verifier.tokens.verify_access_token`."""

    tenant_ids: frozenset[str]
    audiences: frozenset[str]
    authority: str = DEFAULT_AUTHORITY
    v1_issuer_base: str = DEFAULT_V1_ISSUER_BASE
    issuer_versions: frozenset[IssuerVersion] = frozenset({"v2"})
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS
    max_token_bytes: int = MAX_TOKEN_BYTES
    # Issuer prefix/suffix pairs, derived once so the hot path only slices strings.
    _v2_prefix: str = field(init=False, repr=False, compare=False)
    _v1_prefix: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_v2_prefix", self.authority.rstrip("/") + "/")
        object.__setattr__(self, "_v1_prefix", self.v1_issuer_base.rstrip("/") + "/")

    def v2_issuer(self, tenant_id: str) -> str:
        return f"{self._v2_prefix}{tenant_id}/v2.0"

    def v1_issuer(self, tenant_id: str) -> str:
        return f"{self._v1_prefix}{tenant_id}/"

    def parse_issuer(self, iss: str) -> tuple[IssuerVersion, str] | None:
        """``("v2", tid)`` / ``("v1", tid)`` when ``iss`` has one of the two Entra shapes, else None."""
        if iss.startswith(self._v2_prefix) and iss.endswith("/v2.0"):
            tenant = iss[len(self._v2_prefix) : -len("/v2.0")]
            if tenant and "/" not in tenant:
                return "v2", tenant
        if iss.startswith(self._v1_prefix) and iss.endswith("/"):
            tenant = iss[len(self._v1_prefix) : -1]
            if tenant and "/" not in tenant:
                return "v1", tenant
        return None

    def discovery_url(self, tenant_id: str) -> str:
        """The v2 OpenID configuration; its keys also sign the tenant's v1 tokens."""
        return f"{self._v2_prefix}{tenant_id}/v2.0/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    validation: ValidationSettings
    identity_key: bytes = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 9000
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9100
    ca_file: Path | None = None
    jwks_refresh_seconds: float = 43_200.0
    jwks_min_refetch_seconds: float = 60.0
    route_policy: RoutePolicy = field(default_factory=RoutePolicy)
    token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE
    log_level: str = "info"
    #: The oauth2-proxy session source and its CSRF rules; None serves bearer tokens only.
    session: SessionSourceSettings | None = None
    #: The ALB OIDC source (``x-amzn-oidc-data``); None unless ``VERIFIER_ALB_ARN`` is set.
    alb: AlbSettings | None = None


def decode_identity_key(text: str) -> bytes:
    """The HMAC key from ``IDENTITY_SIGNING_KEY``: base64url when it looks like it, else the raw text.

    A value of 43 or more base64url characters (optionally ``=``-padded) is decoded (43 characters are
    32 bytes); anything else is taken as UTF-8 text. FastAPI must decode the variable the same way, so
    it imports this function.
    """
    value = text.strip()
    if _B64URL_KEY.match(value):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value.rstrip("=")) % 4))
        except (binascii.Error, ValueError):
            pass
    return value.encode("utf-8")


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(name: str, value: str, problems: list[str]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"{name}={value!r}: expected an absolute https:// URL")
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        problems.append(f"{name}={value!r}: plain http is only allowed for a loopback host; use https://")
    elif parts.query or parts.fragment:
        problems.append(f"{name}={value!r}: must not carry a query or fragment")
    return value.rstrip("/")


def _int_var(env: Mapping[str, str], name: str, default: int, lo: int, hi: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name}={raw!r}: expected an integer between {lo} and {hi}")
        return default
    if not lo <= value <= hi:
        problems.append(f"{name}={value}: expected an integer between {lo} and {hi}")
        return default
    return value


def validation_settings_from_env(env: Mapping[str, str], problems: list[str]) -> ValidationSettings:
    """Read the token rules from ``VERIFIER_*`` variables, appending every problem to ``problems``."""
    p = ENV_PREFIX
    tenants = [t.lower() for t in _split_list(env.get(p + "TENANT_IDS", ""))]
    if not tenants:
        problems.append(f"{p}TENANT_IDS is empty: set the allowed Entra tenant ids, comma-separated")
    for tenant in tenants:
        if not GUID.match(tenant):
            problems.append(f"{p}TENANT_IDS: {tenant!r} is not a tenant id (a GUID)")
    audiences = _split_list(env.get(p + "AUDIENCES", ""))
    if not audiences:
        problems.append(f"{p}AUDIENCES is empty: set the API's App ID URI and/or client id, comma-separated")
    authority = _check_base_url(p + "AUTHORITY", env.get(p + "AUTHORITY", DEFAULT_AUTHORITY), problems)
    v1_base = _check_base_url(
        p + "V1_ISSUER_BASE", env.get(p + "V1_ISSUER_BASE", DEFAULT_V1_ISSUER_BASE), problems
    )
    versions_raw = _split_list(env.get(p + "ISSUER_VERSIONS", "v2").lower())
    versions = frozenset(v for v in versions_raw if v in ("v1", "v2"))
    if not versions_raw or len(versions) != len(set(versions_raw)):
        problems.append(
            f"{p}ISSUER_VERSIONS={env.get(p + 'ISSUER_VERSIONS')!r}: expected 'v2', 'v1' or 'v1,v2'"
        )
    leeway = _int_var(env, p + "LEEWAY_SECONDS", DEFAULT_LEEWAY_SECONDS, 0, 600, problems)
    return ValidationSettings(
        tenant_ids=frozenset(tenants),
        audiences=frozenset(audiences),
        authority=authority,
        v1_issuer_base=v1_base,
        issuer_versions=versions or frozenset({"v2"}),  # type: ignore[arg-type]
        leeway_seconds=leeway,
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> VerifierSettings:
    """Build :class:`VerifierSettings` from the environment; :class:`ConfigError` lists all problems."""
    env = os.environ if env is None else env
    p = ENV_PREFIX
    problems: list[str] = []
    validation = validation_settings_from_env(env, problems)

    raw_key = env.get("IDENTITY_SIGNING_KEY", "")
    identity_key = decode_identity_key(raw_key) if raw_key else b""
    if len(identity_key) < MIN_IDENTITY_KEY_BYTES:
        problems.append(
            f"IDENTITY_SIGNING_KEY is {'missing' if not raw_key else 'too short'}: at least "
            f"{MIN_IDENTITY_KEY_BYTES} bytes are required (e.g. 43+ random base64url characters)"
        )

    host = env.get(p + "HOST", "127.0.0.1").strip() or "127.0.0.1"
    port = _int_var(env, p + "PORT", 9000, 1, 65535, problems)
    metrics_port = _int_var(env, p + "METRICS_PORT", 9100, 1, 65535, problems)
    if metrics_port == port and not any(f"{p}PORT" in s for s in problems):
        problems.append(f"{p}METRICS_PORT={metrics_port}: must differ from {p}PORT")

    ca_file: Path | None = None
    if env.get(p + "CA_FILE", "").strip():
        ca_file = Path(env[p + "CA_FILE"].strip())
        if not ca_file.is_file():
            problems.append(f"{p}CA_FILE={str(ca_file)!r}: no such file (a PEM CA bundle is expected)")

    refresh = _int_var(env, p + "JWKS_REFRESH_SECONDS", 43_200, 60, 7 * 86_400, problems)
    min_refetch = _int_var(env, p + "JWKS_MIN_REFETCH_SECONDS", 60, 1, 86_400, problems)

    route_policy = RoutePolicy()
    if env.get(p + "ROUTE_POLICY_FILE", "").strip():
        policy_file = Path(env[p + "ROUTE_POLICY_FILE"].strip())
        try:
            route_policy = load_policy(policy_file)
        except PolicyError as exc:
            problems.extend(f"{p}ROUTE_POLICY_FILE: {problem}" for problem in exc.problems)

    cache_size = _int_var(env, p + "TOKEN_CACHE_SIZE", DEFAULT_TOKEN_CACHE_SIZE, 0, 10_000_000, problems)
    log_level = env.get(p + "LOG_LEVEL", "info").strip().lower() or "info"
    if log_level not in _LOG_LEVELS:
        problems.append(f"{p}LOG_LEVEL={log_level!r}: expected one of {', '.join(_LOG_LEVELS)}")

    session = session_source_settings_from_env(env, identity_key, problems)
    alb = alb_settings_from_env(env, problems, leeway_seconds=validation.leeway_seconds)

    if problems:
        raise ConfigError(problems)
    return VerifierSettings(
        validation=validation,
        identity_key=identity_key,
        host=host,
        port=port,
        metrics_host=host,
        metrics_port=metrics_port,
        ca_file=ca_file,
        jwks_refresh_seconds=float(refresh),
        jwks_min_refetch_seconds=float(min_refetch),
        route_policy=route_policy,
        token_cache_size=cache_size,
        log_level=log_level,
        session=session,
        alb=alb,
    )


DEFAULT_REDIS_URL = "redis://127.0.0.1:6380/0"
DEFAULT_PUBLIC_ORIGIN = "https://localhost:8443"


def session_source_settings_from_env(
    env: Mapping[str, str], identity_key: bytes, problems: list[str]
) -> SessionSourceSettings | None:
    """The session source's settings from ``VERIFIER_*`` variables, appending every problem.

    The CSRF MAC key is ``VERIFIER_CSRF_KEY`` when set, else derived from ``IDENTITY_SIGNING_KEY``
    (HKDF, see :func:`verifier.csrf.derive_csrf_key`): one secret fewer to provision and rotate.
    Returns None only together with a problem (a short ``IDENTITY_SIGNING_KEY`` is the caller's).
    """
    p = ENV_PREFIX
    before = len(problems)
    proxy_url = _check_base_url(
        p + "OAUTH2_PROXY_URL", env.get(p + "OAUTH2_PROXY_URL", DEFAULT_OAUTH2_PROXY_URL), problems
    )
    cookie_name = env.get(p + "SESSION_COOKIE_NAME", DEFAULT_COOKIE_NAME).strip()
    if not is_cookie_name(cookie_name):
        problems.append(
            f"{p}SESSION_COOKIE_NAME={cookie_name!r}: expected oauth2-proxy's cookie name, "
            f"e.g. {DEFAULT_COOKIE_NAME}"
        )
    redis_url = env.get(p + "REDIS_URL", DEFAULT_REDIS_URL).strip()
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        # Only the scheme is named: the URL may carry a password.
        problems.append(f"{p}REDIS_URL: expected a redis://, rediss:// or unix:// URL")
    origin = ""
    try:
        origin = csrf.normalize_origin(env.get(p + "PUBLIC_ORIGIN", DEFAULT_PUBLIC_ORIGIN))
    except ValueError as exc:
        problems.append(f"{p}PUBLIC_ORIGIN: {exc}")
    ttl = _int_var(env, p + "CSRF_TTL_SECONDS", csrf.DEFAULT_TTL_SECONDS, 30, 3600, problems)
    # The absolute session lifetime (verifier/session.py): at least a minute, at most 30 days.
    max_age = _int_var(
        env, p + "SESSION_MAX_AGE_SECONDS", DEFAULT_SESSION_MAX_AGE_SECONDS, 60, 30 * 86400, problems
    )
    raw_csrf_key = env.get(p + "CSRF_KEY", "").strip()
    if raw_csrf_key:
        csrf_key = decode_identity_key(raw_csrf_key)
        if len(csrf_key) < csrf.MIN_KEY_BYTES:
            problems.append(
                f"{p}CSRF_KEY is too short: at least {csrf.MIN_KEY_BYTES} bytes are required, "
                "or leave it unset to derive the key from IDENTITY_SIGNING_KEY"
            )
    elif len(identity_key) >= csrf.MIN_KEY_BYTES:
        csrf_key = csrf.derive_csrf_key(identity_key)
    else:
        csrf_key = b""
    if len(problems) > before or len(csrf_key) < csrf.MIN_KEY_BYTES:
        return None
    return SessionSourceSettings(
        session=SessionSettings(oauth2_proxy_url=proxy_url, cookie_name=cookie_name, max_age_seconds=max_age),
        csrf=csrf.CsrfSettings(key=csrf_key, public_origin=origin, ttl_seconds=ttl),
        redis_url=redis_url,
    )
