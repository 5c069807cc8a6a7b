"""oauth2-proxy/oauth2-proxy.cfg.template is the single source of truth for oauth2-proxy's options:
its header lists every O2P_* variable, compose and the ECS container set exactly those, and the
image's entrypoint renders it (refusing to start on a missing one). The ECS environment, rendered by
that entrypoint, must pass the real oauth2-proxy's own `--config-test` against a real Redis with the
same ACL user and password scheme as ElastiCache."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from stack.render import placeholders
from tests.prerequisites import require_file, require_program
from tests.unit.deploy.conftest import assert_sets_exactly

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "oauth2-proxy" / "oauth2-proxy.cfg.template"
PREFIX = "O2P_"
#: The header names the variables anywhere in its lines.
HEADER_NAME = r"\b(O2P_[A-Z0-9_]+)\b"
ENTRYPOINT = REPO / "deploy" / "docker" / "oauth2-proxy-entrypoint.sh"
OAUTH2_PROXY = REPO / ".cache" / "bin" / "oauth2-proxy"
REDIS_SERVER = shutil.which("redis-server")
REDIS_USER = "entra-bff-edge"
REDIS_PASSWORD = "test-only-redis-password"


def test_template_header_documents_exactly_the_variables_it_uses(documented, used):
    assert documented == used


def test_ecs_container_sets_exactly_the_template_variables(containers, env_of, used):
    assert_sets_exactly(env_of(containers["oauth2-proxy"]), "O2P_", used)


def test_compose_service_sets_exactly_the_template_variables(compose, used):
    assert_sets_exactly(compose.environment("oauth2-proxy"), "O2P_", used)


def test_other_variables_are_real_oauth2_proxy_options(containers, env_of, secrets_of, compose):
    # Anything beyond O2P_* must be one of oauth2-proxy's own OAUTH2_PROXY_<OPTION> variables, and only
    # those the design needs (secrets, the Redis user, and its /metrics on the task's loopback, where
    # deploy/prometheus/prometheus.yml scrapes it).
    allowed = {
        "OAUTH2_PROXY_METRICS_ADDRESS",
        "OAUTH2_PROXY_CLIENT_SECRET",
        "OAUTH2_PROXY_COOKIE_SECRET",
        "OAUTH2_PROXY_REDIS_PASSWORD",
        "OAUTH2_PROXY_REDIS_USERNAME",
    }
    ecs = set(env_of(containers["oauth2-proxy"])) | secrets_of(containers["oauth2-proxy"])
    assert {n for n in ecs if not n.startswith("O2P_")} == allowed
    assert {n for n in compose.environment("oauth2-proxy") if not n.startswith("O2P_")} == allowed


def test_ecs_values_follow_the_design(containers, env_of, example_values):
    env = env_of(containers["oauth2-proxy"])
    tenant, api = example_values["ENTRA_TENANT_ID"], example_values["API_APP_ID"]
    host = example_values["PUBLIC_HOST"]
    assert env["O2P_OIDC_ISSUER_URL"] == f"https://login.microsoftonline.com/{tenant}/v2.0"
    assert env["O2P_REDIRECT_URL"] == f"https://{host}/oauth2/callback"
    assert env["O2P_WHITELIST_DOMAIN"] == host
    assert env["O2P_TRUSTED_PROXY_IP"] == "127.0.0.1/32"
    assert env["O2P_COOKIE_NAME"] == "__Host-oauth2_proxy"
    assert (env["O2P_COOKIE_REFRESH"], env["O2P_COOKIE_EXPIRE"]) == ("15m", "1h")
    assert env["O2P_REDIS_URL"].startswith("rediss://"), "ElastiCache is reached with TLS"
    scopes = env["O2P_SCOPE"].split()
    assert {"openid", "offline_access", f"api://{api}/user.read"} <= set(scopes)


# --- the entrypoint ------------------------------------------------------------------------------


def _fake_binary(tmp_path: Path) -> Path:
    fake = tmp_path / "fake-oauth2-proxy"
    fake.write_text(
        '#!/bin/sh\necho "args: $*"\n'
        'for a in "$@"; do case "$a" in --config=*) cat "${a#--config=}";; esac; done\n'
    )
    fake.chmod(0o755)
    return fake


def _run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_entrypoint_refuses_to_start_and_names_every_missing_variable(tmp_path, used):
    present = sorted(used)[0]
    done = _run_entrypoint(
        {
            "O2P_TEMPLATE": str(TEMPLATE),
            "O2P_CONFIG": str(tmp_path / "o.cfg"),
            "O2P_BINARY": str(_fake_binary(tmp_path)),
            present: "x",
        }
    )
    assert done.returncode == 2
    assert "refusing to start" in done.stderr
    for name in used - {present}:
        assert name in done.stderr
    assert present not in done.stderr.split(":", 1)[1]
    assert "args:" not in done.stdout, "the binary must not run"


def test_entrypoint_substitutes_only_o2p_names_and_passes_arguments_through(tmp_path, containers, env_of):
    require_program("envsubst", "gettext-base")
    template = tmp_path / "t.cfg.template"
    template.write_text('a = "${O2P_A}"\nb = "${HOME}"\nc = "$O2P_A"\nd = "${O2P_B}"\n')
    done = _run_entrypoint(
        {
            "O2P_TEMPLATE": str(template),
            "O2P_CONFIG": str(tmp_path / "o.cfg"),
            "O2P_BINARY": str(_fake_binary(tmp_path)),
            "O2P_A": "value-a",
            "O2P_B": "it's $ok",
            "HOME": "/should/not/appear",
        },
        "--config-test",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"args: --config={tmp_path / 'o.cfg'} --config-test"
    # Only braced O2P_ names are the template's; `$O2P_A` without braces is envsubst's too, which is
    # why the template must not contain one (checked below).
    assert lines[1:3] == ['a = "value-a"', 'b = "${HOME}"']
    assert lines[4] == 'd = "it\'s $ok"'
    assert oct((tmp_path / "o.cfg").stat().st_mode & 0o777) == oct(0o600)


def test_template_has_no_unbraced_o2p_reference(template_text):
    assert not re.search(r"\$O2P_", template_text)


@pytest.fixture
def oauth2_proxy_prerequisites() -> None:
    require_file(OAUTH2_PROXY, "scripts/setup.sh builds it")
    require_program("envsubst", "gettext-base")


needs_oauth2_proxy = pytest.mark.usefixtures("oauth2_proxy_prerequisites")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_accepts(port: int, user: str, password: str) -> bool:
    """True once Redis at ``port`` answers AUTH for ``user`` and then PING."""
    command = f"AUTH {user} {password}\r\nPING\r\n".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(command)
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = connection.recv(256)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return False
    return answer == b"+OK\r\n+PONG\r\n"


def _wait_until_redis_accepts(proc: subprocess.Popen[bytes], port: int, user: str, password: str) -> None:
    deadline = time.monotonic() + 30
    while not _redis_accepts(port, user, password):
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with status {proc.returncode} before it answered")
        if time.monotonic() > deadline:
            pytest.fail(f"redis-server on port {port} did not accept {user}'s password within 30 s")
        time.sleep(0.05)


@pytest.fixture
def acl_redis(tmp_path):
    require_program("redis-server", "redis-server")
    port = _free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path), "--user", "default", "off",
            "--user", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all", "-@dangerous",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_redis_accepts(proc, port, REDIS_USER, REDIS_PASSWORD)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_oauth2_proxy
def test_ecs_environment_passes_the_real_oauth2_proxy_config_test(tmp_path, containers, env_of, acl_redis):
    env = env_of(containers["oauth2-proxy"])
    # ElastiCache is not here: the same ACL user/password scheme on a local Redis instead of TLS.
    env["O2P_REDIS_URL"] = f"redis://127.0.0.1:{acl_redis}"
    assert env["OAUTH2_PROXY_REDIS_USERNAME"]
    env["OAUTH2_PROXY_REDIS_USERNAME"] = REDIS_USER
    env.update(
        {
            "OAUTH2_PROXY_REDIS_PASSWORD": REDIS_PASSWORD,
            "OAUTH2_PROXY_CLIENT_SECRET": "test-only-client-secret",
            "OAUTH2_PROXY_COOKIE_SECRET": "0123456789abcdef0123456789abcdef",
            "O2P_TEMPLATE": str(TEMPLATE),
            "O2P_CONFIG": str(tmp_path / "oauth2-proxy.cfg"),
            "O2P_BINARY": str(OAUTH2_PROXY),
        }
    )
    require_file(Path(env["O2P_PROVIDER_CA_FILE"]), "install Debian's ca-certificates")
    done = _run_entrypoint(env, "--config-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "configuration is valid" in done.stdout
    rendered = (tmp_path / "oauth2-proxy.cfg").read_text()
    assert not placeholders(rendered, "O2P_")
    assert "test-only" not in rendered, "secrets must stay in the environment, never in the file"


@needs_oauth2_proxy
def test_a_wrong_redis_password_fails_the_config_test(tmp_path, containers, env_of, acl_redis):
    env = env_of(containers["oauth2-proxy"])
    env.update(
        {
            "O2P_REDIS_URL": f"redis://127.0.0.1:{acl_redis}",
            "O2P_PROVIDER_CA_FILE": "/etc/ssl/certs/ca-certificates.crt",
            "OAUTH2_PROXY_REDIS_USERNAME": REDIS_USER,
            "OAUTH2_PROXY_REDIS_PASSWORD": "wrong",
            "OAUTH2_PROXY_CLIENT_SECRET": "test-only-client-secret",
            "OAUTH2_PROXY_COOKIE_SECRET": "0123456789abcdef0123456789abcdef",
            "O2P_TEMPLATE": str(TEMPLATE),
            "O2P_CONFIG": str(tmp_path / "oauth2-proxy.cfg"),
            "O2P_BINARY": str(OAUTH2_PROXY),
        }
    )
    done = _run_entrypoint(env, "--config-test")
    assert done.returncode != 0
    # Redis refused the password: not merely "no Redis there", which would also fail the test run.
    assert "WRONGPASS" in done.stderr, done.stdout + done.stderr


def test_image_builds_the_version_pinned_in_the_repository(dockerfiles):
    dockerfile = dockerfiles["oauth2-proxy"]
    text = dockerfile.path.read_text()
    pinned = (REPO / "OAUTH2_PROXY_VERSION").read_text().strip()
    assert any(c.split()[0] == "OAUTH2_PROXY_VERSION" for c in dockerfile.all("COPY"))
    assert "< OAUTH2_PROXY_VERSION" in text
    assert pinned not in text, "the version must come from the file, not a second copy"
    assert "github.com/oauth2-proxy/oauth2-proxy/v7" in text
    assert any("oauth2-proxy-entrypoint" in e for e in dockerfile.all("ENTRYPOINT"))
    assert os.access(ENTRYPOINT, os.X_OK)
