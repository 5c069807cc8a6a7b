"""The bearer source: ``Authorization: Bearer <token>`` (RFC 6750 section 2.1)."""

from __future__ import annotations

from aiohttp import web

from verifier.core.decision import Decision, OriginalRequest
from verifier.core.reasons import Reason, TokenRejected
from verifier.sources.access_token import TokenAuthenticator
from verifier.sources.credential_source import CredentialSource


class BearerSource(CredentialSource):
    """``Authorization: Bearer <token>`` (RFC 6750 section 2.1)."""

    name = "bearer"

    def present(self, request: web.Request) -> bool:
        return "Authorization" in request.headers

    async def check_credentials(
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
        return await tokens.check_token(token, original, source="bearer")

    def _reject(self, reason: Reason, detail: str) -> Decision:
        return Decision.reject(TokenRejected(reason, detail), source=self.name)
