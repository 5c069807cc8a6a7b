"""A few seconds' memory of live sessions, so a signed-in browser's requests do not each ask
oauth2-proxy and Redis.

Without it every request with a session cookie costs an HTTP round trip to oauth2-proxy (which reads
and decrypts the session from Redis) and a Redis round trip for the sign-in's start time, about two
thirds of an edge request's CPU. A page load fires a burst of requests with the same cookie; the
answer does not change within seconds.

What is remembered, for ``ttl_seconds`` (5 by default) and never longer than the sign-in may live:
the access token oauth2-proxy returned, the session's binding and when the sign-in began. Keyed by
the SHA-256 of the exact cookie header oauth2-proxy would have been sent, so only the same cookie
bytes (MAC included) find the entry; a cookie that differs by one byte asks oauth2-proxy. What is
*not* remembered is the decision: every request still validates the token (a verified-token cache
hit), checks its expiry, applies the route policy and, for unsafe methods, the CSRF checks with the
spent-token store in Redis. Only answers that say "live session, token valid" are stored; refusals,
refreshed sessions (oauth2-proxy sent a ``Set-Cookie``) and expired sign-ins never are.

Sign-out ends a session everywhere at once. nginx asks the verifier (``/session-ended``) before it
passes ``/oauth2/sign_out`` to oauth2-proxy; the verifier ends the session and publishes its
*binding* (:func:`verifier.sources.session.session_binding`, the hash of the session ticket that
every spelling and every refreshed version of the cookie shares) on the Redis channel
:data:`SESSION_ENDED_CHANNEL`, which every verifier task listens to (:class:`SessionEndBroadcast`);
Redis has handed the message to every listener before the publish returns, so before the browser's
sign-out completes. Entries are looked up by the exact cookie bytes but ended by the session they
belong to, so a cookie spelled differently (another cookie beside it, a stray chunk, quotes, an older
refreshed value) cannot outlive the sign-out on another task. An ended session is kept in a tombstone
list for ``ttl_seconds`` so a lookup that was already in flight cannot store it again.

A task that is not listening remembers nothing, so it can miss no sign-out: until its subscription
is confirmed, from the moment it fails, when a heartbeat PING on the subscription goes unanswered (a
half-open connection that would otherwise look quiet forever), after the Redis client reconnected on its
own (whatever was published in between is lost, so everything remembered is dropped), and after one
of its own announcements could not be published (it subscribes again before it remembers anything).

The revocation bound: a session ended any other way (deleted from Redis by hand, a refresh token
revoked at Entra and noticed by oauth2-proxy, a sign-out whose publish failed) keeps working for at
most ``ttl_seconds`` on a task that remembered it. ``ttl_seconds = 0`` turns the cache off.

Hand-written around :class:`cachetools.TTLCache` (the library gives the expiring, bounded map; the
lifetime cap, the tombstones and the broadcast are this module's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service_runtime.tasks import cancel_and_wait
from verifier.sources.access_token import CacheCounter

log = logging.getLogger(__name__)

#: How long a live session is remembered by default; the cross-task revocation bound.
DEFAULT_SESSION_CACHE_SECONDS = 5
DEFAULT_SESSION_CACHE_SIZE = 10_000
MAX_SESSION_CACHE_SECONDS = 60
#: Where sign-outs are announced to every verifier task; the message is the session's binding in hex.
SESSION_ENDED_CHANNEL = "eba:session-ended"
#: How long a listener waits before subscribing again after losing Redis.
RESUBSCRIBE_SECONDS = 1.0
#: How long the subscription may be silent before the listener PINGs it, and how long it then waits
#: for the answer: a dead subscription is noticed within twice this, well inside the cache lifetime.
HEARTBEAT_SECONDS = 1.0


class SessionCacheMetrics(Protocol):
    """The service's metrics, as far as this cache reports to them (pre-bound counters)."""

    session_cache_hit: CacheCounter
    session_cache_miss: CacheCounter


def cache_key(cookie_header: str) -> bytes:
    """The key of one exact session cookie: a hash, so the cache holds no cookie value."""
    return hashlib.sha256(cookie_header.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class RememberedSession:
    access_token: str
    binding: bytes
    #: Unix time the sign-in began (the absolute lifetime counts from it).
    started: int


class SessionCache:
    """Live sessions by cookie hash, for a few seconds, ended by binding; see the module docstring."""

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_SESSION_CACHE_SECONDS,
        maxsize: int = DEFAULT_SESSION_CACHE_SIZE,
        *,
        clock: Callable[[], float] = time.time,
        metrics: SessionCacheMetrics | None = None,
    ) -> None:
        if ttl_seconds < 0 or ttl_seconds > MAX_SESSION_CACHE_SECONDS:
            raise ValueError(f"ttl_seconds must be between 0 and {MAX_SESSION_CACHE_SECONDS}")
        if maxsize < 1:
            raise ValueError("maxsize must be positive")
        self.ttl_seconds = ttl_seconds
        self.enabled = ttl_seconds > 0
        #: False while sign-outs of other tasks could be missed (see :class:`SessionEndBroadcast`):
        #: then nothing is remembered or used.
        self.listening = True
        self._metrics = metrics
        ttl = max(ttl_seconds, 1)
        self._live: TTLCache[bytes, RememberedSession] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)
        #: Bindings of sessions ended within the last ``ttl`` seconds.
        self._ended: TTLCache[bytes, bool] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)

    def get(self, key: bytes, *, now: int, max_age: int) -> RememberedSession | None:
        """The remembered session for ``key``, unless there is none, its session has ended, or its
        sign-in is past ``max_age`` (then it is forgotten, and the caller takes the full path that
        signs it out)."""
        if not (self.enabled and self.listening):
            return None
        remembered = self._live.get(key)
        if remembered is not None and (
            now - remembered.started >= max_age or remembered.binding in self._ended
        ):
            self._live.pop(key, None)
            remembered = None
        metrics = self._metrics
        if metrics is not None:
            (metrics.session_cache_miss if remembered is None else metrics.session_cache_hit).inc()
        return remembered

    def remember(self, key: bytes, session: RememberedSession) -> None:
        """Store a live session, unless it was signed out within the last ``ttl_seconds``."""
        if self.enabled and self.listening and session.binding not in self._ended:
            self._live[key] = session

    def forget(self, key: bytes) -> None:
        """Drop one entry (its token no longer passes): the next request asks oauth2-proxy."""
        self._live.pop(key, None)

    def end(self, binding: bytes) -> None:
        """The session with this binding is being signed out: no cookie of it is answered from
        memory, and none is stored again for ``ttl_seconds`` (a lookup already in flight may still
        come back with it). Its entries are dropped when next looked up."""
        if self.enabled:
            self._ended[binding] = True

    def stop_listening(self) -> None:
        """Sign-outs elsewhere may go unheard from now on: forget everything, remember nothing."""
        self.listening = False
        self._live.clear()

    def start_listening(self) -> None:
        """Sign-outs are heard again from now on. Whatever was remembered before is dropped: a
        sign-out may have been published while the subscription was being made."""
        self._live.clear()
        self.listening = True

    def __len__(self) -> int:
        return len(self._live)


class SessionEndBroadcast:
    """Sign-outs announced to, and heard from, every verifier task over Redis pub/sub.

    :meth:`run` keeps one subscription to :data:`SESSION_ENDED_CHANNEL` and ends each announced
    session in the local cache. Until the subscription is confirmed, and from the moment it fails,
    the cache is switched off (:meth:`SessionCache.stop_listening`): a task that might have missed a
    sign-out must not answer from memory. It subscribes again every ``resubscribe_seconds``.

    A quiet channel is normal, so silence proves nothing: after ``heartbeat_seconds`` without a
    message the listener sends PING on the subscription, and a PING unanswered for another
    ``heartbeat_seconds`` counts as a failed subscription (a frozen Redis, a half-open connection).
    """

    def __init__(
        self,
        redis: Redis,
        cache: SessionCache,
        *,
        resubscribe_seconds: float = RESUBSCRIBE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._redis = redis
        self._cache = cache
        self._resubscribe_seconds = resubscribe_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._task: asyncio.Task[None] | None = None
        cache.stop_listening()

    def start(self) -> None:
        if self._cache.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="session-end-listener")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._cache.stop_listening()

    async def announce(self, binding: bytes) -> None:
        """Tell every task (this one included) that the session with this binding has ended.

        When Redis cannot be told, the other tasks' remembered copies end within ``ttl_seconds``;
        this task stops answering from memory and subscribes again, since whatever broke the publish
        may have cost it other tasks' announcements too."""
        self._cache.end(binding)
        if not self._cache.enabled:
            return
        try:
            await self._redis.publish(SESSION_ENDED_CHANNEL, binding.hex())
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "could not announce a sign-out to the other tasks (%s); they forget it within %s s, "
                "and this task answers nothing from memory until it listens again",
                type(exc).__name__,
                self._cache.ttl_seconds,
            )
            self._restart()

    def _restart(self) -> None:
        """Stop answering from memory and subscribe again on a new connection."""
        self._cache.stop_listening()
        if self._task is not None:
            self._task.cancel()
            self._task = asyncio.get_running_loop().create_task(self.run(), name="session-end-listener")

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop answering from memory, then try again
                # Once per outage, not once per attempt.
                if self._cache.listening or not failing:
                    log.warning("not hearing other tasks' sign-outs (%s); cache off", type(exc).__name__)
                failing = True
            finally:
                self._cache.stop_listening()
            await asyncio.sleep(self._resubscribe_seconds)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(SESSION_ENDED_CHANNEL)
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=self._heartbeat_seconds)
                if message is None:
                    if pinged:
                        raise TimeoutError(f"no answer to a PING within {self._heartbeat_seconds} s")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message["type"] == "subscribe":
                    # The first confirmation, or one after the client reconnected and subscribed
                    # again on its own: either way, anything remembered before it is dropped.
                    self._cache.start_listening()
                elif message["type"] == "message":
                    self._hear(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _hear(self, data: object) -> None:
        try:
            binding = bytes.fromhex(data.decode("ascii") if isinstance(data, bytes) else str(data))
        except ValueError:
            return  # not ours; nothing to end
        if len(binding) == hashlib.sha256().digest_size:
            self._cache.end(binding)
