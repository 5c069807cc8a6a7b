"""What the verifier keeps in Redis about sessions: when each sign-in started (the absolute lifetime),
which sessions belong to one Entra sign-in session and to one user (so they can be ended without their
cookies), and whether the session a cookie names is still stored."""

from __future__ import annotations

import hashlib
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
#: The sessions of one Entra sign-in session (``sid``, hashed) and of one user (``oid``): sets of
#: ``<binding hex> <oauth2-proxy ticket id>``, each expiring with its newest session.
SID_INDEX_KEY_PREFIX = "eba:sessions-by-sid:"
OID_INDEX_KEY_PREFIX = "eba:sessions-by-oid:"
#: "Every session of this sid / of this oid that began before the value has ended": what closes the
#: race with a session signed in but not yet recorded when its end was asked for.
SID_ENDED_KEY_PREFIX = "eba:sid-ended:"
OID_ENDED_KEY_PREFIX = "eba:oid-ended:"

#: The start time of a session that was ended (by sid or oid): the next request of any task finds it
#: and signs the session out. Below every real start time.
ENDED = -1

#: Record a sign-in seen for the first time; one atomic round trip. KEYS: its start, its sid index
#: (a placeholder key, never written, when the ID token names no sid), its oid index, the sid's and
#: the oid's end marks. ARGV: the start, how long to keep, the index member, whether there is a sid.
#: Another task may have recorded it first: then its start stands. Returns the start, or ENDED when
#: the session's sid was ended, or its user after its start.
_REGISTER_SCRIPT = """
local started = redis.call('GET', KEYS[1])
if started then return started end
local start = tonumber(ARGV[1])
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then start = -1 end
local oid_ended = redis.call('GET', KEYS[5])
if oid_ended and tonumber(oid_ended) > start then start = -1 end
redis.call('SET', KEYS[1], start, 'EX', ARGV[2])
if start >= 0 then
  if ARGV[4] == '1' then
    redis.call('SADD', KEYS[2], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
  end
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return start
"""

#: End every session of one index; one atomic round trip. KEYS: the index and its end mark. ARGV:
#: the end mark's value, how long to keep it, the start-key prefix. Each member's start becomes
#: ENDED (so the next request of any task signs it out, with its cookie) and its oauth2-proxy session
#: is deleted (so its refresh token is gone now). Returns the members' bindings.
#: The keys built inside the script all live on the one Redis (or ElastiCache shard) the sessions use.
_END_SCRIPT = """
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local members = redis.call('SMEMBERS', KEYS[1])
local bindings = {}
for _, member in ipairs(members) do
  local binding, ticket = string.match(member, '^(%x+) (.*)$')
  if binding then
    redis.call('SET', ARGV[3] .. binding, -1, 'KEEPTTL')
    if ticket ~= '' then redis.call('DEL', ticket) end
    table.insert(bindings, binding)
  end
end
redis.call('DEL', KEYS[1])
return bindings
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


def _hashed(value: str) -> str:
    # The sid is the key to a sign-out: kept only as a hash, so reading Redis does not hand it out.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class SessionRegistry:
    """What every verifier task knows about each sign-in, in Redis: when it began, and which sessions
    belong to one Entra sign-in session (``sid``) and to one user (``oid``), so they can be ended
    without their cookies.

    A sign-in is recorded the first time any task sees it (:meth:`register`, atomic, so two tasks
    racing agree); every later request only reads its start (:meth:`started_at`, one ``GET``). Ending
    by sid or oid marks every recorded session ended and deletes its oauth2-proxy session, and leaves
    a mark that ends a session recorded later but begun before it. Every command is safe to repeat.
    """

    def __init__(self, redis: Redis, *, metrics: UpstreamMetrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics
        self._register = redis.register_script(_REGISTER_SCRIPT)
        self._end = redis.register_script(_END_SCRIPT)

    async def started_at(self, binding: bytes) -> int | None:
        """When this sign-in began; :data:`ENDED` once it was ended; None if no task has seen it."""
        key = SESSION_START_KEY_PREFIX + binding.hex()
        stored = await _repeatable_redis_call(
            self._metrics, "session start store", lambda: self._redis.get(key)
        )
        return None if stored is None else int(stored)

    async def register(
        self, binding: bytes, *, ticket_id: str | None, oid: str, sid: str, start: int, keep_seconds: int
    ) -> int:
        """Record a sign-in that began at ``start``; its start as stored (or :data:`ENDED`)."""
        member = f"{binding.hex()} {ticket_id or ''}"
        keys = [
            SESSION_START_KEY_PREFIX + binding.hex(),
            SID_INDEX_KEY_PREFIX + (_hashed(sid) if sid else "-"),
            OID_INDEX_KEY_PREFIX + oid,
            SID_ENDED_KEY_PREFIX + (_hashed(sid) if sid else "-"),
            OID_ENDED_KEY_PREFIX + oid,
        ]
        stored = await _repeatable_redis_call(
            self._metrics,
            "session start store",
            lambda: self._register(keys=keys, args=[start, keep_seconds, member, "1" if sid else "0"]),
        )
        return int(stored)

    async def end_sign_in(self, sid: str, *, keep_seconds: int) -> list[bytes]:
        """End every session of the Entra sign-in session ``sid``; their bindings."""
        return await self._end_index(
            SID_INDEX_KEY_PREFIX + _hashed(sid), SID_ENDED_KEY_PREFIX + _hashed(sid), 1, keep_seconds
        )

    async def end_user(self, oid: str, *, now: int, keep_seconds: int) -> list[bytes]:
        """End every session of user ``oid`` begun before ``now`` (a sign-in in the same second as the
        end is a new one); their bindings."""
        index, mark = OID_INDEX_KEY_PREFIX + oid, OID_ENDED_KEY_PREFIX + oid
        return await self._end_index(index, mark, now, keep_seconds)

    async def _end_index(self, index: str, mark: str, value: int, keep_seconds: int) -> list[bytes]:
        ended = await _repeatable_redis_call(
            self._metrics,
            "session index",
            lambda: self._end(keys=[index, mark], args=[value, keep_seconds, SESSION_START_KEY_PREFIX]),
        )
        return [bytes.fromhex(b.decode() if isinstance(b, bytes) else b) for b in ended]


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
