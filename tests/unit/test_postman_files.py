"""postman/: the collection's variables are all defined by the environments that run it, the tenant
environment carries placeholders only (no development value, no secret), and newman is pinned."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from stack import topology

POSTMAN = Path(__file__).resolve().parents[2] / "postman"
COLLECTION = json.loads((POSTMAN / "entra-bff-edge.postman_collection.json").read_text(encoding="utf-8"))
LOCAL = json.loads((POSTMAN / "local.postman_environment.json").read_text(encoding="utf-8"))
TENANT = json.loads((POSTMAN / "tenant.postman_environment.json").read_text(encoding="utf-8"))
DEVIDP_ONLY_FOLDER = "2. User tokens by password (devidp only)"
_VARIABLE = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")
_SCRIPT_GET = re.compile(r"pm\.(?:variables|environment)\.get\(\"([A-Za-z0-9_]+)\"\)")


def variables_used(node: Any) -> set[str]:
    text = json.dumps(node)
    return set(_VARIABLE.findall(text)) | set(_SCRIPT_GET.findall(text))


def defined(environment: dict[str, Any]) -> set[str]:
    return {v["key"] for v in environment["values"]} | {v["key"] for v in COLLECTION["variable"]}


def test_the_local_environment_defines_every_variable_of_the_collection():
    assert variables_used(COLLECTION) - defined(LOCAL) == set()


def test_the_tenant_environment_defines_every_variable_outside_the_devidp_folder():
    folders = [f for f in COLLECTION["item"] if f["name"] != DEVIDP_ONLY_FOLDER]
    assert len(folders) == len(COLLECTION["item"]) - 1
    assert variables_used(folders) - defined(TENANT) == set()


def test_the_tenant_environment_holds_placeholders_not_development_values():
    text = json.dumps(TENANT)
    for value in (
        topology.PRIMARY_TENANT_ID,
        topology.API_APP_ID,
        topology.PUBLIC_CLIENT_ID,
        topology.DAEMON_CLIENT_ID,
        topology.DAEMON_CLIENT_SECRET,
        "localhost",
        "password",
    ):
        assert value not in text, value
    secrets = [v for v in TENANT["values"] if v["type"] == "secret"]
    assert [v["key"] for v in secrets] == ["daemonClientSecret"]
    assert all(v["value"] == "" for v in secrets), "a secret is typed in by the user, never shipped"


def test_the_local_environment_matches_devidps_registrations():
    values = {v["key"]: v["value"] for v in LOCAL["values"]}
    assert values["tenantId"] == topology.PRIMARY_TENANT_ID
    assert values["otherTenantId"] == topology.SECOND_TENANT_ID
    assert values["apiAppIdUri"] == topology.API_APP_ID_URI
    assert values["publicClientId"] == topology.PUBLIC_CLIENT_ID
    assert values["daemonClientId"] == topology.DAEMON_CLIENT_ID
    assert values["daemonClientSecret"] == topology.DAEMON_CLIENT_SECRET


def test_the_collection_is_format_v2_1_and_newman_is_pinned_exactly():
    assert (
        COLLECTION["info"]["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    )
    package = json.loads((POSTMAN / "package.json").read_text(encoding="utf-8"))
    version = package["devDependencies"]["newman"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"newman {version!r} is a range, not a version"
    lock = json.loads((POSTMAN / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/newman"]["version"] == version
