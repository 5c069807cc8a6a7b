"""The verifier's settings: plain dataclasses, read from the environment once and checked all at once.

:func:`settings_from_env` reads every ``VERIFIER_*`` variable through the shared
:class:`~service_runtime.env.EnvReader`, which collects *every* problem with the variable's name
before giving up, so one start-up attempt shows everything that is wrong. The token rules
(:class:`~verifier.core.access_tokens.ValidationSettings`) are read by
:func:`validation_settings_from_env`, which the API uses too for its re-validation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from service_runtime.config_error import ConfigError
from service_runtime.env import EnvReader, is_loopback
from service_runtime.tls import ServerTls, server_tls_from_env
from service_runtime.tracing import TracingSettings, tracing_settings
from verifier.core.access_tokens import ValidationSettings, validation_settings_from_env
from verifier.core.alb_token import ALB_ARN, DEFAULT_KEY_URL_TEMPLATE, REGION, AlbSettings
from verifier.core.forwarded_routes import ForwardedTokenRoute, parse_routes
from verifier.core.identity import MIN_IDENTITY_KEY_BYTES, decode_identity_key
from verifier.core.jose import GUID
from verifier.core.policy import RoutePolicy, load_policy
from verifier.core.session_cookies import DEFAULT_COOKIE_NAME, is_cookie_name
from verifier.sources import csrf
from verifier.sources.access_token import DEFAULT_TOKEN_CACHE_SIZE
from verifier.sources.session.settings import (
    DEFAULT_OAUTH2_PROXY_URL,
    DEFAULT_SESSION_MAX_AGE_SECONDS,
    SessionSettings,
    SessionSourceSettings,
)
from verifier.sources.session_cache import (
    DEFAULT_SESSION_CACHE_SECONDS,
    DEFAULT_SESSION_CACHE_SIZE,
    MAX_SESSION_CACHE_SECONDS,
)

__all__ = [
    "ConfigError",
    "VerifierSettings",
    "alb_settings_from_env",
    "session_source_settings_from_env",
    "settings_from_env",
    "validation_settings_from_env",
]
TRACING_OFF = TracingSettings(enabled=False, service_name="verifier")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6380/0"
DEFAULT_PUBLIC_ORIGIN = "https://localhost:8443"
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    validation: ValidationSettings
    identity_key: bytes = field(repr=False)
    #: Listen address of /verify and of the metrics port.
    host: str = "127.0.0.1"
    port: int = 9000
    metrics_port: int = 9100
    ca_file: Path | None = None
    jwks_refresh_seconds: float = 43_200.0
    jwks_min_refetch_seconds: float = 60.0
    route_policy: RoutePolicy = field(default_factory=RoutePolicy)
    #: The endpoints whose answer carries the caller's access token (the API's re-validating ones).
    revalidated_routes: tuple[ForwardedTokenRoute, ...] = ()
    token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE
    log_level: str = "info"
    #: The oauth2-proxy session source and its CSRF rules; None serves bearer tokens only.
    session: SessionSourceSettings | None = None
    #: The ALB OIDC source (``x-amzn-oidc-data``); None unless ``VERIFIER_ALB_ARN`` is set.
    alb: AlbSettings | None = None
    #: TLS (mutual with a client CA) on /verify's port; None: plain HTTP (service_runtime.tls).
    tls: ServerTls | None = None
    #: OpenTelemetry traces (service_runtime.tracing): off unless an OTLP endpoint is set.
    tracing: TracingSettings = TRACING_OFF
    #: Where nginx's span records arrive (UDP, loopback; verifier.service.tracing): only with tracing.
    edge_spans_listen: tuple[str, int] | None = None


def settings_from_env(env: Mapping[str, str] | None = None) -> VerifierSettings:
    """Build :class:`VerifierSettings` from the environment; :class:`ConfigError` lists all problems."""
    reader = EnvReader(os.environ if env is None else env)
    validation = validation_settings_from_env(reader)

    raw_key = reader.raw("IDENTITY_SIGNING_KEY") or ""
    identity_key = decode_identity_key(raw_key) if raw_key else b""
    if len(identity_key) < MIN_IDENTITY_KEY_BYTES:
        reader.problem(
            f"IDENTITY_SIGNING_KEY is {'missing' if not raw_key else 'too short'}: at least "
            f"{MIN_IDENTITY_KEY_BYTES} bytes are required (e.g. 43+ random base64url characters)"
        )

    host = reader.text("VERIFIER_HOST", "127.0.0.1")
    port = reader.integer("VERIFIER_PORT", 9000, 1, 65535)
    metrics_port = reader.integer("VERIFIER_METRICS_PORT", 9100, 1, 65535)
    if metrics_port == port and not any("VERIFIER_PORT" in s for s in reader.problems):
        reader.problem(f"VERIFIER_METRICS_PORT={metrics_port}: must differ from VERIFIER_PORT")
    ca_file = reader.existing_file("VERIFIER_CA_FILE", "a PEM CA bundle")
    refresh = reader.integer("VERIFIER_JWKS_REFRESH_SECONDS", 43_200, 60, 7 * 86_400)
    min_refetch = reader.integer("VERIFIER_JWKS_MIN_REFETCH_SECONDS", 60, 1, 86_400)

    route_policy = RoutePolicy()
    policy_file = reader.text("VERIFIER_ROUTE_POLICY_FILE", "")
    if policy_file:
        try:
            route_policy = load_policy(Path(policy_file))
        except ConfigError as exc:
            for problem in exc.problems:
                reader.problem(f"VERIFIER_ROUTE_POLICY_FILE: {problem}")

    revalidated_routes, route_problems = parse_routes(reader.text("VERIFIER_REVALIDATED_ROUTES", ""))
    for problem in route_problems:
        reader.problem(f"VERIFIER_REVALIDATED_ROUTES: {problem}")

    cache_size = reader.integer("VERIFIER_TOKEN_CACHE_SIZE", DEFAULT_TOKEN_CACHE_SIZE, 0, 10_000_000)
    log_level = reader.choice("VERIFIER_LOG_LEVEL", "info", _LOG_LEVELS)
    session = session_source_settings_from_env(reader, identity_key)
    alb = alb_settings_from_env(reader, leeway_seconds=validation.leeway_seconds)
    tls = server_tls_from_env(reader, "VERIFIER")
    tracing, tracing_problems = tracing_settings(reader.env, "verifier")
    for problem in tracing_problems:
        reader.problem(problem)
    edge_spans_listen = _edge_spans_listen(reader)

    if reader.problems:
        raise ConfigError("the verifier's environment", reader.problems)
    return VerifierSettings(
        validation=validation,
        identity_key=identity_key,
        host=host,
        port=port,
        metrics_port=metrics_port,
        ca_file=ca_file,
        jwks_refresh_seconds=float(refresh),
        jwks_min_refetch_seconds=float(min_refetch),
        route_policy=route_policy,
        revalidated_routes=revalidated_routes,
        token_cache_size=cache_size,
        log_level=log_level,
        session=session,
        alb=alb,
        tls=tls,
        tracing=tracing,
        edge_spans_listen=edge_spans_listen if tracing.enabled else None,
    )


def _edge_spans_listen(reader: EnvReader) -> tuple[str, int] | None:
    """``VERIFIER_EDGE_SPANS_LISTEN=host:port``: a loopback address only, since whatever can reach
    it can put spans into the traces; unset (the default): no relay."""
    text = reader.text("VERIFIER_EDGE_SPANS_LISTEN", "")
    if not text:
        return None
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or not is_loopback(host):
        reader.problem(
            f"VERIFIER_EDGE_SPANS_LISTEN={text[:60]!r}: expected a loopback host:port such as 127.0.0.1:9200"
        )
        return None
    return host, int(port_text)


def session_source_settings_from_env(reader: EnvReader, identity_key: bytes) -> SessionSourceSettings | None:
    """The session source's settings from ``VERIFIER_*`` variables; problems go to ``reader``.

    The CSRF MAC key is ``VERIFIER_CSRF_KEY`` when set, else derived from ``IDENTITY_SIGNING_KEY``
    (HKDF, see :func:`verifier.sources.csrf.derive_csrf_key`): one secret fewer to provision and
    rotate. Returns None only together with a problem (a short ``IDENTITY_SIGNING_KEY`` is the
    caller's).
    """
    before = len(reader.problems)
    proxy_url = reader.base_url("VERIFIER_OAUTH2_PROXY_URL", DEFAULT_OAUTH2_PROXY_URL)
    cookie_name = reader.env.get("VERIFIER_SESSION_COOKIE_NAME", DEFAULT_COOKIE_NAME).strip()
    if not is_cookie_name(cookie_name):
        reader.problem(
            f"VERIFIER_SESSION_COOKIE_NAME={cookie_name!r}: expected oauth2-proxy's cookie name, "
            f"e.g. {DEFAULT_COOKIE_NAME}"
        )
    redis_url = reader.env.get("VERIFIER_REDIS_URL", DEFAULT_REDIS_URL).strip()
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        # Only the scheme is named: the URL may carry a password.
        reader.problem("VERIFIER_REDIS_URL: expected a redis://, rediss:// or unix:// URL")
    origin = ""
    try:
        origin = csrf.normalize_origin(reader.env.get("VERIFIER_PUBLIC_ORIGIN", DEFAULT_PUBLIC_ORIGIN))
    except ValueError as exc:
        reader.problem(f"VERIFIER_PUBLIC_ORIGIN: {exc}")
    ttl = reader.integer("VERIFIER_CSRF_TTL_SECONDS", csrf.DEFAULT_TTL_SECONDS, 30, 3600)
    # The absolute session lifetime (verifier/sources/session/): at least a minute, at most 30 days.
    max_age = reader.integer(
        "VERIFIER_SESSION_MAX_AGE_SECONDS", DEFAULT_SESSION_MAX_AGE_SECONDS, 60, 30 * 86400
    )
    # How long a live session is remembered (verifier/sources/session_cache.py): the bound on how long
    # a session ended through another task keeps working on this one. 0 turns the cache off.
    cache_seconds = reader.integer(
        "VERIFIER_SESSION_CACHE_SECONDS", DEFAULT_SESSION_CACHE_SECONDS, 0, MAX_SESSION_CACHE_SECONDS
    )
    cache_size = reader.integer("VERIFIER_SESSION_CACHE_SIZE", DEFAULT_SESSION_CACHE_SIZE, 1, 10_000_000)
    raw_csrf_key = reader.text("VERIFIER_CSRF_KEY", "")
    if raw_csrf_key:
        csrf_key = decode_identity_key(raw_csrf_key)
        if len(csrf_key) < csrf.MIN_KEY_BYTES:
            reader.problem(
                f"VERIFIER_CSRF_KEY is too short: at least {csrf.MIN_KEY_BYTES} bytes are required, "
                "or leave it unset to derive the key from IDENTITY_SIGNING_KEY"
            )
    elif len(identity_key) >= csrf.MIN_KEY_BYTES:
        csrf_key = csrf.derive_csrf_key(identity_key)
    else:
        csrf_key = b""
    if len(reader.problems) > before or len(csrf_key) < csrf.MIN_KEY_BYTES:
        return None
    return SessionSourceSettings(
        session=SessionSettings(
            oauth2_proxy_url=proxy_url,
            cookie_name=cookie_name,
            max_age_seconds=max_age,
            cache_seconds=cache_seconds,
            cache_size=cache_size,
        ),
        csrf=csrf.CsrfSettings(key=csrf_key, public_origin=origin, ttl_seconds=ttl),
        redis_url=redis_url,
    )


def _check_key_url_template(reader: EnvReader, name: str, template: str, region: str) -> None:
    probe_kid = "00000000-0000-0000-0000-000000000000"
    try:
        url = template.format(region=region or "us-east-1", kid=probe_kid)
    except (KeyError, IndexError, ValueError):
        reader.problem(f"{name}={template!r}: only the placeholders {{region}} and {{kid}} may appear")
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if template.count("{kid}") != 1 or probe_kid not in parts.path:
        reader.problem(f"{name}={template!r}: must contain {{kid}} exactly once, in the path")
    elif parts.scheme == "https" and host:
        pass
    elif parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1"):
        pass  # a local key server in tests
    else:
        reader.problem(f"{name}={template!r}: expected an https:// URL (plain http only for loopback)")
    if parts.query or parts.fragment:
        reader.problem(f"{name}={template!r}: must not carry a query or fragment")


def alb_settings_from_env(reader: EnvReader, *, leeway_seconds: int = 60) -> AlbSettings | None:
    """The ALB source's settings from ``VERIFIER_ALB_*``; None (source off) unless ``VERIFIER_ALB_ARN``
    is set. When it is, every other required variable must be valid too; problems go to ``reader``."""
    arn = reader.text("VERIFIER_ALB_ARN", "")
    if not arn:
        return None
    before = len(reader.problems)
    if not ALB_ARN.match(arn):
        reader.problem(
            f"VERIFIER_ALB_ARN={arn!r}: expected the load balancer's ARN, "
            "arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>"
        )
    region = reader.text("VERIFIER_ALB_REGION", "")
    if not REGION.match(region):
        reader.problem(f"VERIFIER_ALB_REGION={region!r}: expected the ALB's AWS region, e.g. eu-west-1")
    elif ALB_ARN.match(arn) and arn.split(":")[3] != region:
        reader.problem(f"VERIFIER_ALB_REGION={region!r}: differs from the region in VERIFIER_ALB_ARN")
    template = reader.text("VERIFIER_ALB_KEY_URL_TEMPLATE", DEFAULT_KEY_URL_TEMPLATE)
    _check_key_url_template(reader, "VERIFIER_ALB_KEY_URL_TEMPLATE", template, region)
    issuer = reader.text("VERIFIER_ALB_ISSUER", "")
    if not issuer.startswith("https://"):
        reader.problem(
            f"VERIFIER_ALB_ISSUER={issuer!r}: expected the identity provider's issuer as the ALB's OIDC "
            "action has it, e.g. https://login.microsoftonline.com/<tenant>/v2.0"
        )
    client_id = reader.text("VERIFIER_ALB_CLIENT_ID", "")
    if not client_id:
        reader.problem("VERIFIER_ALB_CLIENT_ID is empty: set the client id of the ALB's OIDC action")
    tenant_id = reader.text("VERIFIER_ALB_TENANT_ID", "").lower()
    if not GUID.match(tenant_id):
        reader.problem(f"VERIFIER_ALB_TENANT_ID={tenant_id!r}: expected the Entra tenant id (a GUID)")
    if len(reader.problems) > before:
        return None
    return AlbSettings(
        region=region,
        signer_arn=arn,
        issuer=issuer,
        client_id=client_id,
        tenant_id=tenant_id,
        key_url_template=template,
        leeway_seconds=leeway_seconds,
    )
