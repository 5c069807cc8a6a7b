"""Credential sources: the ways a caller can prove who they are.

``/verify`` asks each source in order whether the request carries its credentials
(:meth:`CredentialSource.present`); the first that does decides. The bearer source always comes
first, so a request with an ``Authorization`` header is judged by it alone. Further sources (the
oauth2-proxy session, ALB OIDC) are passed to :func:`verifier.app.create_app`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

from verifier.authenticator import TokenAuthenticator
from verifier.decision import Decision, OriginalRequest
from verifier.reasons import Reason, TokenRejected


@runtime_checkable
class CredentialSource(Protocol):
    #: The ``source`` metrics label and log field (``bearer``, ``session``, ``alb``).
    name: str

    def present(self, request: web.Request) -> bool:
        """True when the request carries this source's credentials (valid or not)."""
        ...

    async def decide(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        """Judge the credentials. Use ``tokens.decide(token, original, source=...)`` for a token."""
        ...

    async def close(self) -> None:
        """Release connections; called when the app shuts down."""
        ...


class BearerSource:
    """``Authorization: Bearer <token>`` (RFC 6750 section 2.1)."""

    name = "bearer"

    def present(self, request: web.Request) -> bool:
        return "Authorization" in request.headers

    async def decide(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        values = request.headers.getall("Authorization")
        if len(values) != 1:
            return self._reject(Reason.MULTIPLE_AUTHORIZATION_HEADERS, "exactly one Authorization header")
        scheme, _, credentials = values[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            return self._reject(Reason.UNSUPPORTED_SCHEME, "only the Bearer scheme is accepted")
        token = credentials.strip(" ")
        if not token:
            return self._reject(Reason.MALFORMED_TOKEN, "the Bearer credentials are empty")
        return await tokens.decide(token, original, source="bearer")

    def _reject(self, reason: Reason, detail: str) -> Decision:
        return Decision.reject(TokenRejected(reason, detail), source=self.name)

    async def close(self) -> None:
        return None
