"""One wrk run with ``wrk.lua`` and its summary line, for every benchmark here.

What a request carries comes from the environment the script reads (``BENCH_PATH``,
``BENCH_COOKIE``, ``BENCH_TOKENS``, ``BENCH_ORIGINAL_URI``; see ``wrk.lua``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
_SUMMARY = re.compile(
    r"BENCH requests=(\d+) duration_us=(\d+) non2xx=(\d+) socket_errors=(\d+) p50_us=(\d+) p99_us=(\d+)"
)


@dataclass(frozen=True)
class WrkSummary:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float


def command(url: str, *, connections: int, duration: float) -> list[str]:
    return [
        "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s", "-s", str(SCRIPT), url,
    ]  # fmt: skip


def run_wrk(url: str, *, connections: int, duration: float, env: Mapping[str, str]) -> WrkSummary:
    """Drive ``url`` for ``duration`` seconds and read the script's summary line."""
    out = subprocess.run(
        command(url, connections=connections, duration=duration),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    match = _SUMMARY.search(out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, duration_us, non2xx, socket_errors, p50, p99 = map(int, match.groups())
    return WrkSummary(requests, duration_us / 1e6, non2xx, socket_errors, p50 / 1000, p99 / 1000)
