"""What the long benchmarks share about their own life: ending cleanly when asked to."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C does: through the ``finally`` blocks that stop every process
    the benchmark started (a ``timeout`` or a CI job sends SIGTERM; without this the stack it
    started would outlive it)."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
