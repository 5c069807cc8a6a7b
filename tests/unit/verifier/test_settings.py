"""Configuration from the environment: defaults, every problem named, the identity key decoding."""

from __future__ import annotations

import base64

import pytest

from service_runtime.config_error import ConfigError
from tests.support.config_problems import problems_naming
from tests.support.token_forge import API_APP_ID_URI, TENANT_A, TENANT_B
from verifier.core.identity import decode_identity_key
from verifier.service.settings import settings_from_env

KEY = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()


def env(**overrides: str) -> dict[str, str]:
    base = {
        "VERIFIER_TENANT_IDS": TENANT_A,
        "VERIFIER_AUDIENCES": API_APP_ID_URI,
        "IDENTITY_SIGNING_KEY": KEY,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_minimal_environment_gives_documented_defaults():
    settings = settings_from_env(env())
    assert settings.validation.tenant_ids == frozenset({TENANT_A})
    assert settings.validation.authority == "https://login.microsoftonline.com"
    assert settings.validation.v1_issuer_base == "https://sts.windows.net"
    assert settings.validation.issuer_versions == frozenset({"v2"})
    assert settings.validation.leeway_seconds == 60
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 9000, 9100)
    assert settings.jwks_refresh_seconds == 43_200 and settings.jwks_min_refetch_seconds == 60
    assert settings.identity_key == bytes(range(32))
    assert settings.route_policy.rules == ()


def test_lists_and_versions_are_parsed():
    settings = settings_from_env(
        env(
            VERIFIER_TENANT_IDS=f" {TENANT_A} , {TENANT_B.upper()} ",
            VERIFIER_AUDIENCES="api://x, 5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57",
            VERIFIER_ISSUER_VERSIONS="v1,v2",
            VERIFIER_AUTHORITY="https://localhost:8900/",
        )
    )
    assert settings.validation.tenant_ids == frozenset({TENANT_A, TENANT_B})
    assert settings.validation.audiences == frozenset({"api://x", "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"})
    assert settings.validation.issuer_versions == frozenset({"v1", "v2"})
    assert settings.validation.v2_issuer(TENANT_A) == f"https://localhost:8900/{TENANT_A}/v2.0"


def test_every_problem_is_reported_at_once_with_its_variable_name(tmp_path):
    problems = problems_naming(
        {
            "VERIFIER_TENANT_IDS": "not-a-guid",
            "VERIFIER_ISSUER_VERSIONS": "v3",
            "VERIFIER_AUTHORITY": "http://login.example.com",
            "VERIFIER_LEEWAY_SECONDS": "soon",
            "VERIFIER_PORT": "70000",
            "VERIFIER_CA_FILE": str(tmp_path / "missing.pem"),
            "VERIFIER_ROUTE_POLICY_FILE": str(tmp_path / "missing.toml"),
            "VERIFIER_LOG_LEVEL": "loud",
            "IDENTITY_SIGNING_KEY": "short",
        },
        (
            "VERIFIER_TENANT_IDS",
            "VERIFIER_AUDIENCES",
            "VERIFIER_ISSUER_VERSIONS",
            "VERIFIER_AUTHORITY",
            "VERIFIER_LEEWAY_SECONDS",
            "VERIFIER_PORT",
            "VERIFIER_CA_FILE",
            "VERIFIER_ROUTE_POLICY_FILE",
            "VERIFIER_LOG_LEVEL",
            "IDENTITY_SIGNING_KEY",
        ),
    )
    text = "\n".join(problems)
    assert "short" not in text.replace("too short", ""), "the key's value must never be echoed"


def test_missing_identity_key_refuses_to_start():
    with pytest.raises(ConfigError) as info:
        settings_from_env(env(IDENTITY_SIGNING_KEY=None))
    assert info.value.problems == [
        "IDENTITY_SIGNING_KEY is missing: at least 32 bytes are required"
        " (e.g. 43+ random base64url characters)"
    ]


def test_plain_http_authority_is_allowed_only_for_loopback():
    assert settings_from_env(env(VERIFIER_AUTHORITY="http://127.0.0.1:8900")).validation.authority == (
        "http://127.0.0.1:8900"
    )


def test_route_policy_problems_are_reported_under_the_variable_name(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[[route]]\nprefix = "/api"\n')
    with pytest.raises(ConfigError) as info:
        settings_from_env(env(VERIFIER_ROUTE_POLICY_FILE=str(path)))
    assert info.value.problems[0].startswith("VERIFIER_ROUTE_POLICY_FILE: route #1")


def test_identity_key_decodes_base64url_and_falls_back_to_raw_text():
    assert decode_identity_key(KEY) == bytes(range(32))
    assert decode_identity_key(KEY + "=") == bytes(range(32))
    raw = "correct horse battery staple, 32+ bytes long!"
    assert decode_identity_key(raw) == raw.encode()
