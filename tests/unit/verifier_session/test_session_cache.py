"""The remembered-session cache on its own: lifetime, absolute-lifetime cap, tombstones, listening."""

from __future__ import annotations

import pytest

from tests.support.token_forge import ManualClock
from verifier.sources.session_cache import (
    MAX_SESSION_CACHE_SECONDS,
    RememberedSession,
    SessionCache,
    cache_key,
)

NOW = 1_800_000_000
KEY = cache_key("__Host-oauth2_proxy=djIuYQ|1800000000|c2ln")
SESSION = RememberedSession(access_token="at", binding=b"b" * 32, started=NOW)


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class Metrics:
    def __init__(self) -> None:
        self.session_cache_hit = Counter()
        self.session_cache_miss = Counter()


def test_a_remembered_session_is_found_until_its_time_is_up() -> None:
    clock = ManualClock(NOW)
    metrics = Metrics()
    cache = SessionCache(5, clock=clock, metrics=metrics)
    assert cache.get(KEY, now=NOW, max_age=3600) is None
    cache.remember(KEY, SESSION)
    clock.advance(4.9)
    assert cache.get(KEY, now=NOW + 4, max_age=3600) == SESSION
    clock.advance(0.2)
    assert cache.get(KEY, now=NOW + 5, max_age=3600) is None
    assert (metrics.session_cache_hit.value, metrics.session_cache_miss.value) == (1, 2)


def test_the_key_is_a_hash_of_the_exact_cookie() -> None:
    assert len(KEY) == 32
    assert cache_key("__Host-oauth2_proxy=djIuYQ|1800000000|c2lm") != KEY
    assert b"djIuYQ" not in KEY


def test_a_session_past_its_absolute_lifetime_is_forgotten() -> None:
    cache = SessionCache(60, clock=ManualClock(NOW))
    cache.remember(KEY, SESSION)
    assert cache.get(KEY, now=NOW + 99, max_age=100) == SESSION
    assert cache.get(KEY, now=NOW + 100, max_age=100) is None
    assert len(cache) == 0


def test_an_ended_session_is_not_remembered_again_until_the_cache_lifetime_has_passed() -> None:
    clock = ManualClock(NOW)
    cache = SessionCache(5, clock=clock)
    cache.remember(KEY, SESSION)
    cache.end(SESSION.binding)
    assert cache.get(KEY, now=NOW, max_age=3600) is None
    assert len(cache) == 0
    cache.remember(KEY, SESSION)
    assert cache.get(KEY, now=NOW, max_age=3600) is None
    clock.advance(5)
    cache.remember(KEY, SESSION)
    assert cache.get(KEY, now=NOW + 5, max_age=3600) == SESSION


def test_ending_a_session_ends_every_cookie_spelling_of_it_and_no_other_session() -> None:
    cache = SessionCache(60, clock=ManualClock(NOW))
    other = RememberedSession(access_token="at2", binding=b"o" * 32, started=NOW)
    spellings = [cache_key(f"__Host-oauth2_proxy=djIuYQ|{NOW + n}|c2ln{n}") for n in range(3)]
    for key in spellings:
        cache.remember(key, SESSION)
    cache.remember(KEY, other)
    cache.end(SESSION.binding)
    assert [cache.get(key, now=NOW, max_age=3600) for key in spellings] == [None, None, None]
    assert cache.get(KEY, now=NOW, max_age=3600) == other


def test_listening_again_drops_what_was_remembered_before() -> None:
    cache = SessionCache(60, clock=ManualClock(NOW))
    cache.remember(KEY, SESSION)
    cache.start_listening()  # a new subscription: announcements may have been missed before it
    assert cache.get(KEY, now=NOW, max_age=3600) is None


def test_while_not_listening_nothing_is_kept_or_used() -> None:
    cache = SessionCache(5, clock=ManualClock(NOW))
    cache.remember(KEY, SESSION)
    cache.stop_listening()
    assert len(cache) == 0
    cache.remember(KEY, SESSION)
    assert cache.get(KEY, now=NOW, max_age=3600) is None
    cache.start_listening()
    cache.remember(KEY, SESSION)
    assert cache.get(KEY, now=NOW, max_age=3600) == SESSION


def test_zero_seconds_turns_the_cache_off() -> None:
    cache = SessionCache(0, clock=ManualClock(NOW))
    cache.remember(KEY, SESSION)
    assert cache.get(KEY, now=NOW, max_age=3600) is None
    assert not cache.enabled


def test_the_size_bound_holds() -> None:
    cache = SessionCache(5, maxsize=2, clock=ManualClock(NOW))
    for n in range(3):
        cache.remember(cache_key(f"c={n}"), SESSION)
    assert len(cache) == 2


@pytest.mark.parametrize("seconds", [-1, MAX_SESSION_CACHE_SECONDS + 1])
def test_lifetimes_outside_the_bounds_are_refused(seconds: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        SessionCache(seconds)
