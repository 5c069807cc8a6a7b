"""oauth2-proxy's two templates, oauth2-proxy/oauth2-proxy.cfg.template (the core options) and
oauth2-proxy/oauth2-proxy.alpha.yaml.template (the provider, headers, servers and upstream), are the
single source of truth for its options: each one's header lists every O2P_* variable it uses, compose
and the ECS container set exactly those, and the image's entrypoint renders both (refusing to start on
a missing one). The ECS environment, rendered by that entrypoint, must pass the real oauth2-proxy's
own `--config-test` against a real Redis with the same ACL user and password scheme as ElastiCache,
and neither rendered file may hold a secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from stack.render import placeholders
from tests.prerequisites import require_file, require_program
from tests.unit.deploy.conftest import (
    OAUTH2_PROXY_ENTRYPOINT,
    OAUTH2_PROXY_TEMPLATES,
    REDIS_PASSWORD,
    REDIS_USER,
    assert_sets_exactly,
    header_names,
    oauth2_proxy_entrypoint_files,
    run_oauth2_proxy_entrypoint,
)

REPO = Path(__file__).resolve().parents[3]
TEMPLATES = OAUTH2_PROXY_TEMPLATES
CORE_TEMPLATE, ALPHA_TEMPLATE = OAUTH2_PROXY_TEMPLATES
PREFIX = "O2P_"
#: The header names the variables anywhere in its lines.
HEADER_NAME = r"\b(O2P_[A-Z0-9_]+)\b"
#: What the alpha file takes from oauth2-proxy's environment itself, when oauth2-proxy loads it.
ALPHA_ENVIRONMENT = {"OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_METRICS_ADDRESS"}

needs_oauth2_proxy = pytest.mark.usefixtures("oauth2_proxy_prerequisites")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_each_template_header_documents_exactly_the_variables_that_template_uses(template: Path):
    text = template.read_text(encoding="utf-8")
    assert header_names(text, HEADER_NAME) == placeholders(text, PREFIX)


def test_the_templates_together_document_every_variable_they_use(documented, used):
    assert documented == used


def test_ecs_container_sets_exactly_the_template_variables(containers, env_of, used):
    assert_sets_exactly(env_of(containers["oauth2-proxy"]), "O2P_", used)


def test_compose_service_sets_exactly_the_template_variables(compose, used):
    assert_sets_exactly(compose.environment("oauth2-proxy"), "O2P_", used)


def test_other_variables_are_oauth2_proxy_options_or_read_by_the_alpha_file(
    containers, env_of, secrets_of, compose
):
    # Anything beyond O2P_* is one of oauth2-proxy's own OAUTH2_PROXY_<OPTION> variables of the core
    # options, or a name the alpha file substitutes as oauth2-proxy loads it; only those the design
    # needs (secrets, the Redis user, and its /metrics on the task's loopback, where
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
    assert ALPHA_ENVIRONMENT <= allowed


def _braced_names(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def test_only_the_alpha_file_reads_oauth2_proxys_environment_and_only_the_names_it_documents():
    core, alpha = (template.read_text(encoding="utf-8") for template in TEMPLATES)
    assert _braced_names(core) == placeholders(core, PREFIX)
    assert _braced_names(alpha) - placeholders(alpha, PREFIX) == ALPHA_ENVIRONMENT
    header = "\n".join(line for line in alpha.splitlines() if line.startswith("#"))
    for name in ALPHA_ENVIRONMENT:
        assert name in header
    # oauth2-proxy expands every dollar sign of the alpha file: any but the pattern's end anchor and
    # the references would be eaten (a comment holding one too).
    assert re.findall(r"\$(?!\{)", alpha) == ["$"]


def test_the_client_secret_is_a_reference_to_the_environment_in_the_alpha_file():
    core, alpha = (template.read_text(encoding="utf-8") for template in TEMPLATES)
    assert "client_secret" not in core
    secret_lines = [line.strip() for line in alpha.splitlines() if "clientSecret" in line and "#" not in line]
    assert secret_lines == ["clientSecret: '${OAUTH2_PROXY_CLIENT_SECRET}'"]


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
    """Prints its arguments, then the files it was given."""
    fake = tmp_path / "fake-oauth2-proxy"
    fake.write_text(
        '#!/bin/sh\necho "args: $*"\n'
        'for a in "$@"; do case "$a" in --config=*) cat "${a#--config=}";; esac; done\n'
        'for a in "$@"; do case "$a" in --alpha-config=*) cat "${a#--alpha-config=}";; esac; done\n'
    )
    fake.chmod(0o755)
    return fake


def test_entrypoint_refuses_to_start_and_names_every_missing_variable(tmp_path, used):
    present = sorted(used)[0]
    env = {**oauth2_proxy_entrypoint_files(tmp_path, _fake_binary(tmp_path)), present: "x"}
    done = run_oauth2_proxy_entrypoint(env)
    assert done.returncode == 2
    assert "refusing to start" in done.stderr
    for name in used - {present}:
        assert name in done.stderr
    assert present not in done.stderr.split(":", 1)[1]
    assert "args:" not in done.stdout, "the binary must not run"


def test_entrypoint_misses_a_variable_only_the_alpha_template_uses(tmp_path, containers, env_of):
    env = env_of(containers["oauth2-proxy"])
    env.update(oauth2_proxy_entrypoint_files(tmp_path, _fake_binary(tmp_path)))
    core, alpha = (template.read_text(encoding="utf-8") for template in TEMPLATES)
    only_alpha = placeholders(alpha, PREFIX) - placeholders(core, PREFIX)
    assert only_alpha, "the alpha template uses a variable of its own"
    name = sorted(only_alpha)[0]
    del env[name]
    done = run_oauth2_proxy_entrypoint(env)
    assert done.returncode == 2
    first_line = done.stderr.splitlines()[0]
    assert first_line == f"oauth2-proxy: refusing to start; these variables are not set: {name}"


def test_entrypoint_substitutes_only_o2p_names_and_passes_arguments_through(tmp_path):
    require_program("envsubst", "gettext-base")
    core = tmp_path / "t.cfg.template"
    core.write_text('a = "${O2P_A}"\nb = "${HOME}"\nc = "$O2P_A"\nd = "${O2P_B}"\n')
    alpha = tmp_path / "t.alpha.yaml.template"
    alpha.write_text("e: '${O2P_A}'\nf: '${OAUTH2_PROXY_CLIENT_SECRET}'\ng: '^c[1-9]$'\n")
    env = {
        **oauth2_proxy_entrypoint_files(tmp_path, _fake_binary(tmp_path)),
        "O2P_TEMPLATE": str(core),
        "O2P_ALPHA_TEMPLATE": str(alpha),
        "O2P_A": "value-a",
        "O2P_B": "it's $ok",
        "HOME": "/should/not/appear",
        "OAUTH2_PROXY_CLIENT_SECRET": "test-only-client-secret",
    }
    done = run_oauth2_proxy_entrypoint(env, "--config-test")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    config, alpha_config = tmp_path / "oauth2-proxy.cfg", tmp_path / "oauth2-proxy.alpha.yaml"
    assert lines[0] == f"args: --config={config} --alpha-config={alpha_config} --config-test"
    # Only braced O2P_ names are the templates'; `$O2P_A` without braces is envsubst's too, which is
    # why the templates must not contain one (checked below).
    assert lines[1:3] == ['a = "value-a"', 'b = "${HOME}"']
    assert lines[4] == 'd = "it\'s $ok"'
    # oauth2-proxy's own references and a regular expression's anchor reach it as they are.
    assert lines[5:] == ["e: 'value-a'", "f: '${OAUTH2_PROXY_CLIENT_SECRET}'", "g: '^c[1-9]$'"]
    for rendered in (config, alpha_config):
        assert oct(rendered.stat().st_mode & 0o777) == oct(0o600)


def test_template_has_no_unbraced_o2p_reference(template_text):
    assert not re.search(r"\$O2P_", template_text)


def _with_local_redis(env: dict[str, str], redis_port: int, password: str) -> dict[str, str]:
    """The ECS environment against a local Redis: ElastiCache is not here, so the same ACL user and
    password scheme without TLS; placeholders for the secrets Secrets Manager injects."""
    assert env["OAUTH2_PROXY_REDIS_USERNAME"]
    return {
        **env,
        "O2P_REDIS_URL": f"redis://127.0.0.1:{redis_port}",
        "OAUTH2_PROXY_REDIS_USERNAME": REDIS_USER,
        "OAUTH2_PROXY_REDIS_PASSWORD": password,
        "OAUTH2_PROXY_CLIENT_SECRET": "test-only-client-secret",
        "OAUTH2_PROXY_COOKIE_SECRET": "0123456789abcdef0123456789abcdef",
    }


@needs_oauth2_proxy
def test_ecs_environment_passes_the_real_oauth2_proxy_config_test(tmp_path, containers, env_of, acl_redis):
    env = _with_local_redis(env_of(containers["oauth2-proxy"]), acl_redis, REDIS_PASSWORD)
    env.update(oauth2_proxy_entrypoint_files(tmp_path))
    require_file(Path(env["O2P_PROVIDER_CA_FILE"]), "install Debian's ca-certificates")
    done = run_oauth2_proxy_entrypoint(env, "--config-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "configuration is valid" in done.stdout
    for rendered in (Path(env["O2P_CONFIG"]), Path(env["O2P_ALPHA_CONFIG"])):
        text = rendered.read_text()
        assert not placeholders(text, "O2P_")
        assert "test-only" not in text, f"secrets must stay in the environment, never in {rendered.name}"


@needs_oauth2_proxy
def test_an_option_of_the_alpha_file_repeated_in_the_core_file_fails_the_config_test(
    tmp_path, containers, env_of, acl_redis
):
    # The reason the headers, provider and servers are only in the alpha file: oauth2-proxy refuses a
    # core file that still sets one, naming it.
    env = _with_local_redis(env_of(containers["oauth2-proxy"]), acl_redis, REDIS_PASSWORD)
    env.update(oauth2_proxy_entrypoint_files(tmp_path))
    core = tmp_path / "core.cfg.template"
    core.write_text(CORE_TEMPLATE.read_text(encoding="utf-8") + "set_xauthrequest = true\n")
    env["O2P_TEMPLATE"] = str(core)
    done = run_oauth2_proxy_entrypoint(env, "--config-test")
    assert done.returncode != 0
    assert "invalid keys: set_xauthrequest" in done.stderr, done.stdout + done.stderr


@needs_oauth2_proxy
def test_a_wrong_redis_password_fails_the_config_test(tmp_path, containers, env_of, acl_redis):
    env = _with_local_redis(env_of(containers["oauth2-proxy"]), acl_redis, "wrong")
    env.update(oauth2_proxy_entrypoint_files(tmp_path))
    env["O2P_PROVIDER_CA_FILE"] = "/etc/ssl/certs/ca-certificates.crt"
    done = run_oauth2_proxy_entrypoint(env, "--config-test")
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
    assert os.access(OAUTH2_PROXY_ENTRYPOINT, os.X_OK)


def test_image_holds_both_templates_where_the_entrypoint_reads_them(dockerfiles):
    dockerfile = dockerfiles["oauth2-proxy"]
    copied = {tuple(args.split()) for args in dockerfile.all("COPY")}
    entrypoint = OAUTH2_PROXY_ENTRYPOINT.read_text(encoding="utf-8")
    ignore = (REPO / "deploy" / "docker" / "oauth2-proxy.Dockerfile.dockerignore").read_text().splitlines()
    for template in TEMPLATES:
        source = str(template.relative_to(REPO))
        target = f"/etc/oauth2-proxy/{template.name}"
        assert (source, target) in copied
        assert f"!{source}" in ignore, "the build context must include it"
        assert f":-{target}}}" in entrypoint
