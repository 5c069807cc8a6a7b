"""N complete edge tasks behind HAProxy: ``python -m stack up --tasks 2`` and the scale-out tests.

Each task is what one ECS task runs (ecs-taskdefs/edge-api.taskdef.json): nginx, oauth2-proxy, the
verifier and FastAPI, each on its own port, with only nginx reachable from the balancer. The tasks
share what production shares: one Redis (TLS and a password, as ElastiCache runs it), one PostgreSQL,
devidp (Entra), the CA, the cookie secret and the identity signing key (Secrets Manager). HAProxy in
front plays the ALB (see stack.haproxy).

Every task is a :class:`~stack.launcher.Stack` of its own (own run folder, configs, logs) started
with only the task components; the shared parts are one more ``Stack`` started with only Redis,
PostgreSQL and devidp.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

from stack.haproxy import Balancer, Target
from stack.jaeger import Jaeger
from stack.launcher import Stack
from stack.processes import ManagedProcess, Running, StackError, labelled
from stack.topology import Topology, distinct_free_ports

#: What one ECS task runs, in start order (stop order is the reverse: nginx first, so its in-flight
#: requests still reach the sidecars while it finishes them).
TASK_COMPONENTS: tuple[str, ...] = ("oauth2-proxy", "verifier", "api", "nginx")
#: Jaeger, when the stack has one, is shared too: every task's spans go to it.
SHARED_COMPONENTS: tuple[str, ...] = ("jaeger", "redis", "postgres", "devidp")
#: The Redis user the tasks sign in as (ecs-taskdefs/values.example.json's REDIS_USERNAME).
REDIS_APP_USER = "entra-bff-edge"


def task_name(index: int) -> str:
    return f"task-{index + 1}"


class ScaleOutStack(Running):
    """``tasks`` edge tasks, the shared services and the balancer, all on free ports under ``run_dir``."""

    def __init__(
        self,
        base: Topology,
        tasks: int = 2,
        *,
        balancer_port: int | None = None,
        redis_client_port: int | None = None,
        jaeger: Jaeger | None = None,
    ) -> None:
        """``redis_client_port``, when given, is where the tasks reach Redis instead of its own port:
        a relay in front of it (the fault tests put one there to reset and refuse connections).
        ``jaeger``: the tracing backend of ``base.otlp_endpoint``, started with the shared services."""
        if tasks < 1:
            raise StackError("the multi-task stack needs at least one task")
        run_dir = base.run_dir
        taken = set(base.ports().values())
        self.balancer_port = balancer_port or distinct_free_ports(1, taken)[0]
        shared = replace(
            base,
            run_dir=run_dir / "shared",
            shared_dir=run_dir,
            public_port=self.balancer_port,
            redis_tls=True,
            # One database for every task, as on RDS: a SQLite file per task would not be shared.
            database="postgres",
            redis_password=base.redis_password or secrets.token_urlsafe(24),
            # The tasks sign in to Redis as ElastiCache's app user does, with its exact rights.
            redis_username=base.redis_username or REDIS_APP_USER,
        )
        self.shared = Stack(shared, jaeger=jaeger)
        self.tasks: list[Stack] = []
        for index in range(tasks):
            nginx, o2p, verifier, metrics, api, span_relay = distinct_free_ports(6, taken)
            topology = replace(
                shared,
                run_dir=run_dir / task_name(index),
                nginx_port=nginx,
                oauth2_proxy_port=o2p,
                verifier_port=verifier,
                verifier_metrics_port=metrics,
                api_port=api,
                span_relay_port=span_relay,
                oauth2_proxy_metrics_port=None,
                redis_port=redis_client_port or shared.redis_port,
            )
            self.tasks.append(Stack(topology))
        self.balancer: Balancer | None = None

    # --- the public face ---------------------------------------------------------------------------
    @property
    def topology(self) -> Topology:
        """The shared services' topology: its public origin is the balancer's."""
        return self.shared.topology

    @property
    def ca_file(self) -> Path:
        return self.shared.ca_file

    def task_origin(self, index: int) -> str:
        """Task ``index``'s nginx, bypassing the balancer (the tests pin requests to a task this way)."""
        t = self.tasks[index].topology
        return f"https://{t.public_hostname}:{t.nginx_port}"

    # --- running -------------------------------------------------------------------------------------
    def start(self) -> ScaleOutStack:
        try:
            self.shared.start(SHARED_COMPONENTS)
            database_url = self.shared.postgres.url() if self.shared.postgres is not None else None
            for task in self.tasks:
                task.database_url = database_url
                task.start(TASK_COMPONENTS)
            assert self.shared.tls is not None
            t = self.topology
            self.balancer = Balancer(
                bind_host=t.bind_host,
                port=self.balancer_port,
                public_host=t.public_host,
                tls=self.shared.tls,
                run_dir=t.run_dir / "haproxy",
                targets=[
                    Target(task_name(i), t.bind_host, task.topology.nginx_port)
                    for i, task in enumerate(self.tasks)
                ],
                repo_root=t.repo_root,
            )
            self.balancer.process.start(t.bind_host)
            self.balancer.process.wait_ready()
            for index in range(len(self.tasks)):
                self.balancer.wait_status(task_name(index), "UP")
        except BaseException:
            self.stop()
            raise
        return self

    def processes(self) -> dict[str, ManagedProcess]:
        """Every running process by a unique name (``task-1/verifier``, ``redis``, ``balancer``)."""
        found = {name: proc for name, proc in self.shared.processes.items() if name in SHARED_COMPONENTS}
        for index, task in enumerate(self.tasks):
            for name in TASK_COMPONENTS:
                found[f"{task_name(index)}/{name}"] = task.processes[name]
        if self.balancer is not None:
            found["balancer"] = self.balancer.process
        return found

    def stop_task(self, index: int) -> None:
        """Stop task ``index`` the way ECS does: deregister and drain it, then stop its processes."""
        if self.balancer is not None and self.balancer.process.running:
            self.balancer.drain(task_name(index))
        task = self.tasks[index]
        for name in reversed(TASK_COMPONENTS):
            task.stop_component(name)

    def start_task(self, index: int) -> None:
        """Start task ``index`` again and put it back behind the balancer once it is healthy."""
        self.tasks[index].start(TASK_COMPONENTS)
        if self.balancer is not None:
            self.balancer.register(task_name(index))

    def restart_task(self, index: int) -> None:
        self.stop_task(index)
        self.start_task(index)

    def wait_balancer_status(self, index: int, wanted: str, timeout: float = 30.0) -> None:
        assert self.balancer is not None
        self.balancer.wait_status(task_name(index), wanted, timeout)

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.process.stop()
        for task in self.tasks:
            task.stop()
        self.shared.stop()

    def _tracing_rows(self) -> list[tuple[str, object]]:
        jaeger = self.shared.jaeger
        if jaeger is None:
            return []
        return [("Traces (Jaeger)", f"{jaeger.query_url}/api/traces/<trace id from a log line>")]

    def banner(self) -> str:
        t = self.topology
        lines = [
            "",
            *labelled(
                [
                    ("The app (through HAProxy)", f"{t.public_origin}/"),
                    ("devidp", f"{t.devidp_origin}/  (tenant {t.tenant_id})"),
                    ("Trust this CA", self.ca_file),
                    (f"Redis (TLS, user {t.redis_username})", f"{t.bind_host}:{t.redis_port}"),
                    *self._tracing_rows(),
                ]
            ),
            "",
        ]
        for index, task in enumerate(self.tasks):
            tt = task.topology
            lines.append(
                f"  {task_name(index)}: nginx {self.task_origin(index)}  "
                f"oauth2-proxy {tt.oauth2_proxy_port}  verifier {tt.verifier_port}  "
                f"FastAPI {tt.api_port}  logs {tt.logs_dir}/"
            )
        lines.append("")
        return "\n".join(lines)
