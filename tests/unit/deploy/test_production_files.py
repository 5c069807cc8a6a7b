"""Production files: devidp (the development stand-in for Entra ID) and its published development
values never appear in them, and every image runs as a fixed non-root user from a pinned base."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from stack import topology

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "deploy" / "docker"
PRODUCTION_IMAGES = ("python", "nginx", "oauth2-proxy")


def production_files() -> list[Path]:
    taskdefs = (REPO / "ecs-taskdefs").rglob("*")
    files = sorted(p for p in taskdefs if p.is_file() and "__pycache__" not in p.parts)
    for image in PRODUCTION_IMAGES:
        files.append(DOCKER / f"{image}.Dockerfile")
        files.append(DOCKER / f"{image}.Dockerfile.dockerignore")
    files.append(DOCKER / "oauth2-proxy-entrypoint.sh")
    return files


#: What would betray a development identity provider: its name, port, dev CA, and every fixed id and
#: secret of devidp/example.toml.
FORBIDDEN = {
    "devidp": re.compile(r"devidp", re.IGNORECASE),
    "devidp's port": re.compile(r"\b8900\b"),
    "localhost URL": re.compile(r"https?://localhost\b"),
    "dev CA": re.compile(r"dev-ca\.pem"),
    "development secret": re.compile(r"change-me|dev-secret", re.IGNORECASE),
    **{
        f"devidp id {value}": re.compile(re.escape(value), re.IGNORECASE)
        for value in (
            topology.PRIMARY_TENANT_ID,
            topology.SECOND_TENANT_ID,
            topology.API_APP_ID,
            topology.BFF_CLIENT_ID,
            topology.SPA_CLIENT_ID,
            topology.PUBLIC_CLIENT_ID,
            topology.DAEMON_CLIENT_ID,
            topology.BFF_CLIENT_SECRET,
            topology.DAEMON_CLIENT_SECRET,
        )
    },
}


def test_the_production_file_list_is_not_empty():
    files = production_files()
    assert all(f.is_file() for f in files), [str(f) for f in files if not f.is_file()]
    assert any(f.name == "edge-api.taskdef.json" for f in files)


@pytest.mark.parametrize("path", production_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_production_file_mentions_devidp_or_its_development_values(path):
    text = path.read_text(encoding="utf-8")
    found = [what for what, pattern in FORBIDDEN.items() if pattern.search(text)]
    assert not found, f"{path.relative_to(REPO)} contains {found}"


def test_the_rendered_task_definition_has_no_development_value(task_definition):
    text = json.dumps(task_definition)
    found = [what for what, pattern in FORBIDDEN.items() if pattern.search(text)]
    assert not found


def test_the_production_python_image_does_not_contain_devidp(dockerfiles):
    python = dockerfiles["python"]
    sources = [c.split()[:-1] for c in python.all("COPY") if not c.startswith("--from")]
    copied = {s.rstrip("/") for parts in sources for s in parts if not s.startswith("--")}
    assert copied == {
        "deploy/docker/requirements.lock",
        "pyproject.toml",
        "service_runtime",
        "verifier",
        "fastapi_app",
    }
    assert "devidp" not in (DOCKER / "python.Dockerfile.dockerignore").read_text().replace("# ", "")


# --- every image ---------------------------------------------------------------------------------


def _final_stage(dockerfile) -> list[tuple[str, str]]:
    last_from = max(i for i, (kw, _) in enumerate(dockerfile.instructions) if kw == "FROM")
    return dockerfile.instructions[last_from:]


def test_every_image_runs_as_a_fixed_non_root_user(dockerfiles):
    assert set(dockerfiles) >= {*PRODUCTION_IMAGES, "devidp"}
    for name, dockerfile in dockerfiles.items():
        users = [args for kw, args in _final_stage(dockerfile) if kw == "USER"]
        assert users, f"{name}: the final stage sets no USER"
        uid, _, gid = users[-1].partition(":")
        numeric = uid.isdigit() and gid.isdigit()
        assert numeric and int(uid) != 0 and int(gid) != 0, f"{name}: USER {users[-1]}"


def test_image_users_match_the_task_definition(dockerfiles, containers, image_of):
    for container in containers.values():
        dockerfile = dockerfiles[image_of(container["image"])]
        final_user = [args for kw, args in _final_stage(dockerfile) if kw == "USER"][-1]
        assert final_user == container["user"], container["name"]


def test_base_images_are_pinned_to_a_version(dockerfiles):
    for name, dockerfile in dockerfiles.items():
        defaults = dict(arg.split("=", 1) for arg in dockerfile.all("ARG") if "=" in arg)
        for base in dockerfile.all("FROM"):
            image = base.split()[0]
            arg = re.fullmatch(r"\$\{(\w+)\}", image)
            image = defaults.get(arg.group(1), image) if arg else image
            if image in {"build", "spa"}:
                continue  # an earlier stage of the same file
            assert ":" in image, f"{name}: {image} has no tag"
            tag = image.rsplit(":", 1)[1]
            assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


def test_every_copied_path_exists_and_passes_the_dockerignore(dockerfiles):
    for name, dockerfile in dockerfiles.items():
        ignore = (DOCKER / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
        includes = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
        for copy in dockerfile.all("COPY"):
            parts = [p for p in copy.split() if not p.startswith("--")]
            if copy.startswith("--from") or "--from=" in copy:
                continue
            for source in parts[:-1]:
                source = source.rstrip("/")
                # A glob (nginx/*.template) must match at least one file, as docker build requires.
                assert any(REPO.glob(source)), f"{name}: COPY {source} matches nothing"
                assert any(
                    source == inc or fnmatch.fnmatch(source, inc) or source.startswith(inc + "/")
                    for inc in includes
                ), f"{name}: {source} is excluded by the .dockerignore"


def test_every_writable_mount_is_a_volume_the_image_declares(dockerfiles, containers, image_of):
    # ECS copies an image's VOLUME directory (with its ownership) into a bind mount at the same path;
    # without it a non-root user could not write to the task's ephemeral storage.
    for container in containers.values():
        dockerfile = dockerfiles[image_of(container["image"])]
        declared = {p for v in dockerfile.all("VOLUME") for p in json.loads(v)}
        for mount in container.get("mountPoints", []):
            assert mount["containerPath"] in declared, f"{container['name']}: {mount['containerPath']}"
