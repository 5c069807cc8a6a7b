"""The identity contract between the verifier, nginx and FastAPI.

The verifier answers nginx's ``auth_request`` with these headers; nginx copies them onto the request
it proxies to FastAPI (after clearing whatever the client sent under the same names); FastAPI checks
``X-Identity-Signature`` before it believes any of them. This module is the one source of truth for
the header names, the value encoding and the signature, and it is pure: no I/O, no clock of its own.

Signature format (header ``X-Identity-Signature``)::

    v1;t=<unix seconds>;sig=<base64url HMAC-SHA256, no padding>

over the canonical string::

    "eba-identity-v1" LF t LF METHOD LF original-uri LF name1 ":" value1 LF ... nameN ":" valueN

where the names are :data:`SIGNED_HEADERS` in that fixed order (lower-case) and every value is the
encoded header value exactly as sent (an absent value is the empty string). Binding the method and
the URI means a signature lifted from one request cannot vouch for another; the timestamp bounds
replay to the freshness window the receiver enforces.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote, unquote

PrincipalType = Literal["user", "app"]
AuthSource = Literal["bearer", "session", "alb"]

HEADER_OID = "X-User-Oid"
HEADER_TID = "X-User-Tid"
HEADER_NAME = "X-User-Name"
HEADER_EMAIL = "X-User-Email"
HEADER_ROLES = "X-Roles"
HEADER_SCOPES = "X-Scopes"
HEADER_GROUPS = "X-Groups"
HEADER_GROUPS_OVERAGE = "X-Groups-Overage"
HEADER_CLIENT_ID = "X-Client-Id"
HEADER_PRINCIPAL_TYPE = "X-Principal-Type"
HEADER_AUTH_SOURCE = "X-Auth-Source"
HEADER_SIGNATURE = "X-Identity-Signature"

#: Signed, in this order. Changing the order or the set is a breaking change of the wire format.
SIGNED_HEADERS: tuple[str, ...] = (
    HEADER_OID,
    HEADER_TID,
    HEADER_NAME,
    HEADER_EMAIL,
    HEADER_ROLES,
    HEADER_SCOPES,
    HEADER_GROUPS,
    HEADER_GROUPS_OVERAGE,
    HEADER_CLIENT_ID,
    HEADER_PRINCIPAL_TYPE,
    HEADER_AUTH_SOURCE,
)

#: Every header nginx must clear from client requests and set only from the verifier's answer.
IDENTITY_HEADERS: tuple[str, ...] = (*SIGNED_HEADERS, HEADER_SIGNATURE)

#: The access token nginx may forward to FastAPI for endpoints that re-validate it.
HEADER_FORWARDED_TOKEN = "X-Forwarded-Access-Token"

SIGNATURE_VERSION = "v1"
_CONTEXT = "eba-identity-v1"
DEFAULT_MAX_AGE_SECONDS = 30
#: Allowed clock skew for signatures dated in the future (same task, same clock: small).
FUTURE_SKEW_SECONDS = 5

# Header values must be visible ASCII without CR/LF; names and e-mail addresses can carry any
# Unicode. Percent-encoding (RFC 3986 unreserved plus a few harmless marks stay literal) keeps
# plain ASCII readable in logs and makes the encoding reversible.
_SAFE = " !#$&'()*+-./:;=?@[]^_`{|}~"


_VALUE_SAFE = _SAFE + ","
_ITEM_SAFE = _SAFE.replace(" ", "")
# What quote() would return unchanged (its always-safe characters plus ours). Most values (GUIDs,
# role and scope names, ASCII names) match, and a regular expression answers that several times
# faster than quote() rebuilds the same string; this runs for every token the verifier validates.
_UNCHANGED_VALUE = re.compile("[A-Za-z0-9_.~" + re.escape(_VALUE_SAFE + "-") + "]*")
_UNCHANGED_ITEM = re.compile("[A-Za-z0-9_.~" + re.escape(_ITEM_SAFE + "-") + "]*")


#: An identity signing key shorter than this is refused by the verifier and the API alike.
MIN_IDENTITY_KEY_BYTES = 32
_B64URL_KEY = re.compile(r"^[A-Za-z0-9_-]{43,}={0,2}$")


def decode_identity_key(text: str) -> bytes:
    """The HMAC key from ``IDENTITY_SIGNING_KEY``: base64url when it looks like it, else the raw text.

    A value of 43 or more base64url characters (optionally ``=``-padded) is decoded (43 characters are
    32 bytes); anything else is taken as UTF-8 text. The verifier signs and FastAPI checks with the
    key this returns, so the two cannot disagree about the key bytes.
    """
    value = text.strip()
    if _B64URL_KEY.match(value):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value.rstrip("=")) % 4))
        except (binascii.Error, ValueError):
            pass
    return value.encode("utf-8")


def encode_value(value: str) -> str:
    if _UNCHANGED_VALUE.fullmatch(value):
        return value
    return quote(value, safe=_VALUE_SAFE)


def encode_list(items: tuple[str, ...], sep: str) -> str:
    """Join list items with ``sep`` after encoding each, so an item can never contain ``sep``."""
    return sep.join(
        item if _UNCHANGED_ITEM.fullmatch(item) else quote(item, safe=_ITEM_SAFE) for item in items
    )


def decode_value(value: str) -> str:
    # A value without "%" is its own decoding (what unquote() answers too, after more work): the API
    # decodes every identity header of every request, and GUIDs, role and scope names rarely carry one.
    return unquote(value) if "%" in value else value


@dataclass(frozen=True, slots=True)
class Principal:
    """Who the caller is, as the verifier established it from a validated token."""

    oid: str
    tid: str
    principal_type: PrincipalType
    auth_source: AuthSource
    client_id: str = ""
    name: str = ""
    email: str = ""
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    groups_overage: bool = False
    #: ``exp`` of the token the principal came from (unix seconds); 0 when unknown.
    expires_at: int = 0
    #: Claims kept for logging and policy, never forwarded as headers.
    subject: str = ""
    token_id: str = ""
    #: ``acrs``: the Conditional Access authentication contexts the sign-in satisfied (``c1``...).
    auth_contexts: tuple[str, ...] = ()
    #: ``xms_cc``: what the client declared it can handle, e.g. ``cp1`` (claims challenges).
    client_capabilities: tuple[str, ...] = ()

    def with_source(self, source: AuthSource) -> Principal:
        return replace(self, auth_source=source)


def principal_headers(principal: Principal) -> dict[str, str]:
    """The unsigned identity headers, values encoded for the wire."""
    return {
        HEADER_OID: encode_value(principal.oid),
        HEADER_TID: encode_value(principal.tid),
        HEADER_NAME: encode_value(principal.name),
        HEADER_EMAIL: encode_value(principal.email),
        HEADER_ROLES: encode_list(principal.roles, ","),
        HEADER_SCOPES: encode_list(principal.scopes, " "),
        HEADER_GROUPS: encode_list(principal.groups, ","),
        HEADER_GROUPS_OVERAGE: "1" if principal.groups_overage else "",
        HEADER_CLIENT_ID: encode_value(principal.client_id),
        HEADER_PRINCIPAL_TYPE: principal.principal_type,
        HEADER_AUTH_SOURCE: principal.auth_source,
    }


#: (name, its lower-case form in the canonical string), computed once rather than per request.
_CANONICAL_NAMES = tuple((name, name.lower()) for name in SIGNED_HEADERS)


def _canonical(values: Mapping[str, str], method: str, uri: str, timestamp: int) -> bytes:
    lines = [_CONTEXT, str(timestamp), method.upper(), uri]
    lines.extend(f"{lower}:{values.get(name, '')}" for name, lower in _CANONICAL_NAMES)
    return "\n".join(lines).encode("utf-8")


def _mac(key: bytes, message: bytes) -> bytes:
    """base64url (no padding) of HMAC-SHA256(key, message), as ASCII bytes."""
    return base64.urlsafe_b64encode(hmac.digest(key, message, "sha256")).rstrip(b"=")


def sign_headers(values: Mapping[str, str], *, key: bytes, method: str, uri: str, now: int) -> str:
    """The ``X-Identity-Signature`` value for already-encoded header ``values``."""
    mac = _mac(key, _canonical(values, method, uri, now)).decode("ascii")
    return f"{SIGNATURE_VERSION};t={now};sig={mac}"


def signed_principal_headers(
    principal: Principal, *, key: bytes, method: str, uri: str, now: int
) -> dict[str, str]:
    """All identity headers for ``principal``, including the signature."""
    values = principal_headers(principal)
    values[HEADER_SIGNATURE] = sign_headers(values, key=key, method=method, uri=uri, now=now)
    return values


class SignatureError(Exception):
    """The identity headers cannot be trusted. ``reason`` is the stable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def verify_signature(
    headers: Mapping[str, str],
    *,
    keys: tuple[bytes, ...],
    method: str,
    uri: str,
    now: int,
    max_age: int = DEFAULT_MAX_AGE_SECONDS,
) -> None:
    """Raise :class:`SignatureError` unless ``headers`` carry a fresh, valid signature.

    ``keys`` holds the current key first and, during a rotation, the previous one. ``headers`` is a
    case-insensitive mapping (Starlette's and aiohttp's both are). Reason codes:
    ``missing_identity_signature``, ``malformed_identity_signature``, ``stale_identity_signature``,
    ``bad_identity_signature``.
    """
    raw = headers.get(HEADER_SIGNATURE)
    if not raw:
        raise SignatureError("missing_identity_signature", f"{HEADER_SIGNATURE} is missing")
    parts = raw.split(";")
    if len(parts) != 3 or parts[0] != SIGNATURE_VERSION:
        raise SignatureError("malformed_identity_signature", f"{HEADER_SIGNATURE} is not v1;t=..;sig=..")
    t_part, sig_part = parts[1], parts[2]
    if not t_part.startswith("t=") or not sig_part.startswith("sig="):
        raise SignatureError("malformed_identity_signature", f"{HEADER_SIGNATURE} is not v1;t=..;sig=..")
    t_text = t_part[2:]
    if not t_text.isascii() or not t_text.isdigit() or len(t_text) > 12:
        raise SignatureError("malformed_identity_signature", "signature timestamp is not an integer")
    timestamp = int(t_text)
    if timestamp > now + FUTURE_SKEW_SECONDS or now - timestamp > max_age:
        raise SignatureError(
            "stale_identity_signature", f"signature is {now - timestamp}s old; at most {max_age}s allowed"
        )
    # _canonical reads the values with .get(name, ""), which ``headers`` answers as well as a copy.
    message = _canonical(headers, method, uri, timestamp)
    # Bytes, so a non-ASCII signature compares unequal instead of making compare_digest raise.
    given = sig_part[4:].encode("ascii", "replace")
    for key in keys:
        if hmac.compare_digest(_mac(key, message), given):
            return
    raise SignatureError("bad_identity_signature", "identity signature does not match")


def principal_from_headers(headers: Mapping[str, str]) -> Principal:
    """Rebuild the :class:`Principal` from identity headers. Call only after :func:`verify_signature`."""
    get = headers.get
    ptype = get(HEADER_PRINCIPAL_TYPE, "")
    source = get(HEADER_AUTH_SOURCE, "")
    if ptype not in ("user", "app") or source not in ("bearer", "session", "alb"):
        raise SignatureError("malformed_identity_headers", "principal type or auth source is unknown")

    def items(key: str, sep: str) -> tuple[str, ...]:
        text = get(key, "")
        return tuple(decode_value(item) for item in text.split(sep) if item) if text else ()

    return Principal(
        oid=decode_value(get(HEADER_OID, "")),
        tid=decode_value(get(HEADER_TID, "")),
        principal_type=ptype,  # type: ignore[arg-type]
        auth_source=source,  # type: ignore[arg-type]
        client_id=decode_value(get(HEADER_CLIENT_ID, "")),
        name=decode_value(get(HEADER_NAME, "")),
        email=decode_value(get(HEADER_EMAIL, "")),
        roles=items(HEADER_ROLES, ","),
        scopes=items(HEADER_SCOPES, " "),
        groups=items(HEADER_GROUPS, ","),
        groups_overage=get(HEADER_GROUPS_OVERAGE, "") == "1",
    )
