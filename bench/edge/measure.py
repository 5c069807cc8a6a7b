"""Measuring one load run: wrk for throughput and latency, ``/proc`` for the CPU every server spent.

CPU is read from ``/proc/<pid>/stat`` (utime + stime, all threads) for every process the benchmark
started and all their descendants (nginx and uvicorn workers), before and after wrk runs; wrk itself
is never counted. Processes are grouped by component so a row can say where its CPU went.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import WrkSummary, run_wrk

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _parent_map() -> dict[int, list[int]]:
    """ppid -> child pids of every process alive now (this kernel has no /proc/<pid>/task/*/children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """``pid`` and all its descendants alive right now."""
    children = _parent_map() if children is None else children
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), 0 when it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name is in parentheses and may hold spaces: fields are counted after its ")".
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_by_component(roots: Mapping[str, list[int]]) -> dict[str, dict[int, float]]:
    """component -> {pid: cpu seconds} for every process under each component's root pids."""
    children = _parent_map()
    return {
        name: {pid: cpu_seconds(pid) for root in pids for pid in process_tree(root, children)}
        for name, pids in roots.items()
    }


@dataclass(frozen=True)
class LoadResult(WrkSummary):
    """wrk's summary of one run and the CPU each component spent during it."""

    #: component -> CPU seconds spent during the run
    cpu: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return sum(self.cpu.values()) / self.requests * 1e6 if self.requests else float("nan")

    def component_us_per_request(self, component: str) -> float:
        return self.cpu.get(component, 0.0) / self.requests * 1e6 if self.requests else float("nan")


def run_load(
    url: str,
    *,
    roots: Mapping[str, list[int]],
    duration: float,
    connections: int,
    env: Mapping[str, str],
) -> LoadResult:
    """One wrk run against ``url`` with the CPU of every process under ``roots`` read around it."""
    before = cpu_by_component(roots)
    load = run_wrk(url, connections=connections, duration=duration, env=env)
    after = cpu_by_component(roots)
    cpu = {
        # A process that started during the run (none should) counts from zero; one that ended, not at all.
        name: sum(max(0.0, seconds - before[name].get(pid, 0.0)) for pid, seconds in after[name].items())
        for name in roots
    }
    return LoadResult(**vars(load), cpu=cpu)
