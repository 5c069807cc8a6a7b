"""compose.yaml: the ECS task's layout on one machine (one shared network namespace, the same
hardening), devidp and Jaeger only in their development profiles, every required value provided by the
development env file, and tracing on exactly when deploy/docker/tracing.env follows it, with the
values of the ECS task's tracing overlay."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.containers import engine
from tests.containers.engine import run_compose
from tests.prerequisites import require_file
from tests.unit.deploy.conftest import TRACING_ENV, ecs_environment, parse_dockerfile, read_env_file

REPO = Path(__file__).resolve().parents[3]
DEV_ENV = REPO / "deploy" / "docker" / "devidp.env"
JAEGER_CONFIG = REPO / "deploy" / "docker" / "jaeger.yaml"
JAEGER_DOCKERFILE = REPO / "deploy" / "docker" / "jaeger.Dockerfile"
TASK_CONTAINERS = ("nginx", "oauth2-proxy", "verifier", "api")
#: The development-only services and the one profile each runs in.
PROFILED = {"devidp": "devidp", "jaeger": "tracing"}
#: What turns tracing on, by service: the ECS overlay's variables.
TRACING_VARIABLES = {
    "nginx": ("EDGE_SPAN_LOG",),
    "verifier": ("OTEL_EXPORTER_OTLP_ENDPOINT", "VERIFIER_EDGE_SPANS_LISTEN"),
    "api": ("OTEL_EXPORTER_OTLP_ENDPOINT",),
}


def test_task_containers_share_one_network_namespace_like_awsvpc(compose):
    for name in (*TASK_CONTAINERS, *PROFILED):
        assert compose.services[name]["network_mode"] == "service:task", name
    # Redis stands outside the task, like ElastiCache.
    assert "network_mode" not in compose.services["redis"]


def test_only_loopback_ports_of_the_task_are_published(compose):
    for name, service in compose.services.items():
        ports = service.get("ports", [])
        if name != "task":
            assert not ports, f"{name} publishes ports; only the task namespace may"
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is reachable from other machines"
    published = {str(p).split(":")[1] for p in compose.services["task"]["ports"]}
    assert published == {"8443", "8900", "16686"}, (
        "nginx, devidp and Jaeger's query API in their profiles; never 4180/9000/9100/8000, nor the "
        "OTLP receiver 4318 or the span records' 9200"
    )


def test_every_long_running_service_is_hardened(compose):
    for name, service in compose.services.items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        uid = str(service["user"]).split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name} must run as a non-root numeric user"
        assert not service.get("privileged"), name


def test_task_containers_run_as_the_same_users_as_on_ecs(compose, containers):
    for name in TASK_CONTAINERS:
        assert compose.services[name]["user"] == containers[name]["user"], name


def test_task_containers_use_the_same_images_as_on_ecs(compose, containers, image_of):
    for name in TASK_CONTAINERS:
        local = compose.services[name]["image"].split("/", 1)[1].split(":")[0]
        assert local == image_of(containers[name]["image"]), name


def test_verifier_and_api_run_the_same_commands_as_on_ecs(compose, containers):
    for name in ("verifier", "api", "api-migrate"):
        assert compose.services[name]["command"] == containers[name]["command"], name


def test_health_checks_match_the_task_definition(compose, containers):
    for name in ("oauth2-proxy", "verifier", "api"):
        expected = containers[name]["healthCheck"]["command"]
        assert compose.services[name]["healthcheck"]["test"] == expected, name
    # nginx speaks TLS here (8443) and plain HTTP on ECS (8080); the path is the ALB's.
    assert compose.services["nginx"]["healthcheck"]["test"][-1] == "https://127.0.0.1:8443/healthz"


def test_nginx_waits_for_healthy_sidecars_like_the_task_definition(compose, containers):
    depends = compose.services["nginx"]["depends_on"]
    ecs = {d["containerName"] for d in containers["nginx"]["dependsOn"]}
    assert {n for n, c in depends.items() if c["condition"] == "service_healthy"} == ecs


def test_devidp_and_jaeger_run_only_in_their_profiles(compose):
    for name, service in compose.services.items():
        if name in PROFILED:
            assert service["profiles"] == [PROFILED[name]]
        else:
            assert "profiles" not in service, f"{name} must run in every profile"
            for development in PROFILED:
                assert development not in service.get("depends_on", {}), f"{name} must not need {development}"


def test_no_always_on_service_mentions_devidp_or_jaeger_outside_a_comment(compose):
    for name, service in compose.raw["services"].items():
        if name in (*PROFILED, "task"):
            continue
        assert "devidp" not in str(service).lower(), name
        assert "jaeger" not in str(service).lower(), name


def test_compose_without_an_env_file_refuses_to_guess_tenant_values(compose_loader):
    with pytest.raises(Exception) as caught:  # conftest.InterpolationError
        compose_loader({})
    assert type(caught.value).__name__ == "InterpolationError"
    assert str(caught.value).startswith(("ENTRA_TENANT_ID", "API_APP_ID", "BFF_CLIENT_ID", "REDIS_PASSWORD"))


def test_the_dev_env_file_enables_the_profile_and_points_everything_at_devidp(devidp_env, compose):
    assert devidp_env["COMPOSE_PROFILES"] == "devidp"
    o2p = compose.environment("oauth2-proxy")
    assert o2p["O2P_OIDC_ISSUER_URL"] == "https://localhost:8900/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/v2.0"
    assert o2p["O2P_PROVIDER_CA_FILE"] == "/tls/dev-ca.pem"
    assert compose.environment("nginx")["EDGE_AUTHORITY_ORIGIN"] == "https://localhost:8900"
    command = compose.services["devidp"]["command"]
    assert command[command.index("--public-url") + 1] == "https://localhost:8900"


def test_the_dev_env_file_matches_devidps_example_registrations(devidp_env):
    from stack import topology

    assert devidp_env["ENTRA_TENANT_ID"] == topology.PRIMARY_TENANT_ID
    assert devidp_env["API_APP_ID"] == topology.API_APP_ID
    assert devidp_env["BFF_CLIENT_ID"] == topology.BFF_CLIENT_ID
    assert devidp_env["BFF_CLIENT_SECRET"] == topology.BFF_CLIENT_SECRET
    assert devidp_env["SPA_CLIENT_ID"] == topology.SPA_CLIENT_ID
    example = (REPO / "devidp" / "example.toml").read_text()
    ids = (topology.PRIMARY_TENANT_ID, topology.API_APP_ID, topology.BFF_CLIENT_ID, topology.SPA_CLIENT_ID)
    assert all(value in example for value in ids)


def test_compose_redirect_uri_is_one_devidp_registers(compose):
    redirect = compose.environment("oauth2-proxy")["O2P_REDIRECT_URL"]
    assert redirect == "https://localhost:8443/oauth2/callback"
    assert f'"{redirect}"' in (REPO / "devidp" / "example.toml").read_text()


def test_build_contexts_and_dockerfiles_exist(compose):
    for name, service in compose.services.items():
        build = service.get("build")
        if build:
            assert build["context"] == "."
            assert (REPO / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"


@pytest.fixture(scope="module")
def resolved_model() -> dict:
    """compose.yaml as the real CLI resolves it with the development env file."""
    return engine.resolved_model()


def test_docker_compose_accepts_the_file_with_the_dev_env_file():
    done = run_compose("--env-file", str(DEV_ENV), "config", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "no warning either (an unset variable defaulting to blank warns)"


def test_docker_compose_refuses_the_file_without_tenant_values():
    done = run_compose("config", "--quiet")
    assert done.returncode == 1
    assert "required variable ENTRA_TENANT_ID is missing a value: set ENTRA_TENANT_ID" in done.stderr


def test_the_cli_is_the_pinned_compose_release():
    done = run_compose("version", "--short")
    assert done.returncode == 0, done.stderr
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert f"compose_version=v{done.stdout.strip()}\n" in setup


EVERY_DEV_SERVICE = (
    "api",
    "api-migrate",
    "devidp",
    "nginx",
    "oauth2-proxy",
    "postgres",
    "redis",
    "task",
    "tls-init",
    "verifier",
)


def test_resolved_model_runs_every_service_of_the_dev_profile(resolved_model):
    assert sorted(resolved_model["services"]) == list(EVERY_DEV_SERVICE)
    assert "jaeger" not in resolved_model["services"], "Jaeger only with tracing"


def test_health_checks_probe_readiness_not_liveness(resolved_model, containers):
    """A verifier without signing keys and an oauth2-proxy without Redis can only refuse: neither may
    count as healthy, in compose or on ECS."""
    services = resolved_model["services"]
    verifier = services["verifier"]["healthcheck"]["test"]
    oauth2_proxy = services["oauth2-proxy"]["healthcheck"]["test"]
    assert "http://127.0.0.1:9000/readyz" in verifier[-1]
    assert oauth2_proxy[-1] == "http://127.0.0.1:4180/ready"
    assert containers["verifier"]["healthCheck"]["command"] == verifier
    assert containers["oauth2-proxy"]["healthCheck"]["command"] == oauth2_proxy


def test_api_migrates_first_and_keeps_its_data_in_the_postgres_service(compose):
    api, migrate = compose.services["api"], compose.services["api-migrate"]
    assert api["depends_on"]["api-migrate"] == {"condition": "service_completed_successfully"}
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    url = compose.environment("api")["API_DATABASE_URL"]
    assert compose.environment("api-migrate")["API_DATABASE_URL"] == url
    assert "@postgres:5432/" in url
    assert not [v for v in api.get("volumes", []) if not str(v).endswith(":ro")], "the API writes no files"
    # Like RDS: outside the task's network namespace.
    assert "network_mode" not in compose.services["postgres"]


# --- tracing -------------------------------------------------------------------------------------


def test_without_the_tracing_env_file_tracing_is_off(compose, devidp_env):
    assert "tracing" not in devidp_env["COMPOSE_PROFILES"].split(",")
    for service, names in TRACING_VARIABLES.items():
        env = compose.environment(service)
        for name in names:
            # Empty reads as unset in the services (off); nginx's span records go nowhere.
            assert env[name] == ("/dev/null" if name == "EDGE_SPAN_LOG" else ""), (service, name)


def test_the_tracing_env_file_adds_its_profile_to_the_ones_before_it(traced_env, devidp_env):
    assert traced_env["COMPOSE_PROFILES"] == "devidp,tracing"
    assert read_env_file(TRACING_ENV)["COMPOSE_PROFILES"] == "tracing", "after an env file without profiles"
    assert {k: v for k, v in traced_env.items() if k != "COMPOSE_PROFILES"} == {
        **{k: v for k, v in devidp_env.items() if k != "COMPOSE_PROFILES"},
        **{name: traced_env[name] for names in TRACING_VARIABLES.values() for name in names},
    }, "it sets the tracing variables and nothing else"


def test_the_tracing_env_file_sets_what_the_ecs_task_sets_with_tracing_on(traced_compose, traced_containers):
    for service, names in TRACING_VARIABLES.items():
        local = traced_compose.environment(service)
        ecs = ecs_environment(traced_containers[service])
        for name in names:
            assert local[name] == ecs[name], (service, name)
    # The services' OTLP endpoint is Jaeger's receiver, on the task's loopback as the collector is.
    endpoint = traced_compose.environment("verifier")["OTEL_EXPORTER_OTLP_ENDPOINT"]
    receiver = jaeger_config()["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert endpoint == f"http://{receiver}" == "http://127.0.0.1:4318"
    assert traced_compose.services["jaeger"]["network_mode"] == "service:task"


def jaeger_config() -> dict:
    return yaml.safe_load(JAEGER_CONFIG.read_text(encoding="utf-8"))


def test_jaeger_is_the_stacks_jaeger_with_its_query_api_open_to_the_published_port(compose):
    from stack.jaeger import OTLP_HTTP_PORT, QUERY_PORT
    from stack.jaeger import jaeger_config as stack_jaeger_config

    config = jaeger_config()
    expected = stack_jaeger_config(
        host="127.0.0.1", otlp_port=OTLP_HTTP_PORT, query_port=QUERY_PORT, query_grpc_port=16685
    )
    # One difference: a published port arrives on the namespace's interface, not its loopback.
    expected["extensions"]["jaeger_query"]["http"]["endpoint"] = f"0.0.0.0:{QUERY_PORT}"
    assert config == expected
    (published,) = [p for p in compose.services["task"]["ports"] if p.endswith(f":{QUERY_PORT}")]
    assert published == f"127.0.0.1:{QUERY_PORT}:{QUERY_PORT}", "this machine's loopback only"
    health = compose.services["jaeger"]["healthcheck"]["test"]
    assert health[-1].startswith(f"http://127.0.0.1:{QUERY_PORT}/api/")


def test_jaeger_accepts_its_configuration():
    jaeger = require_file(REPO / ".cache" / "bin" / "jaeger", "scripts/setup.sh builds it")
    done = subprocess.run(
        [str(jaeger), "validate", "--config", str(JAEGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_jaeger_image_builds_the_version_and_toolchain_setup_builds():
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    args = dict(a.split("=", 1) for a in parse_dockerfile(JAEGER_DOCKERFILE).all("ARG") if "=" in a)
    assert args["JAEGER_VERSION"] == re.search(r"^jaeger_version=(\S+)$", setup, re.M).group(1)
    assert args["GO_TOOLCHAIN"] == re.search(r"^go_toolchain=(\S+)$", setup, re.M).group(1)
    run = " ".join(parse_dockerfile(JAEGER_DOCKERFILE).all("RUN"))
    assert "github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" in run
    assert "./cmd/jaeger" in run
    assert parse_dockerfile(JAEGER_DOCKERFILE).all("CMD") == ['["--config", "/etc/jaeger/config.yaml"]']


def test_docker_compose_runs_jaeger_and_tracing_with_the_tracing_env_file():
    done = run_compose(
        "--env-file", str(DEV_ENV), "--env-file", str(TRACING_ENV), "config", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    model = json.loads(done.stdout)
    assert sorted(model["services"]) == sorted([*EVERY_DEV_SERVICE, "jaeger"])
    env = {name: model["services"][name]["environment"] for name in TRACING_VARIABLES}
    assert env["verifier"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == env["api"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert env["verifier"]["VERIFIER_EDGE_SPANS_LISTEN"] == "127.0.0.1:9200"
    assert env["nginx"]["EDGE_SPAN_LOG"] == "syslog:server=127.0.0.1:9200,nohostname,tag=edge_span"
