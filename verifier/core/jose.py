"""JOSE compact serialization, parsed strictly: the part the bearer token and the ALB header share.

Why the parse is written out here instead of calling ``jwt.decode``: PyJWT's decode path parses the
header twice when a caller needs the ``kid`` first (``get_unverified_header`` then ``decode``),
checks the base64url alphabet one character at a time in Python, and accepts shapes Entra never
sends. Parsing once with a compiled regular expression and checking the header rules before any key
is touched is several times faster and stricter, while the cryptography stays in PyJWT/cryptography.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifier.core.reasons import Reason, TokenRejected

__all__ = [
    "FORBIDDEN_HEADERS",
    "GUID",
    "HeaderRules",
    "ParsedToken",
    "b64url_decode",
    "check_header",
    "is_number",
    "json_object",
    "parse_compact_jws",
]

#: A lower-case GUID: Entra's tenant and object ids, the ALB's key ids. Settings lower-case what
#: they read before matching, so one pattern serves every service.
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Unpadded base64url, as RFC 7515 requires for compact serialization.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# In the last character of a segment whose length is 2 or 3 (mod 4), the bits that do not belong to
# a whole byte must be zero; otherwise two spellings decode to the same bytes (a malleability PyJWT
# 2.14 also closes).
_LAST_CHAR_2 = frozenset("AQgw")
_LAST_CHAR_3 = frozenset("AEIMQUYcgkosw048")

#: Header parameters that would let the token choose its own verification key.
FORBIDDEN_HEADERS: tuple[str, ...] = ("jku", "x5u", "jwk", "x5c")


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


def is_number(value: object) -> bool:
    """A JSON number: bool is an int in Python, and JSON true is not a NumericDate."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def b64url_decode(segment: str, part: str) -> bytes:
    """Canonical unpadded base64url, or :class:`TokenRejected` ``bad_base64`` naming ``part``."""
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


def json_object(data: bytes, part: str) -> dict[str, Any]:
    """A JSON object, or :class:`TokenRejected` ``bad_json`` naming ``part``."""
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
    header = json_object(b64url_decode(header_b64, "header"), "header")
    payload = json_object(b64url_decode(payload_b64, "payload"), "payload")
    signature = b64url_decode(signature_b64, "signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return ParsedToken(header, payload, signing_input, signature)


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """The one accepted ``alg``, and the reason each header rule fails with."""

    alg: str
    unsupported_alg: Reason
    forbidden_header: Reason
    crit: Reason
    bad_kid: Reason
    #: When set, the ``kid`` must match it (the ALB puts its kid into a URL).
    kid_pattern: re.Pattern[str] | None = None


def check_header(header: Mapping[str, Any], rules: HeaderRules) -> str:
    """Apply the JOSE header rules in order (alg, key-choosing parameters, crit, kid); return the kid.

    Every other ``alg`` is refused: ``none``, HS* (a public key used as an HMAC secret), and every
    algorithm of another family.
    """
    alg = header.get("alg")
    if alg != rules.alg:
        shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
        raise TokenRejected(rules.unsupported_alg, f"alg {shown!r} is not accepted; only {rules.alg}")
    for name in FORBIDDEN_HEADERS:
        if name in header:
            raise TokenRejected(
                rules.forbidden_header,
                f"header parameter {name!r} is refused: keys are never the token's choice",
            )
    if "crit" in header:
        # RFC 7515 4.1.11: a recipient that does not understand a critical extension must reject.
        raise TokenRejected(rules.crit, "the 'crit' header parameter is not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or (rules.kid_pattern and not rules.kid_pattern.match(kid)):
        raise TokenRejected(rules.bad_kid, "the header's 'kid' is missing or not of the expected shape")
    return kid
