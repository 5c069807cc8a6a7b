"""The API's CPU per request in-process: the ASGI app called directly, no server, no network.

    python -m bench.api_inprocess                      # this checkout only
    python -m bench.api_inprocess --base /tmp/api-base # old (another checkout) and new, alternating

Each measurement runs in a fresh subprocess that imports ``fastapi_app`` from one checkout, builds
the app with its factory and settings (SQLite, migrated by the lifespan), and awaits
``app(scope, receive, send)`` many times with the scope uvicorn would build for a request that came
through nginx: the ``/api/`` location's allow-listed headers and the verifier's signed identity
headers (:func:`verifier.core.identity.signed_principal_headers`). A bare FastAPI endpoint (the
harness's ``bare`` app) is the floor. CPU is ``time.process_time`` over the loop, so it leaves out
uvicorn, the HTTP parser and the socket, which the edge harness (``python -m bench.edge``) counts.
With ``--base``, old and new run alternately ``--pairs`` times so the machine's load falls on both;
the table gives the median of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = b"bench-identity-signing-key-0123456789abcdef"
ALICE = {
    # The devidp user the edge harness signs in as (devidp/example.toml), as the verifier vouches for her.
    "oid": "a11ce000-0000-4000-8000-000000000001",
    "tid": "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    "principal_type": "user",
    "client_id": "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f",
    "name": "Alice Reader",
    "email": "alice@contoso-dev.example",
    "roles": ("Reader",),
    "scopes": ("user.read",),
    "groups": ("6a7b8c9d-0e1f-4a2b-8c3d-4e5f60718293",),
}
SCENARIOS = ("me_bearer", "me_session", "healthz", "bare")
LABELS = {
    "me_bearer": "`GET /api/me`, bearer identity headers",
    "me_session": "`GET /api/me`, session identity headers (non-ASCII name, 2 roles, 3 groups)",
    "healthz": "`GET /api/healthz`",
    "bare": "bare FastAPI endpoint (the floor)",
}


def _scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    # What uvicorn (httptools) hands the app for a request nginx proxied from the /api/ location.
    edge = {
        "host": "app.contoso-dev.example",
        "x-forwarded-host": "app.contoso-dev.example",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "127.0.0.1",
        "x-real-ip": "127.0.0.1",
        "x-request-id": "3f2a9c1e7b5d4a60b8e2c4f6a1d3e5b7",
        "accept": "*/*",
    }
    raw = [(k.encode(), v.encode()) for k, v in edge.items()]
    raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items() if v]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw,
    }


async def _drive(app: Any, scope: dict[str, Any], count: int) -> tuple[float, int, bytes]:
    status = 0
    body = b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            body = message.get("body", b"")

    started = time.process_time()
    for _ in range(count):
        await app({**scope, "state": {}}, receive, send)
    return (time.process_time() - started) / count * 1e6, status, body


async def _child(root: str, count: int) -> dict[str, float]:
    sys.path.insert(0, root)
    from dataclasses import replace

    from fastapi import FastAPI

    import fastapi_app
    from fastapi_app import ApiSettings, create_app
    from fastapi_app.settings import database_url_for_sqlite
    from verifier.core.identity import Principal, signed_principal_headers

    assert Path(fastapi_app.__file__).is_relative_to(root), fastapi_app.__file__

    bearer = Principal(auth_source="bearer", **ALICE)  # type: ignore[arg-type]
    session = replace(
        bearer,
        auth_source="session",
        name="José Núñez",
        roles=("Reader", "Writer"),
        groups=(
            *ALICE["groups"],
            "7b8c9d0e-1f2a-4b3c-9d4e-5f60718293a4",
            "8c9d0e1f-2a3b-4c4d-8e5f-60718293a4b5",
        ),
    )
    bare = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @bare.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = ApiSettings(
            signing_keys=(KEY,),
            database_url=database_url_for_sqlite(Path(tmp) / "api.sqlite3"),
            authority_url="https://login.microsoftonline.com/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            openapi_client_id=ALICE["client_id"],  # type: ignore[arg-type]
            scope_prefix="api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            for name in SCENARIOS:
                if name.startswith("me_"):
                    principal = bearer if name == "me_bearer" else session
                    headers = signed_principal_headers(
                        principal, key=KEY, method="GET", uri="/api/me", now=int(time.time())
                    )
                    target, scope = app, _scope("GET", "/api/me", headers)
                else:
                    target = app if name == "healthz" else bare
                    scope = _scope("GET", "/api/healthz" if name == "healthz" else "/healthz", {})
                await _drive(target, scope, 200)  # warm up (and check)
                us, status, body = await _drive(target, scope, count)
                if status != 200:
                    raise SystemExit(f"{name}: status {status}: {body[:200]!r}")
                results[name] = us
    return results


def _run(root: Path, count: int) -> dict[str, float]:
    out = subprocess.run(
        # This file, not ``-m``: the other checkout may not have it. The child imports from ``root``.
        [sys.executable, str(Path(__file__).resolve()), "--child", str(root), "--count", str(count)],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, help="another checkout to measure alternately (old)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--count", type=int, default=20_000, help="requests per scenario per run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.count))))
        return 0
    sides = {"old": args.base, "new": ROOT} if args.base else {"this checkout": ROOT}
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.pairs):
        for side, root in sides.items():
            runs[side].append(_run(root.resolve(), args.count))
            figures = ", ".join(f"{k} {v:.1f}" for k, v in runs[side][-1].items())
            print(f"{side}: {figures}", file=sys.stderr)
    names = list(sides)
    print(f"\nCPU µs per request in-process, median of {args.pairs} runs of {args.count:,} requests\n")
    print("| path | " + " | ".join(names) + (" | new/old |" if args.base else " |"))
    print("|---|" + "---:|" * (len(names) + (1 if args.base else 0)))
    for scenario in SCENARIOS:
        medians = [statistics.median(run[scenario] for run in runs[side]) for side in names]
        row = f"| {LABELS[scenario]} | " + " | ".join(f"{m:.1f}" for m in medians)
        print(row + (f" | {medians[1] / medians[0]:.2f}x |" if args.base else " |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
