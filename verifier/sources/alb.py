"""The ALB OIDC source: ``x-amzn-oidc-data`` checked by :mod:`verifier.core.alb_token` with keys from
:mod:`verifier.keys.alb_keys`. Off unless ``VERIFIER_ALB_ARN`` is set.

A browser signed in at the ALB is authenticated by a cookie the ALB reads, so an unsafe request
(POST, PUT, PATCH, DELETE) passes the same CSRF checks as a session's (:class:`CsrfGuard`: the
``Origin``, a token bound to the user, spent once), and every allowed answer carries the next token.
"""

from __future__ import annotations

from aiohttp import web

from verifier.core.alb_token import (
    ALB_HEADER,
    AlbRejected,
    AlbSettings,
    alb_binding,
    alb_principal,
    check_alb_token,
    verify_alb_signature,
)
from verifier.core.decision import Decision, OriginalRequest
from verifier.core.reasons import Reason, Rejection
from verifier.keys.alb_keys import AlbKeyCache
from verifier.keys.upstream import UpstreamMetrics
from verifier.sources.access_token import TokenAuthenticator
from verifier.sources.credential_source import CredentialSource
from verifier.sources.csrf import HEADER_CSRF_TOKEN, CsrfGuard, CsrfRejected


class AlbSource(CredentialSource):
    """``x-amzn-oidc-data`` as a credential source (``source="alb"``), consulted after bearer and session.

    Every refusal is 401 with an ``alb_*`` reason; a key that cannot be fetched is
    ``alb_keys_unavailable``, never a pass. An accepted principal still goes through the route policy.
    """

    name = "alb"

    def __init__(self, settings: AlbSettings, keys: AlbKeyCache, csrf: CsrfGuard) -> None:
        self.settings = settings
        self.keys = keys
        self.csrf = csrf

    def present(self, request: web.Request) -> bool:
        return ALB_HEADER in request.headers

    async def check_credentials(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        try:
            values = request.headers.getall(ALB_HEADER)
            if len(values) != 1:
                raise AlbRejected(Reason.ALB_MALFORMED, f"exactly one {ALB_HEADER} header")
            now = int(tokens.clock())
            token = check_alb_token(values[0].strip(), self.settings, now)
            verify_alb_signature(token, await self.keys.get(token.kid))
            principal = alb_principal(token, self.settings)
            tokens.policy.check(principal, original.method, original.uri)
            binding = alb_binding(token, self.settings)
            await self.csrf.check(original.method, request.headers, binding, now=now)
        except CsrfRejected as rejected:
            rejected.oid = principal.oid
            return Decision.reject(rejected, source=self.name)
        except Rejection as rejection:
            return Decision.reject(rejection, source=self.name)
        return Decision.allow(principal).with_headers((HEADER_CSRF_TOKEN, self.csrf.mint(binding, now=now)))

    async def close(self) -> None:
        await self.keys.close()


def build_alb_source(
    settings: AlbSettings, *, csrf: CsrfGuard, metrics: UpstreamMetrics | None = None
) -> AlbSource:
    """The production ALB source; its HTTP client opens on first use inside the running loop. ``csrf``
    is the session source's guard (one key, one store of spent tokens)."""
    return AlbSource(settings, AlbKeyCache(settings, metrics=metrics), csrf)
