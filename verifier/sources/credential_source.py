"""The one interface of a credential source: the ways a caller can prove who they are.

``/verify`` asks each source in order whether the request carries its credentials
(:meth:`CredentialSource.present`); the first that does decides. The bearer source always comes
first, so a request with an ``Authorization`` header is judged by it alone. Further sources (the
oauth2-proxy session, ALB OIDC) are passed to :func:`verifier.service.app.create_app`, which starts
every source with the app and closes it on shutdown: a source subclasses :class:`CredentialSource`
and overrides :meth:`~CredentialSource.start` or :meth:`~CredentialSource.close` only when it has
background work or connections. A source that can end a browser's session on sign-out is also a
:class:`SessionEnder`.
"""

from __future__ import annotations

from collections.abc import Iterable
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

    async def start(self) -> None:
        """Start background work, inside the running event loop; called when the app starts."""
        return None

    async def close(self) -> None:
        """Release connections; called when the app shuts down."""
        return None


@runtime_checkable
class SessionEnder(Protocol):
    """A source whose sessions end by the browser signing out (``/session-ended``), by the identity
    provider's front-channel logout (``/front-channel-logout``) and by "sign out everywhere"
    (``/sessions/end``)."""

    async def end(self, cookie_headers: Iterable[str]) -> None:
        """Forget, on every task, the session these ``Cookie`` headers name."""
        ...

    async def end_sign_in(self, sid: str) -> int:
        """End, on every task, every session of the identity provider's sign-in session ``sid``."""
        ...

    async def end_user(self, oid: str, *, now: int) -> int:
        """End, on every task, every session of user ``oid`` begun before ``now``."""
        ...
