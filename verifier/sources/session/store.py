"""What the verifier keeps in Redis about sessions: when each sign-in started (the absolute lifetime),
and whether the session a cookie names is still stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from verifier.core.reasons import Reason
from verifier.keys.upstream import UpstreamMetrics, timed_upstream
from verifier.sources.session.rejected import SessionRejected

T = TypeVar("T")

#: How long a sign-in's start time is kept past its lifetime. An expired session is signed out at
#: once; the margin only matters if that sign-out failed and the session stayed in use, and must
#: outlast any retry so the session is never taken for a new one.
SESSION_START_KEEP_SECONDS = 24 * 3600

SESSION_START_KEY_PREFIX = "eba:session-start:"

#: Read the start time, or store ``now`` if there is none yet; one atomic round trip. A script rather
#: than ``SET NX GET``, which Redis accepts only from 7.0 on (ElastiCache may run 6.x).
_START_SCRIPT = """
local started = redis.call('GET', KEYS[1])
if started then return started end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""


async def _repeatable_redis_call(
    metrics: UpstreamMetrics | None, store: str, command: Callable[[], Awaitable[T]]
) -> T:
    """One Redis command that is safe to send twice, timed as the ``redis`` upstream.

    A pooled connection Redis closed (a restart, an idle timeout) fails once and is dropped from the
    pool; one more try on a fresh connection tells that apart from an outage. Any other failure, or a
    second one, is 503 ``session_backend_unavailable`` naming ``store``.
    """
    with timed_upstream(metrics, "redis") as call:
        try:
            try:
                result = await command()
            except RedisConnectionError:
                result = await command()
        except (RedisError, OSError, TimeoutError) as exc:
            raise SessionRejected(
                Reason.SESSION_BACKEND_UNAVAILABLE, f"{store} unreachable ({type(exc).__name__})"
            ) from None
        call.result = "ok"
    return result


class SessionStartStore:
    """When the verifier first saw each sign-in, in Redis, shared by every verifier task.

    The first request of a sign-in stores its time, every later one reads it back, and two tasks
    racing on the first request agree on one value (the script runs atomically, and only ever stores
    the first value, so it is safe to repeat).
    """

    def __init__(self, redis: Redis, *, metrics: UpstreamMetrics | None = None) -> None:
        self._metrics = metrics
        self._script = redis.register_script(_START_SCRIPT)

    async def started_at(self, binding: bytes, *, now: int, keep_seconds: int) -> int:
        key = SESSION_START_KEY_PREFIX + binding.hex()
        stored = await _repeatable_redis_call(
            self._metrics,
            "session start store",
            lambda: self._script(keys=[key], args=[now, keep_seconds]),
        )
        return int(stored)


class StoredSessions:
    """Whether oauth2-proxy's session store still holds a session: read-only, one ``EXISTS``.

    oauth2-proxy answers "this cookie names no session" and "I could not read the store" alike, with
    401 and a cookie-deleting ``Set-Cookie``; a deletion passed on while the session still exists signs
    the user out for good. So before the verifier passes such a refusal on it asks Redis itself.
    """

    def __init__(self, redis: Redis, *, metrics: UpstreamMetrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics

    async def holds(self, ticket_id: str) -> bool:
        found = await _repeatable_redis_call(
            self._metrics, "session store", lambda: self._redis.exists(ticket_id)
        )
        return bool(found)
