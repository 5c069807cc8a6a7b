"""The ECS task definition, really run: its containers, rendered with local values, started as
Fargate starts them (tests/containers/ecs_task.py says how), until every one is HEALTHY; then what
the load balancer sends — a bearer request and a browser session's requests on plain HTTP to the
task's port 8080, with the ALB's X-Forwarded-* headers — and a stop of the task that finishes the
request in flight.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from stack.topology import (
    DAEMON_CLIENT_ID,
    distinct_free_ports,
)
from tests.containers import ecs_task
from tests.containers.ecs_task import PUBLIC_HOST, Task
from tests.containers.engine import docker, image, inspect
from tests.e2e import browser, edge_client

pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.timeout(900)]

ORIGIN = f"https://{PUBLIC_HOST}"
#: What an ALB adds to every request it forwards (the client's address is a documentation one).
ALB_HEADERS = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}


class LoadBalancer(httpx.BaseTransport):
    """The ALB: ends TLS for https://edge.example.test and forwards each request, with its headers,
    over plain HTTP to the task's address on port 8080."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(scheme="http", host=self.target, port=8080)
        headers = httpx.Headers(request.headers)
        headers.update(ALB_HEADERS)
        forwarded = httpx.Request(request.method, url, headers=headers, stream=request.stream)
        response = self.inner.handle_request(forwarded)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=response.stream,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def task(images: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Task]:
    (idp_port,) = distinct_free_ports(1)
    stand_ins = {
        "redis": image("redis"),
        "postgres": image("postgres"),
        "devidp": image("devidp"),
        "base": "debian:12-slim",
    }
    with ecs_task.running_task(tmp_path_factory.mktemp("ecs"), idp_port, stand_ins) as running:
        yield running


def new_client(task: Task) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(task.work / "tls" / "dev-ca.pem"))
    return httpx.Client(
        verify=verify, timeout=20.0, trust_env=False, mounts={ORIGIN: LoadBalancer(task.address)}
    )


def test_every_container_runs_as_its_definition_declares(task: Task):
    for name, declared in task.containers.items():
        state = inspect(task.container(name))
        config, host = state["Config"], state["HostConfig"]
        assert config["User"] == declared["user"], name
        assert host["ReadonlyRootfs"] is bool(declared.get("readonlyRootFilesystem")), name
        assert host["Init"] is bool(declared["linuxParameters"]["initProcessEnabled"]), name
        assert host["CapDrop"] == declared["linuxParameters"]["capabilities"]["drop"], name
        assert config["StopTimeout"] == declared["stopTimeout"], name
        assert host["NetworkMode"] == f"container:{inspect(task.holder)['Id']}", name
        if declared.get("memory"):
            assert host["Memory"] == declared["memory"] * 1024 * 1024, name
        if declared.get("healthCheck"):
            assert state["State"]["Health"]["Status"] == "healthy", name
            assert config["Healthcheck"]["Retries"] == declared["healthCheck"]["retries"], name
        elif declared.get("essential", True) is False:
            assert (state["State"]["Status"], state["State"]["ExitCode"]) == ("exited", 0), name
        if state["State"]["Running"]:
            uid = docker("exec", task.container(name), "id", "-u").stdout.strip()
            assert uid == declared["user"].split(":")[0], name
            touched = docker("exec", task.container(name), "touch", "/probe", check=False)
            assert "Read-only file system" in touched.stderr, (name, touched.stderr)


def test_a_bearer_request_through_the_load_balancer_reaches_the_api(task: Task):
    with new_client(task) as client:
        token = edge_client.daemon_token_at(client, task.idp_origin)
        r = client.get(ORIGIN + "/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        me = r.json()
        seen = (me["principal_type"], me["auth_source"], me["client_id"])
        assert seen == ("app", "bearer", DAEMON_CLIENT_ID), me
        refused = client.get(ORIGIN + "/api/me")
        assert refused.status_code == 401 and refused.json()["reason"] == "missing_token", refused.text


def test_a_browser_session_signs_in_reads_and_writes_through_the_load_balancer(task: Task):
    with new_client(task) as client:
        edge_client.sign_in_at(client, ORIGIN, task.idp_origin, browser.upn("bob"), browser.password("bob"))
        me = client.get(ORIGIN + "/api/me")
        assert me.status_code == 200, me.text
        assert (me.json()["name"], me.json()["auth_source"]) == ("Bob Writer", "session")
        created = client.post(
            ORIGIN + "/api/projects",
            json={"name": "made on the task"},
            headers={"X-CSRF-Token": me.headers["x-csrf-token"], "Origin": ORIGIN},
        )
        assert created.status_code == 201, created.text
    # The session is in the ElastiCache stand-in, written over TLS by the ACL user.
    keys = docker(
        "exec", task.container("redis"), "redis-cli", "--tls", "--cacert", "/tls/dev-ca.pem",
        "--user", ecs_task.REDIS_USERNAME, "--pass", task.secrets.redis_password, "--no-auth-warning",
        "--scan", "--pattern", "__Host-oauth2_proxy-*",
    ).stdout.split()  # fmt: skip
    assert keys, "no session stored in Redis"


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_stopping_the_task_finishes_the_request_in_flight_and_every_container_exits_by_itself(task: Task):
    with new_client(task) as client:
        token = edge_client.daemon_token_at(client, task.idp_origin)
    body = json.dumps({"name": "in flight while the task stops"}).encode()
    head = (
        f"POST /api/projects HTTP/1.1\r\nHost: {PUBLIC_HOST}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in ALB_HEADERS.items())
        + "\r\n"
    )
    address = task.address
    in_flight = socket.create_connection((address, 8080), timeout=60)
    # Headers and half the body: nginx has authorized the request and waits for the rest.
    in_flight.sendall(head.encode() + body[: len(body) // 2])
    time.sleep(1.0)
    stopped: dict[str, tuple[float, int]] = {}
    stopping = threading.Thread(target=lambda: stopped.update(ecs_task.stop_task(task)))
    stopping.start()

    # nginx, stopped first, closes its listener at once but keeps serving the request it holds.
    def refused() -> bool:
        try:
            socket.create_connection((address, 8080), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True

    assert edge_client.wait_until(refused, timeout=10), "nginx still accepts new connections while stopping"
    assert task.state("nginx")["Running"], "nginx ended before the request in flight was answered"
    in_flight.sendall(body[len(body) // 2 :])
    answer = read_response(in_flight).decode("latin-1")
    in_flight.close()
    stopping.join(timeout=300)
    assert answer.startswith("HTTP/1.1 201 "), answer[:500]
    print("\n[ecs] stopped: " + ", ".join(f"{n} {s:.1f} s (exit {c})" for n, (s, c) in stopped.items()))
    for name, (seconds, exit_code) in stopped.items():
        declared = task.containers[name]
        # Not killed at the end of stopTimeout (137): each one ended on its own, in time.
        in_time = exit_code in (0, 143) and seconds < declared["stopTimeout"]
        assert in_time, (name, seconds, exit_code, stopped)
    order = list(stopped)
    assert order.index("nginx") < min(order.index(n) for n in ("verifier", "oauth2-proxy", "api")), order
