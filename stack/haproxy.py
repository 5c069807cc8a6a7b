"""HAProxy from Debian in front of the multi-task stack, playing the ALB.

It terminates TLS, balances round robin over the tasks' nginx ports, health-checks each task's
``/readyz`` and drains a task through its runtime API the way the ALB deregisters a target: no new
requests, in-flight ones finish (:meth:`Balancer.drain`), then the task may stop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stack.pki import TlsFiles
from stack.processes import ManagedProcess, StackError, find_program, http_probe
from stack.render import render_template

HAPROXY_TEMPLATE = Path("deploy") / "haproxy" / "haproxy.cfg.template"
BACKEND = "tasks"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    host: str
    port: int


def haproxy_values(
    *, bind_host: str, port: int, public_host: str, pem: Path, ca_file: Path, socket_path: Path,
    targets: Sequence[Target],
) -> dict[str, str]:  # fmt: skip
    servers = "\n".join(f"    server {t.name} {t.host}:{t.port}" for t in targets)
    return {
        "LB_BIND": f"{bind_host}:{port}",
        "LB_PEM": str(pem),
        "LB_CA_FILE": str(ca_file),
        "LB_STATS_SOCKET": str(socket_path),
        "LB_PUBLIC_HOST": public_host,
        "LB_SERVERS": servers,
    }


def render_haproxy_conf(template: str, values: dict[str, str]) -> str:
    # LB_SERVERS is the one multi-line value; render_template refuses line breaks (they could
    # smuggle directives in), so it is put in after the checked substitution of the rest.
    servers = values["LB_SERVERS"]
    text = render_template(template, {**values, "LB_SERVERS": "@@LB_SERVERS@@"}, "LB_")
    return text.replace("@@LB_SERVERS@@", servers)


class Balancer:
    """One HAProxy process and its runtime API."""

    def __init__(
        self, *, bind_host: str, port: int, public_host: str, tls: TlsFiles, run_dir: Path,
        targets: Sequence[Target], repo_root: Path,
    ) -> None:  # fmt: skip
        haproxy = find_program("haproxy", "Install it (`apt-get install haproxy`) or run `make setup`.")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path = run_dir / "haproxy.sock"
        pem = run_dir / "haproxy.pem"
        pem.touch(mode=0o600)
        pem.write_bytes(tls.cert.read_bytes() + tls.key.read_bytes())
        conf = run_dir / "haproxy.cfg"
        values = haproxy_values(
            bind_host=bind_host, port=port, public_host=public_host, pem=pem, ca_file=tls.ca_cert,
            socket_path=self.socket_path, targets=targets,
        )  # fmt: skip
        conf.write_text(render_haproxy_conf((repo_root / HAPROXY_TEMPLATE).read_text(), values))
        self.targets = list(targets)
        self.process = ManagedProcess(
            "HAProxy",
            # -db: stay in the foreground; -W: master-worker, so SIGUSR1 is a soft stop.
            [str(haproxy), "-W", "-db", "-f", str(conf)],
            port,
            http_probe(f"https://{bind_host}:{port}/healthz", ca_file=tls.ca_cert),
            run_dir / "haproxy.log",
        )

    # --- the runtime API -------------------------------------------------------------------------
    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` for the backend's servers, by server name (status, scur, ...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows if r.get("pxname") == BACKEND and r["svname"] != "BACKEND"}

    def status(self, target: str) -> str:
        """UP, DOWN, MAINT, ... as HAProxy's health checks and the runtime API see the task."""
        return self.server_stats()[target]["status"].split(" ")[0]

    def wait_status(self, target: str, wanted: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status(target) == wanted:
                return
            time.sleep(0.1)
        raise StackError(f"HAProxy did not see {target} as {wanted} within {timeout:.0f}s")

    def drain(self, target: str, timeout: float = 30.0) -> None:
        """Deregister ``target``: no new request goes to it; wait until its in-flight ones are done."""
        self.command(f"set server {BACKEND}/{target} state maint")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_stats()[target]["scur"] == "0":
                return
            time.sleep(0.05)
        raise StackError(f"{target} still had requests in flight after {timeout:.0f}s of draining")

    def register(self, target: str, timeout: float = 30.0) -> None:
        """Put ``target`` back; it takes traffic once its health check passes again."""
        self.command(f"set server {BACKEND}/{target} state ready")
        self.wait_status(target, "UP", timeout)
