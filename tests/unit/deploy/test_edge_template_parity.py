"""nginx/*.template (edge.conf and the parts it includes) is the single source of truth for nginx's
configuration: edge.conf's header lists every EDGE_* variable any of them uses, and compose.yaml and
the ECS nginx container set exactly those. The rendered configuration of both deployments, in the
image's layout (conf.d/ beside the main configuration), must pass `nginx -t`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stack.launcher import nginx_templates, write_edge_conf
from stack.render import inline_includes, nginx_main_conf, placeholders, render_template
from stack.topology import Topology
from tests.prerequisites import require_program
from tests.unit.deploy.conftest import assert_sets_exactly

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "nginx" / "edge.conf.template"
PREFIX = "EDGE_"
#: The header documents one variable a line: `#   EDGE_X  what it is`.
HEADER_NAME = r"^#\s+(EDGE_[A-Z0-9_]+)\s"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@pytest.fixture(scope="module")
def template_text() -> str:
    """edge.conf with every part inlined where it is included, unrendered: all that nginx reads."""
    return inline_includes(nginx_templates(REPO))


def test_template_header_documents_exactly_the_variables_it_uses(documented, used):
    assert documented == used


def test_template_uses_no_braced_variable_outside_the_edge_prefix(template_text):
    # The official image renders with NGINX_ENVSUBST_FILTER=^EDGE_: any other ${NAME} would be left
    # in the file verbatim, and nginx would read it as one of its own variables.
    braced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", template_text))
    others = braced - placeholders(template_text, "EDGE_")
    assert others == set()


def test_ecs_nginx_container_sets_exactly_the_template_variables(containers, traced_containers, env_of, used):
    for task in (containers, traced_containers):
        env = env_of(task["nginx"])
        edge = assert_sets_exactly(env, "EDGE_", used)
        assert set(env) == edge, "the nginx container needs nothing but EDGE_* variables"


def test_compose_nginx_service_sets_exactly_the_template_variables(compose, traced_compose, used):
    for project in (compose, traced_compose):
        env = project.environment("nginx")
        edge = assert_sets_exactly(env, "EDGE_", used)
        assert set(env) == edge


def test_nginx_image_renders_the_template_with_the_edge_filter(dockerfiles):
    nginx = dockerfiles["nginx"]
    assert any("NGINX_ENVSUBST_FILTER=^EDGE_" in env for env in nginx.all("ENV"))
    copies = nginx.all("COPY")
    assert any("nginx/*.template" in c and c.endswith("/etc/nginx/templates/") for c in copies), copies


def _nginx_test(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the edge rendered with ``env`` as the image lays it out."""
    assert NGINX is not None
    topo = Topology(run_dir=tmp_path)
    (tmp_path / "nginx").mkdir(exist_ok=True)
    edge_conf = write_edge_conf(tmp_path, nginx_templates(REPO), env)
    main_conf = tmp_path / "nginx.conf"
    main_conf.write_text(nginx_main_conf(topo, edge_conf, running_as_root=False))
    return subprocess.run(
        [NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(main_conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing-off", "tracing-xray"])
def test_ecs_nginx_environment_renders_a_configuration_nginx_accepts(
    tmp_path, containers, traced_containers, env_of, template_text, tracing
):
    require_program("nginx", "nginx")
    env = env_of((traced_containers if tracing else containers)["nginx"])
    # Paths that only exist inside the image move into the test folder; everything else is verbatim.
    env["EDGE_SPA_ROOT"] = str(tmp_path / "spa")
    env["EDGE_TLS_CONF_GLOB"] = str(tmp_path / "edge-tls" / "*.conf")  # matches nothing, like ECS
    rendered = render_template(template_text, env, "EDGE_")
    assert not placeholders(rendered, "EDGE_")
    assert "listen 8080;" in rendered
    span_log = "syslog:server=127.0.0.1:9200,nohostname,tag=edge_span" if tracing else "/dev/null"
    assert f"access_log {span_log} edge_span" in rendered
    done = _nginx_test(tmp_path, env)
    assert done.returncode == 0, done.stderr


def test_compose_nginx_environment_with_its_tls_files_renders_a_configuration_nginx_accepts(
    tmp_path, compose, template_text
):
    require_program("nginx", "nginx")
    # Run compose's own tls-init script, with its volume paths moved into the test folder.
    script = compose.services["tls-init"]["command"][2]
    tls_dir = tmp_path / "edge-tls"
    script = script.replace('"/tls', f'"{tls_dir}').replace("/etc/nginx/edge-tls", str(tls_dir))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tls_dir / "edge-tls.conf").is_file()
    assert (tls_dir / "server-key.pem").stat().st_mode & 0o777 == 0o640  # readable by nginx's group only

    env = compose.environment("nginx")
    env["EDGE_SPA_ROOT"] = str(tmp_path / "spa")
    env["EDGE_TLS_CONF_GLOB"] = str(tls_dir / "*.conf")
    rendered = render_template(template_text, env, "EDGE_")
    assert "listen 8443 ssl;" in rendered
    result = _nginx_test(tmp_path, env)
    assert result.returncode == 0, result.stderr
