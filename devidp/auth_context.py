"""Conditional Access authentication context and client capabilities: the ``claims`` request
parameter, and what a sign-in established for the ``acrs`` and ``xms_cc`` access-token claims.

Pure functions and values; the sign-in pages and the token endpoint apply them. Entra's rules, as
devidp applies them (claims-challenge, developer-guide-conditional-access-authentication-context,
access-token-claims-reference, optional-claims-reference):

* a client asks for a context with ``{"access_token":{"acrs":{"essential":true,"value":"c1"}}}``
  (or ``"values":[...]``) and declares capabilities with ``{"access_token":{"xms_cc":{"values":
  ["cp1"]}}}``; both may share one object;
* a requested context that a policy protects (here: one the tenant defines, protected by step-up)
  is issued in ``acrs`` only once the user satisfied it; one no policy protects is issued as asked;
* a resource that lists ``acrs`` as an optional claim also gets, opportunistically, every protected
  context the sign-in already satisfied;
* ``xms_cc`` is emitted only when the resource lists it as an optional claim and the client declared
  a known capability (``cp1``, case-insensitive).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from devidp import errors

#: Graph's authenticationContextClassReference ids: c1 through c99.
AUTH_CONTEXT_ID = re.compile(r"^c([1-9]|[1-9][0-9])$")
#: "The only currently known value is cp1" (claims-challenge); others are dropped from ``xms_cc``.
KNOWN_CLIENT_CAPABILITIES = frozenset({"cp1"})
#: The members of a claims request (OpenID Connect Core 5.5); others are ignored, as it says.
_TOKEN_MEMBERS = ("access_token", "id_token", "userinfo")


@dataclass(frozen=True, slots=True)
class ClaimsRequest:
    """What a ``claims`` parameter asks of the access token: contexts, and declared capabilities."""

    contexts: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()  # lower-cased


NO_CLAIMS = ClaimsRequest()


def parse_claims(raw: str) -> ClaimsRequest:
    """The ``claims`` parameter read; raises CLAIMS_MALFORMED saying what is wrong with it.

    The JSON arrives URL-decoded once by the HTTP layer; a value still URL-encoded (a client that
    encoded it twice) is decoded once more.
    """
    if not raw:
        return NO_CLAIMS
    try:
        document = json.loads(raw)
    except ValueError:
        try:
            document = json.loads(unquote(raw))
        except ValueError:
            raise _malformed("the value is not JSON") from None
    if not isinstance(document, dict):
        raise _malformed("the value must be a JSON object")
    for member in _TOKEN_MEMBERS:
        if not isinstance(document.get(member, {}), dict | None):
            raise _malformed(f"'{member}' must be an object")
    access = document.get("access_token") or {}
    return ClaimsRequest(
        contexts=frozenset(_context_ids(_claim(access, "acrs"))),
        capabilities=frozenset(v.lower() for v in _values(_claim(access, "xms_cc"), "xms_cc")),
    )


def _malformed(reason: str) -> errors.EntraError:
    return errors.CLAIMS_MALFORMED(reason=f"devidp: {reason}.")


def _claim(member: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    request = member.get(name)
    if request is None:
        return {}
    if not isinstance(request, dict):
        raise _malformed(f"'access_token.{name}' must be an object (or null)")
    if not isinstance(request.get("essential", False), bool):
        raise _malformed(f"'access_token.{name}.essential' must be true or false")
    return request


def _values(request: Mapping[str, Any], name: str) -> list[str]:
    """The ``value`` and ``values`` of one claim request, each a string (OpenID Connect Core 5.5.1)."""
    found: list[str] = []
    if "value" in request:
        if not isinstance(request["value"], str):
            raise _malformed(f"'access_token.{name}.value' must be a string")
        found.append(request["value"])
    if "values" in request:
        values = request["values"]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _malformed(f"'access_token.{name}.values' must be an array of strings")
        found += values
    return found


def _context_ids(request: Mapping[str, Any]) -> list[str]:
    ids = [v.lower() for v in _values(request, "acrs")]
    for context_id in ids:
        if not AUTH_CONTEXT_ID.match(context_id):
            raise _malformed(
                f"{context_id!r} in 'access_token.acrs' is not an authentication context id (c1 to c99)"
            )
    return ids


@dataclass(frozen=True, slots=True)
class SignInConditions:
    """What a sign-in established for ``acrs`` and ``xms_cc``; codes and refresh families keep it.

    ``requested``: the contexts the client asked for, every one satisfied (or protected by no
    policy). ``satisfied``: every protected context the sign-in session had satisfied by then, for
    resources that take them opportunistically. ``capabilities``: what the client declared.
    """

    requested: frozenset[str] = frozenset()
    satisfied: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()

    def with_token_request(
        self, asked: ClaimsRequest, protected: frozenset[str], resource: str
    ) -> SignInConditions:
        """These conditions for a token request with its own ``claims``: its capabilities are
        added; a protected context the sign-in did not satisfy needs the user (AADSTS50076)."""
        if (asked.contexts & protected) - self.satisfied:
            raise errors.STEP_UP_REQUIRED_ON_TOKEN_ENDPOINT(resource=resource)
        return replace(
            self,
            requested=self.requested | asked.contexts,
            capabilities=self.capabilities | asked.capabilities,
        )

    def acrs(self, *, opportunistic: bool) -> list[str]:
        ids = self.requested | (self.satisfied if opportunistic else frozenset())
        return sorted(ids, key=lambda context_id: int(context_id[1:]))

    def client_capabilities(self) -> list[str]:
        return sorted(self.capabilities & KNOWN_CLIENT_CAPABILITIES)


NO_CONDITIONS = SignInConditions()


def needs_step_up(
    asked: ClaimsRequest, protected: frozenset[str], satisfied: frozenset[str]
) -> frozenset[str]:
    """The requested contexts a policy protects that the sign-in has not satisfied yet."""
    return (asked.contexts & protected) - satisfied
