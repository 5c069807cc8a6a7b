"""Where oauth2-proxy and Redis are, and the session rules: lifetime, the remembered-session cache,
CSRF."""

from __future__ import annotations

from dataclasses import dataclass, field

from verifier.core.session_cookies import DEFAULT_COOKIE_NAME, is_cookie_name
from verifier.sources.csrf import CsrfSettings
from verifier.sources.session_cache import DEFAULT_SESSION_CACHE_SECONDS, DEFAULT_SESSION_CACHE_SIZE

DEFAULT_OAUTH2_PROXY_URL = "http://127.0.0.1:4180"

AUTH_PATH = "/oauth2/auth"

SIGN_OUT_PATH = "/oauth2/sign_out"

#: The default absolute session lifetime, counted from the first request after sign-in.
DEFAULT_SESSION_MAX_AGE_SECONDS = 3600

#: oauth2-proxy's readiness probe: 200 only when its session store answers a ping.
READY_PATH = "/ready"


@dataclass(frozen=True, slots=True)
class SessionSettings:
    oauth2_proxy_url: str = DEFAULT_OAUTH2_PROXY_URL
    cookie_name: str = DEFAULT_COOKIE_NAME
    timeout_seconds: float = 2.0
    max_connections: int = 64
    #: The absolute session lifetime, from the first request after sign-in.
    max_age_seconds: int = DEFAULT_SESSION_MAX_AGE_SECONDS
    #: How long a live session is remembered (:mod:`verifier.sources.session_cache`); 0 turns it off.
    cache_seconds: int = DEFAULT_SESSION_CACHE_SECONDS
    cache_size: int = DEFAULT_SESSION_CACHE_SIZE

    def __post_init__(self) -> None:
        if self.max_age_seconds < 1:
            raise ValueError("max_age_seconds must be positive")
        if self.cache_seconds < 0 or self.cache_size < 1:
            raise ValueError("cache_seconds must not be negative and cache_size must be positive")
        if not self.oauth2_proxy_url.startswith(("http://", "https://")):
            raise ValueError("oauth2_proxy_url must be an http(s) URL such as http://127.0.0.1:4180")
        if not is_cookie_name(self.cookie_name):
            raise ValueError("cookie_name must be a cookie name such as __Host-oauth2_proxy")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")

    @property
    def auth_url(self) -> str:
        return self.oauth2_proxy_url.rstrip("/") + AUTH_PATH

    @property
    def ready_url(self) -> str:
        return self.oauth2_proxy_url.rstrip("/") + READY_PATH

    @property
    def sign_out_url(self) -> str:
        return self.oauth2_proxy_url.rstrip("/") + SIGN_OUT_PATH


@dataclass(frozen=True, slots=True)
class SessionSourceSettings:
    """Everything the session source needs: where oauth2-proxy and Redis are, and the CSRF rules."""

    session: SessionSettings
    csrf: CsrfSettings
    #: May carry a password: kept out of repr so settings can be logged.
    redis_url: str = field(repr=False)
