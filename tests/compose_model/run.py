"""Start compose.yaml's services as plain processes, exactly as the resolved model describes them,
and run the smoke tests (smoke.py) against them.

Run inside fresh network and mount namespaces (tests/e2e/test_compose_model.py does:
``unshare --net --mount --pid --mount-proc --fork -- python -m tests.compose_model.run ...``).
There:

* the root is a tmpfs that shows the machine's own root through symlinks, so container paths (/tls,
  /data, /etc/nginx/edge-tls, ...) can be created without touching the machine;
* the network namespace has only a loopback interface: it plays the task's shared network namespace
  (`network_mode: service:task`), so the model's fixed ports (8443, 8900, 4180, 9000, 9100, 8000,
  6379) cannot collide with anything else on the machine. `redis` resolves to 127.0.0.1 (in compose
  it is a service name on the project network);
* every service runs in a mount namespace of its own (enter.py) with its volumes, tmpfs mounts and
  image files at their container paths, the model's environment and nothing else, its entrypoint
  and command; health checks are the model's commands; `depends_on` conditions and restart policies
  are honoured like `docker compose up --wait` does.

Not reproduced: the `user`, `read_only`, `cap_drop` and `security_opt` settings (processes run as the
namespace's root) and Redis in a network namespace of its own.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import verifier
from tests.compose_model.model import REPO, ServiceProcess, one_shot_services, processes_of, published_ports

#: Docker's PATH for images that set none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STARTUP_DEADLINE_SECONDS = float(os.environ.get('COMPOSE_MODEL_DEADLINE', '240'))
ENTER = Path(__file__).resolve().parent / "enter.py"
HEALTH_POLL_SECONDS = 1.0


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


HOST = Path("/.host")
#: The checkout the editable install points at, as the interpreter sees it (not resolved through
#: symlinks): services must find the project's packages there.
EDITABLE_CHECKOUT = str(Path(verifier.__file__).parent.parent)


def enter_shadow_root(work: Path) -> None:
    """chroot into a tmpfs whose entries are symlinks to the machine's own root (bound at /.host).

    Container paths can then be created without touching the machine: a directory on the way to one
    is replaced, in the tmpfs only, by a directory of symlinks to its original entries
    (:func:`materialize_dir`). Unlike an overlay over '/', this works in a user namespace too.
    """
    root = work / "root"
    root.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "tmpfs", str(root))
    (root / HOST.name).mkdir()
    sh("mount", "--rbind", "/", str(root / HOST.name))
    for entry in os.listdir("/"):
        if entry in ("proc", "dev", "sys"):
            (root / entry).mkdir()
            sh("mount", "--rbind", f"/{entry}", str(root / entry))
        elif entry != HOST.name:
            (root / entry).symlink_to(HOST / entry)
    os.chroot(root)
    os.chdir(REPO)
    loopback_up()
    hosts = (HOST / "etc" / "hosts").read_text(encoding="ascii")
    materialize_file(Path("/etc/hosts"))
    # In compose, `redis` and `postgres` are service names on the project network; here they share
    # the loopback.
    Path("/etc/hosts").write_text(hosts + "\n127.0.0.1 redis\n127.0.0.1 postgres\n", encoding="ascii")


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: SIOCGIFFLAGS, add IFF_UP, SIOCSIFFLAGS."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def materialize_dir(path: Path) -> None:
    """Make ``path`` a real directory of the tmpfs root, keeping what the machine has there visible."""
    current = Path("/")
    for part in path.parts[1:]:
        current = current / part
        if current.is_symlink() and os.readlink(current) == str(HOST / current.relative_to("/")):
            original = HOST / current.relative_to("/")
            current.unlink()
            current.mkdir()
            if original.is_dir():
                for entry in os.listdir(original):
                    (current / entry).symlink_to(original / entry)
        elif not current.exists():
            current.mkdir()


def materialize_file(path: Path) -> None:
    """Make ``path`` a real (empty) file of the tmpfs root, for a file to be bound onto it."""
    materialize_dir(path.parent)
    if path.is_symlink():
        path.unlink()
    path.touch(exist_ok=True)


def materialize_mount_targets(services: dict[str, ServiceProcess]) -> None:
    for service in services.values():
        for mount in service.mounts:
            if mount.source is None or Path(mount.source).is_dir():
                materialize_dir(Path(mount.target))
            else:
                materialize_file(Path(mount.target))


class Supervisor:
    """Starts services when their dependencies allow, restarts them by policy, waits for health."""

    def __init__(self, services: dict[str, ServiceProcess], specs_dir: Path, logs: Path) -> None:
        self.services = services
        self.one_shot = one_shot_services(services)
        self.specs_dir = specs_dir
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.healthy: set[str] = set()
        self.completed: set[str] = set()
        self.restarts: dict[str, int] = {}
        self.last_probe: dict[str, float] = {}
        self.last_health_output: dict[str, str] = {}

    def environment(self, service: ServiceProcess) -> dict[str, str]:
        return {"PATH": DEFAULT_PATH, "HOME": "/root", **service.environment}

    def start(self, name: str) -> None:
        service = self.services[name]
        spec = self.specs_dir / f"{name}.json"
        described = {**asdict(service), "keep_visible": [EDITABLE_CHECKOUT]}
        spec.write_text(json.dumps(described, default=str), encoding="utf-8")
        # Stays open while the process runs; the child holds its own copy of the descriptor.
        log = open(self.logs / f"{name}.log", "ab")
        self.running[name] = subprocess.Popen(
            ["unshare", "--mount", "--", sys.executable, str(ENTER), str(spec)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/",
            env=self.environment(service), start_new_session=True,
        )
        print(f"[compose-model] started {name}: {' '.join(service.argv)[:100]}", flush=True)

    def dependencies_met(self, service: ServiceProcess) -> bool:
        for dependency, condition in service.depends_on.items():
            if condition == "service_healthy" and dependency not in self.healthy:
                return False
            if condition == "service_completed_successfully" and dependency not in self.completed:
                return False
            if condition == "service_started" and dependency not in self.running:
                return False
        return True

    def probe(self, name: str) -> None:
        service = self.services[name]
        assert service.health is not None
        now = time.monotonic()
        if now - self.last_probe.get(name, 0.0) < HEALTH_POLL_SECONDS:
            return
        self.last_probe[name] = now
        # Like `docker exec`: in the service's own mount namespace (its files at container paths).
        # `unshare --mount` execs the service, so the Popen pid is the service's.
        pid = self.running[name].pid
        # Probed every second rather than at the model's interval: this waits for readiness, and the
        # overall deadline is far longer than any start_period + retries x interval of the model.
        try:
            done = subprocess.run(["nsenter", "--target", str(pid), "--mount", "--root", "--wd", "--",
                                   *service.health.argv], env=self.environment(service), capture_output=True,
                                  timeout=service.health.timeout_seconds, check=False)
        except subprocess.TimeoutExpired:
            self.last_health_output[name] = f"timed out after {service.health.timeout_seconds} s"
            return
        self.last_health_output[name] = (done.stdout + done.stderr).decode(errors="replace")[-500:]
        if done.returncode == 0:
            self.healthy.add(name)
            print(f"[compose-model] {name} is healthy", flush=True)

    def step(self) -> None:
        for name, service in sorted(self.services.items()):
            if name not in self.running and name not in self.completed and self.dependencies_met(service):
                self.start(name)
        for name, process in list(self.running.items()):
            service = self.services[name]
            code = process.poll()
            if code is None:
                if service.health is not None and name not in self.healthy:
                    self.probe(name)
                continue
            del self.running[name]
            if name in self.one_shot and code == 0:
                self.completed.add(name)
                print(f"[compose-model] {name} completed", flush=True)
            elif service.restart:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.healthy.discard(name)
                print(f"[compose-model] {name} exited with {code}; restarting (policy)", flush=True)
                time.sleep(1.0)
            else:
                raise RuntimeError(f"{name} exited with {code}; see {self.logs / (name + '.log')}")

    def ready(self) -> bool:
        for name, service in self.services.items():
            if name in self.one_shot:
                if name not in self.completed:
                    return False
            elif name not in self.running or (service.health is not None and name not in self.healthy):
                return False
        return True

    def up(self) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while not self.ready():
            if time.monotonic() > deadline:
                waiting = sorted(n for n in self.services if n not in self.healthy | self.completed)
                outputs = json.dumps({n: self.last_health_output.get(n, "") for n in waiting})
                limit = f"{STARTUP_DEADLINE_SECONDS:.0f} s"
                raise RuntimeError(f"not ready within {limit}: {waiting}; last health checks: {outputs}")
            self.step()
            time.sleep(0.2)

    def down(self) -> None:
        for process in self.running.values():
            try:
                os.killpg(process.pid, 15)
            except ProcessLookupError:
                pass
        for process in self.running.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True, help="docker compose config --format json")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--logs", type=Path, required=True)
    args = parser.parse_args()
    model = json.loads(args.model.read_text(encoding="utf-8"))

    enter_shadow_root(args.work)
    volumes_dir = Path("/compose-model/volumes")
    for volume in model.get("volumes", {}):
        (volumes_dir / volume).mkdir(parents=True, exist_ok=True)
    specs_dir = Path("/compose-model/specs")
    specs_dir.mkdir(parents=True, exist_ok=True)
    services = processes_of(model, volumes_dir)
    materialize_mount_targets(services)

    supervisor = Supervisor(services, specs_dir, args.logs)
    try:
        supervisor.up()
        ports = published_ports(model)
        edge, idp = ports[8443], ports[8900]
        env = {**os.environ, "EDGE_ORIGIN": f"https://localhost:{edge}",
               "EDGE_IDP_ORIGIN": f"https://localhost:{idp}",
               "EDGE_CA_FILE": str(volumes_dir / "tls" / "dev-ca.pem")}
        smoke = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/compose_model/smoke.py", "-q", "-p", "no:cacheprovider",
             "--basetemp", "/compose-model/pytest"],
            env=env, cwd=REPO, check=False,
        )
        print(f"[compose-model] restarts: {json.dumps(supervisor.restarts)}", flush=True)
        return smoke.returncode
    finally:
        supervisor.down()


if __name__ == "__main__":
    sys.exit(main())
