"""What the documents state about the code, checked against the code.

A claim in a document is only as good as the test that reads it: reason codes, environment variables
and their defaults, and the commands the README opens with.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devidp.discovery import openid_document
from fastapi_app.settings import ApiSettings
from service_runtime.config_error import ConfigError
from stack.pki import make_dev_pki
from stack.topology import Topology
from verifier.core.reasons import Reason
from verifier.service.settings import settings_from_env

REPO = Path(__file__).resolve().parents[2]
VERIFIER_README = REPO / "verifier" / "README.md"
API_DOC = REPO / "docs" / "api.md"

TENANT = "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
API_APP_ID = "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"
ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/edge/0123456789abcdef"


# --- reason codes --------------------------------------------------------------------------------


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{1,3} ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def documented_reason_codes() -> set[str]:
    section = _section(VERIFIER_README.read_text(encoding="utf-8"), "### Reason codes")
    listing = section[: section.index("(`verifier.core.reasons.Reason`)")]
    return set(re.findall(r"`([a-z][a-z0-9_]*)`", listing))


def test_every_documented_reason_code_is_a_reason() -> None:
    assert documented_reason_codes() - {reason.value for reason in Reason} == set()


def test_every_reason_is_documented() -> None:
    assert {reason.value for reason in Reason} - documented_reason_codes() == set()


def test_internal_error_is_a_reason_and_the_app_emits_it() -> None:
    assert Reason("internal_error") is Reason.INTERNAL_ERROR
    assert "Reason.INTERNAL_ERROR" in (REPO / "verifier" / "service" / "app.py").read_text(encoding="utf-8")


# --- environment variables -----------------------------------------------------------------------


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable name the code asked for."""

    def __init__(self, values: Mapping[str, str], read: set[str]) -> None:
        self._values = dict(values)
        self.read = read

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(name)
        return self._values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def verifier_minimal_env() -> dict[str, str]:
    """Every variable the verifier requires, with the ALB source on so its variables are read too."""
    return {
        "VERIFIER_TENANT_IDS": TENANT,
        "VERIFIER_AUDIENCES": f"api://{API_APP_ID}",
        "IDENTITY_SIGNING_KEY": "k" * 43,
        "VERIFIER_ALB_ARN": ALB_ARN,
        "VERIFIER_ALB_REGION": "eu-west-1",
        "VERIFIER_ALB_ISSUER": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "VERIFIER_ALB_CLIENT_ID": "0a1b2c3d-1111-4222-8333-444455556666",
        "VERIFIER_ALB_TENANT_ID": TENANT,
    }


def api_minimal_env(tmp: Path) -> dict[str, str]:
    """Every variable the API requires, with re-validation on so the VERIFIER_* it reads are read too."""
    return {
        "IDENTITY_SIGNING_KEY": "k" * 43,
        "API_AUTHORITY_URL": f"https://login.microsoftonline.com/{TENANT}",
        "API_OPENAPI_CLIENT_ID": "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f",
        "API_SCOPE_PREFIX": f"api://{API_APP_ID}",
        "VERIFIER_TENANT_IDS": TENANT,
        "VERIFIER_AUDIENCES": f"api://{API_APP_ID}",
    }


def variables_read(build: Callable[[Mapping[str, str]], object], env: Mapping[str, str]) -> set[str]:
    read: set[str] = set()
    build(RecordingEnv(env, read))
    return read


def documented_variables(doc: Path) -> dict[str, str]:
    """``{variable: default column}`` from the doc's variable tables (`| `NAME` | default | ... |`).

    A row may list several variables and as many defaults: `| `A`, `B` | `1`, `2` | ... |`.
    """
    found: dict[str, str] = {}
    for line in doc.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if not names:
            continue
        defaults = re.findall(r"`([^`]*)`", cells[1])
        if len(names) > 1 and len(defaults) == len(names):
            found.update({name: f"`{default}`" for name, default in zip(names, defaults, strict=True)})
        else:
            found.update(dict.fromkeys(names, cells[1]))
    return found


def _is_required(default: str) -> bool:
    return default.startswith("required") or default.startswith("(required")


def _literal(default: str) -> str | None:
    """The value of a default written as one code literal (`60`), else None (prose, "(none)", ...)."""
    match = re.fullmatch(r"`([^`]*)`", default)
    return match.group(1) if match else None


TRACING_DOC = REPO / "docs" / "tracing.md"
VERIFIER_DOCS = (VERIFIER_README, TRACING_DOC)
API_DOCS = (API_DOC, VERIFIER_README, TRACING_DOC)


def _documented_in(docs: tuple[Path, ...]) -> dict[str, str]:
    table: dict[str, str] = {}
    for doc in reversed(docs):
        table.update(documented_variables(doc))
    return table


def test_every_variable_the_verifier_reads_is_documented_with_a_default() -> None:
    read = variables_read(settings_from_env, verifier_minimal_env())
    documented = _documented_in(VERIFIER_DOCS)
    assert read - set(documented) == set(), "read by verifier.service.settings but not in verifier/README.md"
    assert {name for name in read if not documented[name].strip()} == set()


def test_every_variable_the_verifier_readme_documents_is_read() -> None:
    read = variables_read(settings_from_env, verifier_minimal_env())
    assert set(documented_variables(VERIFIER_README)) - read == set()


def test_every_variable_the_api_doc_documents_is_read(tmp_path: Path) -> None:
    read = variables_read(ApiSettings.from_env, api_minimal_env(tmp_path))
    assert set(documented_variables(API_DOC)) - read == set()


def test_every_variable_the_api_reads_is_documented_with_a_default(tmp_path: Path) -> None:
    read = variables_read(ApiSettings.from_env, api_minimal_env(tmp_path))
    documented = _documented_in(API_DOCS)
    assert read - set(documented) == set(), (
        "read by ApiSettings but documented in neither docs/api.md nor verifier/README.md"
    )
    assert {name for name in read if not documented[name].strip()} == set()


VERIFIER_DEFAULTS = {
    name: default
    for name, default in _documented_in(VERIFIER_DOCS).items()
    if name.startswith(("VERIFIER_", "IDENTITY_"))
}


@pytest.mark.parametrize("name", sorted(VERIFIER_DEFAULTS))
def test_each_documented_verifier_default_is_the_real_default(name: str) -> None:
    """Setting a variable to its documented default changes nothing; a required one is required."""
    default = VERIFIER_DEFAULTS[name]
    env = verifier_minimal_env()
    if _is_required(default):
        without = {key: value for key, value in env.items() if key != name}
        with pytest.raises(ConfigError) as missing:
            settings_from_env(without)
        assert any(name in problem for problem in missing.value.problems), missing.value.problems
        return
    literal = _literal(default)
    if literal is None:
        # Documented as optional ("(none)", "(derived)", ...): the verifier starts without it.
        settings_from_env({key: value for key, value in env.items() if key != name})
        return
    assert settings_from_env({**env, name: literal}) == settings_from_env(env)


# The VERIFIER_* variables the API shares are documented (and their defaults checked) with the verifier.
API_DEFAULTS = {
    name: default
    for name, default in documented_variables(API_DOC).items()
    if not name.startswith("VERIFIER_")
}


@pytest.mark.parametrize("name", sorted(API_DEFAULTS))
def test_each_documented_api_default_is_the_real_default(name: str, tmp_path: Path) -> None:
    default = API_DEFAULTS[name]
    env = api_minimal_env(tmp_path)
    if _is_required(default):
        without = {key: value for key, value in env.items() if key != name}
        with pytest.raises(ConfigError) as missing:
            ApiSettings.from_env(without)
        assert any(name in problem for problem in missing.value.problems), missing.value.problems
        return
    literal = _literal(default)
    if literal is None:
        ApiSettings.from_env({key: value for key, value in env.items() if key != name})
        return
    assert ApiSettings.from_env({**env, name: literal}) == ApiSettings.from_env(env)


@pytest.mark.parametrize("package", ["devidp", "stack"])
def test_devidp_and_the_launcher_read_no_undocumented_variables(package: str) -> None:
    """devidp and the launcher are configured by their command lines and files, not the environment.

    Should one of them start reading a variable, it must be documented like the others.
    """
    docs = "\n".join(
        path.read_text(encoding="utf-8") for path in [REPO / "README.md", *REPO.glob("docs/*.md")]
    )
    pattern = re.compile(r"""(?:environ(?:\.get)?\(?\[?|getenv\()\s*["']([A-Z][A-Z0-9_]+)["']""")
    read = {
        name
        for source in (REPO / package).glob("*.py")
        for name in pattern.findall(source.read_text(encoding="utf-8"))
    }
    assert {name for name in read if f"`{name}`" not in docs} == set()


# --- the README's first screen -------------------------------------------------------------------


def readme_code_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(encoding="utf-8"), re.M | re.S)


def make_dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    """``make -n`` as a person at a shell runs it: under ``make test`` the parent's MAKEFLAGS and
    MAKELEVEL would otherwise make the child print "Entering directory" lines around the steps."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False, env=env,
    )  # fmt: skip


def first_screen_commands() -> list[list[str]]:
    """The commands of the README's first block (``make run``, ``make test``), comments dropped."""
    commands = []
    for line in readme_code_blocks()[0].splitlines():
        command = line.split("#", 1)[0].strip()
        if command:
            commands.append(shlex.split(command))
    return commands


def test_the_first_screen_names_make_run_and_make_test() -> None:
    assert first_screen_commands() == [["make", "run"], ["make", "test"]]


@pytest.mark.parametrize("command", first_screen_commands(), ids=" ".join)
def test_each_first_screen_make_target_exists_and_sets_up_first(command: list[str]) -> None:
    # `make test` is what runs this test; `make run` is the stack itself. Both must exist and set up
    # the machine first, as the README says.
    assert command[0] == "make", command
    dry = make_dry_run(*command[1:])
    assert dry.returncode == 0, dry.stderr
    steps = dry.stdout.splitlines()
    assert steps[0] == "bash scripts/setup.sh", steps


def test_make_run_starts_the_launcher_whose_command_line_parses() -> None:
    dry = make_dry_run("run")
    assert dry.stdout.splitlines()[-1] == ".venv/bin/python -m stack up"
    # docs/tracing.md's `make run RUN_ARGS=--tracing`: the arguments reach the launcher.
    traced = make_dry_run("run", "RUN_ARGS=--tracing")
    assert traced.stdout.splitlines()[-1] == ".venv/bin/python -m stack up --tracing"
    parsed = subprocess.run(
        [sys.executable, "-m", "stack", "up", "--help"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert parsed.returncode == 0, parsed.stderr


def test_the_bearer_example_is_valid_shell() -> None:
    """tests/e2e/test_readme.py runs it against the stack; here it must at least parse."""
    example = readme_code_blocks()[1]
    parsed = subprocess.run(["bash", "-n"], input=example, capture_output=True, text=True, timeout=10)
    assert parsed.returncode == 0, parsed.stderr


def test_readme_does_not_claim_every_refusal_has_a_www_authenticate_reason() -> None:
    # missing_token has a challenge without error_description; CSRF refusals have no challenge.
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "in the JSON body and in `WWW-Authenticate`" not in text


def test_no_document_points_at_a_design_page_outside_the_repository() -> None:
    documents = [REPO / "README.md", REPO / "verifier" / "README.md", REPO / "bench" / "README.md"]
    documents += sorted((REPO / "docs").glob("*.md"))
    outside = [
        str(doc.relative_to(REPO))
        for doc in documents
        if "ARCHITECTURE.md" in doc.read_text(encoding="utf-8")
    ]
    assert outside == []


def test_the_edge_template_names_the_spa_root_the_image_and_task_definition_use() -> None:
    template = (REPO / "nginx" / "edge.conf.template").read_text(encoding="utf-8")
    documented = re.search(r"#   EDGE_SPA_ROOT\s+[^`]*`([^`]+)`", template).group(1)
    task_definition = json.loads(
        (REPO / "ecs-taskdefs" / "edge-api.taskdef.json").read_text(encoding="utf-8")
    )
    used = {
        variable["value"]
        for container in task_definition["containerDefinitions"]
        for variable in container.get("environment", [])
        if variable["name"] == "EDGE_SPA_ROOT"
    }
    assert used == {documented}
    assert f"/spa/dist/ {documented}/" in (REPO / "deploy" / "docker" / "nginx.Dockerfile").read_text(
        encoding="utf-8"
    )


# --- docs/aws.md against the task definition and the code ----------------------------------------


def _task_definition() -> dict[str, Any]:
    return json.loads((REPO / "ecs-taskdefs" / "edge-api.taskdef.json").read_text(encoding="utf-8"))


def _aws_doc() -> str:
    return (REPO / "docs" / "aws.md").read_text(encoding="utf-8")


def test_aws_doc_creates_the_roles_the_task_definition_names() -> None:
    task = _task_definition()
    for arn in (task["taskRoleArn"], task["executionRoleArn"]):
        role = arn.rsplit("/", 1)[1]
        assert f"aws iam create-role --role-name {role} " in _aws_doc(), role


def test_aws_doc_creates_the_log_group_and_pushes_the_images_the_task_definition_uses() -> None:
    containers = _task_definition()["containerDefinitions"]
    groups = {c["logConfiguration"]["options"]["awslogs-group"] for c in containers}
    assert len(groups) == 1
    assert f"aws logs create-log-group --log-group-name {groups.pop()}" in _aws_doc()
    repositories = {c["image"].split("/", 1)[1].split(":")[0] for c in containers}
    for repository in repositories:
        assert f"-t $REGISTRY/{repository}:$TAG" in _aws_doc(), repository
        assert repository.startswith("entra-bff-edge/")
    assert "docker push $REGISTRY/entra-bff-edge/$repo:$TAG" in _aws_doc()


def test_aws_doc_states_the_token_cache_lifetime_the_cache_uses() -> None:
    from verifier.sources.access_token import TOKEN_CACHE_MAX_TTL_SECONDS

    assert TOKEN_CACHE_MAX_TTL_SECONDS == 5 * 60
    text = " ".join(_aws_doc().split())
    assert "cached by its hash for at most 5 minutes, never past its expiry" in text
    assert "until shortly before expiry" not in text


def test_aws_doc_says_where_the_api_keeps_state() -> None:
    api = next(c for c in _task_definition()["containerDefinitions"] if c["name"] == "api")
    assert not api.get("mountPoints"), "the API keeps no data in the task"
    secrets = {secret["name"]: secret["valueFrom"] for secret in api["secrets"]}
    assert secrets["API_DATABASE_URL"] == "${DATABASE_SECRET_ARN}:url::"
    text = " ".join(_aws_doc().split())
    assert "SQLite file on the task volume" not in text
    assert "its data is in RDS PostgreSQL, shared by every task" in text
    assert '"valueFrom": "${DATABASE_SECRET_ARN}:url::"' in text


# --- docs/operations.md ----------------------------------------------------------------------------


def test_operations_doc_says_allowed_requests_are_logged_only_at_debug_which_the_launcher_does_not_use(
    tmp_path: Path,
) -> None:
    from stack.render import Secrets, verifier_env
    from stack.topology import Topology

    env = verifier_env(Topology(run_dir=tmp_path), tmp_path / "ca.pem", Secrets("k" * 43, "c" * 32))
    assert env["VERIFIER_LOG_LEVEL"] == "info"
    text = " ".join((REPO / "docs" / "operations.md").read_text(encoding="utf-8").split())
    assert "one `decision` line per verify" not in text
    claim = "Allowed requests get one only at `VERIFIER_LOG_LEVEL=debug`; the launcher runs the verifier at"
    assert f"{claim} `info`" in text


def test_operations_doc_puts_fastapi_reasons_in_the_apis_log_not_the_verifiers() -> None:
    text = " ".join((REPO / "docs" / "operations.md").read_text(encoding="utf-8").split())
    assert "these reasons are in the response body and in FastAPI's access line for it" in text
    # ... because FastAPI's access log writes one, for every refusal whatever API_ACCESS_LOG says.
    middleware = (REPO / "fastapi_app" / "middleware.py").read_text(encoding="utf-8")
    assert 'fields["reason"] = _reason_of(' in middleware
    assert "if self.every_request or status >= 400:" in middleware


# --- docs/entra-setup.md -------------------------------------------------------------------------


def _entra_doc() -> str:
    return (REPO / "docs" / "entra-setup.md").read_text(encoding="utf-8")


def _compose_variables() -> dict[str, str]:
    """``{name: "required" | default}`` for every ``${NAME...}`` compose.yaml interpolates."""
    found: dict[str, str] = {}
    for name, operator, rest in re.findall(
        r"\$\{([A-Z][A-Z0-9_]*)(?:(:\?|:-)([^}]*))?\}", (REPO / "compose.yaml").read_text(encoding="utf-8")
    ):
        if operator == ":?":
            found[name] = "required"
        else:
            found.setdefault(name, rest if operator == ":-" else "")
    return found


def test_entra_doc_lists_exactly_the_env_file_names_compose_reads_with_their_defaults() -> None:
    section = _section(_entra_doc(), "### For `docker compose`: the env file")
    documented = {}
    for name, required, _ in re.findall(
        r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+) \|([^|]*)\|$", section, re.MULTILINE
    ):
        documented[name] = required.strip()
    compose = _compose_variables()
    assert set(documented) == set(compose)
    for name, default in compose.items():
        if default == "required":
            assert documented[name] == "yes", name
        elif default:
            assert documented[name] == f"no, `{default}`", name
        else:
            assert documented[name].startswith("no"), name


def test_entra_doc_refers_to_its_own_sections_and_the_current_portal() -> None:
    text = _entra_doc()
    headings = re.findall(r"^## (\d+)\. ", text, re.MULTILINE)
    for step in re.findall(r"assigned in (?:step|section) (\d+)", " ".join(text.split())):
        assert step in headings, f"the page has no section {step}"
    for link in re.findall(r"\]\(#(\d+)-[a-z-]+\)", text):
        assert link in headings
    assert "Identity > Applications" not in text
    assert "**Entra ID > App registrations**" in " ".join(text.split())


# --- paths the docs name ------------------------------------------------------------------------------


def test_devidp_doc_names_the_tls_files_the_launcher_writes(tmp_path: Path) -> None:
    topology = Topology(run_dir=tmp_path / "run")
    files = make_dev_pki(topology.tls_dir)
    named = {f"run/{path.relative_to(topology.run_dir).as_posix()}" for path in (files.cert, files.key)}
    for doc in (REPO / "docs" / "devidp.md", REPO / "devidp" / "example.toml"):
        mentioned = set(re.findall(r"run/[\w./-]+\.pem", doc.read_text(encoding="utf-8")))
        assert mentioned and mentioned <= named, (doc.name, mentioned, named)


def test_spa_doc_names_devidps_discovered_logout_path() -> None:
    document = openid_document("https://idp.example", "<tenant>", "<tenant>", v2=True)
    path = document["end_session_endpoint"].removeprefix("https://idp.example")
    assert f"`{path}`" in (REPO / "docs" / "spa.md").read_text(encoding="utf-8"), path
