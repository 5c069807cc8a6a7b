"""The Fargate task definition: valid RegisterTaskDefinition input, and the security and layout policy
the design relies on (only nginx reachable, every container hardened, secrets only from Secrets
Manager, sizes Fargate accepts), with tracing off and with it on (TRACING=xray: the ADOT collector
sidecar and the variables that point the services at it)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TASKDEFS = Path(__file__).resolve().parents[3] / "ecs-taskdefs"
TASKDEF_TEMPLATE = TASKDEFS / "edge-api.taskdef.json"
EXAMPLE_VALUES = TASKDEFS / "values.example.json"
COLLECTOR = "aws-otel-collector"
#: What the tracing contract names (docs/tracing.md): where spans go inside the task.
OTLP_ENDPOINT = "http://127.0.0.1:4318"
EDGE_SPANS_LISTEN = "127.0.0.1:9200"
EDGE_SPAN_LOG_ON = f"syslog:server={EDGE_SPANS_LISTEN},nohostname,tag=edge_span"

#: Fargate's task-level CPU units -> allowed memory (MiB), from the ECS task definition parameters.
FARGATE_SIZES: dict[int, set[int]] = {
    256: {512, 1024, 2048},
    512: {1024, 2048, 3072, 4096},
    1024: set(range(2048, 8192 + 1, 1024)),
    2048: set(range(4096, 16384 + 1, 1024)),
    4096: set(range(8192, 30720 + 1, 1024)),
    8192: set(range(16384, 61440 + 1, 4096)),
    16384: set(range(32768, 122880 + 1, 8192)),
}
SECRET_LOOKING = re.compile(r"SECRET|KEY|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")
#: The address each container listens on, per its own configuration.
LISTEN_VARIABLE = {
    "nginx": "EDGE_LISTEN",
    "oauth2-proxy": "O2P_HTTP_ADDRESS",
    "verifier": "VERIFIER_PORT",
    "api": "API_PORT",
}


@pytest.fixture(params=["off", "xray"], ids=["tracing-off", "tracing-xray"])
def tracing(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def task_definition(renderer, taskdef_template, example_values, tracing_overlay, tracing):
    """Every policy test of this module holds with tracing off and with it on."""
    return renderer.render(taskdef_template, {**example_values, "TRACING": tracing}, tracing_overlay)


def test_rendered_task_definition_is_valid_register_task_definition_input(renderer, task_definition):
    assert renderer.shape_problems(task_definition) == []


def test_shape_check_reports_a_wrong_type_and_an_unknown_member(renderer, task_definition):
    broken = copy.deepcopy(task_definition)
    broken["cpu"] = 1024  # the API wants a string
    broken["containerDefinitions"][0]["portMapping"] = []  # a typo of portMappings
    problems = "\n".join(renderer.shape_problems(broken))
    assert "Invalid type for parameter cpu" in problems
    assert 'Unknown parameter in containerDefinitions[0]: "portMapping"' in problems


def test_task_is_fargate_awsvpc_with_a_valid_cpu_memory_combination(task_definition):
    assert task_definition["networkMode"] == "awsvpc"
    assert task_definition["requiresCompatibilities"] == ["FARGATE"]
    cpu, memory = int(task_definition["cpu"]), int(task_definition["memory"])
    assert cpu in FARGATE_SIZES, f"task cpu {cpu} is not a Fargate size"
    assert memory in FARGATE_SIZES[cpu], f"{memory} MiB is not allowed with {cpu} CPU units on Fargate"


def test_container_cpu_and_memory_fit_inside_the_task(task_definition):
    defs = task_definition["containerDefinitions"]
    assert sum(c["cpu"] for c in defs) <= int(task_definition["cpu"])
    reserved = sum(c.get("memoryReservation", c.get("memory", 0)) for c in defs)
    assert reserved <= int(task_definition["memory"])
    for c in defs:
        assert c.get("memoryReservation") or c.get("memory"), f"{c['name']}: no memory set"
        if "memory" in c and "memoryReservation" in c:
            assert c["memoryReservation"] <= c["memory"], c["name"]


#: The four containers of the design, which run for the task's whole life.
SERVICES = ("nginx", "oauth2-proxy", "verifier", "api")


def test_the_task_runs_the_four_containers_of_the_design_and_the_migration_step(containers, tracing):
    collector = {COLLECTOR} if tracing == "xray" else set()
    assert set(containers) == {*SERVICES, "api-migrate", *collector}


def test_the_api_starts_only_after_the_migration_step_succeeded(containers):
    migrate = containers["api-migrate"]
    assert migrate["command"] == ["python", "-m", "fastapi_app.migrate"]
    assert migrate["image"] == containers["api"]["image"]
    # A one-shot step: it exits when done, which must not stop the task.
    assert migrate["essential"] is False
    assert not migrate.get("healthCheck")
    assert containers["api"]["dependsOn"] == [{"containerName": "api-migrate", "condition": "SUCCESS"}]


def test_the_api_keeps_no_data_in_the_task(task_definition, containers):
    # The database is RDS, reached with the URL from Secrets Manager: no volume, no SQLite file.
    for name in ("api", "api-migrate"):
        assert not containers[name].get("mountPoints"), name
        assert "API_DATABASE_PATH" not in {e["name"] for e in containers[name].get("environment", [])}, name
    assert "api-data" not in {v["name"] for v in task_definition["volumes"]}


def test_only_nginx_declares_a_port_mapping_and_only_port_8080(containers):
    for name, c in containers.items():
        if name == "nginx":
            ports = [(p["containerPort"], p.get("protocol", "tcp")) for p in c["portMappings"]]
            assert ports == [(8080, "tcp")]
            assert "hostPort" not in c["portMappings"][0] or c["portMappings"][0]["hostPort"] == 8080
        else:
            assert not c.get("portMappings"), f"{name} must not be reachable from outside the task"


def test_nginx_listens_on_the_mapped_port_without_tls_behind_the_alb(containers, env_of):
    env = env_of(containers["nginx"])
    assert env["EDGE_LISTEN"] == "8080"
    assert env["EDGE_HSTS"].startswith("max-age=31536000")
    # The include glob for TLS directives must match nothing in the image: TLS ends at the ALB.
    assert env["EDGE_TLS_CONF_GLOB"].endswith("*.conf")


def test_every_sidecar_listens_on_loopback_only(containers, env_of):
    assert env_of(containers["oauth2-proxy"])["O2P_HTTP_ADDRESS"].startswith("127.0.0.1:")
    assert env_of(containers["verifier"])["VERIFIER_HOST"] == "127.0.0.1"  # metrics share the host
    assert env_of(containers["api"])["API_HOST"] == "127.0.0.1"
    nginx = env_of(containers["nginx"])
    for name in ("EDGE_OAUTH2_PROXY_ADDR", "EDGE_VERIFIER_ADDR", "EDGE_API_ADDR"):
        assert nginx[name].startswith("127.0.0.1:"), name


def test_nginx_upstream_addresses_match_where_each_sidecar_listens(containers, env_of):
    nginx = env_of(containers["nginx"])
    assert nginx["EDGE_OAUTH2_PROXY_ADDR"] == env_of(containers["oauth2-proxy"])["O2P_HTTP_ADDRESS"]
    verifier = env_of(containers["verifier"])
    assert nginx["EDGE_VERIFIER_ADDR"] == f"{verifier['VERIFIER_HOST']}:{verifier['VERIFIER_PORT']}"
    api = env_of(containers["api"])
    assert nginx["EDGE_API_ADDR"] == f"{api['API_HOST']}:{api['API_PORT']}"
    assert verifier["VERIFIER_OAUTH2_PROXY_URL"] == f"http://{nginx['EDGE_OAUTH2_PROXY_ADDR']}"


def test_every_container_has_a_health_check_on_its_own_listening_port(containers, env_of):
    for name in SERVICES:
        c = containers[name]
        check = c.get("healthCheck")
        assert check, f"{name} has no healthCheck"
        assert check["command"][0] in ("CMD", "CMD-SHELL")
        assert 5 <= check["interval"] <= 300 and 2 <= check["timeout"] <= 60 and 1 <= check["retries"] <= 10
        assert check["timeout"] < check["interval"]
        command = " ".join(check["command"])
        listen = env_of(c)[LISTEN_VARIABLE[name]]
        port = re.search(r"(\d+)(?:\s+\w+)?$", listen).group(1)
        assert f"127.0.0.1:{port}/" in command, f"{name}: health check does not probe port {port}"


def test_nginx_health_check_uses_the_alb_health_check_path(containers):
    assert containers["nginx"]["healthCheck"]["command"][-1] == "http://127.0.0.1:8080/readyz"


def test_nginx_starts_only_after_verifier_oauth2_proxy_and_api_are_healthy(containers):
    depends = {d["containerName"]: d["condition"] for d in containers["nginx"]["dependsOn"]}
    assert depends == {"verifier": "HEALTHY", "oauth2-proxy": "HEALTHY", "api": "HEALTHY"}
    for target in depends:
        assert containers[target].get("healthCheck"), f"HEALTHY needs a health check on {target}"


def test_every_service_container_is_essential(containers):
    # Without any one of them the task cannot answer correctly (it would fail closed); ECS should
    # replace the whole task rather than keep a half task in the target group.
    assert all(containers[name]["essential"] is True for name in SERVICES)


def test_every_container_logs_to_cloudwatch_with_its_own_stream_prefix(containers, example_values):
    groups, prefixes = {}, []
    for name, c in containers.items():
        log = c["logConfiguration"]
        assert log["logDriver"] == "awslogs", name
        options = log["options"]
        assert options["awslogs-region"] == example_values["REGION"]
        assert options["mode"] == "non-blocking", f"{name}: a slow CloudWatch must not block the app"
        groups[name] = options["awslogs-group"]
        prefixes.append(options["awslogs-stream-prefix"])
    # One group for the edge; the collector, with tracing on, has its own.
    assert len({group for name, group in groups.items() if name != COLLECTOR}) == 1
    if COLLECTOR in groups:
        assert groups[COLLECTOR] != groups["nginx"]
    assert sorted(prefixes) == sorted(containers)


def test_every_container_is_hardened(containers):
    for name, c in containers.items():
        assert c["readonlyRootFilesystem"] is True, name
        assert c.get("privileged", False) is False, name
        user = c["user"]
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and gid.isdigit(), f"{name}: user must be numeric uid:gid, got {user!r}"
        assert int(uid) != 0 and int(gid) != 0, f"{name} must not run as root"
        linux = c["linuxParameters"]
        assert linux["initProcessEnabled"] is True, name
        assert linux["capabilities"]["drop"] == ["ALL"], name
        assert not linux["capabilities"].get("add"), name


def test_writable_paths_are_task_volumes_not_the_root_filesystem(task_definition, containers):
    declared = {v["name"] for v in task_definition["volumes"]}
    used = set()
    for c in containers.values():
        for m in c.get("mountPoints", []):
            assert m["sourceVolume"] in declared
            used.add(m["sourceVolume"])
    assert used == declared
    for v in task_definition["volumes"]:
        # No host path, no EFS: ephemeral task storage only.
        assert set(v) == {"name"}, v


def test_secret_looking_variables_come_only_from_secrets_manager(containers, example_values):
    for name, c in containers.items():
        for item in c.get("environment", []):
            assert not SECRET_LOOKING.search(item["name"]), f"{name}: {item['name']} belongs in secrets"
            assert not CREDENTIALS_IN_URL.search(item["value"]), f"{name}: {item['name']} has credentials"
        for secret in c.get("secrets", []):
            assert secret["valueFrom"].startswith(
                f"arn:aws:secretsmanager:{example_values['REGION']}:{example_values['ACCOUNT_ID']}:secret:"
            ), f"{name}: {secret['name']} must come from Secrets Manager in the task's account and region"
        env_names = {i["name"] for i in c.get("environment", [])}
        assert not env_names & {s["name"] for s in c.get("secrets", [])}, name


def test_the_secrets_each_container_needs_are_injected(containers, secrets_of):
    assert secrets_of(containers["oauth2-proxy"]) == {
        "OAUTH2_PROXY_CLIENT_SECRET",
        "OAUTH2_PROXY_COOKIE_SECRET",
        "OAUTH2_PROXY_REDIS_PASSWORD",
    }
    assert secrets_of(containers["verifier"]) == {"IDENTITY_SIGNING_KEY", "VERIFIER_REDIS_URL"}
    assert secrets_of(containers["api"]) == {
        "IDENTITY_SIGNING_KEY",
        "IDENTITY_SIGNING_KEY_PREVIOUS",
        "API_DATABASE_URL",
    }
    assert secrets_of(containers["api-migrate"]) == {"API_DATABASE_URL"}
    assert secrets_of(containers["nginx"]) == set()
    signing = {
        s["valueFrom"]
        for c in (containers["verifier"], containers["api"])
        for s in c["secrets"]
        if s["name"] == "IDENTITY_SIGNING_KEY"
    }
    assert len(signing) == 1, "the verifier signs and FastAPI checks with the same key"


def test_images_come_from_the_account_registry_with_a_pinned_tag(containers, example_values):
    registry = f"{example_values['ACCOUNT_ID']}.dkr.ecr.{example_values['REGION']}.amazonaws.com/"
    for name, c in containers.items():
        image = c["image"]
        if name == COLLECTOR:
            # AWS's own image from Amazon ECR Public, at a release pinned in the overlay.
            assert re.fullmatch(
                r"public\.ecr\.aws/aws-observability/aws-otel-collector:v\d+\.\d+\.\d+", image
            )
            continue
        assert image.startswith(registry), f"{name}: {image}"
        tag = image.rsplit(":", 1)[-1]
        assert tag == example_values["IMAGE_TAG"] and tag != "latest", f"{name}: {image}"


def test_no_sidecar_talks_to_the_alb_facing_port(containers, env_of):
    for name in ("verifier", "api", "oauth2-proxy"):
        assert "8080" not in json.dumps(env_of(containers[name])), name


# --- the renderer --------------------------------------------------------------------------------


def test_render_lists_every_missing_unknown_and_empty_value_at_once(
    renderer, taskdef_template, example_values
):
    values = dict(example_values)
    del values["REGION"]
    del values["PUBLIC_HOST"]
    values["PUBLIC_HOTS"] = "typo.example.com"
    values["IMAGE_TAG"] = " "
    with pytest.raises(renderer.RenderError) as caught:
        renderer.render(taskdef_template, values)
    problems = "\n".join(caught.value.problems)
    assert "${REGION} has no value" in problems
    assert "${PUBLIC_HOST} has no value" in problems
    assert "'PUBLIC_HOTS' is set but the template never uses it" in problems
    assert "IMAGE_TAG is empty" in problems


def test_render_refuses_a_value_for_the_pinned_oauth2_proxy_version(renderer, example_values):
    template = {"image": "x:${OAUTH2_PROXY_VERSION}", "tag": "${IMAGE_TAG}"}
    with pytest.raises(renderer.RenderError, match="set by the renderer itself"):
        renderer.render(template, {"IMAGE_TAG": "t", "OAUTH2_PROXY_VERSION": "v7.0.0"})
    rendered = renderer.render(template, {"IMAGE_TAG": "t"})
    assert rendered["image"] == "x:" + (renderer.VERSION_FILE.read_text().strip())


def test_render_substitutes_inside_strings_without_breaking_json(renderer):
    rendered = renderer.render({"a": "x-${V}-y", "b": ["${V}"]}, {"V": 'quote" and \\ backslash'})
    assert rendered == {"a": 'x-quote" and \\ backslash-y', "b": ['quote" and \\ backslash']}


def run_render_cli(values_file: Path) -> subprocess.CompletedProcess[str]:
    """``python ecs-taskdefs/render.py <template> --values <file>``, as a deployment runs it."""
    return subprocess.run(
        [sys.executable, str(TASKDEFS / "render.py"), str(TASKDEF_TEMPLATE), "--values", str(values_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_render_cli_prints_valid_json_for_the_example_values(renderer):
    done = run_render_cli(EXAMPLE_VALUES)
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    assert rendered["family"] == "entra-bff-edge-api"
    assert "${" not in done.stdout


def test_render_cli_exits_non_zero_and_names_the_missing_value(renderer, tmp_path, example_values):
    values = {k: v for k, v in example_values.items() if k != "ACCOUNT_ID"}
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    done = run_render_cli(values_file)
    assert done.returncode == 1
    assert "${ACCOUNT_ID} has no value" in done.stderr
    assert done.stdout == ""


# --- tracing -------------------------------------------------------------------------------------


def test_tracing_off_is_the_task_definition_alone_with_nginx_span_records_going_nowhere(
    renderer, taskdef_template, example_values, tracing_overlay, env_of
):
    off = renderer.render(taskdef_template, example_values, tracing_overlay)
    assert example_values["TRACING"] == "off"
    values = {k: v for k, v in example_values.items() if k != "TRACING"}
    assert off == renderer.render(taskdef_template, values) == renderer.render(taskdef_template, values, None)
    containers = {c["name"]: c for c in off["containerDefinitions"]}
    assert env_of(containers["nginx"])["EDGE_SPAN_LOG"] == "/dev/null"
    for name, container in containers.items():
        env = env_of(container)
        assert not [n for n in env if n.startswith("OTEL_")], name
        assert "VERIFIER_EDGE_SPANS_LISTEN" not in env, name


def test_tracing_on_points_the_services_at_the_collector_and_nginx_at_the_verifier(traced_containers, env_of):
    verifier, api, nginx = (env_of(traced_containers[name]) for name in ("verifier", "api", "nginx"))
    assert verifier["OTEL_EXPORTER_OTLP_ENDPOINT"] == api["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP_ENDPOINT
    assert verifier["VERIFIER_EDGE_SPANS_LISTEN"] == EDGE_SPANS_LISTEN
    assert nginx["EDGE_SPAN_LOG"] == EDGE_SPAN_LOG_ON
    # Nothing else changes: no protocol, sampler or service name beside the services' defaults.
    for name, env in (("verifier", verifier), ("api", api), ("nginx", nginx)):
        assert [n for n in env if n.startswith("OTEL_")] == (
            [] if name == "nginx" else ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        ), name
    others = {n: c for n, c in traced_containers.items() if n not in ("verifier", "api", "nginx", COLLECTOR)}
    assert not [n for n, c in others.items() if any(k.startswith("OTEL_") for k in env_of(c))]


def collector_config(container) -> dict:
    env = {item["name"]: item["value"] for item in container["environment"]}
    return yaml.safe_load(env["AOT_CONFIG_CONTENT"])


def test_collector_receives_otlp_http_on_the_task_loopback_only_and_exports_to_xray_only(
    traced_containers, env_of, example_values
):
    collector = traced_containers[COLLECTOR]
    config = collector_config(collector)
    # AOT_CONFIG_CONTENT replaces the image's default configuration (which also listens on every
    # address for gRPC, X-Ray UDP and StatsD, and exports metrics to CloudWatch).
    assert "command" not in collector
    assert config["receivers"] == {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:4318"}}}}
    assert OTLP_ENDPOINT.endswith(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"])
    assert config["extensions"] == {"health_check": {"endpoint": "127.0.0.1:13133"}}
    assert set(config["exporters"]) == {"awsxray"}
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    assert pipelines["traces"]["receivers"] == ["otlp"]
    assert pipelines["traces"]["exporters"] == ["awsxray"]
    assert pipelines["traces"]["processors"][0] == "memory_limiter", "the limiter comes first"
    assert set(pipelines["traces"]["processors"]) <= set(config["processors"])
    # Its own metrics would open one more port: off.
    assert config["service"]["telemetry"] == {"metrics": {"level": "none"}}
    assert config["processors"]["memory_limiter"]["limit_mib"] < collector["memory"]
    assert env_of(collector)["AWS_REGION"] == example_values["REGION"]


def test_collector_is_small_not_essential_and_nothing_waits_for_it(traced_containers):
    collector = traced_containers[COLLECTOR]
    # A collector that stops loses spans, never requests: the task keeps serving.
    assert collector["essential"] is False
    assert collector["cpu"] == 0, "it reserves no CPU the edge's containers reserve"
    assert collector["memory"] <= 256 and collector["memoryReservation"] <= 64
    for name, container in traced_containers.items():
        assert COLLECTOR not in {d["containerName"] for d in container.get("dependsOn", [])}, name
    # Its image's own health check probes the health_check extension (127.0.0.1:13133).
    assert collector["healthCheck"]["command"] == ["CMD", "/healthcheck"]
    # The image's user (aoc, 4317), numeric as the task's hardening requires.
    assert collector["user"] == "4317:4317"


def test_tracing_accepts_only_off_or_xray(renderer, taskdef_template, example_values, tracing_overlay):
    with pytest.raises(renderer.RenderError) as caught:
        renderer.render(taskdef_template, {**example_values, "TRACING": "on"}, tracing_overlay)
    assert caught.value.problems == ["TRACING='on': expected one of off, xray"]


def test_tracing_xray_without_an_overlay_is_refused(renderer, taskdef_template, example_values):
    with pytest.raises(renderer.RenderError, match="TRACING=xray: no tracing overlay given"):
        renderer.render(taskdef_template, {**example_values, "TRACING": "xray"})


def test_an_overlay_naming_a_container_the_task_lacks_is_refused(renderer, taskdef_template, tracing_overlay):
    overlay = copy.deepcopy(tracing_overlay)
    overlay["environment"]["verfier"] = overlay["environment"].pop("verifier")
    overlay["containerDefinitions"].append({"name": "nginx"})
    with pytest.raises(renderer.RenderError) as caught:
        renderer.with_tracing(taskdef_template, overlay)
    assert caught.value.problems == [
        "tracing overlay: the task definition has no container 'verfier'",
        "tracing overlay: the task definition already has a container 'nginx'",
    ]


def test_render_cli_renders_the_collector_when_the_values_file_says_xray(tmp_path, example_values):
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps({**example_values, "TRACING": "xray"}))
    done = run_render_cli(values_file)
    assert done.returncode == 0, done.stderr
    names = [c["name"] for c in json.loads(done.stdout)["containerDefinitions"]]
    assert names[-1] == COLLECTOR and names.count(COLLECTOR) == 1
