"""Requests pinned to one task by its nginx port, past the balancer, and a steady load through it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client


def pin(stack: ScaleOutStack, index: int, url: str) -> str:
    """``url`` on the public origin (the balancer) rewritten to task ``index``'s own nginx."""
    public = stack.topology.public_origin
    return stack.task_origin(index) + url[len(public) :] if url.startswith(public) else url


def sign_in_through(stack: ScaleOutStack, index: int, username: str, password: str) -> edge_client.SignIn:
    """Sign in with every request to our edge (start, callback, the page after) sent to one task.

    oauth2-proxy's redirects name the public origin (its redirect URL is the balancer's); each is
    rewritten to the task's port, as if the balancer had sent the whole flow to that one task.
    """
    client = edge_client.new_client(stack)
    result = edge_client.SignIn(client)
    url, method, data = stack.task_origin(index) + "/", "GET", None
    for _ in range(16):
        response = client.request(method, url, data=data)
        location = response.headers.get("location", "")
        result.hops.append(
            edge_client.Hop(
                method, url, response.status_code, location, response.headers.get_list("set-cookie")
            )
        )
        if response.status_code in (301, 302, 303, 307, 308) and location:
            url, method, data = pin(stack, index, urljoin(url, location)), "GET", None
            continue
        if url.startswith(stack.topology.devidp_origin) and data is None:
            action, fields = edge_client.password_form(response.text)
            fields.update({"username": username, "password": password, "signin": "password"})
            fields.pop("pick", None)
            fields.pop("cancel", None)
            url, method, data = urljoin(url, action), "POST", fields
            continue
        assert response.status_code == 200, f"{response.status_code} at {url}"
        assert url.startswith(stack.task_origin(index)), url
        return result
    raise AssertionError(f"sign-in did not finish: {[h.url for h in result.hops]}")


# --- steady load through the balancer ------------------------------------------------------------------


@dataclass
class LoadResult:
    """Every answer a load loop got, by (kind, status, reason); connection errors as status 0."""

    counts: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, status: int, reason: str) -> None:
        with self.lock:
            self.counts[(kind, status, reason)] += 1

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def snapshot(self) -> Counter[tuple[str, int, str]]:
        with self.lock:
            return Counter(self.counts)


Request = Callable[[httpx.Client], httpx.Response]


class SteadyLoad:
    """``workers`` threads each sending ``request`` in a loop until stopped, recording every answer."""

    def __init__(self, stack: ScaleOutStack, requests: dict[str, Request], *, workers_each: int = 2) -> None:
        self.stack = stack
        self.requests = requests
        self.result = LoadResult()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(kind,), daemon=True, name=f"load-{kind}-{i}")
            for kind in requests
            for i in range(workers_each)
        ]

    def _loop(self, kind: str) -> None:
        with edge_client.new_client(self.stack, timeout=30.0) as client:
            while not self._stop.is_set():
                try:
                    response = self.requests[kind](client)
                except httpx.HTTPError as exc:
                    self.result.record(kind, 0, type(exc).__name__)
                    continue
                reason = ""
                if response.headers.get("content-type", "").startswith("application/json"):
                    body = response.json()
                    reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
                self.result.record(kind, response.status_code, reason)

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for_requests(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` more answers have come in (the load is really flowing)."""
        target = self.result.total() + count
        deadline = time.monotonic() + timeout
        while self.result.total() < target:
            assert time.monotonic() < deadline, f"the load stalled: {self.result.snapshot()}"
            time.sleep(0.05)
