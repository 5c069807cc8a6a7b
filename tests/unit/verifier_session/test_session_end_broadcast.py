"""The sign-out broadcast against a real redis-server: a task that might miss another task's sign-out
answers nothing from memory, whether its subscription broke loudly (Redis stopped), silently (Redis
frozen, the connection half-open), was made again behind its back (the client reconnected), or its
own announcement could not be published."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from verifier.sources.csrf import redis_client
from verifier.sources.session_cache import (
    SESSION_ENDED_CHANNEL,
    RememberedSession,
    SessionCache,
    SessionEndBroadcast,
    cache_key,
)

from .conftest import RedisServer, start_redis

HEARTBEAT = 0.2
RESUBSCRIBE = 0.1
BINDING = b"s" * 32
SESSION = RememberedSession(access_token="at", binding=BINDING, started=int(time.time()))
KEY = cache_key("__Host-oauth2_proxy=djIuYQ|1800000000|c2ln")


async def until(condition: Callable[[], bool], failure: str, *, seconds: float = 5.0) -> float:
    """Waits for ``condition``; returns how long that took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, failure
        await asyncio.sleep(0.01)
    return time.monotonic() - start


class Task:
    """One verifier task's cache and listener on a Redis URL."""

    def __init__(self, url: str) -> None:
        self.redis = redis_client(url)
        self.cache = SessionCache(60)
        self.broadcast = SessionEndBroadcast(
            self.redis, self.cache, resubscribe_seconds=RESUBSCRIBE, heartbeat_seconds=HEARTBEAT
        )

    async def started(self) -> Task:
        self.broadcast.start()
        await until(lambda: self.cache.listening, "never subscribed to the sign-out channel")
        return self

    def remembers(self, key: bytes = KEY) -> bool:
        return self.cache.get(key, now=int(time.time()), max_age=3600) is not None

    async def close(self) -> None:
        await self.broadcast.close()
        await self.redis.aclose()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = start_redis(tmp_path)
    yield server
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
async def tasks() -> AsyncIterator[Callable[[str], asyncio.Future[Task]]]:
    made: list[Task] = []

    async def make(url: str) -> Task:
        task = await Task(url).started()
        made.append(task)
        return task

    yield make  # type: ignore[misc]
    for task in made:
        await task.close()


async def test_a_sign_out_on_one_task_ends_every_spelling_of_the_session_on_another(
    own_redis: RedisServer, tasks: Callable[[str], asyncio.Future[Task]]
) -> None:
    a, b = await tasks(own_redis.url), await tasks(own_redis.url)
    spellings = [cache_key(f"__Host-oauth2_proxy=djIuYQ|{n}|c2ln") for n in range(3)]
    other = cache_key("__Host-oauth2_proxy=b3RoZXI|1|c2ln")
    for key in spellings:
        b.cache.remember(key, SESSION)
    b.cache.remember(other, RememberedSession("at2", b"o" * 32, SESSION.started))
    await a.broadcast.announce(BINDING)
    # Redis has handed the message to b's connection when PUBLISH returns; b reads it at once.
    await until(lambda: not any(map(b.remembers, spellings)), "b still answers from memory", seconds=1)
    assert b.remembers(other)
    assert b.cache.listening and a.cache.listening


async def test_a_frozen_redis_is_noticed_by_the_heartbeat_and_memory_is_dropped(
    own_redis: RedisServer, tasks: Callable[[str], asyncio.Future[Task]]
) -> None:
    task = await tasks(own_redis.url)
    task.cache.remember(KEY, SESSION)
    assert task.remembers()
    # SIGSTOP: the connection stays open and silent, as when Redis hangs or a link is half-open.
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    noticed = await until(lambda: not task.cache.listening, "a frozen subscription went unnoticed")
    assert noticed < 2 * HEARTBEAT + 1.0
    assert not task.remembers()
    os.kill(own_redis.process.pid, signal.SIGCONT)
    await until(lambda: task.cache.listening, "did not subscribe again after Redis thawed")
    task.cache.remember(KEY, SESSION)
    assert task.remembers()


async def test_a_subscription_made_again_behind_the_listeners_back_drops_memory(
    own_redis: RedisServer, tasks: Callable[[str], asyncio.Future[Task]]
) -> None:
    task = await tasks(own_redis.url)
    admin = Redis.from_url(own_redis.url)
    try:
        before = await admin.client_list(_type="pubsub")
        assert len(before) == 1
        task.cache.remember(KEY, SESSION)
        # The server drops the subscriber's connection: whether the client raises or reconnects on
        # its own, announcements in between are lost, so nothing remembered before may survive.
        await admin.client_kill_filter(_type="pubsub")
        await until(lambda: not task.remembers(), "memory from before the reconnect survived")

        async def subscribed_again() -> bool:
            now = await admin.client_list(_type="pubsub")
            return len(now) == 1 and now[0]["id"] != before[0]["id"]

        deadline = time.monotonic() + 5
        while not await subscribed_again():
            assert time.monotonic() < deadline, "never subscribed again"
            await asyncio.sleep(0.02)
        await until(lambda: task.cache.listening, "not listening after subscribing again")
    finally:
        await admin.aclose()


async def test_a_failed_announcement_stops_answers_from_memory_until_the_task_listens_again(
    own_redis: RedisServer, tasks: Callable[[str], asyncio.Future[Task]]
) -> None:
    admin = Redis.from_url(own_redis.url)
    try:
        # A user that may subscribe but not publish: the announcement fails, the subscription does not.
        await admin.acl_setuser(
            "listener",
            enabled=True,
            passwords=["+listener-password"],
            commands=["+@all", "-publish"],
            keys=["*"],
            channels=["*"],
        )
        host_port = own_redis.url.removeprefix("redis://")
        task = await tasks(f"redis://listener:listener-password@{host_port}")
        other_key = cache_key("__Host-oauth2_proxy=b3RoZXI|1|c2ln")
        task.cache.remember(other_key, RememberedSession("at2", b"o" * 32, SESSION.started))
        first = (await admin.client_list(_type="pubsub"))[0]["id"]
        await task.broadcast.announce(BINDING)
        # Its own copy ends at once; everything else is dropped until a new subscription is confirmed.
        assert not task.remembers(other_key)
        assert not task.cache.listening
        await until(lambda: task.cache.listening, "never listened again after the failed publish")
        assert (await admin.client_list(_type="pubsub"))[0]["id"] != first
        # The ended session stays ended while its tombstone lasts.
        task.cache.remember(KEY, SESSION)
        assert not task.remembers()
    finally:
        await admin.aclose()


async def test_a_quiet_channel_is_kept_alive_by_pings_and_stays_in_use(
    own_redis: RedisServer, tasks: Callable[[str], asyncio.Future[Task]]
) -> None:
    task = await tasks(own_redis.url)
    task.cache.remember(KEY, SESSION)
    admin = Redis.from_url(own_redis.url)
    try:
        await asyncio.sleep(6 * HEARTBEAT)  # several heartbeats, no message on the channel
        assert task.cache.listening and task.remembers()
        assert await admin.pubsub_numsub(SESSION_ENDED_CHANNEL) == [(SESSION_ENDED_CHANNEL.encode(), 1)]
        stats = await admin.info("commandstats")
        assert stats["cmdstat_ping"]["calls"] >= 3
    finally:
        await admin.aclose()
