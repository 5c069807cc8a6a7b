"""VERIFIER_ALB_* variables: off unless VERIFIER_ALB_ARN is set, then every problem named at once."""

from __future__ import annotations

import pytest

from service_runtime.env import EnvReader
from tests.support.config_problems import problems_naming
from verifier.core.alb_token import DEFAULT_KEY_URL_TEMPLATE
from verifier.service.settings import alb_settings_from_env, settings_from_env

from .forge import ARN, CLIENT, ISSUER, KID, TENANT

BASE = {
    "VERIFIER_TENANT_IDS": TENANT,
    "VERIFIER_AUDIENCES": "api://edge",
    "IDENTITY_SIGNING_KEY": "k" * 43,
}
ALB = {
    "VERIFIER_ALB_ARN": ARN,
    "VERIFIER_ALB_REGION": "eu-west-1",
    "VERIFIER_ALB_ISSUER": ISSUER,
    "VERIFIER_ALB_CLIENT_ID": CLIENT,
    "VERIFIER_ALB_TENANT_ID": TENANT,
}


def test_alb_source_is_off_without_an_arn() -> None:
    assert settings_from_env(BASE).alb is None
    reader = EnvReader({k: v for k, v in ALB.items() if k != "VERIFIER_ALB_ARN"})
    assert alb_settings_from_env(reader) is None
    assert reader.problems == []


def test_complete_alb_variables_build_settings_with_the_shared_leeway() -> None:
    settings = settings_from_env({**BASE, **ALB, "VERIFIER_LEEWAY_SECONDS": "30"}).alb
    assert settings is not None
    assert (settings.signer_arn, settings.region, settings.issuer) == (ARN, "eu-west-1", ISSUER)
    assert (settings.client_id, settings.tenant_id, settings.leeway_seconds) == (CLIENT, TENANT, 30)
    assert settings.key_url_template == DEFAULT_KEY_URL_TEMPLATE
    assert settings.key_url(KID) == f"https://public-keys.auth.elb.eu-west-1.amazonaws.com/{KID}"


def test_every_problem_is_reported_with_its_variable_name() -> None:
    env = {
        **BASE,
        "VERIFIER_ALB_ARN": "not-an-arn",
        "VERIFIER_ALB_REGION": "Europe",
        "VERIFIER_ALB_KEY_URL_TEMPLATE": "ftp://keys.example/{kid}",
        "VERIFIER_ALB_ISSUER": "http://issuer",
        "VERIFIER_ALB_TENANT_ID": "contoso",
    }
    names = ("ARN", "REGION", "KEY_URL_TEMPLATE", "ISSUER", "CLIENT_ID", "TENANT_ID")
    problems_naming(env, (f"VERIFIER_ALB_{name}" for name in names))


def test_region_must_match_the_arn() -> None:
    reader = EnvReader({**ALB, "VERIFIER_ALB_REGION": "us-east-1"})
    assert alb_settings_from_env(reader) is None
    assert any("differs from the region in VERIFIER_ALB_ARN" in p for p in reader.problems)


@pytest.mark.parametrize(
    "template",
    [
        "http://keys.example/{kid}",  # plain http off loopback
        "https://keys.example/key",  # no {kid}
        "https://{kid}.keys.example/",  # kid outside the path
        "https://keys.example/{kid}/{kid}",
        "https://keys.example/{kid}?v={region}",
        "https://keys.example/{kid}/{other}",
    ],
)
def test_key_url_template_must_be_https_with_kid_once_in_the_path(template: str) -> None:
    reader = EnvReader({**ALB, "VERIFIER_ALB_KEY_URL_TEMPLATE": template})
    assert alb_settings_from_env(reader) is None
    assert reader.problems and all(p.startswith("VERIFIER_ALB_KEY_URL_TEMPLATE=") for p in reader.problems)


def test_loopback_http_template_is_allowed_for_a_local_key_server() -> None:
    reader = EnvReader({**ALB, "VERIFIER_ALB_KEY_URL_TEMPLATE": "http://127.0.0.1:9/{kid}"})
    settings = alb_settings_from_env(reader)
    assert reader.problems == []
    assert settings is not None and settings.key_url(KID) == f"http://127.0.0.1:9/{KID}"
