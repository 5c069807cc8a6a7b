"""The multi-task stack's configuration: HAProxy's file, Redis with TLS and a password, the tasks' ports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stack import render
from stack.haproxy import HAPROXY_TEMPLATE, Target, haproxy_values, render_haproxy_conf
from stack.processes import labelled
from stack.scaleout import ScaleOutStack
from stack.topology import REPO_ROOT, Topology


def _values(**overrides: str) -> dict[str, str]:
    values = haproxy_values(
        bind_host="127.0.0.1",
        port=8443,
        public_host="localhost:8443",
        pem=Path("/run/lb.pem"),
        ca_file=Path("/run/ca.pem"),
        socket_path=Path("/run/lb.sock"),
        targets=[Target("task-1", "127.0.0.1", 9001), Target("task-2", "127.0.0.1", 9002)],
    )
    return values | overrides


def test_haproxy_balances_round_robin_over_every_task_and_checks_readyz():
    conf = render_haproxy_conf((REPO_ROOT / HAPROXY_TEMPLATE).read_text(), _values())
    assert "    server task-1 127.0.0.1:9001\n    server task-2 127.0.0.1:9002\n" in conf
    assert "bind 127.0.0.1:8443 ssl crt /run/lb.pem" in conf
    assert "balance roundrobin" in conf
    assert "http-check send meth GET uri /readyz hdr Host localhost:8443" in conf
    assert "ssl verify required ca-file /run/ca.pem" in conf
    assert "stats socket /run/lb.sock mode 600 level admin" in conf
    assert not render.placeholders(conf.split("\nglobal\n", 1)[1], "LB_")


def test_haproxy_values_other_than_the_server_list_may_not_carry_a_line_break():
    with pytest.raises(render.TemplateError):
        render_haproxy_conf(
            (REPO_ROOT / HAPROXY_TEMPLATE).read_text(),
            _values(LB_PUBLIC_HOST="x\n    server evil 1.2.3.4:80"),
        )


def test_redis_with_tls_listens_on_tls_only_and_asks_for_the_password(tmp_path: Path):
    topo = Topology(run_dir=tmp_path, redis_port=6390, redis_tls=True, redis_password="s3cret/+")
    args = render.redis_args(topo, tmp_path, (tmp_path / "cert.pem", tmp_path / "key.pem"))
    assert args[args.index("--port") + 1] == "0"
    assert args[args.index("--tls-port") + 1] == "6390"
    assert args[args.index("--requirepass") + 1] == "s3cret/+"
    # oauth2-proxy's file holds no password; its environment does.
    assert topo.redis_url == "rediss://127.0.0.1:6390/0"
    assert render.oauth2_proxy_redis_env(topo) == {"OAUTH2_PROXY_REDIS_PASSWORD": "s3cret/+"}
    assert render.oauth2_proxy_redis_args(topo, tmp_path / "ca.pem") == [
        f"--redis-ca-path={tmp_path / 'ca.pem'}"
    ]
    # The verifier's URL carries the password (quoted) and the CA that must have signed Redis's certificate.
    assert topo.redis_client_url == (
        f"rediss://:s3cret%2F%2B@127.0.0.1:6390/0?ssl_ca_certs={tmp_path}/tls/dev-ca.pem&ssl_cert_reqs=required"
    )
    assert "s3cret" not in repr(topo)


def test_plain_redis_stays_the_default(tmp_path: Path):
    topo = Topology(run_dir=tmp_path)
    assert topo.redis_client_url == topo.redis_url == "redis://127.0.0.1:6380/0"
    assert "--tls-port" not in render.redis_args(topo, tmp_path)
    assert render.oauth2_proxy_redis_env(topo) == {}


def test_every_task_has_its_own_ports_and_the_balancer_is_the_public_origin(tmp_path: Path):
    stack = ScaleOutStack(Topology(run_dir=tmp_path), tasks=3, balancer_port=18443)
    tasks = [task.topology for task in stack.tasks]
    own = [
        (t.nginx_port, t.oauth2_proxy_port, t.verifier_port, t.verifier_metrics_port, t.api_port)
        for t in tasks
    ]
    ports = [port for row in own for port in row]
    assert len(set(ports)) == len(ports) == 15
    assert 18443 not in ports
    for t in tasks:
        assert t.public_origin == "https://localhost:18443"
        assert (t.redis_port, t.devidp_port, t.database) == (6380, 8900, "postgres")
        assert t.redis_tls and t.redis_password == stack.topology.redis_password
        # One CA and one set of secrets for all: the session cookie made by one task opens on another.
        assert (t.tls_dir, t.secrets_path) == (tmp_path / "tls", tmp_path / "secrets.json")


def test_the_tasks_redis_user_has_exactly_the_rights_the_cloudformation_template_grants(tmp_path: Path):
    topo = Topology(
        run_dir=tmp_path,
        redis_port=6390,
        redis_tls=True,
        redis_password="pw",
        redis_username="entra-bff-edge",
    )
    args = render.redis_args(topo, tmp_path, (tmp_path / "cert.pem", tmp_path / "key.pem"))
    user = args[args.index("--user") :]
    user = user[: next((i for i, a in enumerate(user[1:], 1) if a.startswith("--")), len(user))]
    # Read here without the stack's loader: the line under RedisAppUser, as CloudFormation has it.
    template = (REPO_ROOT / render.EDGE_STACK_TEMPLATE).read_text()
    block = template[template.index("\n  RedisAppUser:") :]
    access = re.search(r"^\s+AccessString: (.+)$", block, re.MULTILINE)[1].split()  # type: ignore[index]
    assert user == ["--user", "entra-bff-edge", *access, ">pw"]
    # Both services sign in as that user; the default user stays for operators and tests.
    assert render.oauth2_proxy_redis_env(topo) == {
        "OAUTH2_PROXY_REDIS_PASSWORD": "pw",
        "OAUTH2_PROXY_REDIS_USERNAME": "entra-bff-edge",
    }
    assert topo.redis_client_url.startswith("rediss://entra-bff-edge:pw@127.0.0.1:6390/0?")
    assert topo.redis_admin_url.startswith("rediss://:pw@127.0.0.1:6390/0?")


def test_a_redis_user_without_a_password_is_refused(tmp_path: Path):
    topo = Topology(run_dir=tmp_path, redis_username="entra-bff-edge")
    with pytest.raises(render.TemplateError, match="password"):
        render.redis_args(topo, tmp_path)


def test_banner_values_line_up_in_one_column_whatever_the_labels():
    lines = labelled([("The app", "https://localhost:8443/"), ("Redis (TLS, user edge)", "127.0.0.1:6380")])
    assert lines == [
        "  The app:                https://localhost:8443/",
        "  Redis (TLS, user edge): 127.0.0.1:6380",
    ]
