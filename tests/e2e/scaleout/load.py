"""A steady load through the balancer: worker threads sending one kind of request each, every answer
recorded by (kind, status, reason). Used by the rolling-restart and fault tests."""

from __future__ import annotations

import contextlib
import email.utils
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import jwt

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client

#: Sends one request on the worker's own client.
Request = Callable[[httpx.Client], httpx.Response]
#: Prepares a worker's client once (signs it in) before its loop starts.
Setup = Callable[[httpx.Client], None]


@dataclass(frozen=True, slots=True)
class Kind:
    request: Request
    setup: Setup | None = None
    workers: int = 2


class BearerToken:
    """A user's access token from devidp's password grant, fetched again shortly before it expires
    (the stack's tokens live seconds), shared by every bearer worker."""

    def __init__(self, stack: ScaleOutStack, username: str, password: str) -> None:
        self._stack, self._username, self._password = stack, username, password
        self._lock = threading.Lock()
        self._token, self._expires_at = "", 0.0

    def header(self) -> dict[str, str]:
        with self._lock:
            if time.time() > self._expires_at - 5:
                self._token = edge_client.password_token(self._stack, self._username, self._password)
                claims = jwt.decode(self._token, options={"verify_signature": False})
                self._expires_at = float(claims["exp"])
            return {"Authorization": f"Bearer {self._token}"}


@dataclass
class LoadResult:
    counts: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    #: Project ids the API acknowledged with 201 (the writes that must survive a database restart).
    acknowledged: list[str] = field(default_factory=list)
    #: Answers that would have signed a browser out (a Set-Cookie deleting the session cookie), and
    #: 503s without Retry-After, by kind.
    deletions: Counter[str] = field(default_factory=Counter)
    without_retry_after: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: httpx.Response | None, error: str = "") -> None:
        status, reason = (0, error) if response is None else (response.status_code, _reason(response))
        with self.lock:
            self.counts[(kind, status, reason)] += 1
            if response is None:
                return
            if response.status_code == 201:
                self.acknowledged.append(str(response.json()["id"]))
            if any(_deletes_a_cookie(line) for line in response.headers.get_list("set-cookie")):
                self.deletions[kind] += 1
            if response.status_code == 503 and not response.headers.get("retry-after"):
                self.without_retry_after[kind] += 1

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def snapshot(self) -> Counter[tuple[str, int, str]]:
        with self.lock:
            return Counter(self.counts)


def _deletes_a_cookie(set_cookie: str) -> bool:
    """A Set-Cookie that removes its cookie: an empty value, ``Max-Age`` 0 or less, or an
    ``Expires`` in the past (oauth2-proxy's clearing cookie has all three)."""
    name_value, *attributes = (part.strip() for part in set_cookie.split(";"))
    if name_value.partition("=")[2] == "":
        return True
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        if key.lower() == "max-age" and value.lstrip("-").isdigit() and int(value) <= 0:
            return True
        if key.lower() == "expires":
            with contextlib.suppress(TypeError, ValueError):
                if email.utils.parsedate_to_datetime(value).timestamp() < time.time():
                    return True
    return False


def _reason(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return ""
    body = response.json()
    return str(body.get("reason", "")) if isinstance(body, dict) else ""


class SteadyLoad:
    """Every kind's workers loop until the ``with`` block ends; :attr:`result` holds every answer."""

    def __init__(self, stack: ScaleOutStack, kinds: dict[str, Kind]) -> None:
        self.stack = stack
        self.kinds = kinds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._ready = threading.Barrier(sum(k.workers for k in kinds.values()) + 1, timeout=120)
        self._threads = [
            threading.Thread(target=self._loop, args=(name,), daemon=True, name=f"load-{name}-{i}")
            for name, kind in kinds.items()
            for i in range(kind.workers)
        ]

    def _loop(self, name: str) -> None:
        kind = self.kinds[name]
        with edge_client.new_client(self.stack) as client:
            try:
                if kind.setup is not None:
                    kind.setup(client)
            except BaseException:
                self._ready.abort()  # the test fails at once instead of waiting for this worker
                raise
            self._ready.wait()
            while not self._stop.is_set():
                try:
                    response = kind.request(client)
                except httpx.HTTPError as exc:
                    self.result.record(name, None, type(exc).__name__)
                    continue
                self.result.record(name, response)

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        self._ready.wait()  # every worker is signed in: the load starts now, all at once
        self.wait_for_requests(20)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def count_since(self, mark: Counter[tuple[str, int, str]], key: tuple[str, int, str]) -> int:
        """How many answers ``key`` (kind, status, reason) came in since the snapshot ``mark``."""
        return (self.result.snapshot() - mark)[key]

    def wait_for_requests(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` more answers have come in: the load is really flowing."""
        target = self.result.total() + count
        deadline = time.monotonic() + timeout
        while self.result.total() < target:
            assert time.monotonic() < deadline, f"the load stalled: {self.result.snapshot()}"
            time.sleep(0.05)


def task_requests_served(stack: ScaleOutStack, index: int) -> int:
    """How many requests the balancer has sent to task ``index`` so far (HAProxy's stot)."""
    assert stack.balancer is not None
    return int(stack.balancer.server_stats()[f"task-{index + 1}"]["stot"])
