"""The one way the verifier's fetchers hold an HTTP client: created on first use, closed once.

A client must be created inside the running event loop it will serve, which the factories that
build the fetchers may not be in; so each fetcher holds a :class:`LazyHttpClient` and asks it for
the client when it needs one. A client passed in (tests) is used as is and never closed here.
Cookies are never remembered: the client is shared by every user's requests.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True, slots=True)
class HttpClientOptions:
    timeout_seconds: float
    connect_timeout_seconds: float | None = None
    max_connections: int = 100
    ssl_context: ssl.SSLContext | None = None
    keepalive_seconds: float | None = None
    max_field_size: int | None = None
    #: Honour HTTP(S)_PROXY from the environment (the identity provider may sit behind a proxy;
    #: localhost upstreams never do).
    trust_env: bool = False

    @classmethod
    def failing_fast(cls, timeout_seconds: float, **options: object) -> HttpClientOptions:
        """A client for a request a caller is waiting on: connected within a second (or the whole
        timeout, if shorter), answered within ``timeout_seconds``."""
        return cls(timeout_seconds, min(1.0, timeout_seconds), **options)  # type: ignore[arg-type]


class LazyHttpClient:
    def __init__(self, options: HttpClientOptions, http: aiohttp.ClientSession | None = None) -> None:
        self._options = options
        self._http = http
        self._owns_http = http is None

    def get(self) -> aiohttp.ClientSession:
        if self._http is None:
            options = self._options
            connector_args: dict[str, object] = {"limit": options.max_connections}
            if options.ssl_context is not None:
                connector_args["ssl"] = options.ssl_context
            if options.keepalive_seconds is not None:
                connector_args["keepalive_timeout"] = options.keepalive_seconds
            session_args: dict[str, object] = {}
            if options.max_field_size is not None:
                session_args["max_field_size"] = options.max_field_size
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(**connector_args),  # type: ignore[arg-type]
                timeout=aiohttp.ClientTimeout(
                    total=options.timeout_seconds, connect=options.connect_timeout_seconds
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=options.trust_env,
                **session_args,  # type: ignore[arg-type]
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.close()
        self._http = None
