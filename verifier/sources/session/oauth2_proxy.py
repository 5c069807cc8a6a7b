"""oauth2-proxy, asked over a pooled HTTP client with short timeouts: look a session up (``/oauth2/auth``),
sign it out, and whether its session store answers (``/ready``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiohttp

from verifier.core.reasons import Reason
from verifier.core.session_cookies import (
    MAX_FORWARDED_COOKIE_BYTES,
    cookie_header,
    pick_session_set_cookie,
    session_binding,
    session_cookie_value,
    session_cookies,
)
from verifier.keys.http_client import HttpClientOptions, LazyHttpClient
from verifier.keys.upstream import UpstreamMetrics, timed_upstream
from verifier.sources.session.rejected import SessionRejected
from verifier.sources.session.settings import SessionSettings

log = logging.getLogger(__name__)


#: The probe runs after a full /oauth2/auth round trip and must fit in nginx's time budget with it.
READY_TIMEOUT_SECONDS = 1.0

HEADER_ACCESS_TOKEN = "X-Auth-Request-Access-Token"

#: Entra access tokens with many claims run to several KB; aiohttp's default 8 KB header limit would
#: turn a legitimate large token into a backend error.
MAX_RESPONSE_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SessionLookup:
    """A live session: the access token to validate, the CSRF binding, the ``Set-Cookie`` (if
    oauth2-proxy refreshed the session) to return to the browser, and the session's ID token (read
    only when the verifier first sees the sign-in)."""

    access_token: str
    binding: bytes
    set_cookie: str | None = None
    id_token: str = ""


class OAuth2ProxyClient:
    """Looks sessions up at oauth2-proxy over a pooled HTTP client with short timeouts."""

    def __init__(
        self,
        settings: SessionSettings,
        http: aiohttp.ClientSession | None = None,
        *,
        metrics: UpstreamMetrics | None = None,
    ) -> None:
        self.settings = settings
        # The shared client never remembers cookies: it serves every user's requests, and a jar
        # would send one user's refreshed session cookie along with the next user's request.
        self._http = LazyHttpClient(
            HttpClientOptions.failing_fast(
                settings.timeout_seconds,
                max_connections=settings.max_connections,
                keepalive_seconds=30,
                max_field_size=MAX_RESPONSE_HEADER_BYTES,
            ),
            http,
        )
        self._metrics = metrics

    async def close(self) -> None:
        await self._http.close()

    def cookies_from(self, cookie_headers: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """The session cookie(s) in a request's ``Cookie`` headers; empty when there are none."""
        return session_cookies(cookie_headers, self.settings.cookie_name)

    def binding_of(self, cookies: Sequence[tuple[str, str]]) -> bytes:
        """The sign-in these session cookies belong to (:func:`session_binding` of the value
        oauth2-proxy reads)."""
        return session_binding(session_cookie_value(cookies, self.settings.cookie_name))

    async def lookup(self, cookies: Sequence[tuple[str, str]]) -> SessionLookup:
        """Ask oauth2-proxy about the session in ``cookies``; raise :class:`SessionRejected` if none."""
        if not cookies:
            raise SessionRejected(Reason.NO_SESSION, "no session cookie")
        header = cookie_header(cookies)
        if len(header) > MAX_FORWARDED_COOKIE_BYTES:
            raise SessionRejected(Reason.NO_SESSION, "session cookie is larger than oauth2-proxy sets")
        binding = self.binding_of(cookies)
        status, set_cookie, access_token, id_token = await self._ask(header)
        if status == 401:
            if not await self._session_store_ready():
                # The 401 (and its deleting Set-Cookie) says only that the store could not be read.
                raise SessionRejected(
                    Reason.SESSION_BACKEND_UNAVAILABLE, "oauth2-proxy's session store does not answer"
                )
            raise SessionRejected(Reason.NO_SESSION, "oauth2-proxy has no session", set_cookie=set_cookie)
        if status == 403:
            raise SessionRejected(
                Reason.SESSION_FORBIDDEN, "oauth2-proxy refused the session", set_cookie=set_cookie
            )
        if status not in (200, 202):
            raise SessionRejected(Reason.SESSION_BACKEND_UNAVAILABLE, f"oauth2-proxy answered {status}")
        if not access_token:
            # oauth2-proxy runs without --pass-access-token, or the path is a skip-auth route that it
            # answers without a session: either way there is nothing to validate.
            raise SessionRejected(
                Reason.SESSION_TOKEN_MISSING,
                f"oauth2-proxy answered {status} without {HEADER_ACCESS_TOKEN}; is --pass-access-token set?",
            )
        return SessionLookup(access_token, binding, set_cookie, id_token)

    async def sign_out(self, cookies: Sequence[tuple[str, str]]) -> str | None:
        """End the session at oauth2-proxy (it deletes it from its store); its deleting ``Set-Cookie``.

        None when oauth2-proxy could not be asked: the caller refuses the request anyway, and asks
        again on the next one.
        """
        try:
            async with self._http.get().get(
                self.settings.sign_out_url, headers={"Cookie": cookie_header(cookies)}, allow_redirects=False
            ) as response:
                await response.read()
                return pick_session_set_cookie(
                    response.headers.getall("Set-Cookie", ()), self.settings.cookie_name
                )
        except (aiohttp.ClientError, TimeoutError, OSError):
            log.warning("could not sign an expired session out at oauth2-proxy")
            return None

    async def _session_store_ready(self) -> bool:
        """oauth2-proxy's ``/ready``: whether its session store answers. Asked only after a 401, so a
        live session costs nothing extra; an unreachable oauth2-proxy counts as not ready."""
        try:
            async with self._http.get().get(
                self.settings.ready_url,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=min(READY_TIMEOUT_SECONDS, self.settings.timeout_seconds)
                ),
            ) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _ask(self, cookie_header: str) -> tuple[int, str | None, str, str]:
        """One ``/oauth2/auth`` round trip: status, the session ``Set-Cookie``, the access token and
        the ID token (``Authorization: Bearer``, with ``set_authorization_header``)."""
        with timed_upstream(self._metrics, "oauth2_proxy") as call:
            try:
                async with self._http.get().get(
                    self.settings.auth_url,
                    headers={"Cookie": cookie_header, "Accept": "application/json"},
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    set_cookie = pick_session_set_cookie(
                        response.headers.getall("Set-Cookie", ()), self.settings.cookie_name
                    )
                    access_token = response.headers.get(HEADER_ACCESS_TOKEN, "").strip()
                    scheme, _, id_token = response.headers.get("Authorization", "").partition(" ")
                    id_token = id_token.strip() if scheme == "Bearer" else ""
                    # Drain the (tiny) body so the connection goes back to the pool for the next request.
                    await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise SessionRejected(
                    Reason.SESSION_BACKEND_UNAVAILABLE, f"oauth2-proxy did not answer ({type(exc).__name__})"
                ) from None
            call.result = "ok" if status in (200, 202) else "refused" if status in (401, 403) else "error"
        return status, set_cookie, access_token, id_token
