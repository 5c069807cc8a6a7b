"""The one interface of a credential source: the ways a caller can prove who they are.

``/verify`` asks each source in order whether the request carries its credentials
(:meth:`CredentialSource.present`); the first that does decides. The bearer source always comes
first, so a request with an ``Authorization`` header is judged by it alone. Further sources (the
oauth2-proxy session, ALB OIDC) are passed to :func:`verifier.service.app.create_app`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

from verifier.core.decision import Decision, OriginalRequest
from verifier.sources.access_token import TokenAuthenticator


@runtime_checkable
class CredentialSource(Protocol):
    #: The ``source`` metrics label and log field (``bearer``, ``session``, ``alb``).
    name: str

    def present(self, request: web.Request) -> bool:
        """True when the request carries this source's credentials (valid or not)."""
        ...

    async def check_credentials(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        """Judge the credentials. Use ``tokens.check_token(token, original, source=...)`` for a token."""
        ...

    async def close(self) -> None:
        """Release connections; called when the app shuts down."""
        ...
