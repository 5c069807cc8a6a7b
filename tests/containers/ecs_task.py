"""Run the ECS task definition of ecs-taskdefs/ in Docker the way Fargate runs it.

The template is rendered by ecs-taskdefs/render.py with local values (the image names it gives are
the images `make images` built, tagged so), and every container definition becomes a container:

* **one network namespace** for all of them, as `awsvpc` gives a task one network interface: a
  holder container owns it and every task container joins it (`--network container:`);
* `user`, `readonlyRootFilesystem`, `linuxParameters` (init process, dropped capabilities), `cpu`,
  `memory`, `memoryReservation`, `command`, `stopTimeout`, `environment`, `mountPoints` on the task's
  `volumes` (a new Docker volume per task volume: like Fargate's, it starts with the image's content
  and owner at that path) — all as declared;
* `secrets` resolved by their `valueFrom` from a local table (Secrets Manager's role);
* `healthCheck.command` run by the engine inside the container, with the declared interval,
  timeout, retries and start period (Docker takes the exec form as one shell line: `CMD` arguments
  are joined with shell quoting);
* `dependsOn` honoured: a container starts once its dependencies are `HEALTHY`, `SUCCESS`ful,
  `COMPLETE` or `START`ed, and the task stops in the reverse order, as ECS does.

Outside the task, as on AWS: Redis with TLS and an ACL user (ElastiCache's stand-in), PostgreSQL
with TLS (RDS's), and devidp (Entra ID's; it joins the task's namespace so that its issuer,
https://localhost:<port>, is one origin for the containers and the test client). The only changes to
the rendered definition are the ones these stand-ins need, all in :func:`localize`: the Microsoft
endpoints become devidp's origin, and the containers that call devidp, Redis or PostgreSQL trust the
development CA (one read-only mount and the CA-file settings the services document).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.aws.render import taskdef_renderer
from stack.pki import make_dev_pki
from stack.topology import API_APP_ID, BFF_CLIENT_ID, BFF_CLIENT_SECRET, PRIMARY_TENANT_ID, SPA_CLIENT_ID
from tests.containers.engine import REPO, docker, image, inspect
from tests.e2e.edge_client import wait_until

TEMPLATE = REPO / "ecs-taskdefs" / "edge-api.taskdef.json"
PREFIX = "entra-bff-edge-ecs-test"
PUBLIC_HOST = "edge.example.test"
REDIS_HOST = "sessions.cache.example.test"
DATABASE_HOST = "db.example.test"
REDIS_USERNAME = "entra-bff-edge"
#: Where the development CA is mounted in the containers that need it.
LOCAL_CA_DIR = "/local-ca"
LOCAL_CA = f"{LOCAL_CA_DIR}/dev-ca.pem"
ACCOUNT_ID = "123456789012"
REGION = "eu-west-1"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:entra-bff-edge"
MICROSOFT_ENDPOINTS = ("https://login.microsoftonline.com", "https://sts.windows.net")
START_DEADLINE_SECONDS = 180.0


@dataclass
class Secrets:
    """What Secrets Manager would hold for this task: fresh development values per run."""

    redis_password: str = "ecs-test-redis-password"
    database_password: str = "ecs-test-database-password"
    cookie_secret: str = "ecs-test-cookie-secret-32-bytes!"
    identity_key: str = "ecs-test-identity-signing-key-0123456789abcdefghijkl"


@dataclass
class Task:
    """The running task and its stand-ins; ``names`` lists every container made, to remove."""

    definition: dict[str, Any]
    network: str
    idp_port: int
    secrets: Secrets
    work: Path
    names: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def holder(self) -> str:
        return f"{PREFIX}-eni"

    def container(self, name: str) -> str:
        return f"{PREFIX}-{name}"

    @property
    def containers(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.definition["containerDefinitions"]}

    @property
    def idp_origin(self) -> str:
        return f"https://localhost:{self.idp_port}"

    @property
    def address(self) -> str:
        """The task's address on its network: where the load balancer sends requests (port 8080)."""
        return str(inspect(self.holder)["NetworkSettings"]["Networks"][self.network]["IPAddress"])

    def state(self, name: str) -> dict[str, Any]:
        return dict(inspect(self.container(name))["State"])


def values(network_cidr: str) -> dict[str, str]:
    return {
        "ACCOUNT_ID": ACCOUNT_ID,
        "REGION": REGION,
        "IMAGE_TAG": "local",
        "PUBLIC_HOST": PUBLIC_HOST,
        "VPC_CIDR": network_cidr,
        "ENTRA_TENANT_ID": PRIMARY_TENANT_ID,
        "API_APP_ID": API_APP_ID,
        "BFF_CLIENT_ID": BFF_CLIENT_ID,
        "SPA_CLIENT_ID": SPA_CLIENT_ID,
        "REDIS_HOST": REDIS_HOST,
        "REDIS_USERNAME": REDIS_USERNAME,
        "OAUTH2_PROXY_SECRET_ARN": f"{SECRET_ARN}/oauth2-proxy-AbCdEf",
        "IDENTITY_SECRET_ARN": f"{SECRET_ARN}/identity-signing-GhIjKl",
        "REDIS_SECRET_ARN": f"{SECRET_ARN}/redis-MnOpQr",
        "DATABASE_SECRET_ARN": f"{SECRET_ARN}/database-StUvWx",
    }


def secret_values(secrets: Secrets) -> dict[str, str]:
    """Secrets Manager's answers, by `valueFrom` (`<arn>:<json key>::`)."""
    redis_auth = f"{REDIS_USERNAME}:{secrets.redis_password}@{REDIS_HOST}:6379/0"
    return {
        f"{SECRET_ARN}/oauth2-proxy-AbCdEf:client_secret::": BFF_CLIENT_SECRET,
        f"{SECRET_ARN}/oauth2-proxy-AbCdEf:cookie_secret::": secrets.cookie_secret,
        f"{SECRET_ARN}/identity-signing-GhIjKl:current::": secrets.identity_key,
        f"{SECRET_ARN}/identity-signing-GhIjKl:previous::": "",
        f"{SECRET_ARN}/redis-MnOpQr:password::": secrets.redis_password,
        # ElastiCache's certificate is publicly trusted; the stand-in's is the development CA's.
        f"{SECRET_ARN}/redis-MnOpQr:verifier_url::": (
            f"rediss://{redis_auth}?ssl_ca_certs={LOCAL_CA}&ssl_cert_reqs=required"
        ),
        f"{SECRET_ARN}/database-StUvWx:url::": (
            f"postgresql://edge_api:{secrets.database_password}@{DATABASE_HOST}:5432/edge_api?sslmode=require"
        ),
    }


#: The settings each service documents for trusting another CA, added where the container calls a
#: stand-in with the development CA's certificate.
TRUST_LOCAL_CA = {
    "oauth2-proxy": {"O2P_PROVIDER_CA_FILE": LOCAL_CA, "OAUTH2_PROXY_REDIS_CA_PATH": LOCAL_CA},
    "verifier": {"VERIFIER_CA_FILE": LOCAL_CA},
    "api": {"VERIFIER_CA_FILE": LOCAL_CA},
}


def localize(definition: dict[str, Any], idp_origin: str) -> dict[str, Any]:
    """The rendered definition pointed at the local stand-ins (the module docstring lists each change)."""
    changed = json.loads(json.dumps(definition))
    for container in changed["containerDefinitions"]:
        for variable in container.get("environment", []):
            for endpoint in MICROSOFT_ENDPOINTS:
                variable["value"] = variable["value"].replace(endpoint, idp_origin)
        extra = TRUST_LOCAL_CA.get(container["name"], {})
        env = {v["name"]: v for v in container.get("environment", [])}
        for name, value in extra.items():
            if name in env:
                env[name]["value"] = value
            else:
                container.setdefault("environment", []).append({"name": name, "value": value})
    return changed


def run_arguments(task: Task, container: Mapping[str, Any], secret_table: Mapping[str, str]) -> list[str]:
    """`docker create` arguments for one container definition, as Fargate would run it."""
    name = container["name"]
    args = ["--name", task.container(name), "--network", f"container:{task.holder}"]
    if "user" in container:
        args += ["--user", container["user"]]
    if container.get("readonlyRootFilesystem"):
        args.append("--read-only")
    linux = container.get("linuxParameters", {})
    if linux.get("initProcessEnabled"):
        args.append("--init")
    for capability in linux.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    for capability in linux.get("capabilities", {}).get("add", []):
        args += ["--cap-add", capability]
    if container.get("cpu"):
        args += ["--cpu-shares", str(max(2, int(container["cpu"])))]
    if container.get("memory"):
        args += ["--memory", f"{container['memory']}m"]
    if container.get("memoryReservation"):
        args += ["--memory-reservation", f"{container['memoryReservation']}m"]
    if "stopTimeout" in container:
        args += ["--stop-timeout", str(container["stopTimeout"])]
    for variable in container.get("environment", []):
        args += ["--env", f"{variable['name']}={variable['value']}"]
    for secret in container.get("secrets", []):
        args += ["--env", f"{secret['name']}={secret_table[secret['valueFrom']]}"]
    for mount in container.get("mountPoints", []):
        volume = task.container(mount["sourceVolume"])
        mode = ",readonly" if mount.get("readOnly") else ""
        args += ["--mount", f"type=volume,source={volume},target={mount['containerPath']}{mode}"]
    if name in TRUST_LOCAL_CA:
        args += ["--mount", f"type=bind,source={task.work / 'tls'},target={LOCAL_CA_DIR},readonly"]
    check = container.get("healthCheck")
    if check:
        kind, *command = check["command"]
        assert kind in ("CMD", "CMD-SHELL"), f"{name}: healthCheck.command must start with CMD or CMD-SHELL"
        line = shlex.join(command) if kind == "CMD" else command[0]
        args += [
            "--health-cmd", line,
            "--health-interval", f"{check.get('interval', 30)}s",
            "--health-timeout", f"{check.get('timeout', 5)}s",
            "--health-retries", str(check.get("retries", 3)),
            "--health-start-period", f"{check.get('startPeriod', 0)}s",
        ]  # fmt: skip
    if container.get("entryPoint"):
        args += ["--entrypoint", shlex.join(container["entryPoint"])]
    return [*args, container["image"], *container.get("command", [])]


def start_order(containers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The containers with every dependency before its dependents (ECS refuses cycles too)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        assert name not in visiting, f"dependsOn cycle through {name}"
        visiting.add(name)
        for dependency in containers[name].get("dependsOn", []):
            visit(dependency["containerName"])
        visiting.discard(name)
        order.append(name)

    for name in containers:
        visit(name)
    return order


def condition_met(state: Mapping[str, Any], condition: str) -> bool:
    """Whether a container in ``state`` (docker inspect's State) meets a dependsOn ``condition``."""
    if condition == "START":
        return bool(state["Running"] or state["Status"] == "exited")
    if condition == "HEALTHY":
        return bool(state.get("Health", {}).get("Status") == "healthy")
    if condition == "COMPLETE":
        return state["Status"] == "exited"
    if condition == "SUCCESS":
        return state["Status"] == "exited" and state["ExitCode"] == 0
    raise AssertionError(f"unknown dependsOn condition {condition}")


def failed_dependency(name: str, state: Mapping[str, Any], condition: str) -> str | None:
    """Why container ``name`` in ``state`` can no longer meet ``condition``; None while it still may."""
    if condition == "HEALTHY" and state.get("Health", {}).get("Status") == "unhealthy":
        return f"{name} is unhealthy"
    if condition == "HEALTHY" and state["Status"] == "exited":
        return f"{name} exited with {state['ExitCode']}"
    if condition == "SUCCESS" and state["Status"] == "exited" and state["ExitCode"] != 0:
        return f"{name} exited with {state['ExitCode']}"
    return None


def logs(task: Task, last: int = 30) -> str:
    out = []
    for name in task.names:
        done = docker("logs", "--tail", str(last), name, check=False)
        out.append(f"--- {name}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return "\n".join(out)


def run_detached(task: Task, name: str, *args: str) -> None:
    """``docker run --detach`` of one container of the test, recorded for removal."""
    task.names.append(task.container(name))
    docker("run", "--detach", "--name", task.container(name), *args)


def start_stand_ins(task: Task, images: Mapping[str, str]) -> None:
    tls = task.work / "tls"
    files = make_dev_pki(tls, hostnames=("localhost", REDIS_HOST, DATABASE_HOST))
    # Readable by the stand-ins' own users (Redis and PostgreSQL run as 999, devidp as 10001); the
    # folder is the test's own.
    for path in (files.ca_cert, files.cert, files.key):
        path.chmod(0o644)
    docker("network", "create", task.network)
    hardened = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--init"]
    tls_mount = ["--mount", f"type=bind,source={tls},target=/tls,readonly"]
    run_detached(
        task, "redis", "--network", task.network, "--network-alias", REDIS_HOST, *hardened, *tls_mount,
        images["redis"], "redis-server", "--port", "0", "--tls-port", "6379",
        "--tls-cert-file", "/tls/server.pem", "--tls-key-file", "/tls/server-key.pem",
        "--tls-auth-clients", "no", "--save", "", "--user", "default", "off",
        "--user", REDIS_USERNAME, "on", f">{task.secrets.redis_password}", "~*", "&*", "+@all", "-@dangerous",
    )  # fmt: skip
    # PostgreSQL with TLS (RDS refuses plain connections); its key must belong to its user.
    key_copy = task.work / "postgres-key.pem"
    key_copy.write_bytes(files.key.read_bytes())
    key_copy.chmod(0o600)
    os.chown(key_copy, 999, 999)
    run_detached(
        task, "postgres", "--network", task.network, "--network-alias", DATABASE_HOST, *hardened,
        "--tmpfs", "/var/run/postgresql:uid=999,gid=999", "--tmpfs", "/tmp", *tls_mount,
        "--mount", f"type=bind,source={key_copy},target=/run/postgres-key.pem,readonly",
        "--env", "POSTGRES_USER=edge_api", "--env", "POSTGRES_DB=edge_api",
        "--env", f"POSTGRES_PASSWORD={task.secrets.database_password}",
        images["postgres"], "postgres", "-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.pem",
        "-c", "ssl_key_file=/run/postgres-key.pem",
    )  # fmt: skip
    # The task's network interface: published to this machine only for devidp (the browser's way to
    # the identity provider); the load balancer reaches nginx at the task's address.
    run_detached(
        task, "eni", "--network", task.network, "--init", "--read-only", "--cap-drop", "ALL",
        "--publish", f"127.0.0.1:{task.idp_port}:{task.idp_port}", images["base"], "sleep", "infinity",
    )  # fmt: skip
    run_detached(
        task, "devidp", "--network", f"container:{task.holder}", *hardened, *tls_mount,
        images["devidp"], "python", "-m", "devidp", "--config", "/etc/devidp/example.toml",
        "--host", "0.0.0.0", "--port", str(task.idp_port), "--tls-cert", "/tls/server.pem",
        "--tls-key", "/tls/server-key.pem", "--public-url", task.idp_origin,
        "--app-origin", f"https://{PUBLIC_HOST}",
    )  # fmt: skip


@contextmanager
def running_task(work: Path, idp_port: int, images: Mapping[str, str]) -> Iterator[Task]:
    """The task, started container by container as its dependsOn says, until every one is HEALTHY."""
    network = f"{PREFIX}-vpc"
    remove_leftovers(network)
    task = Task(definition={}, network=network, idp_port=idp_port, secrets=Secrets(), work=work)
    try:
        start_stand_ins(task, images)
        subnet = "{{(index .IPAM.Config 0).Subnet}}"
        cidr = docker("network", "inspect", "--format", subnet, network).stdout.strip()
        render = taskdef_renderer()
        template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
        rendered = render.render(template, values(cidr))
        task.definition = localize(rendered, task.idp_origin)
        table = secret_values(task.secrets)
        containers = task.containers
        for container in containers.values():
            # The images the definition names are the ones `make images` built.
            local = image(container["image"].rsplit("/", 1)[1].split(":")[0])
            docker("tag", local, container["image"])
        for volume in task.definition.get("volumes", []):
            task.volumes.append(task.container(volume["name"]))
            docker("volume", "create", task.container(volume["name"]))
        for name in start_order(containers):
            container = containers[name]
            for dependency in container.get("dependsOn", []):
                other, condition = dependency["containerName"], dependency["condition"]

                def ready(other: str = other, condition: str = condition, name: str = name) -> bool:
                    state = task.state(other)
                    problem = failed_dependency(other, state, condition)
                    assert problem is None, f"{name} cannot start: {problem}\n{logs(task)}"
                    return condition_met(state, condition)

                met = wait_until(ready, START_DEADLINE_SECONDS, interval=0.5)
                assert met, f"{name}: {other} never {condition}\n{logs(task)}"
            task.names.append(task.container(name))
            docker("create", *run_arguments(task, container, table))
            docker("start", task.container(name))
        for name, container in containers.items():
            if container.get("healthCheck"):
                healthy = wait_until(
                    lambda n=name: condition_met(task.state(n), "HEALTHY"),
                    START_DEADLINE_SECONDS,
                    interval=0.5,
                )
                assert healthy, f"{name} never HEALTHY\n{logs(task)}"
        yield task
    finally:
        for name in task.names:
            docker("rm", "--force", "--volumes", name, timeout=120, check=False)
        for volume in task.volumes:
            docker("volume", "rm", "--force", volume, check=False)
        docker("network", "rm", network, check=False)


def stop_task(task: Task) -> dict[str, tuple[float, int]]:
    """Stop the task as ECS does: dependents before their dependencies, each with its stopTimeout.

    Returns each container's (seconds its stop took, exit code)."""
    stopped: dict[str, tuple[float, int]] = {}
    for name in reversed(start_order(task.containers)):
        if task.state(name)["Status"] != "running":
            stopped[name] = (0.0, int(task.state(name)["ExitCode"]))
            continue
        started = time.monotonic()
        docker("stop", task.container(name), timeout=120)
        stopped[name] = (time.monotonic() - started, int(task.state(name)["ExitCode"]))
    return stopped


def remove_leftovers(network: str) -> None:
    """Containers, volumes and the network a killed earlier run left behind."""
    names = docker("ps", "--all", "--quiet", "--filter", f"name=^{PREFIX}-", check=False).stdout.split()
    if names:
        docker("rm", "--force", "--volumes", *names, timeout=120, check=False)
    volumes = docker("volume", "ls", "--quiet", "--filter", f"name=^{PREFIX}-", check=False).stdout.split()
    if volumes:
        docker("volume", "rm", "--force", *volumes, check=False)
    docker("network", "rm", network, check=False)
