"""Credential sources for tests of the app's source handling: one that reuses token validation, one
that fails."""

from __future__ import annotations

from aiohttp import web

from verifier.core.decision import Decision, OriginalRequest
from verifier.sources.access_token import TokenAuthenticator
from verifier.sources.credential_source import CredentialSource


class HeaderTokenSource(CredentialSource):
    """An extra credential source of the kind the session source is: it finds a token elsewhere and
    hands it to the shared authenticator as ``source="session"``."""

    name = "session"

    def __init__(self) -> None:
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    def present(self, request: web.Request) -> bool:
        return "X-Test-Session" in request.headers

    async def check_credentials(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        decision = await tokens.check_token(request.headers["X-Test-Session"], original, source="session")
        return decision.with_headers(("Set-Cookie", "s=refreshed; Secure; HttpOnly"))

    async def close(self) -> None:
        self.closed = True


class BrokenSource(HeaderTokenSource):
    def present(self, request: web.Request) -> bool:
        return "X-Broken" in request.headers

    async def check_credentials(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        raise RuntimeError("backend exploded")
