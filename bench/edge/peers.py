"""The processes the benchmark starts beside the stack: two nginx servers and the comparison apps.

* **edge nginx**: ``nginx/edge.conf.template`` rendered as the ECS task renders it (plain HTTP, the
  ALB ends TLS; no TLS include), pointing at the stack's own verifier, API and oauth2-proxy. The
  stack's nginx (TLS on, for browsers) is only used to sign in.
* **plain oauth2-proxy nginx**: the textbook design: ``auth_request`` straight to oauth2-proxy's
  ``/oauth2/auth``, the session's access token forwarded in ``Authorization`` to a FastAPI app that
  validates it itself with PyJWT (:mod:`bench.edge.apps`), and the SPA's files.
* **bare** and **in-app** FastAPI apps (:mod:`bench.edge.apps`), served by uvicorn like ours.

Every process is a :class:`stack.processes.ManagedProcess`, in its own process group, stopped (and
its group killed if it lingers) by the harness.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from stack import render
from stack.launcher import Stack, nginx_templates, write_edge_conf
from stack.processes import ManagedProcess, Probe, find_program, http_probe
from stack.topology import Topology, free_port


def _nginx(name: str, folder: Path, http_conf: str, port: int, probe_path: str) -> ManagedProcess:
    nginx = find_program("nginx", "Install it (`apt-get install nginx`) or run `make setup`.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nginx").mkdir(exist_ok=True)
    site = folder / "site.conf"
    site.write_text(http_conf)
    main_conf = folder / "nginx.conf"
    # The launcher's own main configuration (2 workers, temp paths in the folder), around our site.
    main_conf.write_text(
        render.nginx_main_conf(Topology(run_dir=folder), site, running_as_root=os.geteuid() == 0)
    )
    return ManagedProcess(
        name,
        [str(nginx), "-e", "stderr", "-p", str(folder / "nginx"), "-c", str(main_conf),
         "-g", "daemon off; error_log stderr warn;"],
        port, http_probe(f"http://127.0.0.1:{port}{probe_path}"), folder / "nginx.log",
    )  # fmt: skip


def edge_nginx(
    stack: Stack,
    folder: Path,
    *,
    verifier_addr: str | None = None,
    api_addr: str | None = None,
    rewrite: Callable[[str], str] | None = None,
    span_log: str | None = None,
    name: str = "edge nginx",
) -> ManagedProcess:
    """Our edge, from the real template, listening on plain HTTP as on ECS; in front of the stack's
    verifier and API, or of ``verifier_addr`` and ``api_addr``; ``rewrite`` changes the rendered
    ``edge.conf`` (bench/edge/tls.py); ``span_log`` is its ``EDGE_SPAN_LOG`` (bench/edge/traced.py)."""
    topology = stack.topology
    port = free_port()
    values = {
        **render.edge_values(topology),
        **({"EDGE_VERIFIER_ADDR": verifier_addr} if verifier_addr else {}),
        **({"EDGE_API_ADDR": api_addr} if api_addr else {}),
        **({"EDGE_SPAN_LOG": span_log} if span_log else {}),
        "EDGE_LISTEN": f"127.0.0.1:{port}",
        # As on ECS: a glob that matches nothing, so no TLS directives.
        "EDGE_TLS_CONF_GLOB": str(folder / "no-tls" / "*.conf"),
        "EDGE_ACCESS_LOG": str(folder / "access.log"),
    }
    # The edge's files go to folder/conf.d/, beside the main configuration _nginx writes, as its
    # relative includes expect; the site is the one include of edge.conf.
    edge_conf = write_edge_conf(folder, nginx_templates(topology.repo_root), values)
    if rewrite is not None:
        edge_conf.write_text(rewrite(edge_conf.read_text(encoding="utf-8")), encoding="utf-8")
    return _nginx(name, folder, f"include {edge_conf};\n", port, "/healthz")


UNCACHED = "no session cache"


def extra_verifier(
    stack: Stack,
    folder: Path,
    name: str,
    env: dict[str, str],
    probe: Callable[[str], Probe] = lambda address: http_probe(f"http://{address}/readyz"),
) -> ManagedProcess:
    """A second verifier, configured as the stack's, with ``env`` on top, on ports of its own;
    ``probe`` makes its readiness check from its ``host:port``."""
    topology = stack.topology
    assert stack.secrets is not None
    port, metrics_port = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    full_env = {
        "PYTHONUNBUFFERED": "1",
        **render.verifier_env(topology, stack.ca_file, stack.secrets),
        "VERIFIER_PORT": str(port),
        "VERIFIER_METRICS_PORT": str(metrics_port),
        **env,
    }
    return ManagedProcess(
        name, [sys.executable, "-m", "verifier"], port, probe(f"127.0.0.1:{port}"),
        folder / "verifier.log", env=full_env, cwd=topology.repo_root,
    )  # fmt: skip


def extra_api(
    stack: Stack,
    folder: Path,
    name: str,
    env: dict[str, str],
    *,
    argv: list[str] | None = None,
    probe: Callable[[int], Probe] = lambda port: http_probe(f"http://127.0.0.1:{port}/api/healthz"),
) -> ManagedProcess:
    """A second API, configured as the stack's (its own SQLite file), with ``env`` on top, on a port
    of its own; ``argv`` replaces ``python -m fastapi_app``, ``probe`` makes its readiness check from
    its port."""
    topology = stack.topology
    assert stack.secrets is not None
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    full_env = {
        "PYTHONUNBUFFERED": "1",
        **render.api_env(topology, stack.ca_file, stack.secrets),
        "API_PORT": str(port),
        "API_DATABASE_URL": "",
        "API_DATABASE_PATH": str(folder / "api.sqlite3"),
        **env,
    }
    return ManagedProcess(
        name, argv or [sys.executable, "-m", "fastapi_app"], port, probe(port), folder / "api.log",
        env=full_env, cwd=topology.repo_root,
    )  # fmt: skip


def uncached_verifier(stack: Stack, folder: Path) -> ManagedProcess:
    """A second verifier exactly like the stack's but with ``VERIFIER_SESSION_CACHE_SECONDS=0``: every
    cookie request asks oauth2-proxy and Redis, as each first request of a burst does."""
    return extra_verifier(stack, folder, f"verifier ({UNCACHED})", {"VERIFIER_SESSION_CACHE_SECONDS": "0"})


PLAIN_OAUTH2_PROXY_SITE = """\
log_format plain_json escape=json
    '{{"time":"$time_iso8601","request_id":"$request_id","client":"$remote_addr",'
    '"method":"$request_method","path":"$uri","status":$status,"bytes":$body_bytes_sent,'
    '"duration_s":$request_time,"upstream_status":"$upstream_status"}}';

upstream plain_oauth2_proxy {{
    server {oauth2_proxy};
    keepalive 16;
}}
upstream plain_app {{
    server 127.0.0.1:{app_port};
    keepalive 32;
}}

server {{
    listen 127.0.0.1:{port};
    server_tokens off;
    access_log {access_log} plain_json;
    large_client_header_buffers 8 32k;
    proxy_buffer_size 32k;
    proxy_buffers 8 32k;
    proxy_busy_buffers_size 64k;
    proxy_http_version 1.1;

    location = /healthz {{
        access_log off;
        default_type application/json;
        return 200 '{{"status":"ok"}}';
    }}
    location = /oauth2/auth {{
        internal;
        proxy_pass http://plain_oauth2_proxy;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Connection "";
        proxy_set_header Host {public_host};
        proxy_set_header X-Forwarded-Uri $request_uri;
    }}
    location /api/ {{
        auth_request /oauth2/auth;
        auth_request_set $plain_access_token $upstream_http_x_auth_request_access_token;
        error_page 401 = @unauthorized;
        proxy_pass http://plain_app;
        proxy_set_header Connection "";
        proxy_set_header Authorization "Bearer $plain_access_token";
        proxy_set_header Cookie "";
    }}
    location @unauthorized {{
        default_type application/json;
        return 401 '{{"error":"unauthorized"}}';
    }}
    location / {{
        auth_request /oauth2/auth;
        error_page 401 = @sign_in;
        root {spa_root};
        index index.html;
        try_files $uri /index.html;
    }}
    location @sign_in {{
        return 302 /oauth2/start?rd=$request_uri;
    }}
}}
"""


def plain_oauth2_proxy_nginx(stack: Stack, folder: Path, app_port: int) -> ManagedProcess:
    topology = stack.topology
    port = free_port()
    conf = PLAIN_OAUTH2_PROXY_SITE.format(
        oauth2_proxy=topology.oauth2_proxy_addr,
        app_port=app_port,
        port=port,
        access_log=folder / "access.log",
        public_host=topology.public_host,
        spa_root=topology.spa_root,
    )
    return _nginx("plain-design nginx", folder, conf, port, "/healthz")


APP_NAMES = {"bare": "bare FastAPI", "in_app": "in-app PyJWT", "azure_auth": "in-app fastapi-azure-auth"}


def fastapi_app(kind: str, folder: Path, *, workers: int, env: dict[str, str]) -> ManagedProcess:
    """``bare``, ``in_app`` or ``azure_auth`` from :mod:`bench.edge.apps`, on a free port."""
    port = free_port()
    probe_path, expect = ("/healthz", (200,)) if kind == "bare" else ("/api/me", (401,))
    folder.mkdir(parents=True, exist_ok=True)
    repo_root = Path(__file__).resolve().parents[2]
    return ManagedProcess(
        f"{APP_NAMES[kind]} ({workers} worker{'s' if workers > 1 else ''})",
        [sys.executable, "-m", "bench.edge.apps", kind],
        port,
        http_probe(f"http://127.0.0.1:{port}{probe_path}", expect=expect),
        folder / f"{kind}.log",
        env={"PYTHONUNBUFFERED": "1", "BENCH_APP_PORT": str(port), "BENCH_APP_WORKERS": str(workers), **env},
        cwd=repo_root,
    )


def in_app_env(stack: Stack) -> dict[str, str]:
    topology = stack.topology
    return {
        "BENCH_APP_ISSUER": topology.oidc_issuer,
        "BENCH_APP_AUDIENCES": f"{topology.api_app_id_uri},{topology.api_app_id}",
        "BENCH_APP_JWKS_URL": f"{topology.authority}/discovery/v2.0/keys",
        "BENCH_APP_CA_FILE": str(stack.ca_file),
        # fastapi-azure-auth: the API's client id (a v2 token's audience), the tenant, devidp's discovery.
        "BENCH_APP_CLIENT_ID": topology.api_app_id,
        "BENCH_APP_TENANT_ID": topology.tenant_id,
        "BENCH_APP_OPENID_CONFIG_URL": f"{topology.oidc_issuer}/.well-known/openid-configuration",
    }


__all__ = ["edge_nginx", "fastapi_app", "in_app_env", "plain_oauth2_proxy_nginx", "uncached_verifier"]
