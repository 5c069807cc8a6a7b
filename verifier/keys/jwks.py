"""The JWKS cache: each configured tenant's signing keys, fetched asynchronously via OIDC discovery.

PyJWT's ``PyJWKClient`` uses blocking ``urllib`` and would stall the event loop for every request
while a fetch is under way, so keys are fetched here with aiohttp and handed to PyJWT as ready key
objects (see :mod:`verifier.core.jwk`).

Behaviour:

* fetched at start, then refreshed every ``refresh_seconds`` (Entra rolls keys over days, with
  overlap); while a tenant has no keys yet, retried with a short backoff;
* refetched on an unknown ``kid`` at most once per ``min_refetch_seconds`` per tenant, single-flight:
  a thousand concurrent requests naming a new ``kid`` share one fetch
  (:class:`~verifier.keys.single_flight.SingleFlightFetcher`);
* a failed fetch keeps the keys already held (an outage of the identity provider does not turn
  valid tokens away).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from service_runtime.tasks import cancel_and_wait
from verifier.core.access_tokens import ValidationSettings
from verifier.core.jwk import JwksError, KeySet, tenant_keys_from_jwks
from verifier.keys.http_client import HttpClientOptions, LazyHttpClient
from verifier.keys.single_flight import SingleFlightFetcher

log = logging.getLogger(__name__)

#: A discovery document or JWKS larger than this is not Entra's.
MAX_DOCUMENT_BYTES = 512 * 1024
#: An unknown kid is fetched while nginx waits for the decision: the fetch must end well inside nginx's
#: 6 s budget for one decision (nginx/edge.conf.template, location /_verify) together with the
#: session lookup, or nginx gives up first and the user gets no reason.
FETCH_TIMEOUT_SECONDS = 2.0
#: Backoff while a tenant has no keys at all (start-up against an unreachable issuer).
INITIAL_RETRY_SECONDS = 1.0
MAX_INITIAL_RETRY_SECONDS = 30.0


class JwksMetrics(Protocol):
    def track_tenants(self, tenant_ids: Iterable[str]) -> None: ...

    def record_jwks_fetch(self, tenant_id: str, *, success: bool, keys_held: int) -> None: ...


class FetchError(Exception):
    """A discovery document or JWKS could not be fetched or used."""


def make_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system trust store plus an optional extra CA bundle (``VERIFIER_CA_FILE``)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port


class JwksCache:
    def __init__(
        self,
        settings: ValidationSettings,
        *,
        refresh_seconds: float = 43_200.0,
        min_refetch_seconds: float = 60.0,
        ca_file: Path | None = None,
        metrics: JwksMetrics | None = None,
        http: aiohttp.ClientSession | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._metrics = metrics
        if metrics is not None:
            metrics.track_tenants(settings.tenant_ids)
        self._http = LazyHttpClient(
            HttpClientOptions(
                timeout_seconds=FETCH_TIMEOUT_SECONDS,
                max_connections=8,
                ssl_context=make_ssl_context(ca_file),
                trust_env=True,
            ),
            http,
        )
        self._keys = KeySet()
        self._fetcher: SingleFlightFetcher[str, bool] = SingleFlightFetcher(
            self._fetch_tenant, name="jwks-fetch", per_key_interval=min_refetch_seconds, monotonic=monotonic
        )
        self._loop_task: asyncio.Task[None] | None = None

    # --- state -------------------------------------------------------------------------------------

    @property
    def keys(self) -> KeySet:
        """The current key set; replaced as a whole on each successful fetch, never mutated."""
        return self._keys

    @property
    def ready(self) -> bool:
        """True once every configured tenant has keys."""
        return all(self._keys.for_tenant(tid) is not None for tid in self.settings.tenant_ids)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start fetching in the background; :attr:`ready` turns true when keys are in."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._refresh_loop(), name="jwks-refresh")

    async def close(self) -> None:
        await cancel_and_wait(self._loop_task)
        self._loop_task = None
        await self._fetcher.close()
        await self._http.close()

    async def _refresh_loop(self) -> None:
        retry = INITIAL_RETRY_SECONDS
        while True:
            results = await asyncio.gather(*(self.refresh(tid) for tid in sorted(self.settings.tenant_ids)))
            if not self.ready:
                delay = retry
                retry = min(retry * 2, MAX_INITIAL_RETRY_SECONDS)
            elif all(results):
                delay = self.refresh_seconds
            else:
                # Keys are held, one refresh failed: try again soon, without hammering the issuer.
                delay = max(self.min_refetch_seconds, 1.0)
            await asyncio.sleep(delay)

    # --- fetching ----------------------------------------------------------------------------------

    async def refresh(self, tenant_id: str) -> bool:
        """Fetch ``tenant_id``'s keys now (joining a fetch already under way). True on success."""
        return await self._fetcher.fetch(tenant_id)

    async def refetch_for_unknown_kid(self, tenant_id: str, kid: str) -> bool:
        """Refetch after a token named an unknown ``kid``, if the cooldown allows. True if it is known now."""
        if tenant_id not in self.settings.tenant_ids:
            return False
        if self._has(tenant_id, kid):
            return True
        if not self._fetcher.in_flight(tenant_id) and self._fetcher.may_start(tenant_id) is not None:
            return False
        await self.refresh(tenant_id)
        return self._has(tenant_id, kid)

    def _has(self, tenant_id: str, kid: str) -> bool:
        tenant_keys = self._keys.for_tenant(tenant_id)
        return tenant_keys is not None and tenant_keys.get(kid) is not None

    async def _fetch_tenant(self, tenant_id: str) -> bool:
        try:
            discovery = await self._get_json(self.settings.discovery_url(tenant_id))
            jwks_uri = self._jwks_uri(tenant_id, discovery)
            tenant_keys = tenant_keys_from_jwks(tenant_id, await self._get_json(jwks_uri))
            if not tenant_keys.keys:
                raise FetchError("the JWKS holds no usable RS256 signing key")
        except (FetchError, JwksError) as exc:
            held = self._keys.for_tenant(tenant_id)
            self._record(tenant_id, success=False, keys_held=len(held.keys) if held else 0)
            log.warning(
                "JWKS fetch failed for tenant %s: %s; %s",
                tenant_id,
                exc,
                f"keeping {len(held.keys)} keys already held" if held else "no keys held yet",
                extra={"tenant": tenant_id},
            )
            return False
        self._keys = self._keys.with_tenant(tenant_keys)
        self._record(tenant_id, success=True, keys_held=len(tenant_keys.keys))
        log.info(
            "JWKS loaded for tenant %s: %d keys",
            tenant_id,
            len(tenant_keys.keys),
            extra={"tenant": tenant_id},
        )
        return True

    def _jwks_uri(self, tenant_id: str, discovery: Mapping[str, Any]) -> str:
        expected_issuer = self.settings.v2_issuer(tenant_id)
        if discovery.get("issuer") != expected_issuer:
            raise FetchError(f"discovery issuer is not {expected_issuer}")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError("discovery has no jwks_uri")
        # Keys must come from the authority itself: a discovery document (or a proxy in between)
        # cannot send the verifier to another host for its trust anchors.
        if _origin(jwks_uri) != _origin(self.settings.authority):
            raise FetchError("discovery jwks_uri is not on the authority's origin")
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http.get().get(
                url, allow_redirects=False, headers={"Accept": "application/json"}
            ) as response:
                if response.status != 200:
                    raise FetchError(f"GET {url} answered {response.status}")
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise FetchError(f"GET {url} failed: {type(exc).__name__}") from None
        if len(body) > MAX_DOCUMENT_BYTES:
            raise FetchError(f"GET {url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"GET {url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise FetchError(f"GET {url} did not answer a JSON object")
        return document

    def _record(self, tenant_id: str, *, success: bool, keys_held: int) -> None:
        if self._metrics is not None:
            self._metrics.record_jwks_fetch(tenant_id, success=success, keys_held=keys_held)
