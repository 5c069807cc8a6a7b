"""One fetch in flight per key, rationed: what the JWKS cache and the ALB key cache both need.

A thousand concurrent requests naming the same new ``kid`` must cost one fetch, and a flood of
forged kids must not turn the verifier into a request generator against the key endpoint. So a
:class:`SingleFlightFetcher` joins every caller for one key onto one task (shielded: one caller
giving up must not cancel everyone's fetch), and :meth:`SingleFlightFetcher.may_start` says whether a
*new* fetch is allowed: not within ``per_key_interval`` of the key's last attempt, and not beyond
``max_per_minute`` new fetches in total.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Keys whose last attempt is remembered for the per-key interval; a bound, so forged kids cannot
#: grow it without limit (the per-minute budget keeps it far below this anyway).
MAX_REMEMBERED_KEYS = 1024


class SingleFlightFetcher(Generic[K, V]):
    def __init__(
        self,
        fetch: Callable[[K], Awaitable[V]],
        *,
        name: str,
        per_key_interval: float = 0.0,
        max_per_minute: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._name = name
        self._monotonic = monotonic
        self._inflight: dict[K, asyncio.Task[V]] = {}
        self._recent: TTLCache[K, float] | None = (
            TTLCache(maxsize=MAX_REMEMBERED_KEYS, ttl=per_key_interval, timer=monotonic)
            if per_key_interval > 0
            else None
        )
        self._max_per_minute = max_per_minute
        self._started_at: deque[float] = deque()

    def in_flight(self, key: K) -> bool:
        return key in self._inflight

    def may_start(self, key: K) -> str | None:
        """None when a new fetch of ``key`` is allowed now, else why not (for a log or a detail)."""
        if self._recent is not None and key in self._recent:
            return "fetched moments ago; cooling down"
        if self._max_per_minute is not None:
            now = self._monotonic()
            while self._started_at and self._started_at[0] <= now - 60.0:
                self._started_at.popleft()
            if len(self._started_at) >= self._max_per_minute:
                return "too many new keys; fetches are rationed"
        return None

    async def fetch(self, key: K) -> V:
        """Join the fetch of ``key`` under way, or start one (whatever :meth:`may_start` says)."""
        task = self._inflight.get(key)
        if task is None:
            # Registered before the first await, so every concurrent caller finds it.
            now = self._monotonic()
            if self._recent is not None:
                self._recent[key] = now
            if self._max_per_minute is not None:
                self._started_at.append(now)
            task = asyncio.create_task(self._fetch(key), name=f"{self._name}-{key}")
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
