"""Entra ID access token validation: a pure function of (token, keys, settings, now).

No I/O, no clock of its own, no globals: :func:`verify_access_token` returns a
:class:`~verifier.identity.Principal` or raises :class:`~verifier.reasons.TokenRejected` whose
``reason`` names the first check that failed. FastAPI imports this module for its re-validation.

Why the parse is written out here instead of calling ``jwt.decode``: PyJWT's decode path parses the
header twice when a caller needs the ``kid`` first (``get_unverified_header`` then ``decode``),
checks the base64url alphabet one character at a time in Python, and accepts shapes Entra never
sends (``aud`` as a list, a missing ``nbf``/``iat``, numeric claims absent). Parsing once with a
compiled regular expression, checking the header rules before any key is touched, and verifying with
PyJWT's own ``RSAAlgorithm`` over a key object built once per JWKS key is several times faster and
stricter, while the cryptography stays in PyJWT/cryptography. The checks run in the order of RFC 7515
/ RFC 7519 and Microsoft's validation: shape, header, key, signature, claims.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from jwt.algorithms import RSAAlgorithm

from verifier.identity import AuthSource, Principal, PrincipalType
from verifier.keys import TENANT_TEMPLATE, KeySet, VerificationKey
from verifier.reasons import Reason, TokenRejected, UnknownKid
from verifier.settings import ValidationSettings

__all__ = ["ParsedToken", "classify_principal_type", "parse_compact_jws", "verify_access_token"]

# Unpadded base64url, as RFC 7515 requires for compact serialization.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# In the last character of a segment whose length is 2 or 3 (mod 4), the bits that do not belong to
# a whole byte must be zero; otherwise two spellings decode to the same bytes (a malleability PyJWT
# 2.14 also closes).
_LAST_CHAR_2 = frozenset("AQgw")
_LAST_CHAR_3 = frozenset("AEIMQUYcgkosw048")

#: Header parameters that would let the token choose its own verification key.
FORBIDDEN_HEADERS: tuple[str, ...] = ("jku", "x5u", "jwk", "x5c")
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
_OPTIONAL_STRING_LIST_CLAIMS: tuple[str, ...] = ("roles", "groups")
#: Claims only ID tokens carry (OIDC Core 3.1.3.6 / 3.3.2.11).
_ID_TOKEN_CLAIMS: tuple[str, ...] = ("nonce", "at_hash", "c_hash")

_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


class ParsedToken:
    """A compact JWS split and decoded once. Nothing in it is verified."""

    __slots__ = ("header", "payload", "signature", "signing_input")

    def __init__(
        self, header: dict[str, Any], payload: dict[str, Any], signing_input: bytes, signature: bytes
    ):
        self.header = header
        self.payload = payload
        self.signing_input = signing_input
        self.signature = signature


def _b64decode(segment: str, part: str) -> bytes:
    rem = len(segment) % 4
    if (
        rem == 1
        or not _B64URL.fullmatch(segment)
        or (rem == 2 and segment[-1] not in _LAST_CHAR_2)
        or (rem == 3 and segment[-1] not in _LAST_CHAR_3)
    ):
        raise TokenRejected(Reason.BAD_BASE64, f"the {part} is not canonical unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):  # unreachable after the checks above; kept to fail closed
        raise TokenRejected(Reason.BAD_BASE64, f"the {part} is not base64url") from None


def _json_object(data: bytes, part: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise TokenRejected(Reason.BAD_JSON, f"the {part} is not valid JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected(Reason.BAD_JSON, f"the {part} is not a JSON object")
    return value


def parse_compact_jws(token: str, *, max_bytes: int) -> ParsedToken:
    """Split and decode a compact JWS, strictly. Raises :class:`TokenRejected` on any shape problem."""
    if len(token) > max_bytes:
        raise TokenRejected(Reason.TOKEN_TOO_LARGE, f"tokens longer than {max_bytes} bytes are refused")
    if not token.isascii():
        raise TokenRejected(Reason.MALFORMED_TOKEN, "the token is not ASCII")
    segments = token.split(".")
    if len(segments) == 5:
        raise TokenRejected(Reason.JWE_NOT_SUPPORTED, "encrypted tokens (JWE) are not accepted")
    # An empty signature segment parses (alg "none" tokens have one) so that the header rules, not
    # the shape check, name what is wrong with such a token.
    if len(segments) != 3 or not segments[0] or not segments[1]:
        raise TokenRejected(Reason.MALFORMED_TOKEN, "expected three dot-separated segments")
    header_b64, payload_b64, signature_b64 = segments
    header = _json_object(_b64decode(header_b64, "header"), "header")
    payload = _json_object(_b64decode(payload_b64, "payload"), "payload")
    signature = _b64decode(signature_b64, "signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return ParsedToken(header, payload, signing_input, signature)


def _check_header(header: Mapping[str, Any]) -> str:
    """Apply the JOSE header rules; return the ``kid``."""
    alg = header.get("alg")
    if alg != "RS256":
        # ``none``, every HS* (the RSA public key used as an HMAC secret), ES*/PS*: all refused.
        shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
        raise TokenRejected(Reason.UNSUPPORTED_ALG, f"alg {shown!r} is not accepted; only RS256")
    for name in FORBIDDEN_HEADERS:
        if name in header:
            raise TokenRejected(
                Reason.FORBIDDEN_HEADER, f"header parameter {name!r} is refused: keys come only from the JWKS"
            )
    if "crit" in header:
        # RFC 7515 4.1.11: a recipient that does not understand a critical extension must reject.
        raise TokenRejected(Reason.CRIT_NOT_SUPPORTED, "the 'crit' header parameter is not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected(Reason.MISSING_KID, "the header has no 'kid' string")
    return kid


def _is_number(value: object) -> bool:
    # bool is an int in Python, and JSON true is not a NumericDate.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_claim_types(payload: Mapping[str, Any], oid: str) -> None:
    for name in REQUIRED_CLAIMS:
        if name not in payload:
            raise TokenRejected(Reason.MISSING_CLAIM, f"required claim {name!r} is missing", oid=oid)
    for name in _NUMERIC_CLAIMS:
        if not _is_number(payload[name]):
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
    )


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
    kid = _check_header(parsed.header)
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
    tenant_keys = keys.for_tenant(tid)
    if tenant_keys is None:
        raise TokenRejected(Reason.KEYS_UNAVAILABLE, "the tenant's signing keys are not loaded yet", oid=oid)
    key = tenant_keys.get(kid)
    if key is None:
        raise UnknownKid(tid, kid, oid=oid)
    if not _RS256.verify(parsed.signing_input, key.public_key, parsed.signature):
        raise TokenRejected(Reason.BAD_SIGNATURE, "the signature does not verify", oid=oid)

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
