"""What each suspected API cost is worth: ``python -m bench.edge.variants`` (about 2 minutes, no stack).

The edge table shows our API's ``/api/healthz`` at several times a bare FastAPI endpoint's CPU, and
the profiles name suspects. This runs the candidates side by side, each its own uvicorn process
driven straight by wrk (same options as ``python -m fastapi_app``), interleaved, medians, CPU per
request from ``/proc``:

* the bare endpoint as ``async def`` (on the event loop) and as ``def`` (FastAPI runs it on the
  thread pool, as our routes and their ``current_principal`` dependency are);
* our real API (``fastapi_app.app.create_app``) with and without its JSON access log
  (``API_ACCESS_LOG``), on a throw-away SQLite file;
* the bare endpoint and our API on uvloop + httptools (what ``uvicorn[standard]`` installs), when
  ``--fast-server-path`` names a folder holding them (``pip install --target DIR uvloop httptools``);
  without it those rows are left out.

Not part of the test suite; it changes nothing in the API, it only prices the fixes. The table is
also written to ``bench/profiles/api_variants.md``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from bench.edge.measure import LoadResult, run_load
from bench.edge.profiles import PROFILES_DIR
from stack.processes import ManagedProcess, http_probe
from stack.topology import API_APP_ID_URI, PRIMARY_TENANT_ID, SPA_CLIENT_ID, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- server side (a child process) ----------------------------------------------------------------


def _api_app():  # type: ignore[no-untyped-def]
    from fastapi_app.__main__ import configure_logging
    from fastapi_app.app import create_app
    from fastapi_app.settings import ApiSettings, database_url_for_sqlite

    access_log = os.environ["BENCH_API_ACCESS_LOG"] == "1"
    settings = ApiSettings(
        signing_keys=(secrets.token_bytes(32),),
        database_url=database_url_for_sqlite(Path(os.environ["BENCH_API_DATABASE"])),
        authority_url=f"https://localhost:1/{PRIMARY_TENANT_ID}",
        openapi_client_id=SPA_CLIENT_ID,
        scope_prefix=API_APP_ID_URI,
        access_log=access_log,
    )
    configure_logging(settings.log_level)
    return create_app(settings)


def _bare_sync():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _bare_async():  # type: ignore[no-untyped-def]
    from bench.edge.apps import bare_app

    return bare_app()


APPS = {"bare_async": _bare_async, "bare_sync": _bare_sync, "api": _api_app}


def serve(kind: str) -> None:
    uvicorn.run(
        APPS[kind](),
        host="127.0.0.1",
        port=int(os.environ["BENCH_APP_PORT"]),
        loop=os.environ.get("BENCH_LOOP", "auto"),
        http=os.environ.get("BENCH_HTTP", "auto"),
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_config=None,
        log_level="info",
    )


# --- driver ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    kind: str
    path: str
    env: dict[str, str]


def variants(fast_server_path: Path | None) -> list[Variant]:
    rows = [
        Variant("bare_async", "bare endpoint, `async def` (event loop)", "bare_async", "/healthz", {}),
        Variant("bare_sync", "bare endpoint, `def` (thread pool)", "bare_sync", "/healthz", {}),
        Variant("api_log", "our API `/api/healthz`, access log on (as deployed)", "api", "/api/healthz",
                {"BENCH_API_ACCESS_LOG": "1"}),
        Variant("api_nolog", "our API `/api/healthz`, access log off", "api", "/api/healthz",
                {"BENCH_API_ACCESS_LOG": "0"}),
    ]  # fmt: skip
    if fast_server_path is not None:
        fast = {"PYTHONPATH": str(fast_server_path), "BENCH_LOOP": "uvloop", "BENCH_HTTP": "httptools"}
        rows += [
            Variant("bare_fast", "bare endpoint, `async def`, uvloop + httptools", "bare_async", "/healthz",
                    fast),
            Variant("api_fast", "our API `/api/healthz`, access log on, uvloop + httptools", "api",
                    "/api/healthz", {**fast, "BENCH_API_ACCESS_LOG": "1"}),
        ]  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--fast-server-path", type=Path, help="a folder holding uvloop and httptools")
    args = parser.parse_args()
    rows = variants(args.fast_server_path)
    results: dict[str, list[LoadResult]] = {row.key: [] for row in rows}
    started: dict[str, ManagedProcess] = {}
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as folder:
        work = Path(folder)
        try:
            for row in rows:
                port = free_port()
                process = ManagedProcess(
                    row.label, [sys.executable, "-m", "bench.edge.variants", "--serve", row.kind], port,
                    http_probe(f"http://127.0.0.1:{port}{row.path}"), work / f"{row.key}.log",
                    env={"BENCH_APP_PORT": str(port), "BENCH_API_DATABASE": str(work / f"{row.key}.sqlite3"),
                         **row.env},
                    cwd=REPO_ROOT,
                )  # fmt: skip
                started[row.key] = process
                process.start("127.0.0.1")
                process.wait_ready()
            for row in rows:  # warm-up
                process = started[row.key]
                run_load(f"http://127.0.0.1:{process.port}{row.path}", roots={}, duration=1,
                         connections=args.connections, env={"BENCH_PATH": row.path})  # fmt: skip
            for _ in range(args.repetitions):
                for row in rows:
                    process = started[row.key]
                    assert process.pid is not None
                    result = run_load(
                        f"http://127.0.0.1:{process.port}{row.path}", roots={"server": [process.pid]},
                        duration=args.duration, connections=args.connections, env={"BENCH_PATH": row.path},
                    )  # fmt: skip
                    if result.non2xx or result.socket_errors:
                        raise SystemExit(
                            f"{row.label}: {result.non2xx} non-2xx, {result.socket_errors} errors"
                        )
                    results[row.key].append(result)
                    line = (
                        f"  {row.key:<12} {result.rps:>8,.0f} req/s {result.cpu_us_per_request:>6,.0f} µs/req"
                    )
                    print(line, file=sys.stderr, flush=True)
        finally:
            for process in reversed(list(started.values())):
                process.stop()
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        f"uvicorn straight, wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.repetitions} "
        f"interleaved repetitions, medians; load average {' '.join(load)}",
        "",
        "| variant | req/s | p99 ms | CPU µs/req |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        runs = results[row.key]
        lines.append(
            f"| {row.label} | {statistics.median(r.rps for r in runs):,.0f} | "
            f"{statistics.median(r.p99_ms for r in runs):.2f} | "
            f"{statistics.median(r.cpu_us_per_request for r in runs):,.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    PROFILES_DIR.mkdir(exist_ok=True)
    (PROFILES_DIR / "api_variants.md").write_text(text)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        sys.exit(main())
