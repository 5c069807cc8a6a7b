"""The verifier and FastAPI containers of the task definition and of compose.yaml must start, with
tracing off and with it on: their environment (plus what Secrets Manager or the env file injects) is
fed to the services' own settings factories, which validate every variable exactly as at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastapi_app.revalidation import REVALIDATED_ROUTES
from fastapi_app.settings import ApiSettings
from stack import render
from stack.topology import Topology
from verifier.core.forwarded_routes import parse_routes
from verifier.service.settings import VerifierSettings, settings_from_env

REPO = Path(__file__).resolve().parents[3]


def _secrets_for(container, placeholder_secrets) -> dict[str, str]:
    return {s["name"]: placeholder_secrets[s["name"]] for s in container.get("secrets", [])}


def test_ecs_verifier_environment_builds_valid_verifier_settings(
    containers, env_of, placeholder_secrets, example_values
):
    verifier = containers["verifier"]
    settings = settings_from_env({**env_of(verifier), **_secrets_for(verifier, placeholder_secrets)})
    assert isinstance(settings, VerifierSettings)
    assert settings.validation.tenant_ids == {example_values["ENTRA_TENANT_ID"]}
    api = example_values["API_APP_ID"]
    assert settings.validation.audiences == {f"api://{api}", api}
    assert settings.validation.authority == "https://login.microsoftonline.com"
    assert settings.validation.v2_issuer("t") == "https://login.microsoftonline.com/t/v2.0"
    assert settings.validation.parse_issuer("https://sts.windows.net/t/") == ("v1", "t")
    # Metrics listen on the same host: never reachable from outside the task.
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 9000, 9100)
    assert settings.ca_file is None, "on AWS the system CA bundle verifies login.microsoftonline.com"


def test_ecs_api_environment_builds_valid_api_settings(
    containers, env_of, placeholder_secrets, example_values
):
    api = containers["api"]
    settings = ApiSettings.from_env({**env_of(api), **_secrets_for(api, placeholder_secrets)})
    tenant, app = example_values["ENTRA_TENANT_ID"], example_values["API_APP_ID"]
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.authority_url == f"https://login.microsoftonline.com/{tenant}"
    assert settings.scope_prefix == f"api://{app}"
    assert settings.openapi_client_id == example_values["SPA_CLIENT_ID"]
    assert settings.database_url == (
        "postgresql+asyncpg://edge_api:placeholder@db.example.internal:5432/edge_api?ssl=require"
    ), "RDS through the database secret, with TLS required"
    assert settings.revalidation is not None, "critical endpoints re-validate the forwarded token"
    assert len(settings.signing_keys) == 1, "an empty IDENTITY_SIGNING_KEY_PREVIOUS adds no key"


def test_api_accepts_the_previous_signing_key_during_a_rotation(containers, env_of, placeholder_secrets):
    api = containers["api"]
    env = {**env_of(api), **_secrets_for(api, placeholder_secrets), "IDENTITY_SIGNING_KEY_PREVIOUS": "p" * 43}
    assert len(ApiSettings.from_env(env).signing_keys) == 2


def test_api_revalidates_with_exactly_the_verifier_rules(containers, env_of):
    verifier, api = env_of(containers["verifier"]), env_of(containers["api"])
    shared = {k: v for k, v in api.items() if k.startswith("VERIFIER_")}
    assert shared, "FastAPI reads the VERIFIER_* token rules for re-validation"
    for name, value in shared.items():
        assert verifier.get(name) == value, f"{name} differs between the verifier and FastAPI"
    rules = ("VERIFIER_TENANT_IDS", "VERIFIER_AUDIENCES", "VERIFIER_AUTHORITY", "VERIFIER_ISSUER_VERSIONS")
    assert set(rules) <= set(shared)


def test_verifier_public_origin_is_the_public_host(containers, env_of, example_values):
    env = env_of(containers["verifier"])
    assert env["VERIFIER_PUBLIC_ORIGIN"] == f"https://{example_values['PUBLIC_HOST']}"
    assert env["VERIFIER_SESSION_COOKIE_NAME"] == env_of(containers["oauth2-proxy"])["O2P_COOKIE_NAME"]


def _known_verifier_variables() -> set[str]:
    """Every variable the verifier documents (verifier/README.md) or reads (its settings code, and
    the standard OTEL_* variables of the tracing it shares with the API)."""
    names: set[str] = set()
    readme = REPO / "verifier" / "README.md"
    if readme.exists():
        names |= set(re.findall(r"\b((?:VERIFIER_|IDENTITY_)[A-Z0-9_]+)\b", readme.read_text()))
    for source in (REPO / "verifier").rglob("*.py"):
        text = source.read_text()
        names |= set(re.findall(r"\"((?:VERIFIER_|IDENTITY_)[A-Z0-9_]+)\"", text))
        # settings.py builds names as ENV_PREFIX + "NAME" (p + "NAME").
        names |= {"VERIFIER_" + n for n in re.findall(r"\bp \+ \"([A-Z0-9_]+)\"", text)}
    names |= set(re.findall(r"\"(OTEL_[A-Z0-9_]+)\"", (REPO / "service_runtime" / "tracing.py").read_text()))
    return names


#: The session source's variables: the task definition must set every one of them.
SESSION_SOURCE_VARIABLES = {
    "VERIFIER_OAUTH2_PROXY_URL",
    "VERIFIER_SESSION_COOKIE_NAME",
    "VERIFIER_REDIS_URL",
    "VERIFIER_PUBLIC_ORIGIN",
}


def test_every_variable_set_for_the_verifier_is_one_it_knows(
    containers, traced_containers, env_of, secrets_of
):
    known = _known_verifier_variables()
    for task in (containers, traced_containers):
        set_names = set(env_of(task["verifier"])) | secrets_of(task["verifier"])
        assert SESSION_SOURCE_VARIABLES <= set_names, "the verifier's session source is not configured"
        unknown = sorted(set_names - known)
        assert not unknown, f"the verifier neither documents nor reads {unknown}"


def test_ecs_services_trace_exactly_when_tracing_is_on(
    containers, traced_containers, env_of, placeholder_secrets
):
    for task, on in ((containers, False), (traced_containers, True)):
        verifier, api = task["verifier"], task["api"]
        verifier_settings = settings_from_env(
            {**env_of(verifier), **_secrets_for(verifier, placeholder_secrets)}
        )
        api_settings = ApiSettings.from_env({**env_of(api), **_secrets_for(api, placeholder_secrets)})
        assert verifier_settings.tracing.enabled is on
        assert api_settings.tracing.enabled is on
        assert (verifier_settings.tracing.service_name, api_settings.tracing.service_name) == (
            "verifier",
            "api",
        )
        # nginx's span records arrive where its EDGE_SPAN_LOG sends them, on the task's loopback.
        assert verifier_settings.edge_spans_listen == (("127.0.0.1", 9200) if on else None)
        if on:
            server = env_of(task["nginx"])["EDGE_SPAN_LOG"].split("server=", 1)[1].split(",", 1)[0]
            assert server == "127.0.0.1:9200"


def test_compose_services_trace_exactly_with_the_tracing_env_file(compose, traced_compose, tmp_path):
    ca = tmp_path / "dev-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for project, on in ((compose, False), (traced_compose, True)):
        verifier = settings_from_env({**project.environment("verifier"), "VERIFIER_CA_FILE": str(ca)})
        api = ApiSettings.from_env({**project.environment("api"), "VERIFIER_CA_FILE": str(ca)})
        # Off, the variables are set but empty: the services read that as unset.
        assert verifier.tracing.enabled is on and api.tracing.enabled is on
        assert verifier.edge_spans_listen == (("127.0.0.1", 9200) if on else None)


def test_compose_verifier_and_api_environments_build_valid_settings(compose, tmp_path):
    ca = tmp_path / "dev-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")  # only its existence is checked at start-up
    verifier_env = {**compose.environment("verifier"), "VERIFIER_CA_FILE": str(ca)}
    settings = settings_from_env(verifier_env)
    assert settings.validation.authority == "https://localhost:8900"
    assert settings.validation.issuer_versions == {"v1", "v2"}
    api_env = {**compose.environment("api"), "VERIFIER_CA_FILE": str(ca)}
    api = ApiSettings.from_env(api_env)
    assert api.authority_url == "https://localhost:8900/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def test_compose_sets_the_same_variables_as_the_task_definition(
    compose, containers, traced_containers, env_of, secrets_of
):
    # compose has no Secrets Manager: its secrets are ordinary environment entries. It always lists
    # the tracing variables (empty: off); the task definition has them with tracing on.
    for service in ("oauth2-proxy", "verifier", "api"):
        local = set(compose.environment(service))
        for task in (containers, traced_containers):
            ecs = set(env_of(task[service])) | secrets_of(task[service])
            tracing = set(env_of(traced_containers[service])) - set(env_of(containers[service]))
            # The only extra: a development CA for devidp's TLS (empty, so unused, against Entra).
            assert local - ecs <= {"VERIFIER_CA_FILE", *tracing}, f"{service}: {sorted(local - ecs)}"
            assert ecs - local == set(), f"{service}: compose lacks {sorted(ecs - local)}"


@pytest.mark.parametrize("service", ["verifier", "api"])
def test_compose_without_devidp_points_at_entra(compose_loader, service):
    env = {
        "ENTRA_TENANT_ID": "11111111-2222-4333-8444-555555555555",
        "API_APP_ID": "22222222-3333-4444-8555-666666666666",
        "BFF_CLIENT_ID": "33333333-4444-4555-8666-777777777777",
        "SPA_CLIENT_ID": "44444444-5555-4666-8777-888888888888",
        "BFF_CLIENT_SECRET": "s",
        "COOKIE_SECRET": "c" * 32,
        "IDENTITY_SIGNING_KEY": "k" * 43,
        "REDIS_PASSWORD": "r",
        "POSTGRES_PASSWORD": "p",
    }
    loaded = compose_loader(env)
    service_env = loaded.environment(service)
    assert service_env["VERIFIER_AUTHORITY"] == "https://login.microsoftonline.com"
    assert service_env["VERIFIER_V1_ISSUER_BASE"] == "https://sts.windows.net"
    assert service_env["VERIFIER_CA_FILE"] == ""
    assert "devidp" not in str(loaded.services[service])


def _routes(settings: VerifierSettings) -> set[str]:
    return {str(route) for route in settings.revalidated_routes}


def test_every_deployment_tells_the_verifier_the_apis_revalidated_routes(
    containers, env_of, placeholder_secrets, compose, tmp_path
):
    """The verifier forwards the access token to the endpoints it is told; the API publishes which
    endpoints re-validate it. Every deployment must tell the verifier exactly that list."""
    published = set(REVALIDATED_ROUTES)
    verifier = containers["verifier"]
    ecs = settings_from_env({**env_of(verifier), **_secrets_for(verifier, placeholder_secrets)})
    assert _routes(ecs) == published
    compose_env = compose.environment("verifier")
    assert {str(r) for r in parse_routes(compose_env["VERIFIER_REVALIDATED_ROUTES"])[0]} == published
    secrets = render.Secrets("k" * 43, "c" * 32)
    local = render.verifier_env(Topology(run_dir=tmp_path), tmp_path / "ca.pem", secrets)
    assert {str(r) for r in parse_routes(local["VERIFIER_REVALIDATED_ROUTES"])[0]} == published
