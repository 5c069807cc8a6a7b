"""The real nginx edge (nginx/edge.conf.template, rendered as the launcher renders it) in front of a
verifier started by a test, and the real FastAPI app behind it.

The attack catalogue runs once against the verifier directly and once through this edge, because
nginx changes what reaches the verifier: it refuses some requests itself (a repeated
`Authorization` header, headers larger than its buffers), sets X-Original-* from the real request,
and turns the verifier's answers into its own JSON bodies.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

from stack import render
from stack.launcher import nginx_templates, write_edge_conf
from stack.processes import ManagedProcess, find_program, http_probe
from stack.topology import Topology, free_port

REPO = Path(__file__).resolve().parents[2]

API_APP_ID = "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"
SPA_CLIENT_ID = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"


def start_api(run_dir: Path, identity_key: bytes) -> ManagedProcess:
    """``python -m fastapi_app`` on a free port, checking signatures with ``identity_key``."""
    port = free_port()
    env = {
        "IDENTITY_SIGNING_KEY": base64.urlsafe_b64encode(identity_key).rstrip(b"=").decode(),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_DATABASE_PATH": str(run_dir / "api.sqlite3"),
        "API_AUTHORITY_URL": "https://login.microsoftonline.com/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "API_OPENAPI_CLIENT_ID": SPA_CLIENT_ID,
        "API_SCOPE_PREFIX": f"api://{API_APP_ID}",
        "PYTHONUNBUFFERED": "1",
    }
    api = ManagedProcess(
        "api",
        [sys.executable, "-m", "fastapi_app"],
        port,
        http_probe(f"http://127.0.0.1:{port}/api/healthz"),
        run_dir / "api.log",
        env=env,
        cwd=REPO,
        ready_timeout=60.0,
    )
    api.start("127.0.0.1")
    api.wait_ready()
    return api


def start_edge(run_dir: Path, *, verifier_port: int, api_port: int) -> tuple[ManagedProcess, str]:
    """nginx with the project's template on plain HTTP (as behind the ALB); returns it and its URL."""
    nginx = find_program("nginx", "scripts/setup.sh installs it (Debian's nginx).")
    port = free_port()
    topology = Topology(
        run_dir=run_dir,
        nginx_port=port,
        verifier_port=verifier_port,
        api_port=api_port,
        # Nothing listens there: no catalogue case may reach oauth2-proxy.
        oauth2_proxy_port=free_port(),
    )
    values = {
        **render.edge_values(topology),
        "EDGE_LISTEN": f"127.0.0.1:{port}",
        # As on ECS: a glob that matches nothing, so no TLS directives.
        "EDGE_TLS_CONF_GLOB": str(run_dir / "no-tls" / "*.conf"),
    }
    for folder in (topology.conf_dir, topology.logs_dir, run_dir / "nginx"):
        folder.mkdir(parents=True, exist_ok=True)
    edge_conf = write_edge_conf(topology.conf_dir, nginx_templates(REPO), values)
    main_conf = topology.conf_dir / "nginx.conf"
    main_conf.write_text(render.nginx_main_conf(topology, edge_conf, running_as_root=os.geteuid() == 0))
    url = f"http://127.0.0.1:{port}"
    edge = ManagedProcess(
        "nginx",
        [str(nginx), "-e", "stderr", "-p", str(run_dir / "nginx"), "-c", str(main_conf),
         "-g", "daemon off; error_log stderr notice;"],
        port,
        http_probe(f"{url}/healthz"),
        topology.logs_dir / "nginx.log",
    )  # fmt: skip
    edge.start("127.0.0.1")
    edge.wait_ready()
    return edge, url
