"""ApiSettings.from_env: every variable validated, every problem reported with its name."""

from __future__ import annotations

import pytest

from fastapi_app.settings import ApiSettings, decode_signing_key
from service_runtime.config_error import ConfigError
from tests.unit.fastapi_app.conftest import API_URI, SPA_CLIENT_ID, TENANT
from verifier.core.identity import decode_identity_key

RAW_KEY = "a-raw-text-identity-signing-key-with-enough-bytes"
B64_KEY = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0VniQEjRW"


def base_env(**changes: str) -> dict[str, str]:
    env = {
        "IDENTITY_SIGNING_KEY": RAW_KEY,
        "API_AUTHORITY_URL": f"https://localhost:8900/{TENANT}/",
        "API_OPENAPI_CLIENT_ID": SPA_CLIENT_ID,
        "API_SCOPE_PREFIX": API_URI,
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env(env)
    return caught.value.problems


def test_minimal_environment_gives_the_documented_defaults() -> None:
    settings = ApiSettings.from_env(base_env())
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.identity_max_age == 30
    assert settings.database_url == "sqlite+aiosqlite:///run/api.sqlite3"
    assert settings.authority_url == f"https://localhost:8900/{TENANT}"
    assert settings.authorization_url == f"https://localhost:8900/{TENANT}/oauth2/v2.0/authorize"
    assert settings.token_url == f"https://localhost:8900/{TENANT}/oauth2/v2.0/token"
    assert settings.scope("user.read") == f"{API_URI}/user.read"
    assert settings.signing_keys == (RAW_KEY.encode(),)
    assert settings.revalidation is None
    assert settings.report_group_ids == ()
    assert settings.access_log is False
    assert settings.workers == 1


def test_every_variable_is_read() -> None:
    env = base_env(
        IDENTITY_SIGNING_KEY_PREVIOUS=B64_KEY,
        API_HOST="0.0.0.0",
        API_PORT="8123",
        API_DATABASE_PATH="/tmp/x/api.db",
        API_IDENTITY_MAX_AGE_SECONDS="10",
        API_REPORT_GROUP_IDS="0A1B2C3D-1111-4222-8333-444455556666, 11111111-2222-4333-8444-555555555555",
        API_MAX_BODY_BYTES="4096",
        API_ACCESS_LOG="on",
        API_WORKERS="2",
        API_LOG_LEVEL="DEBUG",
        VERIFIER_TENANT_IDS=TENANT,
        VERIFIER_AUDIENCES=API_URI,
        VERIFIER_AUTHORITY="https://localhost:8900",
        VERIFIER_JWKS_MIN_REFETCH_SECONDS="5",
    )
    settings = ApiSettings.from_env(env)
    assert settings.signing_keys == (RAW_KEY.encode(), decode_identity_key(B64_KEY))
    assert (settings.host, settings.port) == ("0.0.0.0", 8123)
    assert settings.database_url == "sqlite+aiosqlite:////tmp/x/api.db"
    assert settings.identity_max_age == 10
    assert settings.report_group_ids == (
        "0a1b2c3d-1111-4222-8333-444455556666",
        "11111111-2222-4333-8444-555555555555",
    )
    assert settings.max_body_bytes == 4096
    assert settings.access_log is True
    assert settings.workers == 2
    assert settings.log_level == "debug"
    assert settings.revalidation is not None
    assert settings.revalidation.tenant_ids == frozenset({TENANT})
    assert settings.revalidation.audiences == frozenset({API_URI})
    assert settings.revalidation.authority == "https://localhost:8900"
    assert settings.jwks_min_refetch_seconds == 5.0


def test_empty_environment_reports_every_missing_variable_at_once() -> None:
    problems = problems_of({})
    text = "\n".join(problems)
    for name in ("IDENTITY_SIGNING_KEY", "API_AUTHORITY_URL", "API_OPENAPI_CLIENT_ID", "API_SCOPE_PREFIX"):
        assert name in text
    assert len(problems) == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_PORT", "0"),
        ("API_PORT", "http"),
        ("API_HOST", "example.com"),
        ("API_IDENTITY_MAX_AGE_SECONDS", "0"),
        ("API_IDENTITY_MAX_AGE_SECONDS", "3600"),
        ("API_AUTHORITY_URL", "http://login.example/tenant"),
        ("API_AUTHORITY_URL", "https://login.example/tenant?x=1"),
        ("API_OPENAPI_CLIENT_ID", "spa"),
        ("API_SCOPE_PREFIX", "5a1e9c3d"),
        ("API_REPORT_GROUP_IDS", "admins"),
        ("API_MAX_BODY_BYTES", "10"),
        ("API_ACCESS_LOG", "maybe"),
        ("API_WORKERS", "0"),
        ("API_LOG_LEVEL", "loud"),
        ("IDENTITY_SIGNING_KEY_PREVIOUS", "short"),
        ("VERIFIER_TENANT_IDS", "not-a-guid"),
        ("VERIFIER_CA_FILE", "/nonexistent/ca.pem"),
    ],
)
def test_invalid_value_is_reported_with_the_variable_name(name: str, value: str) -> None:
    env = base_env(**{name: value})
    if name.startswith("VERIFIER_") and name != "VERIFIER_TENANT_IDS":
        env["VERIFIER_TENANT_IDS"] = TENANT
    if name.startswith("VERIFIER_"):
        env["VERIFIER_AUDIENCES"] = API_URI
    problems = problems_of(env)
    assert any(name in problem for problem in problems), problems


def test_several_problems_are_reported_together() -> None:
    problems = problems_of(base_env(API_PORT="99999", API_LOG_LEVEL="loud", API_OPENAPI_CLIENT_ID=""))
    assert len(problems) == 3


def test_short_signing_key_is_reported_without_revealing_it() -> None:
    secret = "tiny-secret-value"
    problems = problems_of(base_env(IDENTITY_SIGNING_KEY=secret))
    assert any("IDENTITY_SIGNING_KEY" in p and "too short" in p for p in problems)
    assert all(secret not in p for p in problems)


def test_revalidation_with_only_tenant_ids_reports_missing_audiences() -> None:
    problems = problems_of(base_env(VERIFIER_TENANT_IDS=TENANT))
    assert any("VERIFIER_AUDIENCES" in p for p in problems)


@pytest.mark.parametrize("text", [RAW_KEY, B64_KEY, f"  {RAW_KEY}\n"])
def test_signing_key_is_decoded_exactly_like_the_verifier_decodes_it(text: str) -> None:
    assert decode_signing_key(text) == decode_identity_key(text)


def test_base64url_signing_key_is_decoded_to_its_bytes() -> None:
    import base64

    key = bytes(range(40))
    text = base64.urlsafe_b64encode(key).decode().rstrip("=")
    assert decode_signing_key(text) == key


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # What the database secret holds: plain libpq form, TLS required with libpq's option name.
        (
            "postgresql://edge:p%40ss@db.internal:5432/edge_api?sslmode=require",
            "postgresql+asyncpg://edge:p%40ss@db.internal:5432/edge_api?ssl=require",
        ),
        ("postgres://edge:pw@db.internal/edge_api", "postgresql+asyncpg://edge:pw@db.internal/edge_api"),
        ("postgresql+asyncpg://edge:pw@127.0.0.1:6543/x", "postgresql+asyncpg://edge:pw@127.0.0.1:6543/x"),
        ("sqlite+aiosqlite:////var/lib/api.sqlite3", "sqlite+aiosqlite:////var/lib/api.sqlite3"),
        ("sqlite:///relative.sqlite3", "sqlite+aiosqlite:///relative.sqlite3"),
    ],
)
def test_database_url_gets_the_async_driver_and_asyncpgs_tls_option(given: str, expected: str) -> None:
    settings = ApiSettings.from_env(base_env(API_DATABASE_URL=given, API_DATABASE_PATH="/ignored.sqlite3"))
    assert settings.database_url == expected


def test_database_url_is_not_in_the_settings_repr() -> None:
    settings = ApiSettings.from_env(base_env(API_DATABASE_URL="postgresql://edge:hunter2@db/edge_api"))
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://edge:hunter2@db/edge_api", "API_DATABASE_URL has the scheme 'mysql'"),
        ("postgresql://edge:hunter2@/edge_api", "API_DATABASE_URL must name a host and a database"),
        ("postgresql://edge:hunter2@db", "API_DATABASE_URL must name a host and a database"),
        ("sqlite+aiosqlite://", "API_DATABASE_URL must name a SQLite file"),
        ("sqlite+aiosqlite:///:memory:", "API_DATABASE_URL must name a SQLite file"),
        ("hunter2", "API_DATABASE_URL is not a database URL"),
    ],
)
def test_bad_database_url_is_refused_without_repeating_it(given: str, message: str) -> None:
    problems = problems_of(base_env(API_DATABASE_URL=given))
    assert [p for p in problems if p.startswith(message)], problems
    assert not [p for p in problems if "hunter2" in p]


@pytest.mark.parametrize(("value", "expected"), [("c1", "c1"), ("C7", "c7"), ("c99", "c99"), ("none", None)])
def test_the_step_up_context_is_a_context_id_or_none(value: str, expected: str | None) -> None:
    settings = ApiSettings.from_env(base_env(API_STEP_UP_AUTH_CONTEXT=value))
    assert settings.step_up_auth_context == expected


def test_the_step_up_context_defaults_to_c1() -> None:
    assert ApiSettings.from_env(base_env()).step_up_auth_context == "c1"


@pytest.mark.parametrize("value", ["c0", "c100", "c01", "acr1", "c1,c2", ""])
def test_a_bad_step_up_context_is_a_configuration_error(value: str) -> None:
    problems = problems_of(base_env(API_STEP_UP_AUTH_CONTEXT=value))
    assert len(problems) == 1
    assert "API_STEP_UP_AUTH_CONTEXT" in problems[0]
