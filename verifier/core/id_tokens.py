"""The sign-in an oauth2-proxy session belongs to, read from the session's ID token: a pure function
of (token, keys, settings).

A session can be ended without its cookie: by Entra's front-channel logout call, which names the
Entra sign-in session (``sid``) and nothing else, and by "sign out everywhere", which names the user
(``oid``). So when the verifier first sees a session it records both, taken from the ID token
oauth2-proxy keeps in the session (its ``/oauth2/auth`` answers it as ``Authorization: Bearer``).

The ID token never reaches the browser and oauth2-proxy checked it at the callback (signature,
audience, nonce). It is still not taken on oauth2-proxy's word: its signature must verify with the
tenant's keys and its issuer must be the tenant's v2 issuer, as for any token. Expiry is not checked:
only who signed in and in which Entra session is read from it, and both stay true after the token
expires (oauth2-proxy keeps the sign-in's ID token when a refresh brings none). The audience is the
BFF app, which the verifier is not configured with; the session's access token, validated on every
request, is what authorizes anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from verifier.core.access_tokens import BEARER_HEADER_RULES, ValidationSettings, verify_token_signature
from verifier.core.jose import check_header, parse_compact_jws
from verifier.core.jwk import KeySet
from verifier.core.reasons import Reason, TokenRejected

__all__ = ["SignInSession", "is_session_id", "read_sign_in_session"]

#: Entra's ``sid`` is a GUID; the OpenID front-channel logout spec gives it the syntax of a client
#: id. Anything printable without space, bounded, so it can key an index and sit in a log line.
_SESSION_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def is_session_id(value: str) -> bool:
    """Whether ``value`` could be an identity provider's ``sid`` (shape only)."""
    return bool(_SESSION_ID.fullmatch(value))


@dataclass(frozen=True, slots=True)
class SignInSession:
    """Who signed in (``oid`` in tenant ``tid``) and in which Entra session (``sid``, empty when the
    ID token names none)."""

    oid: str
    tid: str
    sid: str


def read_sign_in_session(id_token: str, keys: KeySet, settings: ValidationSettings) -> SignInSession:
    """Verify ``id_token``'s signature and issuer and read its ``oid``, ``tid`` and ``sid``.

    Raises :class:`TokenRejected` naming the failed check; :class:`UnknownKid` or
    :class:`KeysNotLoaded` when the tenant's keys lack the token's ``kid`` (the caller may refetch once).
    """
    parsed = parse_compact_jws(id_token, max_bytes=settings.max_token_bytes)
    kid = check_header(parsed.header, BEARER_HEADER_RULES)
    payload = parsed.payload
    tid = payload.get("tid")
    if not isinstance(tid, str) or tid not in settings.tenant_ids:
        raise TokenRejected(Reason.TENANT_NOT_ALLOWED, "the ID token's tenant is not allowed")
    verify_token_signature(parsed, keys, tid, kid, what="the ID token's signature")
    if payload.get("iss") != settings.v2_issuer(tid):
        raise TokenRejected(Reason.BAD_ISSUER, "the ID token's 'iss' is not the tenant's v2 issuer")
    oid = payload.get("oid")
    if not isinstance(oid, str) or not oid:
        raise TokenRejected(Reason.MISSING_CLAIM, "the ID token has no 'oid'")
    sid = payload.get("sid", "")
    if not isinstance(sid, str) or (sid and not is_session_id(sid)):
        raise TokenRejected(Reason.BAD_CLAIM_TYPE, "the ID token's 'sid' is not a session id", oid=oid)
    return SignInSession(oid=oid[:64], tid=tid, sid=sid)
