"""The ALB OIDC token: the ``x-amzn-oidc-data`` header an AWS Application Load Balancer adds.

Pure: parsing, the header rules, the ES256 signature and the principal. The key fetching is
:mod:`verifier.keys.alb_keys`, the credential source :mod:`verifier.sources.alb`.

Off unless ``VERIFIER_ALB_ARN`` is set. With ALB OIDC authentication turned on, the load balancer signs
the user in itself and forwards every request with ``x-amzn-oidc-data``: a JWT signed by the ALB
(ES256, ECDSA P-256 / SHA-256) whose *header* carries ``alg``, ``kid``, ``signer`` (the ALB's ARN),
``iss`` (the identity provider), ``client`` (the client id the ALB signed in with) and ``exp``, and
whose payload is the identity provider's UserInfo answer. The verification key is a PEM published per
region at ``https://public-keys.auth.elb.<region>.amazonaws.com/<kid>``.

Why the header means anything: nginx passes client headers to ``/verify``, so a client can send its
own ``x-amzn-oidc-data``. Only the signature, checked with a key fetched from the regional endpoint
(never from the token), together with the pinned ``signer``, makes the header the ALB's word.

What it cannot do: Entra's UserInfo carries ``sub`` (a per-application pairwise id, *not* the object
id), names and e-mail, but no ``oid``, ``tid``, roles, groups or scopes. A principal from this source
therefore has no roles or scopes, and any route policy that needs them refuses it (403).

Two deliberate departures from the bearer path (:mod:`verifier.core.access_tokens`), both confined
to this module:

* the ALB writes base64url *with* ``=`` padding, which RFC 7515 forbids and the strict bearer parser
  refuses. Here a segment may carry exactly the padding its length calls for; it is stripped before
  the (otherwise equally strict) decoding, and the signature is checked over the segments *as sent*,
  padding included, because that is what the ALB signed;
* the signature is JOSE's raw ``r || s`` (64 bytes), converted to DER for ``cryptography``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from verifier.core.identity import Principal
from verifier.core.jose import GUID, HeaderRules, b64url_decode, check_header, is_number, json_object
from verifier.core.reasons import Reason, TokenRejected

ALB_HEADER = "x-amzn-oidc-data"
DEFAULT_KEY_URL_TEMPLATE = "https://public-keys.auth.elb.{region}.amazonaws.com/{kid}"
#: UserInfo with a long name and e-mail is well under 4 KiB; this bounds all parsing work.
MAX_ALB_TOKEN_BYTES = 16 * 1024
#: Order of the P-256 group: ECDSA's r and s must lie in [1, n-1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# The ALB's kids are UUIDs. The kid is put into a URL, so nothing but this shape is ever accepted:
# no slash, dot, percent or query character can reach the key endpoint.
_KID = GUID
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
ALB_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
#: The ALB's header rules: ES256, keys only from the regional endpoint, the kid a UUID.
ALB_HEADER_RULES = HeaderRules(
    "ES256", Reason.ALB_UNSUPPORTED_ALG, Reason.ALB_MALFORMED, Reason.ALB_MALFORMED, Reason.ALB_BAD_KID, _KID
)
_PAYLOAD_STRINGS = ("oid", "name", "email", "preferred_username")


class AlbRejected(TokenRejected):
    """The ALB header failed validation; ``reason`` is one of the ``alb_*`` codes."""


# --- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlbSettings:
    """What an ALB token must look like, and where its keys are."""

    region: str
    #: The expected ``signer``: the ALB's ARN, exactly.
    signer_arn: str
    #: The expected ``iss``: the identity provider's issuer (for Entra the v2 issuer of the tenant).
    issuer: str
    #: The expected ``client``: the client id the ALB's OIDC action signs in with.
    client_id: str
    #: Reported as ``X-User-Tid``: UserInfo carries no tenant id.
    tenant_id: str
    key_url_template: str = DEFAULT_KEY_URL_TEMPLATE
    leeway_seconds: int = 60
    timeout_seconds: float = 2.0
    key_cache_size: int = 32
    key_ttl_seconds: float = 3600.0
    #: A kid whose fetch failed is not fetched again for this long.
    failed_kid_cooldown_seconds: float = 60.0
    #: At most this many fetches of kids not in the cache per minute, whatever the kids are.
    max_new_kids_per_minute: int = 10
    max_token_bytes: int = MAX_ALB_TOKEN_BYTES

    def key_url(self, kid: str) -> str:
        if not _KID.match(kid):  # callers check first; this keeps the URL safe on its own
            raise ValueError("kid is not a UUID")
        return self.key_url_template.format(region=self.region, kid=kid)


# --- pure validation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlbToken:
    """An ALB token whose shape and header passed; signature and payload are not checked yet."""

    kid: str
    exp: int | float
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _reject(reason: Reason, detail: str) -> AlbRejected:
    return AlbRejected(reason, detail)


def _segment(text: str, part: str) -> bytes:
    """Decode one segment: at most the padding its length calls for, then strict base64url."""
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    if padding and (padding > 2 or len(text) % 4 != 0):
        raise _reject(Reason.ALB_MALFORMED, f"the {part} has padding its length does not call for")
    try:
        return b64url_decode(stripped, part)
    except TokenRejected:
        raise _reject(Reason.ALB_MALFORMED, f"the {part} is not base64url") from None


def _object(data: bytes, part: str) -> dict[str, Any]:
    try:
        return json_object(data, part)
    except TokenRejected:
        raise _reject(Reason.ALB_MALFORMED, f"the {part} is not a JSON object") from None


def check_alb_token(token: str, settings: AlbSettings, now: float) -> AlbToken:
    """Parse the header value once and apply every rule that needs no key.

    Runs before any key is fetched, so a token with a foreign ``signer``, a kid that is no UUID or an
    expired ``exp`` never causes a request to the key endpoint. Raises :class:`AlbRejected`.
    """
    if len(token) > settings.max_token_bytes:
        raise _reject(Reason.ALB_MALFORMED, f"longer than {settings.max_token_bytes} bytes")
    if not token.isascii():
        raise _reject(Reason.ALB_MALFORMED, "not ASCII")
    segments = token.split(".")
    if len(segments) != 3 or not all(segments):
        raise _reject(Reason.ALB_MALFORMED, "expected three non-empty dot-separated segments")
    header = _object(_segment(segments[0], "header"), "header")
    try:
        kid = check_header(header, ALB_HEADER_RULES)
    except TokenRejected as exc:
        raise _reject(exc.reason, exc.detail) from None
    if header.get("signer") != settings.signer_arn:
        raise _reject(Reason.ALB_BAD_SIGNER, "the header's 'signer' is not the configured load balancer")
    if header.get("iss") != settings.issuer:
        raise _reject(Reason.ALB_BAD_ISSUER, "the header's 'iss' is not the configured issuer")
    if header.get("client") != settings.client_id:
        raise _reject(Reason.ALB_BAD_CLIENT, "the header's 'client' is not the configured client id")
    exp = header.get("exp")
    if not is_number(exp):
        raise _reject(Reason.ALB_MALFORMED, "the header's 'exp' is not a number")
    if exp <= now - settings.leeway_seconds:
        raise _reject(Reason.ALB_EXPIRED, f"the ALB token expired (leeway {settings.leeway_seconds}s)")
    payload = _object(_segment(segments[1], "payload"), "payload")
    signature = _segment(segments[2], "signature")
    # The ALB signed the segments as it wrote them, padding included.
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
    return AlbToken(kid=kid, exp=exp, payload=payload, signing_input=signing_input, signature=signature)


def verify_alb_signature(token: AlbToken, key: ec.EllipticCurvePublicKey) -> None:
    """ES256 over the signing input with the ALB key; raises :class:`AlbRejected` (``alb_bad_signature``)."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _reject(Reason.ALB_BAD_SIGNATURE, "the key is not a P-256 key")
    if len(token.signature) != 64:
        raise _reject(Reason.ALB_BAD_SIGNATURE, "an ES256 signature is 64 bytes (r || s)")
    r = int.from_bytes(token.signature[:32], "big")
    s = int.from_bytes(token.signature[32:], "big")
    # Checked here rather than left to the library: r = s = 0 is the "psychic signature" that broken
    # ECDSA verifiers accepted for any message, and out-of-range values are never a valid signature.
    # A high s (n/2 < s < n) is a valid ECDSA signature and is accepted: the ALB does not normalize s,
    # and nothing here uses the signature as an identifier, so its malleability is harmless.
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise _reject(Reason.ALB_BAD_SIGNATURE, "r or s is outside [1, n-1]")
    try:
        key.verify(encode_dss_signature(r, s), token.signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _reject(Reason.ALB_BAD_SIGNATURE, "the ES256 signature does not verify") from None


def alb_principal(token: AlbToken, settings: AlbSettings) -> Principal:
    """The principal of a verified ALB token.

    ``oid`` is the ``oid`` claim when the identity provider sent one, else ``sub``: Entra's UserInfo
    has only ``sub``, a pairwise id that differs from the object id bearer tokens carry. No roles,
    scopes or groups: UserInfo has none.
    """
    payload = token.payload
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _reject(Reason.ALB_MALFORMED, "the payload has no 'sub' string")
    for name in _PAYLOAD_STRINGS:
        if name in payload and not isinstance(payload[name], str):
            raise _reject(Reason.ALB_MALFORMED, f"the payload's {name!r} is not a string")
    return Principal(
        oid=payload.get("oid") or sub,
        tid=settings.tenant_id,
        principal_type="user",
        auth_source="alb",
        client_id=settings.client_id,
        name=payload.get("name", ""),
        email=payload.get("preferred_username") or payload.get("email", ""),
        expires_at=int(token.exp),
        subject=sub,
    )


def load_alb_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The ALB's key from its PEM; ValueError unless it is a P-256 public key."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not a P-256 public key")
    return key


def alb_binding(token: AlbToken, settings: AlbSettings) -> bytes:
    """What the ALB source's CSRF tokens are bound to: the signed-in user at this load balancer.

    The ALB's own session cookie never reaches the verifier (the ALB keeps it and sends the signed
    header instead), so the binding is the identity the header vouches for: the load balancer, the
    issuer and ``sub``. A CSRF token minted for one user is worthless for another. Hashed, so it can
    be used in a MAC freely. Call only after the signature is verified.
    """
    parts = (settings.signer_arn, str(token.payload.get("iss", "")), str(token.payload.get("sub", "")))
    return hashlib.sha256("\0".join(("alb", *parts)).encode()).digest()
