"""compose.yaml, really run: every image built, `docker compose up --wait` with the devidp profile,
then what a user does against the published ports on 127.0.0.1 — a service's bearer token, a browser
sign-in in Chromium with a read and a write, the Postman collection through newman, and a real
Prometheus scraping the task with deploy/prometheus/prometheus.yml until every recording rule,
alert and dashboard query returns data — and `docker compose down -v`.

The project runs on free ports (EDGE_PORT, DEVIDP_PORT) under its own name, so it runs beside
`make run` and beside a developer's own `docker compose up`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from playwright.sync_api import expect

from stack.topology import (
    DAEMON_CLIENT_ID,
    PRIMARY_TENANT_ID,
    SESSION_COOKIE_NAME,
    distinct_free_ports,
)
from tests import prometheus_files as files
from tests.containers.engine import ComposeProject, docker, inspect
from tests.e2e import browser, edge_client
from tests.e2e.test_postman import API_FOLDERS, TOKEN_FOLDERS, failures_of, run_newman_at
from tests.support import prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.timeout(900)]

#: Every service of compose.yaml's devidp profile, and the one-shot ones among them.
SERVICES = ("api", "devidp", "nginx", "oauth2-proxy", "postgres", "redis", "task", "verifier")
ONE_SHOT = ("api-migrate", "tls-init")


@dataclass(frozen=True)
class Deployment:
    project: ComposeProject
    origin: str
    idp: str
    ca_file: Path


@pytest.fixture(scope="module")
def deployment(images: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # Jaeger's port is published by the task even without the tracing profile: a free one too, so the
    # run never collides with a Jaeger of `make run --tracing` on 16686.
    edge_port, idp_port, jaeger_port = distinct_free_ports(3)
    project = ComposeProject(
        "entra-bff-edge-compose-test",
        {"EDGE_PORT": str(edge_port), "DEVIDP_PORT": str(idp_port), "JAEGER_PORT": str(jaeger_port)},
    )
    project.run("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
    try:
        up = project.run("up", "--wait", "--wait-timeout", "240", "--no-build", timeout=400, check=False)
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}\n{project.logs()}"
        ca_file = tmp_path_factory.mktemp("compose") / "dev-ca.pem"
        ca_file.write_text(project.run("exec", "-T", "nginx", "cat", "/etc/nginx/edge-tls/dev-ca.pem").stdout)
        yield Deployment(project, f"https://localhost:{edge_port}", f"https://localhost:{idp_port}", ca_file)
    finally:
        project.run("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=180, check=False)


def new_client(deployment: Deployment) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(deployment.ca_file))
    return httpx.Client(verify=verify, timeout=20.0, trust_env=False)


@pytest.fixture
def client(deployment: Deployment) -> Iterator[httpx.Client]:
    with new_client(deployment) as c:
        yield c


def sign_in(client: httpx.Client, deployment: Deployment, name: str) -> None:
    user, password = browser.upn(name), browser.password(name)
    edge_client.sign_in_at(client, deployment.origin, deployment.idp, user, password)


# --- the stack as compose.yaml declares it ------------------------------------------------------------


def test_every_service_runs_as_declared_hardened_and_healthy(deployment: Deployment):
    model = deployment.project.resolved()
    for service in SERVICES:
        state = inspect(deployment.project.container(service))
        declared = model["services"][service]
        config, host = state["Config"], state["HostConfig"]
        assert state["State"]["Running"], service
        if "healthcheck" in declared:
            assert state["State"]["Health"]["Status"] == "healthy", service
        # What compose declares is what the engine enforces.
        assert config["User"] == declared["user"], service
        assert host["ReadonlyRootfs"] is True, service
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["Init"] is True, service
        # And the process really runs as that user, on a root file system it cannot write.
        uid = docker("exec", deployment.project.container(service), "id", "-u").stdout.strip()
        assert uid == declared["user"].split(":")[0], service
        touched = docker("exec", deployment.project.container(service), "touch", "/probe", check=False)
        assert touched.returncode != 0, service
        assert "Read-only file system" in touched.stderr, (service, touched.stderr)
    for service in ONE_SHOT:
        state = inspect(deployment.project.container(service))
        assert (state["State"]["Status"], state["State"]["ExitCode"]) == ("exited", 0), service


def test_only_the_edge_devidp_and_jaeger_are_published_and_only_on_127_0_0_1(deployment: Deployment):
    published = {}
    for service in (*SERVICES, *ONE_SHOT):
        ports = inspect(deployment.project.container(service))["HostConfig"]["PortBindings"] or {}
        for port, bindings in ports.items():
            published[(service, port)] = sorted({b["HostIp"] for b in bindings})
    edge, idp = deployment.origin.rsplit(":", 1)[1], deployment.idp.rsplit(":", 1)[1]
    # Jaeger's query API (only answered with the tracing profile) by its container port, 16686.
    assert published == {
        ("task", f"{edge}/tcp"): ["127.0.0.1"],
        ("task", f"{idp}/tcp"): ["127.0.0.1"],
        ("task", "16686/tcp"): ["127.0.0.1"],
    }


# --- what users do --------------------------------------------------------------------------------------


def test_a_service_token_reaches_the_api_as_the_service(client, deployment):
    token = edge_client.daemon_token_at(client, deployment.idp)
    r = client.get(deployment.origin + "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["principal_type"], me["auth_source"], me["client_id"]) == ("app", "bearer", DAEMON_CLIENT_ID)
    assert me["tid"] == PRIMARY_TENANT_ID


def test_a_request_without_credentials_is_refused_with_missing_token(client, deployment):
    r = client.get(deployment.origin + "/api/me")
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "bearer_error": "", "reason": "missing_token"}


def test_a_session_without_script_reads_and_writes(client, deployment):
    sign_in(client, deployment, "bob")
    me = client.get(deployment.origin + "/api/me")
    assert me.status_code == 200, me.text
    assert (me.json()["name"], me.json()["auth_source"]) == ("Bob Writer", "session")
    created = client.post(
        deployment.origin + "/api/projects",
        json={"name": "compose smoke"},
        headers={"X-CSRF-Token": me.headers["x-csrf-token"], "Origin": deployment.origin},
    )
    assert created.status_code == 201, created.text
    refused = client.post(
        deployment.origin + "/api/projects", json={"name": "no token"}, headers={"Origin": deployment.origin}
    )
    assert refused.status_code == 403 and refused.json()["reason"] == "csrf_token_missing", refused.text


def test_a_writer_signs_in_with_chromium_and_creates_a_project_through_the_ui(deployment, tmp_path):
    site = {"app": deployment.origin, "idp": deployment.idp}
    # What browser.launched_chromium reads of a stack: the two origins and the CA it pins.
    stack = SimpleNamespace(
        topology=SimpleNamespace(public_origin=deployment.origin, devidp_origin=deployment.idp),
        ca_file=deployment.ca_file,
    )
    with browser.launched_chromium(stack) as chromium, browser.fresh_context(chromium, height=900) as context:
        page = context.new_page()
        browser.sign_in(page, site, "bob")
        expect(page.get_by_test_id("me-auth-source")).to_have_text("Browser session (oauth2-proxy)")
        name = "Made in a container"
        form = page.get_by_role("form", name="New project")
        form.get_by_label("Name").fill(name)
        form.get_by_role("button", name="Create project").click()
        expect(page.get_by_role("status")).to_have_text(f"Project “{name}” created.")
        expect(page.get_by_role("row", name=re.compile(re.escape(name)))).to_have_count(1)
        page.screenshot(path=str(tmp_path / "compose-signed-in.png"), full_page=True)
        cookies = [c["name"] for c in context.cookies(deployment.origin)]
        assert cookies.count(SESSION_COOKIE_NAME) == 1, cookies
        assert browser.browser_storage(page)["local"] == {}


def test_the_postman_collection_passes(deployment, tmp_path: Path):
    result = run_newman_at(
        deployment.origin,
        deployment.idp,
        deployment.ca_file,
        (*TOKEN_FOLDERS, *API_FOLDERS),
        tmp_path / "newman.json",
    )
    assert failures_of(result) == [], result["cli_output"][-6000:]


# --- metrics, scraped where deploy/prometheus/prometheus.yml says: on the task's localhost -------------


@pytest.fixture(scope="module")
def task_prometheus(deployment: Deployment, tmp_path_factory) -> Iterator[prometheus.Prometheus]:
    """Debian's Prometheus in the task's network namespace, as a collector sidecar runs on ECS, with
    the shipped scrape targets unchanged (127.0.0.1:9100 and :9101); the tests reach its API on the
    task's address on the compose network."""
    task = inspect(deployment.project.container("task"))
    address = next(iter(task["NetworkSettings"]["Networks"].values()))["IPAddress"]
    (port,) = distinct_free_ports(1)
    storage = tmp_path_factory.mktemp("prometheus")
    config = prometheus.configuration(storage)
    enter = ["nsenter", f"--net=/proc/{task['State']['Pid']}/ns/net"]
    with prometheus.running(config, storage, f"0.0.0.0:{port}", f"http://{address}:{port}", enter) as server:
        yield server


def test_prometheus_scrapes_the_task_and_every_rule_and_panel_returns_data(
    client, deployment, task_prometheus
):
    server = task_prometheus
    up = edge_client.wait_until(lambda: prometheus.both_jobs_up(server), timeout=prometheus.DEADLINE_SECONDS)
    assert up, server.api("targets")
    sign_in(client, deployment, "alice")
    with new_client(deployment) as anonymous:

        def burst() -> None:
            token = edge_client.daemon_token_at(anonymous, deployment.idp)
            bearer = {"Authorization": f"Bearer {token}"}
            for _ in range(3):
                ok = anonymous.get(deployment.origin + "/api/me", headers=bearer)
                assert ok.status_code == 200, ok.text
            forged = edge_client.forged(token)
            refused = anonymous.get(
                deployment.origin + "/api/me", headers={"Authorization": f"Bearer {forged}"}
            )
            assert refused.status_code == 401 and refused.json()["reason"] == "bad_signature", refused.text
            session = client.get(deployment.origin + "/api/me")
            assert session.status_code == 200 and session.json()["auth_source"] == "session", session.text

        failing = prometheus.every_expression_answers(server, burst)
    assert not failing, failing
    rules = [rule for group in server.api("rules")["groups"] for rule in group["rules"]]
    assert len(rules) == len(files.recording_rules()) + len(files.alert_rules())
    assert all(rule["health"] == "ok" for rule in rules), rules


def test_the_idp_link_of_the_sign_in_page_is_the_published_devidp(client, deployment):
    # The issuer the containers use and the one the browser is sent to are one origin.
    hops = edge_client.follow(client, "GET", deployment.origin + "/")
    assert hops[-1].url.startswith(deployment.idp + "/"), [h.url for h in hops]
    discovery = client.get(f"{deployment.idp}/{PRIMARY_TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert discovery.json()["issuer"] == f"{deployment.idp}/{PRIMARY_TENANT_ID}/v2.0"
