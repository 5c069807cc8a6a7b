"""The launcher itself: rendering, clear start-up errors, and the banner `make run` prints."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from stack import render
from stack.launcher import Stack, nginx_templates
from stack.processes import StackError
from stack.topology import BFF_CLIENT_SECRET, REPO_ROOT, Topology, free_port_topology

pytestmark = pytest.mark.e2e

#: edge.conf with its parts inlined: the variables of every file nginx reads, documented in edge.conf.
NGINX_TEMPLATE = render.inline_includes(nginx_templates(REPO_ROOT))
#: oauth2-proxy's core options (--config) and its alpha configuration (--alpha-config).
O2P_TEMPLATE = (REPO_ROOT / render.OAUTH2_PROXY_TEMPLATE).read_text()
O2P_ALPHA_TEMPLATE = (REPO_ROOT / render.OAUTH2_PROXY_ALPHA_TEMPLATE).read_text()


def test_render_substitutes_only_edge_names_and_leaves_nginx_variables():
    text = "listen ${EDGE_LISTEN}; set $x $request_uri; ${OTHER} ${EDGE_LISTEN}"
    out = render.render_template(text, {"EDGE_LISTEN": "8080"}, "EDGE_")
    assert out == "listen 8080; set $x $request_uri; ${OTHER} 8080"


def test_render_refuses_missing_values_and_line_breaks():
    with pytest.raises(render.TemplateError, match="EDGE_B"):
        render.render_template("${EDGE_A} ${EDGE_B}", {"EDGE_A": "a"}, "EDGE_")
    with pytest.raises(render.TemplateError, match="line break"):
        render.render_template("${EDGE_A}", {"EDGE_A": "a;\nevil on;"}, "EDGE_")


@pytest.mark.parametrize(
    ("template", "prefix"),
    [(NGINX_TEMPLATE, "EDGE_"), (O2P_TEMPLATE, "O2P_"), (O2P_ALPHA_TEMPLATE, "O2P_")],
    ids=["nginx", "oauth2-proxy", "oauth2-proxy alpha"],
)
def test_every_template_variable_is_documented_in_its_header_and_used(template: str, prefix: str):
    header = "\n".join(line for line in template.splitlines() if line.startswith("#"))
    documented = set(re.findall(r"#\s+(" + prefix + r"[A-Z0-9_]+)\s", header))
    body = "\n".join(line for line in template.splitlines() if not line.startswith("#"))
    used = render.placeholders(body, prefix)
    assert documented == used


def test_local_values_cover_every_template_variable(tmp_path: Path):
    topo = Topology(run_dir=tmp_path)
    assert set(render.edge_values(topo)) == render.placeholders(NGINX_TEMPLATE, "EDGE_")
    o2p_values = render.oauth2_proxy_values(topo, tmp_path / "ca.pem")
    used = render.placeholders(O2P_TEMPLATE, "O2P_") | render.placeholders(O2P_ALPHA_TEMPLATE, "O2P_")
    assert set(o2p_values) == used


def test_rendered_oauth2_proxy_config_holds_no_secret_and_the_mandatory_settings(tmp_path: Path):
    topo = Topology(run_dir=tmp_path)
    values = render.oauth2_proxy_values(topo, tmp_path / "ca.pem")
    cfg = render.render_template(O2P_TEMPLATE, values, "O2P_")
    alpha = render.render_template(O2P_ALPHA_TEMPLATE, values, "O2P_")
    for text in (cfg, alpha):
        assert BFF_CLIENT_SECRET not in text
    assert "client_secret" not in cfg.replace("OAUTH2_PROXY_CLIENT_SECRET", "")
    # oauth2-proxy substitutes it from its environment as it loads the file.
    assert "clientSecret: '${OAUTH2_PROXY_CLIENT_SECRET}'" in alpha
    assert 'trusted_proxy_ips = ["127.0.0.1/32"]' in cfg
    assert 'whitelist_domains = ["localhost:8443"]' in cfg
    assert 'cookie_name = "__Host-oauth2_proxy"' in cfg
    assert 'cookie_refresh = "900s"' in cfg and 'cookie_expire = "3600s"' in cfg
    assert "cookie_csrf_per_request = true" in cfg and 'cookie_samesite = "lax"' in cfg
    assert 'bindAddress: "127.0.0.1:4180"' in alpha
    assert "code_challenge_method: S256" in alpha
    assert "insecureSkipNonce: false" in alpha
    assert "api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57/user.read" in alpha
    assert f'issuerURL: "{topo.oidc_issuer}"' in alpha


def test_oauth2_proxy_is_started_with_both_rendered_files_and_its_metrics_address(tmp_path: Path):
    stack = Stack(free_port_topology(tmp_path, oauth2_proxy_metrics_port=None))
    stack.prepare()
    o2p = stack.processes["oauth2-proxy"]
    conf = stack.topology.conf_dir
    assert o2p.argv[1:5] == [
        "--config", str(conf / "oauth2-proxy.cfg"), "--alpha-config", str(conf / "oauth2-proxy.alpha.yaml")
    ]  # fmt: skip
    assert not any(a.startswith("--metrics-address") for a in o2p.argv), "no such flag with an alpha file"
    assert o2p.env["OAUTH2_PROXY_METRICS_ADDRESS"] == "", "off, whatever the caller's environment says"
    assert "${O2P_" not in (conf / "oauth2-proxy.alpha.yaml").read_text()
    with_metrics = Stack(free_port_topology(tmp_path / "metrics", oauth2_proxy_metrics_port=19101))
    with_metrics.prepare()
    address = with_metrics.processes["oauth2-proxy"].env["OAUTH2_PROXY_METRICS_ADDRESS"]
    assert address == f"{with_metrics.topology.bind_host}:19101"


def test_stack_on_other_ports_registers_its_own_redirect_uri_with_devidp(tmp_path: Path):
    example = (REPO_ROOT / "devidp" / "example.toml").read_text()
    moved = render.devidp_config_text(example, replace(Topology(run_dir=tmp_path), nginx_port=18443))
    assert "https://localhost:18443/oauth2/callback" in moved
    assert "https://localhost:8443" not in moved
    assert render.devidp_config_text(example, Topology(run_dir=tmp_path)) == example


def test_rendered_nginx_config_passes_nginx_t(tmp_path: Path):
    stack = Stack(free_port_topology(tmp_path))
    stack.prepare()
    nginx = stack.processes["nginx"]
    argv = [a for a in nginx.argv if a not in ("daemon off; error_log stderr notice;", "-g")] + ["-t"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_taken_port_is_a_clear_error_naming_port_and_component(tmp_path: Path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        stack = Stack(free_port_topology(tmp_path, oauth2_proxy_port=port))
        with pytest.raises(StackError) as caught:
            stack.start()
    message = str(caught.value)
    assert f"port {port}" in message and "oauth2-proxy" in message and "--base-port" in message
    assert not any(p.running for p in stack.processes.values())


def test_missing_program_is_a_clear_error(tmp_path: Path):
    stack = Stack(free_port_topology(tmp_path), oauth2_proxy_binary=tmp_path / "no-such-oauth2-proxy")
    with pytest.raises(StackError, match=r"oauth2-proxy is missing: .*make setup"):
        stack.prepare()


def test_component_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path):
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml\n")
    stack = Stack(free_port_topology(tmp_path / "run", devidp_config=broken))
    with pytest.raises(StackError, match=r"devidp exited with status \d+ while starting") as caught:
        stack.start(["redis", "devidp"])
    assert "devidp.log" in str(caught.value)
    assert not any(p.running for p in stack.processes.values())


def _seven_free_ports() -> int:
    """A base port with base..base+6 free right now (below the kernel's ephemeral range)."""
    for base in range(20000, 30000, 7):
        try:
            for port in range(base, base + 7):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no seven consecutive free ports between 20000 and 30000")


def test_cli_up_fails_fast_with_exit_1_when_a_port_is_taken(tmp_path: Path):
    base = _seven_free_ports()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base))  # nginx is base+0: taken
        squatter.listen()
        result = subprocess.run(
            [sys.executable, "-m", "stack", "up", "--run-dir", str(tmp_path), "--base-port", str(base)],
            capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {base}" in result.stderr and "nginx" in result.stderr


def test_banner_prints_urls_and_devidp_users_with_passwords(stack: Stack):
    banner = stack.banner()
    assert stack.topology.public_origin in banner
    assert str(stack.ca_file) in banner
    for user, role in (("alice", "Reader"), ("bob", "Writer"), ("carol", "Admin"), ("erin", "no role")):
        line = next(x for x in banner.splitlines() if f"{user}@contoso-dev.example" in x)
        assert f"{user}-password" in line and role in line
    assert "[disabled]" in next(x for x in banner.splitlines() if "frank@" in x)
