"""``python -m fastapi_app`` under the real uvicorn: configuration errors, raw URIs, the access log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from fastapi_app.__main__ import tcp_listener
from tests.unit.fastapi_app.conftest import ALICE, API_URI, BOB, CAROL, KEY, SPA_CLIENT_ID, TENANT, sign
from tests.unit.fastapi_app.edge_path import edge_headers
from verifier.core.identity import HEADER_FORWARDED_TOKEN

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "VERIFIER_", "IDENTITY_"))}
    env.update(
        {
            "IDENTITY_SIGNING_KEY": KEY.decode(),
            "API_PORT": str(port),
            "API_DATABASE_PATH": str(tmp_path / "api.sqlite3"),
            "API_AUTHORITY_URL": f"https://localhost:8900/{TENANT}",
            "API_OPENAPI_CLIENT_ID": SPA_CLIENT_ID,
            "API_SCOPE_PREFIX": API_URI,
        }
    )
    return env


def test_bad_configuration_exits_2_listing_every_problem(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    env["IDENTITY_SIGNING_KEY"] = "short"
    env["API_PORT"] = "http"
    del env["API_SCOPE_PREFIX"]
    result = subprocess.run(
        [sys.executable, "-m", "fastapi_app"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    for name in ("IDENTITY_SIGNING_KEY", "API_PORT", "API_SCOPE_PREFIX"):
        assert name in result.stderr
    assert "short" not in result.stderr.replace("too short", "")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    for base, log_path, _pid in serve(tmp_path):
        yield base, log_path


def serve(tmp_path: Path, **extra_env: str) -> Iterator[tuple[str, Path, int]]:
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fastapi_app"],
            env={**server_env(tmp_path, port), **extra_env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/api/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield base, log_path, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_real_server_checks_signatures_over_the_raw_request_uri(server: tuple[str, Path]) -> None:
    base, _ = server
    with httpx.Client(base_url=base) as client:
        created = client.post(
            "/api/projects", json={"name": "Over the wire"}, headers=sign(BOB, "POST", "/api/projects")
        )
        assert created.status_code == 201
        raw = "/api/projects?limit=10&note=a%2Fb%20c"
        ok = client.get(raw, headers=sign(ALICE, "GET", raw))
        assert ok.status_code == 200
        assert ok.json()["items"][0]["name"] == "Over the wire"
        decoded = client.get(raw, headers=sign(ALICE, "GET", "/api/projects?limit=10&note=a/b c"))
        assert decoded.status_code == 401
        assert decoded.json() == {"error": "unauthenticated", "reason": "bad_identity_signature"}


def test_real_server_ignores_forwarded_headers_and_hides_its_name(server: tuple[str, Path]) -> None:
    base, _ = server
    response = httpx.get(f"{base}/api/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    assert "server" not in response.headers


def test_access_log_is_json_without_query_strings_or_tokens(server: tuple[str, Path]) -> None:
    base, log_path = server
    uri = "/api/admin/settings?code=SECRET-QUERY-VALUE"
    # What the edge sends for this endpoint: signed identity headers and, because it re-validates,
    # the caller's token (this server has no re-validation configured, so it answers 503).
    headers = edge_headers(
        CAROL, "PUT", uri, access_token="SECRET-TOKEN-VALUE", key=KEY, now=int(time.time())
    )
    assert headers[HEADER_FORWARDED_TOKEN] == "SECRET-TOKEN-VALUE"
    body = {"read_only": False, "max_projects_per_owner": 5, "banner": ""}
    response = httpx.put(f"{base}{uri}", headers=headers, json=body)
    assert (response.status_code, response.json()["reason"]) == (503, "revalidation_unavailable")

    def access_lines() -> list[dict[str, object]]:
        entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        return [e for e in entries if e.get("event") == "access" and "/api/admin" in str(e.get("path"))]

    # The server writes its access line after answering: wait for it, with a generous deadline.
    deadline = time.monotonic() + 30
    while not access_lines():
        assert time.monotonic() < deadline, f"no access line for /api/admin/settings: {log_path.read_text()}"
        time.sleep(0.05)
    (line,) = access_lines()
    assert (line["method"], line["path"], line["status"], line["oid"], line["reason"]) == (
        "PUT",
        "/api/admin/settings",
        503,
        CAROL.oid,
        "revalidation_unavailable",
    )
    assert "SECRET" not in log_path.read_text()


def child_pids(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    yield from serve(tmp_path, API_WORKERS="2")


def test_api_workers_start_that_many_processes_each_serving_the_app(
    two_workers: tuple[str, Path, int],
) -> None:
    base, log_path, supervisor = two_workers
    # uvicorn's workers are multiprocessing "spawn" children (beside them: multiprocessing's
    # resource tracker).
    workers = [pid for pid in child_pids(supervisor) if b"spawn_main" in _cmdline(pid)]
    assert len(workers) == 2, log_path.read_text()
    with httpx.Client(base_url=base) as client:
        for _ in range(4):
            me = client.get("/api/me", headers=sign(ALICE, "GET", "/api/me"))
            assert (me.status_code, me.json()["oid"]) == (200, ALICE.oid)


def test_the_workers_shared_listener_declares_tcp_so_accepted_sockets_get_tcp_nodelay() -> None:
    config = uvicorn.Config(lambda *_: None, host="127.0.0.1", port=0)
    with tcp_listener(config) as listener:
        listener.listen()
        assert listener.proto == socket.IPPROTO_TCP
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                # asyncio and uvloop turn TCP_NODELAY on only for sockets whose protocol says TCP.
                assert accepted.proto == socket.IPPROTO_TCP
