"""Entra ID access token validation: a pure function of (token, keys, settings, now).

No I/O, no clock of its own, no globals: :func:`verify_access_token` returns a
:class:`~verifier.core.identity.Principal` or raises :class:`~verifier.core.reasons.TokenRejected`
whose ``reason`` names the first check that failed. FastAPI imports this module for its
re-validation. The token is parsed by :mod:`verifier.core.jose` and verified with PyJWT's own
``RSAAlgorithm`` over a key object built once per JWKS key; the checks run in the order of RFC 7515 /
RFC 7519 and Microsoft's validation: shape, header, key, signature, claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jwt.algorithms import RSAAlgorithm

from service_runtime.env import EnvReader
from verifier.core.identity import AuthSource, Principal, PrincipalType
from verifier.core.jose import GUID, HeaderRules, ParsedToken, check_header, is_number, parse_compact_jws
from verifier.core.jwk import TENANT_TEMPLATE, KeySet, VerificationKey
from verifier.core.reasons import KeysNotLoaded, Reason, TokenRejected, UnknownKid

__all__ = [
    "ValidationSettings",
    "classify_principal_type",
    "validation_settings_from_env",
    "verify_access_token",
    "verify_token_signature",
]


IssuerVersion = Literal["v1", "v2"]

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_V1_ISSUER_BASE = "https://sts.windows.net"
DEFAULT_LEEWAY_SECONDS = 60
#: Entra access tokens are a few KiB even with many groups; 16 KiB bounds all parsing work.
MAX_TOKEN_BYTES = 16 * 1024

#: The bearer token's header rules: RS256 from the tenant's JWKS, nothing else.
BEARER_HEADER_RULES = HeaderRules(
    "RS256", Reason.UNSUPPORTED_ALG, Reason.FORBIDDEN_HEADER, Reason.CRIT_NOT_SUPPORTED, Reason.MISSING_KID
)


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    """What a token must look like to be accepted; see :func:`verify_access_token`."""

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


REQUIRED_CLAIMS: tuple[str, ...] = ("iss", "aud", "exp", "nbf", "iat", "tid", "oid", "sub")
_NUMERIC_CLAIMS: tuple[str, ...] = ("exp", "nbf", "iat")
_STRING_CLAIMS: tuple[str, ...] = ("iss", "tid", "oid", "sub")
_OPTIONAL_STRING_CLAIMS: tuple[str, ...] = (
    "scp",
    "idtyp",
    "azp",
    "appid",
    "name",
    "preferred_username",
    "email",
    "upn",
    "uti",
    "jti",
    "ver",
)
_OPTIONAL_STRING_LIST_CLAIMS: tuple[str, ...] = ("roles", "groups", "acrs", "xms_cc")
#: Claims only ID tokens carry (OIDC Core 3.1.3.6 / 3.3.2.11).
_ID_TOKEN_CLAIMS: tuple[str, ...] = ("nonce", "at_hash", "c_hash")

_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


def validation_settings_from_env(reader: EnvReader) -> ValidationSettings:
    """The token rules from ``VERIFIER_*`` variables; problems go to ``reader``. The verifier and the
    API's re-validation both read them here, so the two cannot drift apart."""
    tenants = [t.lower() for t in reader.items("VERIFIER_TENANT_IDS")]
    if not tenants:
        reader.problem("VERIFIER_TENANT_IDS is empty: set the allowed Entra tenant ids, comma-separated")
    for tenant in tenants:
        if not GUID.match(tenant):
            reader.problem(f"VERIFIER_TENANT_IDS: {tenant!r} is not a tenant id (a GUID)")
    audiences = reader.items("VERIFIER_AUDIENCES")
    if not audiences:
        reader.problem(
            "VERIFIER_AUDIENCES is empty: set the API's App ID URI and/or client id, comma-separated"
        )
    authority = reader.base_url("VERIFIER_AUTHORITY", DEFAULT_AUTHORITY)
    v1_base = reader.base_url("VERIFIER_V1_ISSUER_BASE", DEFAULT_V1_ISSUER_BASE)
    versions_text = reader.env.get("VERIFIER_ISSUER_VERSIONS", "v2")
    versions_raw = [v.strip() for v in versions_text.lower().split(",") if v.strip()]
    versions = frozenset(v for v in versions_raw if v in ("v1", "v2"))
    if not versions_raw or len(versions) != len(set(versions_raw)):
        reader.problem(f"VERIFIER_ISSUER_VERSIONS={versions_text!r}: expected 'v2', 'v1' or 'v1,v2'")
    leeway = reader.integer("VERIFIER_LEEWAY_SECONDS", DEFAULT_LEEWAY_SECONDS, 0, 600)
    return ValidationSettings(
        tenant_ids=frozenset(tenants),
        audiences=frozenset(audiences),
        authority=authority,
        v1_issuer_base=v1_base,
        issuer_versions=versions or frozenset({"v2"}),  # type: ignore[arg-type]
        leeway_seconds=leeway,
    )


def _check_claim_types(payload: Mapping[str, Any], oid: str) -> None:
    for name in REQUIRED_CLAIMS:
        if name not in payload:
            raise TokenRejected(Reason.MISSING_CLAIM, f"required claim {name!r} is missing", oid=oid)
    for name in _NUMERIC_CLAIMS:
        if not is_number(payload[name]):
            raise TokenRejected(Reason.BAD_CLAIM_TYPE, f"claim {name!r} must be a number", oid=oid)
    for name in _STRING_CLAIMS:
        if not isinstance(payload[name], str) or not payload[name]:
            raise TokenRejected(Reason.BAD_CLAIM_TYPE, f"claim {name!r} must be a non-empty string", oid=oid)
    aud = payload["aud"]
    if isinstance(aud, list):
        # Entra sends one audience. A list is a different token shape: refused even if it holds ours.
        raise TokenRejected(Reason.AUDIENCE_LIST, "claim 'aud' must be one string, not a list", oid=oid)
    if not isinstance(aud, str):
        raise TokenRejected(Reason.BAD_CLAIM_TYPE, "claim 'aud' must be a string", oid=oid)
    for name in _OPTIONAL_STRING_CLAIMS:
        if name in payload and not isinstance(payload[name], str):
            raise TokenRejected(Reason.BAD_CLAIM_TYPE, f"claim {name!r} must be a string", oid=oid)
    for name in _OPTIONAL_STRING_LIST_CLAIMS:
        if name in payload:
            value = payload[name]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TokenRejected(
                    Reason.BAD_CLAIM_TYPE, f"claim {name!r} must be a list of strings", oid=oid
                )


def _check_times(payload: Mapping[str, Any], now: float, leeway: int, oid: str) -> None:
    if payload["exp"] <= now - leeway:
        raise TokenRejected(Reason.EXPIRED, f"the token expired (leeway {leeway}s)", oid=oid)
    if payload["nbf"] > now + leeway:
        raise TokenRejected(
            Reason.NOT_YET_VALID, f"the token is not valid yet (nbf; leeway {leeway}s)", oid=oid
        )
    if payload["iat"] > now + leeway:
        raise TokenRejected(
            Reason.NOT_YET_VALID, f"the token was issued in the future (iat; leeway {leeway}s)", oid=oid
        )


def _check_issuer(
    payload: Mapping[str, Any], tid: str, key: VerificationKey, settings: ValidationSettings, oid: str
) -> None:
    iss = payload["iss"]
    parsed = settings.parse_issuer(iss)
    if parsed is None:
        raise TokenRejected(Reason.BAD_ISSUER, "claim 'iss' is not a configured Entra issuer", oid=oid)
    version, iss_tenant = parsed
    if iss_tenant != tid:
        raise TokenRejected(Reason.TENANT_MISMATCH, "claim 'iss' names another tenant than 'tid'", oid=oid)
    if version not in settings.issuer_versions:
        raise TokenRejected(
            Reason.ISSUER_VERSION_NOT_ALLOWED, f"{version} issuers are not enabled (ISSUER_VERSIONS)", oid=oid
        )
    if key.issuer:
        # Entra v2 JWKS keys carry their issuer as a template. The key must belong to the token's
        # issuer. Entra signs a tenant's v1 and v2 tokens with the same keys, published (with the v2
        # template) in the v2 JWKS, so a v1 token is held to the v2 issuer of the same tenant.
        key_issuer = key.issuer.replace(TENANT_TEMPLATE, tid)
        token_issuer_v2 = iss if version == "v2" else settings.v2_issuer(tid)
        if key_issuer not in (iss, token_issuer_v2):
            raise TokenRejected(
                Reason.BAD_ISSUER, "claim 'iss' does not match the signing key's issuer", oid=oid
            )


def classify_principal_type(payload: Mapping[str, Any]) -> PrincipalType:
    """User or app-only: ``idtyp`` when present, else ``roles`` without ``scp``, else ``oid == sub``."""
    idtyp = payload.get("idtyp")
    if idtyp is not None:
        if idtyp == "app":
            return "app"
        if idtyp == "user":
            return "user"
        raise TokenRejected(Reason.BAD_CLAIM_TYPE, "claim 'idtyp' must be 'user' or 'app'")
    if not payload.get("scp") and payload.get("roles"):
        return "app"
    if payload.get("oid") == payload.get("sub"):
        return "app"
    return "user"


def _principal(payload: Mapping[str, Any], principal_type: PrincipalType, source: AuthSource) -> Principal:
    claim_names = payload.get("_claim_names")
    overage = (isinstance(claim_names, dict) and "groups" in claim_names) or payload.get("hasgroups") is True
    return Principal(
        oid=payload["oid"],
        tid=payload["tid"],
        principal_type=principal_type,
        auth_source=source,
        client_id=payload.get("azp") or payload.get("appid") or "",
        name=payload.get("name", ""),
        email=payload.get("preferred_username") or payload.get("email") or payload.get("upn") or "",
        roles=tuple(payload.get("roles", ())),
        scopes=tuple(payload.get("scp", "").split()),
        groups=tuple(payload.get("groups", ())),
        groups_overage=overage,
        expires_at=int(payload["exp"]),
        subject=payload["sub"],
        token_id=payload.get("uti") or payload.get("jti") or "",
        auth_contexts=tuple(payload.get("acrs", ())),
        client_capabilities=tuple(payload.get("xms_cc", ())),
    )


def verify_token_signature(
    parsed: ParsedToken, keys: KeySet, tid: str, kid: str, *, oid: str = "", what: str = "the signature"
) -> VerificationKey:
    """Check ``parsed``'s RS256 signature with tenant ``tid``'s key ``kid``; the key that verified it.

    Raises :class:`KeysNotLoaded` (no keys of the tenant yet) or :class:`UnknownKid` (the tenant's
    keys lack ``kid``), which a caller may answer with one refetch, or ``bad_signature``.
    """
    tenant_keys = keys.for_tenant(tid)
    if tenant_keys is None:
        raise KeysNotLoaded(tid, kid, oid=oid)
    key = tenant_keys.get(kid)
    if key is None:
        raise UnknownKid(tid, kid, oid=oid)
    if not _RS256.verify(parsed.signing_input, key.public_key, parsed.signature):
        raise TokenRejected(Reason.BAD_SIGNATURE, f"{what} does not verify", oid=oid)
    return key


def verify_access_token(
    token: str,
    keys: KeySet,
    settings: ValidationSettings,
    now: float,
    *,
    source: AuthSource = "bearer",
) -> Principal:
    """Validate an Entra ID access token and return who it speaks for.

    ``token`` is the compact JWS (no ``Bearer`` prefix); ``keys`` the loaded key sets of the
    configured tenants; ``now`` unix seconds. Raises :class:`TokenRejected` (``reason`` is the stable
    code), or its subclass :class:`UnknownKid` when the tenant's key set lacks the token's ``kid`` (the
    caller may refetch that tenant's JWKS once and call again).
    """
    parsed = parse_compact_jws(token, max_bytes=settings.max_token_bytes)
    kid = check_header(parsed.header, BEARER_HEADER_RULES)
    payload = parsed.payload
    raw_oid = payload.get("oid")
    oid = raw_oid[:64] if isinstance(raw_oid, str) else ""

    # The tenant chooses the key set, so it is read (not trusted) before the signature check; a
    # tenant outside the allow-list is refused without touching keys or triggering a JWKS fetch.
    tid = payload.get("tid")
    if tid is None:
        raise TokenRejected(Reason.MISSING_CLAIM, "required claim 'tid' is missing", oid=oid)
    if not isinstance(tid, str):
        raise TokenRejected(Reason.BAD_CLAIM_TYPE, "claim 'tid' must be a string", oid=oid)
    if tid not in settings.tenant_ids:
        raise TokenRejected(Reason.TENANT_NOT_ALLOWED, "the token's tenant is not allowed", oid=oid)
    key = verify_token_signature(parsed, keys, tid, kid, oid=oid)

    # From here on the claims are authentic; check that they say what we require.
    _check_claim_types(payload, oid)
    _check_times(payload, now, settings.leeway_seconds, oid)
    _check_issuer(payload, tid, key, settings, oid)
    if payload["aud"] not in settings.audiences:
        raise TokenRejected(Reason.BAD_AUDIENCE, "claim 'aud' is not a configured audience", oid=oid)
    if any(name in payload for name in _ID_TOKEN_CLAIMS):
        raise TokenRejected(Reason.ID_TOKEN, "an ID token is not an access token", oid=oid)
    if not payload.get("scp") and not payload.get("roles"):
        if "azp" not in payload and "appid" not in payload:
            # ID tokens name no calling client; access tokens always do.
            raise TokenRejected(Reason.ID_TOKEN, "an ID token is not an access token", oid=oid)
        raise TokenRejected(Reason.NO_SCP_OR_ROLES, "the token carries neither 'scp' nor 'roles'", oid=oid)
    try:
        principal_type = classify_principal_type(payload)
    except TokenRejected as exc:
        exc.oid = oid
        raise
    return _principal(payload, principal_type, source)
