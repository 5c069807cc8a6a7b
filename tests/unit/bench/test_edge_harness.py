"""The edge benchmark's pure parts: its README section, its goals, its CPU reading, its profile summary.

The harness itself starts the whole stack and takes minutes, so it is not run here; these pin what
its output means.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.edge import profiles, report
from bench.edge.measure import LoadResult, cpu_seconds, process_tree

ROWS = [
    "nginx_static", "bare", "api_direct", "in_app", "in_app_refused", "azure_auth", "plain_cookie_me",
    "plain_page", "edge_healthz", "edge_bearer", "edge_cookie", "edge_page", "edge_cookie_uncached",
    "edge_page_uncached", "edge_miss", "edge_refused",
]  # fmt: skip


def _result(cpu_us: float, rps: float = 1000.0, p99: float = 4.0) -> LoadResult:
    requests = int(rps * 5)
    return LoadResult(requests, 5.0, 0, 0, 1.0, p99, {"verifier": cpu_us * requests / 1e6})


def _report(cpu: dict[str, float]) -> report.Report:
    return report.Report(
        rows=[(key, f"row {key}") for key in ROWS],
        results={key: [_result(cpu.get(key, 100.0))] * 3 for key in ROWS},
        repetitions=3,
        duration=5,
        connections=16,
        cores=2,
        load_before="1.00 1.00 1.00",
        load_after="1.00 1.00 1.00",
        token_count=10_000,
    )


def test_every_row_and_goal_is_printed_with_its_median() -> None:
    text = _report({"edge_bearer": 300.0, "in_app": 200.0}).render()
    for key in ROWS:
        assert f"| row {key} | 1,000 | 1.00 | 4.00 |" in text
    assert "| edge bearer `/api/me` CPU/req vs the in-app PyJWT design | <= 1.00x | 1.50x | **no** |" in text
    identity = "| identity cost: edge bearer `/api/me` minus edge `/api/healthz` | <= 80 µs | 200 µs |"
    assert identity in text
    assert "| edge bearer `/api/me` p99 at the benchmark's connections | <= 5 ms | 4.00 ms | yes |" in text


def test_the_readme_section_is_appended_once_then_replaced_and_the_rest_is_kept(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- verify:begin -->\nverify table\n<!-- verify:end -->\n")
    report.write_readme_section(readme, "first table\n")
    report.write_readme_section(readme, "second table\n")
    text = readme.read_text()
    assert text.count(report.BEGIN_MARKER) == 1
    assert "second table" in text and "first table" not in text
    assert text.startswith("# Benchmarks\n\n<!-- verify:begin -->\nverify table\n<!-- verify:end -->\n")


def test_cpu_is_read_for_a_process_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: sum(range(1000))"])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(child.pid) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in process_tree(os.getpid())
        assert cpu_seconds(child.pid) >= 0.05
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) == 0.0


def test_profile_summary_leaves_waiting_threads_out_and_names_the_hot_function(tmp_path: Path) -> None:
    raw = tmp_path / "api.raw"
    raw.write_text(
        'process 1:"python -m fastapi_app";thread (0x1): MainThread;main (app.py:3);'
        "healthz (fastapi_app/routes/health.py:20);ping (fastapi_app/store.py:82) 30\n"
        'process 1:"python -m fastapi_app";thread (0x1): MainThread;main (app.py:3);'
        "send (h11/_connection.py:10) 10\n"
        'process 1:"python -m fastapi_app";thread (0x2): AnyIO worker thread;'
        "WorkerThread.run (anyio/_backends/_asyncio.py:1);Condition.wait (threading.py:320) 960\n"
    )
    text = profiles.summarise(raw, "API", 1.0)
    assert "40 running samples" in text and "960 samples of threads waiting" in text
    assert "   75.0%  ping (fastapi_app/store.py)" in text
    assert "   75.0%  fastapi_app" in text
    assert "Condition.wait" not in text
