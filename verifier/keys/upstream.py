"""Timing of one upstream round trip, recorded the same way by every fetcher and source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Literal, Protocol

UpstreamResult = Literal["ok", "refused", "error"]


class UpstreamMetrics(Protocol):
    def record_upstream(self, upstream: str, result: str, seconds: float) -> None: ...


@dataclass(slots=True)
class UpstreamCall:
    """The result of a timed call; ``error`` until the caller says otherwise, so an exception counts
    as one."""

    result: UpstreamResult = "error"


@contextmanager
def timed_upstream(metrics: UpstreamMetrics | None, upstream: str) -> Iterator[UpstreamCall]:
    """Time the ``with`` block as one call to ``upstream``; set ``call.result`` inside it."""
    call = UpstreamCall()
    started = perf_counter()
    try:
        yield call
    finally:
        if metrics is not None:
            metrics.record_upstream(upstream, call.result, perf_counter() - started)
