"""The ALB's public keys, fetched from its regional endpoint by kid: cached, single-flight, rationed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp
from cachetools import TTLCache
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.core.alb_token import AlbRejected, AlbSettings, load_alb_public_key
from verifier.core.reasons import Reason
from verifier.keys.http_client import HttpClientOptions, LazyHttpClient
from verifier.keys.single_flight import SingleFlightFetcher
from verifier.keys.upstream import UpstreamMetrics, timed_upstream

log = logging.getLogger(__name__)

#: A P-256 public key in PEM is about 180 bytes.
MAX_KEY_BYTES = 4096


class AlbKeyCache:
    """ALB public keys by kid: cached, fetched once per kid at a time, and rationed.

    A forged header can name any UUID as its kid (after passing the signer, issuer, client and expiry
    checks, which a forger can copy). So a kid that failed is not retried for
    ``failed_kid_cooldown_seconds``, and at most ``max_new_kids_per_minute`` uncached kids are fetched
    per minute in total; beyond that the request is refused with ``alb_keys_unavailable``.
    """

    def __init__(
        self,
        settings: AlbSettings,
        http: aiohttp.ClientSession | None = None,
        *,
        metrics: UpstreamMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._http = LazyHttpClient(HttpClientOptions.failing_fast(settings.timeout_seconds), http)
        self._metrics = metrics
        self._keys: TTLCache[str, ec.EllipticCurvePublicKey] = TTLCache(
            maxsize=settings.key_cache_size, ttl=settings.key_ttl_seconds, timer=monotonic
        )
        # A kid is not fetched again within the cooldown of its last attempt; a fetched key is
        # answered from the cache above, so in effect only a kid that failed waits.
        self._fetcher: SingleFlightFetcher[str, ec.EllipticCurvePublicKey] = SingleFlightFetcher(
            self._fetch,
            name="alb-key-fetch",
            per_key_interval=settings.failed_kid_cooldown_seconds,
            max_per_minute=settings.max_new_kids_per_minute,
            monotonic=monotonic,
        )

    async def close(self) -> None:
        await self._fetcher.close()
        await self._http.close()

    async def get(self, kid: str) -> ec.EllipticCurvePublicKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._fetcher.in_flight(kid):
            refused = self._fetcher.may_start(kid)
            if refused is not None:
                raise AlbRejected(Reason.ALB_KEYS_UNAVAILABLE, f"no key fetch for this kid: {refused}")
        return await self._fetcher.fetch(kid)

    async def _fetch(self, kid: str) -> ec.EllipticCurvePublicKey:
        with timed_upstream(self._metrics, "alb_keys") as call:
            try:
                async with self._http.get().get(
                    self.settings.key_url(kid), allow_redirects=False
                ) as response:
                    body = await response.content.read(MAX_KEY_BYTES + 1)
                    status = response.status
                if status != 200 or len(body) > MAX_KEY_BYTES:
                    raise ValueError(f"the key endpoint answered {status}")
                key = load_alb_public_key(body)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.warning("ALB key fetch failed: %s", type(exc).__name__, extra={"kid": kid})
                raise AlbRejected(
                    Reason.ALB_KEYS_UNAVAILABLE, "the ALB's public key could not be fetched"
                ) from None
            call.result = "ok"
        self._keys[kid] = key
        return key
