"""Redis faults under mixed load on two tasks: nobody is signed out, nothing passes without identity,
and every answer during the fault says why.

The load: bearer reads, two signed-in browsers reading, a signed-in Writer editing a project with
CSRF tokens, browsers signing in, and requests without credentials. The faults, each on the shared
Redis that both tasks' oauth2-proxy and verifier use:

* **freeze**: Redis stopped with SIGSTOP (connections stay open and silent: a hung server, a
  half-open link, a failover in progress), then SIGCONT;
* **reset**: every connection to Redis reset and every new one reset at once (a network blip);
* **refuse**: every connection reset and the port closed (the address has nobody behind it);
* **restart**: Redis stopped (it writes its snapshot) and started again;
* **crash without snapshot** (its own test): Redis killed and its data lost; the old cookies then
  name sessions that are gone, which is 401 ``no_session`` and a new sign-in, not 503 for ever.

During a fault a cookie request is 200 or 503 with ``Retry-After`` (never 401, never a cookie
deletion), a cookie write is 201 or 503 (never 403), a bearer request is 200, and a request without
credentials is 401. Afterwards every browser's session works again and the remembered-session cache
answers again on both tasks. Each fault's figures are written to ``run/session-faults.md``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client
from tests.e2e.scaleout.load import Kind, SteadyLoad
from tests.e2e.scaleout.traffic import (
    READER,
    anonymous_reads,
    bearer_reads,
    cookie_reads,
    cookie_writes,
    sign_ins,
)
from tests.support.fault_proxy import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.scaleout]

REPO = Path(__file__).resolve().parents[3]
OK = (200, "")
SESSION_503 = (503, "session_backend_unavailable")
CSRF_503 = (503, "csrf_store_unavailable")
BROWSERS = ("browser-1", "browser-2")
#: What each kind may answer while Redis misbehaves (and until it has recovered).
ALLOWED: dict[str, set[tuple[int, str]]] = {
    "bearer": {OK},
    "anonymous": {(401, "missing_token")},
    "browser-1": {OK, SESSION_503},
    "browser-2": {OK, SESSION_503},
    "writer": {OK, SESSION_503, CSRF_503},
}
TABLE = REPO / "run" / "session-faults.md"
_rows: list[str] = []


def _kinds(stack: ScaleOutStack) -> dict[str, Kind]:
    return {
        "bearer": bearer_reads(stack),
        "anonymous": anonymous_reads(stack),
        "browser-1": replace(cookie_reads(stack), workers=1),
        "browser-2": replace(cookie_reads(stack), workers=1),
        "writer": cookie_writes(stack),
        "sign-in": sign_ins(stack),
    }


def _redis_pid(stack: ScaleOutStack) -> int:
    pid = stack.shared.processes["redis"].pid
    assert pid is not None
    return pid


#: Acts on Redis, directly or through the relay in front of it.
Action = Callable[[ScaleOutStack, FaultProxy], None]
#: Each fault as what starts it and what ends it.
FAULTS: dict[str, tuple[Action, Action]] = {
    "freeze": (
        lambda stack, _: os.kill(_redis_pid(stack), signal.SIGSTOP),
        lambda stack, _: os.kill(_redis_pid(stack), signal.SIGCONT),
    ),
    "reset": (lambda _, relay: relay.set("reset"), lambda _, relay: relay.set("pass")),
    "refuse": (lambda _, relay: relay.set("refuse"), lambda _, relay: relay.set("pass")),
    "restart": (
        lambda stack, _: stack.shared.stop_component("redis"),
        lambda stack, _: stack.shared.start_component("redis"),
    ),
}


def _session_cache_hits(stack: ScaleOutStack, index: int) -> float:
    return edge_client.session_cache_counts(stack.tasks[index])[0]


def _by_kind(answers: Counter[tuple[str, int, str]], kind: str) -> dict[tuple[int, str], int]:
    return {key[1:]: n for key, n in answers.items() if key[0] == kind}


def _row(fault: str, answers: Counter[tuple[str, int, str]], load: SteadyLoad, lost: int) -> str:
    def statuses(kind: str) -> str:
        seen = _by_kind(answers, kind)
        return ", ".join(f"{' '.join(map(str, filter(None, key)))}: {n}" for key, n in sorted(seen.items()))

    passed = sum(n for (kind, status, _), n in answers.items() if kind == "anonymous" and status < 400)
    deletions = sum(load.result.deletions[kind] for kind in (*BROWSERS, "writer"))
    cells = [statuses(kind) for kind in ("bearer", "browser-1", "browser-2", "writer", "sign-in")]
    return f"| {fault} | " + " | ".join(cells) + f" | {lost} | {deletions} | {passed} |"


@pytest.fixture(scope="module", autouse=True)
def fault_table() -> Iterator[None]:
    yield
    if _rows:
        TABLE.parent.mkdir(exist_ok=True)
        TABLE.write_text(
            "| fault | bearer | browser 1 (reads) | browser 2 (reads) | writer (CSRF) | sign-ins "
            "| sessions lost | deletions while the session existed | passed without identity |\n"
            "|---|---|---|---|---|---|---:|---:|---:|\n" + "\n".join(_rows) + "\n"
        )


@pytest.mark.parametrize(
    ("fault", "seconds"),
    [
        ("freeze", 0.5),
        ("freeze", 5.0),
        ("reset", 0.3),
        ("reset", 3.0),
        ("refuse", 0.3),
        ("refuse", 3.0),
        ("restart", 1.0),
    ],
    ids=lambda value: str(value),
)
def test_a_redis_fault_signs_nobody_out_and_every_answer_during_it_says_why(
    stack: ScaleOutStack, redis_relay: FaultProxy, fault: str, seconds: float
) -> None:
    with SteadyLoad(stack, _kinds(stack)) as load:
        load.wait_for_requests(40)
        begin, end = FAULTS[fault]
        begin(stack, redis_relay)
        try:
            time.sleep(seconds)
        finally:
            end(stack, redis_relay)
        # Recovery: every browser's own session answers 200 again, the writer writes again.
        back = load.result.snapshot()
        for kind in (*BROWSERS, "writer"):
            key = (kind, *OK)
            recovered = edge_client.wait_until(lambda key=key: load.count_since(back, key) >= 5, timeout=60)
            assert recovered, (kind, load.result.snapshot() - back)
        # The remembered-session cache comes back into use on both tasks (it is off while a task
        # cannot hear sign-outs, and on again once it listens).
        hits = [_session_cache_hits(stack, index) for index in (0, 1)]
        for index in (0, 1):
            assert edge_client.wait_until(
                lambda index=index: _session_cache_hits(stack, index) > hits[index], timeout=30
            ), f"task {index + 1} never answered from its session cache again"
        settle = load.result.snapshot()
        load.wait_for_requests(300)
        settled = load.result.snapshot() - settle
    answers = load.result.snapshot()
    lost = sum(1 for kind in BROWSERS if set(_by_kind(settled, kind)) != {OK})
    _rows.append(_row(f"{fault} {seconds:g} s", answers, load, lost))
    for kind, allowed in ALLOWED.items():
        assert set(_by_kind(answers, kind)) <= allowed, (kind, _by_kind(answers, kind))
    # A sign-in may fail while Redis cannot store the new session (oauth2-proxy's 500 at the callback)
    # or the page after it cannot read it yet (503); once Redis is back they succeed.
    signed_in = _by_kind(answers, "sign-in")
    assert {status for status, _ in signed_in} <= {200, 500, 503}, signed_in
    assert set(_by_kind(settled, "sign-in")) <= {OK}, _by_kind(settled, "sign-in")
    deletions = {kind: load.result.deletions[kind] for kind in (*BROWSERS, "writer")}
    assert deletions == {kind: 0 for kind in deletions}, deletions
    assert load.result.without_retry_after == Counter(), load.result.without_retry_after
    # After recovery: nothing but success, for every browser (no session was lost) and the writer.
    for kind in (*BROWSERS, "bearer"):
        assert set(_by_kind(settled, kind)) <= {OK}, (kind, _by_kind(settled, kind))
    assert set(_by_kind(settled, "writer")) <= {OK}, _by_kind(settled, "writer")
    assert lost == 0


def test_a_redis_crash_that_loses_every_session_asks_browsers_to_sign_in_again(stack: ScaleOutStack) -> None:
    name = stack.topology.session_cookie_name
    with edge_client.sign_in(stack, *READER) as before:
        cookie = before.client.cookies.get(name)
    redis = stack.shared.processes["redis"]
    assert redis.pid is not None
    os.killpg(redis.pid, signal.SIGKILL)
    edge_client.wait_until(lambda: not redis.running, timeout=10)
    for snapshot in (stack.topology.run_dir / "redis").glob("*.rdb"):
        snapshot.unlink()
    stack.shared.start_component("redis")
    with edge_client.new_client(stack) as client:
        # The session is gone with the data: a plain 401 no_session (and its cookie deleted), on
        # both tasks, once each task reaches Redis again; not 503 for ever.
        for index in (0, 1):
            url = stack.task_origin(index) + "/api/me"

            def refused(url: str = url) -> bool:
                r = client.get(url, headers={"Cookie": f"{name}={cookie}"})
                return r.status_code == 401

            assert edge_client.wait_until(refused, timeout=30)
            r = client.get(url, headers={"Cookie": f"{name}={cookie}"})
            assert (r.status_code, r.json()["reason"]) == (401, "no_session"), r.text
    # Signing in again works, and the new session is served by both tasks.
    with edge_client.sign_in(stack, *READER) as again:
        for index in (0, 1):
            r = again.client.get(stack.task_origin(index) + "/api/me")
            assert r.status_code == 200, r.text
