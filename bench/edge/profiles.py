"""Where a Python server's CPU goes under one row's load: py-spy samples, summarised as text.

For each scenario wrk drives a row while ``py-spy record --format raw`` samples one server process
(and its worker processes) for a few seconds. The collapsed stacks are summarised into
``bench/profiles/<scenario>.txt``: the share of on-CPU samples by package, by function (self time)
and by function including callees, so the summary says where the time goes without a flame-graph
viewer. Idle threads are not sampled (py-spy leaves out threads waiting on I/O).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import command as wrk_command

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"
SAMPLE_RATE = 200
#: Leaf frames where a thread waits rather than runs. py-spy's own idle detection does not catch
#: them here (thread-pool workers blocked in a C lock), so they are counted apart, not as CPU.
WAITING_LEAVES = {
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
    "EpollSelector.select (selectors.py)",
    # asyncio's default executor thread blocked in SimpleQueue.get (C code, so this is the leaf).
    "_worker (concurrent/futures/thread.py)",
    "Connection._recv (multiprocessing/connection.py)",
}
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    #: the process py-spy samples (with --subprocesses: its workers too)
    pid: int
    url: str
    env: Mapping[str, str]
    #: functions whose share including callees is worth naming (substrings of "function (file)")
    focus: tuple[str, ...] = ()


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def record(scenario: Scenario, seconds: float, out: Path) -> float:
    """Sample ``scenario.pid`` for ``seconds`` while wrk keeps it busy; wrk's req/s over its run."""
    wrk = subprocess.Popen(
        wrk_command(scenario.url, connections=16, duration=seconds + 2),
        env={**os.environ, **scenario.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(1.0)  # past wrk's connection set-up
        subprocess.run(
            [py_spy(), "record", "--pid", str(scenario.pid), "--subprocesses", "--threads",
             "--rate", str(SAMPLE_RATE), "--duration", f"{seconds:g}", "--format", "raw",
             "--output", str(out)],
            check=True, capture_output=True, timeout=seconds + 60,
        )  # fmt: skip
        out_text, _ = wrk.communicate(timeout=seconds + 30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait(timeout=10)
    match = re.search(r"BENCH requests=(\d+) duration_us=(\d+)", out_text)
    return int(match.group(1)) / (int(match.group(2)) / 1e6) if match else float("nan")


def _frame_name(frame: str) -> tuple[str, str]:
    """(``function (file)`` without the line number, package) of one collapsed-stack frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), frame.strip()
    file = match.group("file")
    package = file.split("/", 1)[0] if "/" in file else file.removesuffix(".py")
    return f"{match.group('function')} ({file})", package


def summarise(
    raw: Path,
    title: str,
    seconds: float,
    top: int = 25,
    focus: tuple[str, ...] = (),
    rps: float = float("nan"),
) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    waiting = 0
    focused: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # --threads and --subprocesses put "process ..." and "thread ..." frames at the root.
        thread = " ".join(f.strip() for f in frames if f.startswith(("thread", "process")))
        frames = [f for f in frames if not f.startswith(("thread", "process"))]
        if not frames:
            continue
        if _frame_name(frames[-1])[0] in WAITING_LEAVES:
            waiting += count
            continue
        total += count
        threads[re.sub(r"\(0x[0-9a-f]+\)|\d{3,}", "N", thread) or "main"] += count
        names = [_frame_name(f) for f in frames]
        self_time[names[-1][0]] += count
        packages[names[-1][1]] += count
        for name in {n for n, _ in names}:
            inclusive[name] += count
        for wanted in focus:
            if any(wanted in n for n, _ in names):
                focused[wanted] += count

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [
        title,
        f"{total} running samples at {SAMPLE_RATE} Hz over {seconds:g} s "
        f"(= {total / SAMPLE_RATE / seconds:.2f} cores busy; {waiting} samples of threads waiting in a lock, "
        "a queue or epoll left out). Percentages are of the running samples.",
        f"wrk drove {rps:,.0f} req/s meanwhile: about {total / SAMPLE_RATE / seconds / rps * 1e6:,.0f} µs "
        "of sampled running time per request (py-spy pauses the process to sample, which slows it).",
        "",
        "Self time by package (the file's top folder; stdlib modules by name):",
    ]
    lines += [f"  {pct(n)}  {name}" for name, n in packages.most_common(15)]
    lines += ["", "Self time by thread:"]
    lines += [f"  {pct(n)}  {name}" for name, n in threads.most_common(6)]
    if focus:
        lines += ["", "Named costs, including callees (a sample counts once per name):"]
        lines += [f"  {pct(focused[wanted])}  {wanted}" for wanted in focus]
    lines += ["", f"Top {top} functions by self time:"]
    lines += [f"  {pct(n)}  {name}" for name, n in self_time.most_common(top)]
    lines += ["", f"Top {top} functions including callees:"]
    lines += [f"  {pct(n)}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def run(scenarios: list[Scenario], seconds: float, work: Path, say) -> list[Path]:  # type: ignore[no-untyped-def]
    PROFILES_DIR.mkdir(exist_ok=True)
    written = []
    for scenario in scenarios:
        raw = work / f"{scenario.name}.raw"
        say(f"profiling {scenario.name} ({seconds:g}s) ...")
        rps = record(scenario, seconds, raw)
        target = PROFILES_DIR / f"{scenario.name}.txt"
        target.write_text(summarise(raw, scenario.title, seconds, focus=scenario.focus, rps=rps))
        written.append(target)
    return written
