"""``python -m stack up [--run-dir run/] [--base-port N] [--tracing]``: the whole stack on 127.0.0.1
until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from stack.jaeger import OTLP_HTTP_PORT, QUERY_PORT, Jaeger
from stack.launcher import Stack
from stack.processes import StackError
from stack.scaleout import ScaleOutStack
from stack.topology import REPO_ROOT, SPAN_RELAY_PORT, Topology, base_port_topology


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start every component and wait for Ctrl-C")
    up.add_argument(
        "--run-dir", type=Path, default=REPO_ROOT / "run", help="configs, logs, CA (default: run/)"
    )
    up.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="put the seven ports at N..N+6 (nginx, devidp, oauth2-proxy, verifier, metrics, FastAPI, Redis) "
        "instead of the fixed defaults 8443/8900/4180/9000/9100/8000/6380",
    )
    up.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the API's database: a SQLite file in the run folder (default), or a throw-away PostgreSQL "
        "cluster on 127.0.0.1 (Debian's postgresql package; port 5433, or base port + 7)",
    )
    up.add_argument(
        "--tasks",
        type=int,
        default=1,
        help="N > 1: N complete edge tasks (nginx, oauth2-proxy, verifier, FastAPI) behind HAProxy, "
        "sharing one Redis (TLS and a password), one PostgreSQL and devidp, all on free ports",
    )
    up.add_argument(
        "--tracing",
        action="store_true",
        help="also start Jaeger (in memory, built by `make setup`) and send the verifier's, FastAPI's "
        f"and nginx's spans to it: OTLP/HTTP on port {OTLP_HTTP_PORT}, its query API on {QUERY_PORT} "
        f"(with --base-port N: N+9 and N+10; nginx's spans reach the verifier on UDP port "
        f"{SPAN_RELAY_PORT}, or N+8); all on 127.0.0.1",
    )
    return parser


def stack_from_args(args: argparse.Namespace) -> Stack | ScaleOutStack:
    """The stack ``python -m stack up`` asked for, not started."""
    run_dir: Path = args.run_dir.resolve()
    if args.base_port is None:
        topology = Topology(run_dir=run_dir)
    else:
        topology = base_port_topology(run_dir, args.base_port)
    topology = replace(topology, database=args.database)
    if args.base_port is not None:
        topology = replace(topology, postgres_port=args.base_port + 7, span_relay_port=args.base_port + 8)
    jaeger: Jaeger | None = None
    if args.tracing:
        otlp_port, query_port = OTLP_HTTP_PORT, QUERY_PORT
        if args.base_port is not None:
            otlp_port, query_port = args.base_port + 9, args.base_port + 10
        jaeger = Jaeger(
            topology.conf_dir,
            otlp_port=otlp_port,
            query_port=query_port,
            host=topology.bind_host,
            log_path=topology.logs_dir / "jaeger.log",
        )
        topology = replace(topology, otlp_endpoint=jaeger.otlp_endpoint)
    if args.tasks > 1:
        return ScaleOutStack(topology, args.tasks, balancer_port=topology.nginx_port, jaeger=jaeger)
    return Stack(topology, jaeger=jaeger)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    stack = stack_from_args(args)
    stopping = threading.Event()
    # SIGTERM (e.g. from a process supervisor) stops as cleanly as Ctrl-C. SIGINT is reinstated
    # explicitly because a shell starting us in the background (`&`) hands us SIGINT ignored.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"Starting the stack in {run_dir} ...", flush=True)
        stack.start()
        print(stack.banner(), flush=True)
        print("  Press Ctrl-C to stop.", flush=True)
        while not stopping.wait(0.5):
            running = stack.processes() if isinstance(stack, ScaleOutStack) else stack.processes
            for name, proc in running.items():
                if not proc.running:
                    raise StackError(f"{name} stopped unexpectedly; see {proc.log_path}")
    except StackError as exc:
        print(f"\nstack: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    except KeyboardInterrupt:
        pass
    print("\nStopping ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
