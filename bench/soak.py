"""``python -m bench.soak`` (``make soak``): the two-task stack behind HAProxy under mixed traffic.

First the capacity of the stack is measured (closed loop: ``--workers`` threads sending the mix as
fast as answers come back, ``--capacity-seconds``), then the same mix is sent open loop at ``--load``
(70 %) of that rate for ``--minutes`` (20). Every minute it prints the answers by kind and status, the
p50/p99 latency, the resident memory of every process of the stack (nginx with its workers), and what
Redis holds (keys by kind, ``used_memory``); at the end the bytes per session, spent CSRF token and
sign-in start, and each process's growth once the spent tokens expire as fast as they are spent.

The mix: bearer reads (``GET /api/me``), cookie reads (``GET /api/projects``) and SPA pages (``GET /``)
of a signed-in browser, writes with a CSRF token (``PATCH /api/projects/{id}``, each answer hands out
the next token), and refused tokens (a bearer token with a broken signature: 401 is the expected answer).
Every other status is unexpected. Goals: no unexpected status; no process grows more than 5 % after
the first minute. ``--write`` puts the figures into bench/README.md between its soak markers.

The load generator runs on the same two cores as the stack, so "capacity" is that of the whole
machine, client included; the figures compare runs on one machine, not machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bench.lifecycle import terminate_as_exit
from stack.scaleout import ScaleOutStack
from stack.topology import SESSION_COOKIE_NAME, free_port, free_port_topology
from tests.e2e import edge_client
from verifier.sources.csrf import DEFAULT_TTL_SECONDS, SPENT_KEY_PREFIX
from verifier.sources.session.store import SESSION_START_KEY_PREFIX

README = Path(__file__).resolve().parent / "README.md"
#: The minute from which Redis should hold steady: spent CSRF tokens live 600 s, so from minute 11 on
#: as many expire as are spent.
SETTLED_MINUTE = DEFAULT_TTL_SECONDS // 60 + 1
BEGIN = "<!-- measured by `python -m bench.soak`: begin (rewritten on every run with --write) -->"
END = "<!-- measured by `python -m bench.soak`: end -->"
USER = ("bob@contoso-dev.example", "bob-password")

#: Kind -> (share of the mix, the one expected status).
MIX: dict[str, tuple[float, int]] = {
    "bearer_read": (0.35, 200),
    "cookie_read": (0.20, 200),
    "page": (0.10, 200),
    "csrf_write": (0.15, 200),
    "refused_token": (0.20, 401),
}


class Worker:
    """One signed-in browser plus a bearer token: sends any kind of the mix on its own client."""

    def __init__(self, stack: ScaleOutStack) -> None:
        self.origin = stack.topology.public_origin
        self.stack = stack
        self.client = edge_client.new_client(stack)
        edge_client.sign_in(stack, *USER, client=self.client)
        first = self.client.get(self.origin + "/api/me")
        self.csrf = first.headers["x-csrf-token"]
        # Writes update one project of this worker's (creating one per write would hit the owner's
        # project quota within a minute).
        created = self.client.post(
            self.origin + "/api/projects",
            headers={"X-CSRF-Token": self.csrf, "Origin": self.origin},
            json={"name": "soak"},
        )
        created.raise_for_status()
        self.csrf = created.headers["x-csrf-token"]
        self.project_url = f"{self.origin}/api/projects/{created.json()['id']}"
        self.writes = 0
        self.token, self.token_expires = "", 0.0

    def _bearer(self) -> str:
        if time.time() > self.token_expires - 60:
            self.token = edge_client.password_token(self.stack, *USER)
            self.token_expires = time.time() + 300  # devidp's shortest lifetime is longer than this
        return self.token

    def send(self, kind: str) -> int:
        if kind == "bearer_read":
            r = self.client.get(
                self.origin + "/api/me", headers={"Authorization": f"Bearer {self._bearer()}"}
            )
        elif kind == "cookie_read":
            r = self.client.get(self.origin + "/api/projects")
        elif kind == "page":
            r = self.client.get(self.origin + "/")
        elif kind == "csrf_write":
            self.writes += 1
            r = self.client.patch(
                self.project_url,
                headers={"X-CSRF-Token": self.csrf, "Origin": self.origin},
                json={"description": f"soak write {self.writes}"},
            )
        else:  # refused_token: the signature's last characters changed
            token = self._bearer()
            broken = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            r = self.client.get(self.origin + "/api/me", headers={"Authorization": f"Bearer {broken}"})
        if "x-csrf-token" in r.headers:
            self.csrf = r.headers["x-csrf-token"]
        return r.status_code


@dataclass
class Window:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    by_kind_ms: dict[str, list[float]] = field(default_factory=dict)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window = Window()

    def record(self, kind: str, status: int, latency_ms: float) -> None:
        with self.lock:
            self.window.statuses[(kind, status)] += 1
            self.window.latencies_ms.append(latency_ms)
            self.window.by_kind_ms.setdefault(kind, []).append(latency_ms)

    def take(self) -> Window:
        with self.lock:
            window, self.window = self.window, Window()
        return window


def _kinds(rng: random.Random) -> Callable[[], str]:
    names = list(MIX)
    weights = [MIX[n][0] for n in names]
    return lambda: rng.choices(names, weights)[0]


def _run(
    workers: list[Worker], recorder: Recorder, stop: threading.Event, per_worker_rate: float | None
) -> list[threading.Thread]:
    def loop(worker: Worker, seed: int) -> None:
        pick = _kinds(random.Random(seed))
        next_at = time.monotonic()
        while not stop.is_set():
            if per_worker_rate is not None:
                # Open loop: requests leave on schedule whether or not earlier ones were slow.
                next_at += random.expovariate(per_worker_rate)
                delay = next_at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
            kind = pick()
            started = time.perf_counter()
            try:
                status = worker.send(kind)
            except httpx.HTTPError:
                status = 0
            recorder.record(kind, status, (time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=loop, args=(w, i), daemon=True) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    return threads


# --- memory --------------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_by_process(stack: ScaleOutStack) -> dict[str, int]:
    """KiB resident per process of the stack, each with its children (nginx's and HAProxy's workers)."""
    tree = _children()
    found: dict[str, int] = {}
    for name, proc in stack.processes().items():
        if proc.pid is None:
            continue
        pids, total = [proc.pid], 0
        while pids:
            pid = pids.pop()
            total += _rss_kib(pid)
            pids.extend(tree.get(pid, []))
        found[name] = total
    return found


# --- what Redis holds ----------------------------------------------------------------------------------

#: Redis's key spaces by what they hold: oauth2-proxy's sessions (with their refresh locks), the
#: verifier's spent CSRF tokens and sign-in start times.
KEY_SPACES: dict[str, str] = {
    "sessions": f"{SESSION_COOKIE_NAME}-*",
    "spent CSRF tokens": f"{SPENT_KEY_PREFIX}*",
    "sign-in starts": f"{SESSION_START_KEY_PREFIX}*",
}


@dataclass
class RedisCensus:
    keys: dict[str, int]
    used_bytes: int
    #: Average bytes per key of each space (MEMORY USAGE of up to 100 keys), 0 when it has none.
    bytes_per_key: dict[str, float]


def redis_census(stack: ScaleOutStack) -> RedisCensus:
    client = redis.Redis.from_url(stack.topology.redis_admin_url)
    with client:
        keys: dict[str, int] = {}
        sizes: dict[str, float] = {}
        for space, pattern in KEY_SPACES.items():
            found = list(client.scan_iter(match=pattern, count=1000))
            keys[space] = len(found)
            sample = [client.memory_usage(key) or 0 for key in found[:100]]
            sizes[space] = sum(sample) / len(sample) if sample else 0.0
        return RedisCensus(keys, int(client.info("memory")["used_memory"]), sizes)


# --- the run -------------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _unexpected(statuses: Counter[tuple[str, int]]) -> int:
    return sum(n for (kind, status), n in statuses.items() if status != MIX[kind][1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured capacity (0.7)")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument("--write", action="store_true", help="write the figures into bench/README.md")
    args = parser.parse_args(argv)

    run_dir = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    stack = ScaleOutStack(free_port_topology(run_dir, postgres_port=free_port()), tasks=2)
    print(f"Starting two tasks behind HAProxy in {run_dir} ...", flush=True)
    # SIGTERM (a timeout, a CI job) stops the stack too, as Ctrl-C does.
    with terminate_as_exit():
        lines: list[str] = []

        def out(line: str = "") -> None:
            print(line, flush=True)
            lines.append(line)

        try:
            stack.start()
            workers = [Worker(stack) for _ in range(args.workers)]
            recorder = Recorder()
            stop = threading.Event()
            threads = _run(workers, recorder, stop, None)
            time.sleep(args.capacity_seconds)  # the measurement period itself, not a wait for a condition
            stop.set()
            for t in threads:
                t.join()
            measured = recorder.take()
            capacity = sum(measured.statuses.values()) / args.capacity_seconds
            rate = capacity * args.load
            p50, p99 = _percentile(measured.latencies_ms, 50), _percentile(measured.latencies_ms, 99)
            out(
                f"Capacity (closed loop, {args.workers} workers, {args.capacity_seconds:.0f} s): "
                f"{capacity:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"unexpected {_unexpected(measured.statuses)}"
            )
            out(f"Soak: {args.minutes} min open loop at {args.load:.0%} = {rate:.0f} req/s")
            out()
            out("| minute | requests | by kind: status x n | unexpected | p50 ms | p99 ms |")
            out("|---:|---:|---|---:|---:|---:|")
            stop = threading.Event()
            threads = _run(workers, recorder, stop, rate / len(workers))
            rss_rows: list[dict[str, int]] = []
            census: list[RedisCensus] = []
            kind_p50: list[dict[str, float]] = []
            unexpected_total = 0
            start = time.monotonic()
            for minute in range(1, args.minutes + 1):
                stop.wait(max(0.0, start + 60 * minute - time.monotonic()))
                window = recorder.take()
                rss_rows.append(rss_by_process(stack))
                census.append(redis_census(stack))
                kind_p50.append({kind: _percentile(v, 50) for kind, v in window.by_kind_ms.items()})
                unexpected_total += _unexpected(window.statuses)
                by_kind = ", ".join(f"{k} {s}x{n}" for (k, s), n in sorted(window.statuses.items()))
                p50, p99 = _percentile(window.latencies_ms, 50), _percentile(window.latencies_ms, 99)
                count, bad = sum(window.statuses.values()), _unexpected(window.statuses)
                out(f"| {minute} | {count} | {by_kind} | {bad} | {p50:.1f} | {p99:.1f} |")
            stop.set()
            for t in threads:
                t.join()
            out()
            out("| process | RSS after minute 1 (MiB) | at the end (MiB) | growth |")
            out("|---|---:|---:|---:|")
            worst = 0.0
            for name in rss_rows[0]:
                first, last = rss_rows[0][name], rss_rows[-1].get(name, 0)
                growth = (last - first) / first * 100 if first else 0.0
                worst = max(worst, growth)
                out(f"| {name} | {first / 1024:.1f} | {last / 1024:.1f} | {growth:+.1f} % |")
            out()
            # Which kind of request a change of latency comes from: pages and /api/me by bearer stay
            # at the edge, cookie reads and writes reach the database.
            out("| minute | " + " | ".join(f"p50 ms {kind}" for kind in MIX) + " |")
            out("|---:|" + "---:|" * len(MIX))
            for minute, p50s in enumerate(kind_p50, 1):
                out(f"| {minute} | " + " | ".join(f"{p50s.get(kind, 0.0):.1f}" for kind in MIX) + " |")
            out()
            spaces = list(KEY_SPACES)
            headings = " | ".join(f"Redis keys: {space}" for space in spaces)
            out(f"| minute | {headings} | used_memory (MiB) |")
            out("|---:|" + "---:|" * (len(spaces) + 1))
            for minute, counted in enumerate(census, 1):
                row = " | ".join(str(counted.keys[space]) for space in spaces)
                out(f"| {minute} | {row} | {counted.used_bytes / 1048576:.1f} |")
            out()
            sizes = ", ".join(f"{space} {census[-1].bytes_per_key[space]:.0f}" for space in spaces)
            out(f"Bytes per key at the end (MEMORY USAGE, up to 100 keys each): {sizes}.")
            settled_from = min(len(rss_rows), SETTLED_MINUTE)
            # Without a run past the spent tokens' lifetime, the whole run is what there is to judge.
            settled_growths = [worst]
            if len(rss_rows) > settled_from:
                settled_growths = []
                out()
                out(f"Growth from minute {settled_from} (spent CSRF tokens now expire as fast as spent):")
                out()
                out("| process | RSS at that minute (MiB) | at the end (MiB) | growth |")
                out("|---|---:|---:|---:|")
                for name in rss_rows[0]:
                    first, last = rss_rows[settled_from - 1][name], rss_rows[-1].get(name, 0)
                    growth = (last - first) / first * 100 if first else 0.0
                    settled_growths.append(growth)
                    out(f"| {name} | {first / 1024:.1f} | {last / 1024:.1f} | {growth:+.1f} % |")
            out()
            verdict = "met" if unexpected_total == 0 else "missed"
            out(f"- Unexpected statuses: {unexpected_total} (goal 0): **{verdict}**.")
            out(f"- Largest growth after the first minute: {worst:+.1f} % (while spent CSRF tokens pile up).")
            settled_worst = max(settled_growths)
            verdict = "met" if settled_worst <= 5 else "missed"
            out(
                f"- Largest growth from minute {settled_from} to the end: {settled_worst:+.1f} % "
                f"(goal at most 5 %): **{verdict}**."
            )
            for w in workers:
                w.client.close()
        finally:
            stack.stop()
    if args.write:
        heading = (
            f"### Soak ({os.cpu_count()} CPUs, Python {platform.python_version()}, {args.minutes} min at "
            f"{args.load:.0%} of capacity; load average {os.getloadavg()[0]:.1f} at the end)"
        )
        section = "\n".join([BEGIN, heading, "", *lines, END])
        text = README.read_text(encoding="utf-8")
        # The README keeps the markers in its "Soak" section; only what lies between them is replaced.
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
        README.write_text(text, encoding="utf-8")
    return 0 if unexpected_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
