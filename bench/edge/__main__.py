"""``python -m bench.edge`` (``make bench-edge``): what one edge request costs beside the other designs.

Starts the real stack with the project's launcher on free ports, the comparison designs beside it
(:mod:`bench.edge.peers`), signs in once and gets tokens (:mod:`bench.edge.credentials`), then
drives every row with wrk, the rows interleaved, ``--repetitions`` times, and prints one table of
medians: req/s, p50/p99 and CPU microseconds per request summed over every server process (wrk
excluded), the goals as ratios beside their targets, and where each row's CPU went by component.
The section between the ``bench-edge`` markers of ``bench/README.md`` is rewritten with the result
(``--no-readme`` leaves it alone). Everything started is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.edge import apache, credentials, peers, profiles, report, tls, traced, uds
from bench.edge.measure import LoadResult, run_load
from bench.lifecycle import terminate_as_exit
from stack.launcher import Stack
from stack.processes import ManagedProcess, check_port_free
from stack.topology import free_port, free_port_topology

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    #: base URL (scheme://host:port) and path
    base: str
    path: str
    #: extra wrk environment: BENCH_COOKIE or BENCH_TOKENS
    env: dict[str, str] = field(default_factory=dict)
    #: the status every request must get (checked once before the load)
    expect: int = 200
    #: a file of tokens per repetition (the cache-miss row): each repetition gets fresh ones
    tokens_per_repetition: list[Path] = field(default_factory=list)


@dataclass
class Running:
    """Everything the benchmark started, stopped in reverse order whatever happens."""

    stack: Stack | None = None
    peers: list[ManagedProcess] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.peers):
            process.stop()
        if self.stack is not None:
            self.stack.stop()

    def listening_ports(self) -> list[int]:
        """Ports still taken after :meth:`stop` (should be none)."""
        ports = [p.port for p in self.peers]
        if self.stack is not None:
            ports += list(self.stack.topology.ports().values())
        taken = []
        for port in ports:
            try:
                check_port_free("127.0.0.1", port, "bench")
            except Exception:
                taken.append(port)
        return taken


def _expect_status(row: Row, env: dict[str, str]) -> None:
    headers: dict[str, str] = {}
    if "BENCH_COOKIE" in env:
        headers["Cookie"] = env["BENCH_COOKIE"]
    if "BENCH_TOKENS" in env:
        first = Path(env["BENCH_TOKENS"]).read_text().split("\n", 1)[0]
        headers["Authorization"] = f"Bearer {first}"
    response = httpx.get(row.base + row.path, headers=headers, timeout=10.0, trust_env=False)
    if response.status_code != row.expect:
        raise SystemExit(
            f"{row.label}: {row.path} answered {response.status_code}, expected {row.expect}: "
            f"{response.text[:300]}"
        )


def build(
    work: Path, running: Running, token_count: int, repetitions: int, say: Callable[[str], None]
) -> list[Row]:
    """Start the stack and the peers, get the credentials; the rows to measure."""
    key_file = work / "devidp-signing-key.pem"
    devidp_config = credentials.devidp_config_with_key_file(
        REPO_ROOT / "devidp" / "example.toml", key_file, work / "devidp-example.toml"
    )
    # Apache's session host signs in at devidp too: its redirect URI is registered before devidp starts.
    apache_ports = apache.reserve_ports()
    apache.register_redirect_uri(devidp_config, apache_ports.redirect_uri)
    topology = free_port_topology(work / "stack", devidp_config=devidp_config)
    say("starting the stack (Redis, devidp, oauth2-proxy, verifier, FastAPI, nginx) ...")
    running.stack = Stack(topology)
    running.stack.start()
    stack = running.stack

    cores = len(os.sched_getaffinity(0))
    bare = peers.fastapi_app("bare", work / "bare", workers=1, env={})
    in_app = peers.fastapi_app("in_app", work / "in-app", workers=cores, env=peers.in_app_env(stack))
    azure_auth = peers.fastapi_app(
        "azure_auth", work / "azure-auth", workers=cores, env=peers.in_app_env(stack)
    )
    edge = peers.edge_nginx(stack, work / "edge-nginx")
    plain = peers.plain_oauth2_proxy_nginx(stack, work / "plain-nginx", in_app.port)
    uncached = peers.uncached_verifier(stack, work / "uncached-verifier")
    edge_uncached = peers.edge_nginx(
        stack, work / "edge-nginx-uncached", verifier_addr=f"127.0.0.1:{uncached.port}",
        name=f"edge nginx ({peers.UNCACHED})",
    )  # fmt: skip
    behind_apache = apache.claims_app(work / "behind-apache")
    httpd = apache.apache_httpd(stack, work / "apache", apache_ports, behind_apache.port)
    for process in (bare, in_app, edge, plain, azure_auth, uncached, edge_uncached, behind_apache, httpd):
        say(f"starting {process.name} on port {process.port} ...")
        running.peers.append(process)
        process.start("127.0.0.1")
        process.wait_ready()
    # The in-VPC TLS option: a verifier and an API of their own, over mutual TLS from nginx.
    verifier_tls = tls.tls_verifier(stack, work / "verifier-tls")
    api_tls = tls.tls_api(stack, work / "api-tls")
    for process in (verifier_tls, api_tls):
        say(f"starting {process.name} on port {process.port} ...")
        running.peers.append(process)
        process.start("127.0.0.1")
        process.wait_ready()
    edge_tls = tls.tls_edge_nginx(stack, work / "edge-nginx-tls", verifier_tls, api_tls)
    say(f"starting {edge_tls.name} on port {edge_tls.port} ...")
    running.peers.append(edge_tls)
    edge_tls.start("127.0.0.1")
    edge_tls.wait_ready()
    # Unix domain sockets between nginx and the sidecars: a verifier and an API of their own.
    verifier_uds, verifier_socket = uds.uds_verifier(stack, work / "verifier-uds")
    api_uds, api_socket = uds.uds_api(stack, work / "api-uds")
    edge_uds = uds.uds_edge_nginx(stack, work / "edge-nginx-uds", verifier_socket, api_socket)
    for process in (verifier_uds, api_uds, edge_uds):
        say(f"starting {process.name} on port {process.port} ...")
        running.peers.append(process)
        process.start("127.0.0.1")
        process.wait_ready()
    # Tracing on: verifiers, APIs and edge nginxes of their own (every trace kept; 5 % kept), exporting
    # to one collector.
    jaeger = traced.collector(work / "jaeger")
    assert jaeger.process is not None
    say(f"starting {jaeger.process.name} on port {jaeger.process.port} ...")
    running.peers.append(jaeger.process)
    jaeger.process.start("127.0.0.1")
    jaeger.process.wait_ready()
    traced_edges = {}
    for sampled in (False, True):
        suffix = "-sampled" if sampled else ""
        relay_port = free_port()
        verifier_traced = traced.traced_verifier(stack, work / f"verifier-traced{suffix}", jaeger, relay_port,
                                                 sampled=sampled)  # fmt: skip
        api_traced = traced.traced_api(stack, work / f"api-traced{suffix}", jaeger, sampled=sampled)
        for process in (verifier_traced, api_traced):
            say(f"starting {process.name} on port {process.port} ...")
            running.peers.append(process)
            process.start("127.0.0.1")
            process.wait_ready()
        edge_traced = traced.traced_edge_nginx(stack, work / f"edge-nginx-traced{suffix}", verifier_traced,
                                               api_traced, relay_port, sampled=sampled)  # fmt: skip
        say(f"starting {edge_traced.name} on port {edge_traced.port} ...")
        running.peers.append(edge_traced)
        edge_traced.start("127.0.0.1")
        edge_traced.wait_ready()
        traced_edges[sampled] = edge_traced

    say("signing in and getting tokens ...")
    cookie = credentials.session_cookie(stack)
    token = credentials.bearer_token(stack)
    one_token = _write(work / "bearer.txt", [token])
    refused = _write(work / "refused.txt", [credentials.refused_token(token)])
    apache_cookie = apache.session_cookie(stack, apache_ports)
    apache.check_bearer_refusals(apache_ports, token, credentials.refused_token(token), key_file)
    started = time.monotonic()
    minted = credentials.distinct_tokens(token, key_file, token_count * repetitions)
    miss_files = [
        _write(work / f"distinct-{i}.txt", minted[i * token_count : (i + 1) * token_count])
        for i in range(repetitions)
    ]
    say(f"minted {len(minted):,} distinct tokens in {time.monotonic() - started:.0f}s")

    # The smallest hashed build file: what a page load fetches several of (through auth_request in
    # the plain design; public, outside auth_request, at our edge).
    asset = min((topology.spa_root / "assets").iterdir(), key=lambda f: f.stat().st_size)
    asset_path = f"/assets/{asset.name}"
    edge_url = f"http://127.0.0.1:{edge.port}"
    uncached_url = f"http://127.0.0.1:{edge_uncached.port}"
    tls_url = f"http://127.0.0.1:{edge_tls.port}"
    traced_url = f"http://127.0.0.1:{traced_edges[False].port}"
    uds_url = f"http://127.0.0.1:{edge_uds.port}"
    sampled_url = f"http://127.0.0.1:{traced_edges[True].port}"
    plain_url = f"http://127.0.0.1:{plain.port}"
    cookie_env = {"BENCH_COOKIE": cookie}
    bearer_env = {"BENCH_TOKENS": str(one_token)}
    workers = f"{cores} worker{'s' if cores > 1 else ''}"
    return [
        Row("nginx_static", "nginx static `/healthz` (edge nginx)", edge_url, "/healthz"),
        Row("bare", "bare FastAPI endpoint, served as ours (uvicorn, 1 worker), direct",
            f"http://127.0.0.1:{bare.port}", "/healthz"),
        Row("api_direct", "our API `GET /api/healthz`, direct (no nginx)", topology.api_url, "/api/healthz"),
        Row("in_app", f"in-app: FastAPI + PyJWT in-process, {workers}, direct, bearer",
            f"http://127.0.0.1:{in_app.port}", "/api/me", bearer_env),
        Row("in_app_refused", f"in-app: refused token (bad signature), {workers}",
            f"http://127.0.0.1:{in_app.port}", "/api/me", {"BENCH_TOKENS": str(refused)}, expect=401),
        Row("azure_auth", f"in-app: FastAPI + fastapi-azure-auth, {workers}, direct, bearer",
            f"http://127.0.0.1:{azure_auth.port}", "/api/me", bearer_env),
        Row("plain_cookie_me", "plain oauth2-proxy: nginx auth_request -> /oauth2/auth, app validates, "
            "`/api/me` cookie", plain_url, "/api/me", cookie_env),
        Row("plain_page", "plain oauth2-proxy: nginx auth_request -> /oauth2/auth, SPA page `/` cookie",
            plain_url, "/", cookie_env),
        Row("plain_asset", f"plain oauth2-proxy: hashed build file ({asset.stat().st_size:,} B), cookie",
            plain_url, asset_path, cookie_env),
        Row("apache_bearer", "Apache + mod_auth_openidc `AuthType oauth20`: JWT signature against the JWKS, "
            "`exp`, `Require claim` iss and aud, every request -> FastAPI trusting its headers (1 worker), "
            "`/api/me` bearer", apache_ports.bearer_url, "/api/me", bearer_env),
        Row("apache_session", "Apache + mod_auth_openidc `AuthType openid-connect`: its own session (shm "
            "cache) -> FastAPI trusting its headers (1 worker), `/api/me` cookie", apache_ports.session_url,
            "/api/me", {"BENCH_COOKIE": apache_cookie}),
        Row("edge_healthz", "edge `GET /api/healthz` (nginx -> FastAPI, no auth)", edge_url, "/api/healthz"),
        Row("edge_bearer", "edge `GET /api/me`, bearer (verifier cache hit)", edge_url, "/api/me",
            bearer_env),
        Row("edge_cookie", "edge `GET /api/me`, session cookie", edge_url, "/api/me", cookie_env),
        Row("edge_tls_bearer", "edge `GET /api/me`, bearer, nginx -> verifier and API over mutual TLS 1.3",
            tls_url, "/api/me", bearer_env),
        Row("edge_tls_cookie", "edge `GET /api/me`, session cookie, nginx -> verifier and API over mutual "
            "TLS 1.3", tls_url, "/api/me", cookie_env),
        Row("edge_uds_bearer", "edge `GET /api/me`, bearer, nginx -> verifier and API over Unix sockets",
            uds_url, "/api/me", bearer_env),
        Row("edge_uds_cookie", "edge `GET /api/me`, session cookie, nginx -> verifier and API over Unix "
            "sockets", uds_url, "/api/me", cookie_env),
        Row("edge_traced_bearer", "edge `GET /api/me`, bearer, tracing on (every request's spans to a "
            "collector)", traced_url, "/api/me", bearer_env),
        Row("edge_traced_cookie", "edge `GET /api/me`, session cookie, tracing on (every request's spans "
            "to a collector)", traced_url, "/api/me", cookie_env),
        Row("edge_traced_sampled_bearer", "edge `GET /api/me`, bearer, tracing on, 5 % of the traces kept "
            "(traceidratio)", sampled_url, "/api/me", bearer_env),
        Row("edge_page", "edge `GET /` (SPA page), session cookie", edge_url, "/", cookie_env),
        Row("edge_cookie_uncached", "edge `GET /api/me`, session cookie, session cache off (every "
            "request asks oauth2-proxy)", uncached_url, "/api/me", cookie_env),
        Row("edge_page_uncached", "edge `GET /` (SPA page), session cookie, session cache off",
            uncached_url, "/", cookie_env),
        Row("edge_asset", f"edge hashed build file ({asset.stat().st_size:,} B), public (no auth_request)",
            edge_url, asset_path, cookie_env),
        Row("edge_miss", f"edge `GET /api/me`, {token_count:,} distinct tokens (cache miss)", edge_url,
            "/api/me", {"BENCH_TOKENS": str(miss_files[0])}, tokens_per_repetition=miss_files),
        Row("edge_refused", "edge `GET /api/me`, refused token (bad signature)", edge_url, "/api/me",
            {"BENCH_TOKENS": str(refused)}, expect=401),
    ]  # fmt: skip


FILLER_HEADERS = 200


def many_headers_note(rows: list[Row]) -> str:
    """What the edge answers a valid bearer request that also carries 200 harmless headers.

    Browsers and corporate proxies add headers; the auth subrequest copies every client header to
    the verifier, so the request's size is paid twice and can exceed the subrequest's buffers.
    """
    row = next(r for r in rows if r.key == "edge_bearer")
    token = Path(row.env["BENCH_TOKENS"]).read_text().split("\n", 1)[0]
    headers = {f"X-Filler-{i:03d}": "f" * 24 for i in range(FILLER_HEADERS)}
    headers["Authorization"] = f"Bearer {token}"
    response = httpx.get(row.base + row.path, headers=headers, timeout=10.0, trust_env=False)
    size = sum(len(k) + len(v) + 4 for k, v in headers.items())
    return (
        f"A valid bearer `GET /api/me` with {FILLER_HEADERS} extra headers ({size:,} B of headers) got "
        f"{response.status_code} from the edge ({response.text[:80].strip()!r})."
    )


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def roots(running: Running) -> dict[str, list[int]]:
    """Component name -> root pids; every descendant counts (nginx and uvicorn workers)."""
    assert running.stack is not None
    names = {"redis": "Redis", "devidp": "devidp", "oauth2-proxy": "oauth2-proxy", "verifier": "verifier",
             "api": "our API", "nginx": "stack nginx (TLS, idle)"}  # fmt: skip
    found = {names[n]: [p.pid] for n, p in running.stack.processes.items() if p.pid is not None}
    for process in running.peers:
        if process.pid is not None:
            found[process.name] = [process.pid]
    return found


def measure(
    rows: list[Row], running: Running, *, repetitions: int, duration: float, connections: int,
    say: Callable[[str], None],
) -> dict[str, list[LoadResult]]:  # fmt: skip
    components = roots(running)
    results: dict[str, list[LoadResult]] = {row.key: [] for row in rows}
    for row in rows:
        _expect_status(row, row.env)
    # Warm every path once (JIT-less, but caches, keep-alive pools, the JWKS) before measuring.
    for row in rows:
        if not row.tokens_per_repetition:
            run_load(row.base + row.path, roots={}, duration=1, connections=connections,
                     env={"BENCH_PATH": row.path, **row.env})  # fmt: skip
    for repetition in range(repetitions):
        for row in rows:
            env = {"BENCH_PATH": row.path, **row.env}
            if row.tokens_per_repetition:
                env["BENCH_TOKENS"] = str(row.tokens_per_repetition[repetition])
            result = run_load(row.base + row.path, roots=components, duration=duration,
                              connections=connections, env=env)  # fmt: skip
            if result.socket_errors:
                raise SystemExit(f"{row.label}: {result.socket_errors} socket errors")
            wrong = result.non2xx if row.expect < 400 else result.requests - result.non2xx
            if wrong:
                raise SystemExit(f"{row.label}: {wrong} of {result.requests} answers were not {row.expect}")
            results[row.key].append(result)
            say(f"  [{repetition + 1}/{repetitions}] {row.key:<16} {result.rps:>9,.0f} req/s "
                f"{result.cpu_us_per_request:>7,.0f} µs CPU/req")  # fmt: skip
    return results


def _profile(
    rows: list[Row], running: Running, seconds: float, work: Path, say: Callable[[str], None]
) -> None:
    assert running.stack is not None
    by_key = {row.key: row for row in rows}
    api = running.stack.processes["api"].pid
    verifier = running.stack.processes["verifier"].pid
    bare, in_app = running.peers[0].pid, running.peers[1].pid
    assert api and verifier and bare and in_app
    api_focus = (
        "ping (fastapi_app/store.py)",
        "Path.resolve (pathlib.py)",
        "(logging/",
        "(json/",
        "authenticate (fastapi_app/authentication.py)",
        "run_sync (anyio/to_thread.py)",
        "WorkerThread.run",
        "_write_to_self",
        "(h11/",
        "_SelectorSocketTransport.write",
    )
    verifier_focus = (
        "handle_verify",
        "OAuth2ProxyClient.lookup",
        "ClientSession._request",
        "_log_decision",
        "(logging/",
        "verify_access_token",
        "_canonical",
        "(prometheus_client/",
        "_SelectorSocketTransport.write",
    )
    plan = [
        ("api_healthz", "our API (python -m fastapi_app) under edge GET /api/healthz", api, "edge_healthz",
         api_focus),
        ("api_me_bearer", "our API under edge GET /api/me with a bearer token", api, "edge_bearer",
         api_focus),
        ("verifier_bearer", "the verifier under edge GET /api/me with a bearer token (cache hit)", verifier,
         "edge_bearer", verifier_focus),
        ("verifier_cookie", "the verifier under edge GET /api/me with a session cookie", verifier,
         "edge_cookie", verifier_focus),
        ("verifier_refused", "the verifier under edge GET /api/me with a refused token", verifier,
         "edge_refused", verifier_focus),
        ("bare_fastapi", "the bare FastAPI endpoint (reference: the framework alone)", bare, "bare",
         ("(h11/", "(starlette/", "(fastapi/", "_SelectorSocketTransport.write")),
        ("in_app_pyjwt", "the in-app design's workers under GET /api/me with a bearer token", in_app,
         "in_app", ("(jwt/", "RSAAlgorithm.verify", "(h11/", "_SelectorSocketTransport.write")),
    ]  # fmt: skip
    scenarios = [
        profiles.Scenario(name, title, pid, by_key[key].base + by_key[key].path,
                          {"BENCH_PATH": by_key[key].path, **by_key[key].env}, focus)
        for name, title, pid, key, focus in plan
    ]  # fmt: skip
    for path in profiles.run(scenarios, seconds, work, say):
        say(f"  wrote {path.relative_to(REPO_ROOT)}")


def _hold(rows: list[Row], running: Running, say: Callable[[str], None]) -> None:
    """Keep the stack up for a person (or a profiler) to look at, printing how to reach each row."""
    for name, pids in roots(running).items():
        say(f"  pid {pids[0]:>7}  {name}")
    for row in rows:
        # Which credential, never its value.
        say(f"  {row.key:<16} {row.base}{row.path}  {' '.join(sorted(row.env)) or 'no credential'}")
    say("holding; Ctrl-C stops everything")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument(
        "--repetitions",
        type=int,
        default=3,
        help="interleaved repetitions (default 3; 0 with --profile: profiles only)",
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--tokens", type=int, default=10_000, help="distinct tokens per repetition")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave bench/README.md alone")
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after measuring, sample the API, the verifier and the comparison apps with "
        "py-spy for SECONDS each under their rows' load; summaries go to bench/profiles/",
    )
    parser.add_argument(
        "--hold", action="store_true", help="after measuring, keep everything running until Ctrl-C"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package 'wrk'; `make setup` installs it)")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    running = Running()
    with terminate_as_exit(), tempfile.TemporaryDirectory(prefix="bench-edge-") as folder:
        try:
            rows = build(Path(folder), running, args.tokens, max(1, args.repetitions), say)
            results: dict[str, list[LoadResult]] = {}
            if args.repetitions:
                say(f"measuring: {len(rows)} rows x {args.repetitions} repetitions x {args.duration:g}s, "
                    f"wrk -t1 -c{args.connections}")  # fmt: skip
                results = measure(rows, running, repetitions=args.repetitions, duration=args.duration,
                                  connections=args.connections, say=say)  # fmt: skip
            notes = (many_headers_note(rows), apache.note())
            if args.profile:
                _profile(rows, running, args.profile, Path(folder), say)
            if args.hold:
                _hold(rows, running, say)
        finally:
            running.stop()
            leftover = running.listening_ports()
            if leftover:
                say(f"WARNING: ports still listening after stop: {leftover}")
    if not results:
        return 0
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    table = report.Report(
        rows=[(row.key, row.label) for row in rows],
        results=results,
        repetitions=args.repetitions,
        duration=args.duration,
        connections=args.connections,
        cores=len(os.sched_getaffinity(0)),
        load_before=" ".join(load_before),
        load_after=" ".join(load_after),
        token_count=args.tokens,
        notes=notes,
    )
    text = table.render()
    print(text)
    if not args.no_readme:
        report.write_readme_section(REPO_ROOT / "bench" / "README.md", text)
        say("bench/README.md: edge section rewritten")
    say(f"(total {time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
