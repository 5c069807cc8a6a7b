"""Configuration validation (every problem, with its place) and the command line."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devidp.config import config_from_mapping, load_config
from service_runtime.config_error import ConfigError
from tests.unit.devidp.harness import EXAMPLE, TENANT, example_mapping


def test_example_config_loads_with_the_fixed_ids() -> None:
    config = load_config(EXAMPLE)
    tenant = config.tenant(TENANT)
    assert tenant is not None
    assert [a.app_id for a in tenant.applications] == [
        "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57",
        "b7f3d1e2-6c4a-4b58-9e17-3d2c1a0f9e84",
        "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f",
        "d3e5f7a9-2b4c-4d6e-9f80-1a2b3c4d5e6f",
        "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70",
        "a8c0e2f4-5b7d-4f91-8c3e-6d8f0a2b4c61",  # the second web app, for single sign-out tests
    ]
    assert [u.user_principal_name.split("@")[0] for u in tenant.users] == [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "frank",
    ]
    assert len(tenant.user_by_name("dave@contoso-dev.example").groups) == 250
    assert config.admin.enabled is False


def test_bad_config_lists_every_problem_with_its_place() -> None:
    data = copy.deepcopy(example_mapping())
    apps = data["tenants"][0]["applications"]
    apps[3]["appId"] = "not-a-guid"
    apps[1]["web"]["redirectUris"] = ["http://example.com/cb"]
    apps[2]["spaa"] = {}
    apps[4]["requiredResourceAccess"][0]["roles"] = ["Reader", "Owner"]
    data["tenants"][0]["users"][0]["appRoleAssignments"][0]["appRole"] = "Nope"
    data["lifetimes"]["access_token_seconds"] = 0
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, "bad.toml")
    problems = info.value.problems
    text = str(info.value)
    assert text.startswith("bad.toml: ")
    expected = [
        "tenants[0].applications[3].appId",
        "tenants[0].applications[1].web.redirectUris[0]",
        "tenants[0].applications[2].spaa: unknown key",
        "lifetimes.access_token_seconds",
    ]
    for place in expected:
        assert any(p.startswith(place) for p in problems), (place, problems)
    assert any("'Owner'" in p for p in problems)
    assert any(p.startswith("tenants[0].users[0].appRoleAssignments[0]") for p in problems)


def test_cli_refuses_bad_config_with_exit_2_and_lists_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "x"\n[[tenants]]\nid = "nope"\n', encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "devidp", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2
    assert "server.port" in run.stderr and "tenants[0].id" in run.stderr


def test_cli_serves_https_with_public_url_and_lifetime_override(tmp_path: Path, tls) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devidp",
            "--config",
            str(EXAMPLE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tls-cert",
            str(tls.cert),
            "--tls-key",
            str(tls.key),
            "--public-url",
            f"https://localhost:{port}",
            "--access-token-lifetime",
            "77",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"https://localhost:{port}/{TENANT}/v2.0/.well-known/openid-configuration"
        for _ in range(100):
            try:
                doc = requests.get(url, verify=str(tls.ca_cert), timeout=2).json()
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("devidp did not start")
        assert doc["issuer"] == f"https://localhost:{port}/{TENANT}/v2.0"
        token = requests.post(
            doc["token_endpoint"],
            verify=str(tls.ca_cert),
            timeout=5,
            data={
                "grant_type": "client_credentials",
                "client_id": "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70",
                "client_secret": "daemon-dev-secret-change-me",
                "scope": "api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57/.default",
            },
        ).json()
        assert token["expires_in"] == 77
        # Admin endpoints are off unless enabled.
        r = requests.post(
            f"https://localhost:{port}/_devidp/admin/keys/rotate", verify=str(tls.ca_cert), timeout=5
        )
        assert r.status_code == 404
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "daemon-dev-secret-change-me" not in out
