"""Real processes: start one with its log in the run folder, wait until it answers, stop it.

Every failure a person can meet here (a program that is not installed, a port someone else holds, a
process that dies while starting) becomes a :class:`StackError` whose message names the component,
the program or port, and what to do about it, followed by the tail of the component's log.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import redis

#: Where Debian puts nginx (not on a normal user's PATH).
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def labelled(rows: Sequence[tuple[str, object]]) -> list[str]:
    """``label: value`` lines for a start-up banner, the values aligned in one column."""
    width = max(len(label) for label, _ in rows) + 2
    return [f"  {label + ':':<{width}}{value}" for label, value in rows]


class Running:
    """Something with ``start()`` and ``stop()`` that ``with`` starts, and stops however the block ends."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class StackError(Exception):
    """The stack cannot start or keep running; the message says what and what to do."""


def find_program(name: str, hint: str, *, explicit: Path | None = None) -> Path:
    """The absolute path of ``name`` (or ``explicit``), or a StackError saying how to install it."""
    if explicit is not None:
        if explicit.is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise StackError(f"{name} is missing: {explicit} is not an executable file. {hint}")
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if found is None:
        raise StackError(f"{name} is missing: it is not on PATH or in /usr/sbin. {hint}")
    return Path(found)


def check_port_free(host: str, port: int, component: str) -> None:
    """Raise a StackError naming ``component`` when ``host:port`` is already taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StackError(
                    f"port {port} on {host} is already in use, and {component} needs it. Stop whatever "
                    f"listens there (`ss -ltnp 'sport = :{port}'` shows it), or start the stack on other "
                    "ports: `python -m stack up --base-port 18000`."
                ) from None
            raise StackError(f"cannot use port {port} on {host} for {component}: {exc.strerror}") from None


# --- readiness probes ----------------------------------------------------------------------------

Probe = Callable[[], bool]


def tcp_probe(host: str, port: int) -> Probe:
    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return probe


def redis_probe(host: str, port: int) -> Probe:
    """Redis answers PING with +PONG only once it has loaded its snapshot."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    return probe


def redis_url_probe(url: str) -> Probe:
    """PING through redis-py, for a Redis that wants TLS and a password (the URL carries both)."""

    def probe() -> bool:
        try:
            with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    return probe


def http_probe(
    url: str,
    *,
    ca_file: Path | None = None,
    expect: Sequence[int] = (200,),
    client_cert: tuple[Path, Path] | None = None,
) -> Probe:
    """Ready when ``url`` answers one of ``expect``; ``client_cert`` (certificate, key) for a server
    that requires one (mutual TLS)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    if client_cert is not None:
        assert isinstance(verify, ssl.SSLContext), "a client certificate needs the server's CA file too"
        verify.load_cert_chain(*client_cert)

    def probe() -> bool:
        try:
            with httpx.Client(verify=verify, timeout=1.0, trust_env=False) as client:
                return client.get(url).status_code in expect
        except httpx.HTTPError:
            return False

    return probe


# --- one process ---------------------------------------------------------------------------------


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log written)"
    tail = text.splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) or "    (log is empty)"


@dataclass
class ManagedProcess:
    """One component of the stack: a command, its environment, its port and how to tell it is ready."""

    name: str
    argv: list[str]
    port: int
    probe: Probe
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready_timeout: float = 30.0
    stop_signal: int = signal.SIGTERM
    #: Other ports the process listens on (the verifier's metrics), checked before it starts.
    extra_ports: Mapping[str, int] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check_ports(self, host: str) -> None:
        check_port_free(host, self.port, self.name)
        for label, port in self.extra_ports.items():
            check_port_free(host, port, label)

    def start(self, host: str) -> None:
        if self.running:
            return
        self.check_ports(host)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            try:
                # Own session: Ctrl-C in the terminal reaches the launcher only, which then stops
                # everything in order instead of every process dying at once.
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StackError(f"cannot start {self.name} ({self.argv[0]}): {exc.strerror}") from None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise StackError(
                    f"{self.name} exited with status {self._proc.returncode} while starting. "
                    f"Its log ({self.log_path}) ends with:\n{_log_tail(self.log_path)}"
                )
            if self.probe():
                return
            time.sleep(0.1)
        raise StackError(
            f"{self.name} did not become ready within {self.ready_timeout:.0f}s on port {self.port}. "
            f"Its log ({self.log_path}) ends with:\n{_log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 8.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The whole process group: uvicorn or nginx workers must not outlive their parent.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        self._proc = None

    def wait_port_released(self, host: str, timeout: float = 5.0) -> None:
        """After a stop: the port is free again (so a restart on the same port cannot race it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                check_port_free(host, self.port, self.name)
                return
            except StackError:
                time.sleep(0.05)
