"""tests/compose_model: what the images add to compose's model is read from the Dockerfiles, not
guessed, and the model's own values (durations, `$$` escapes, health check forms) are read as compose
reads them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.compose_model import cli, model

DOCKER = model.REPO / "deploy" / "docker"
DOCKERFILE_OF = {
    "entra-bff-edge/python": "python.Dockerfile",
    "entra-bff-edge/devidp": "devidp.Dockerfile",
    "entra-bff-edge/oauth2-proxy": "oauth2-proxy.Dockerfile",
    "entra-bff-edge/nginx": "nginx.Dockerfile",
}
#: Files that are not a COPY from the repository: what the build makes, and the base image's own.
NOT_COPIED = {
    "/opt/venv",  # the virtual environment the build creates (here: the project's .venv)
    "/usr/local/bin/oauth2-proxy",  # built from its Go module at OAUTH2_PROXY_VERSION (here: setup's build)
    "/usr/share/nginx/spa",  # COPY --from the SPA build stage (here: spa/dist, built by setup)
    "/etc/nginx/nginx.conf",  # the nginx-unprivileged base image's
    "/docker-entrypoint.sh",  # the nginx base image's template step
}


def copies(dockerfile: str) -> set[tuple[str, str]]:
    """(source, target) of every plain `COPY [--chown=..] source target` line."""
    pairs = set()
    for line in (DOCKER / dockerfile).read_text(encoding="utf-8").splitlines():
        parts = [p for p in line.split() if not p.startswith("--")]
        if parts[:1] == ["COPY"] and len(parts) == 3:
            pairs.add((parts[1].rstrip("/"), parts[2].rstrip("/")))
    return pairs


@pytest.mark.parametrize("image", sorted(DOCKERFILE_OF))
def test_every_image_file_is_what_its_dockerfile_copies(image):
    copied = copies(DOCKERFILE_OF[image])
    for target, source in model.IMAGES[image].files.items():
        if target in NOT_COPIED:
            continue
        relative = str(Path(source).relative_to(model.REPO))
        assert (relative, target) in copied, f"{image}: {relative} -> {target} is no COPY of its Dockerfile"


def test_entrypoints_and_environment_match_the_dockerfiles():
    o2p = (DOCKER / "oauth2-proxy.Dockerfile").read_text(encoding="utf-8")
    entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', o2p, re.M)
    assert entrypoint and model.IMAGES["entra-bff-edge/oauth2-proxy"].entrypoint == (entrypoint.group(1),)
    nginx = (DOCKER / "nginx.Dockerfile").read_text(encoding="utf-8")
    for name, value in model.IMAGES["entra-bff-edge/nginx"].environment.items():
        assert f"{name}={value}" in nginx, name


def test_durations_are_read_like_compose_writes_them():
    assert model._seconds("10s", 0) == 10
    assert model._seconds("1m30s", 0) == 90
    assert model._seconds("500ms", 0) == 0.5
    assert model._seconds(None, 30) == 30


def test_the_resolved_model_becomes_processes_with_unescaped_dollars():
    processes = model.processes_of(cli.resolved_model(), Path("/volumes"))
    redis = processes["redis"]
    assert '">$REDIS_PASSWORD"' in redis.argv[-1], "a container's shell sees one $, not compose's $$ escape"
    assert redis.health is not None and redis.health.argv[:2] == ("/bin/sh", "-c")
    assert "$$" not in redis.health.argv[2]
    verifier = processes["verifier"]
    assert verifier.argv == ("python", "-m", "verifier")
    assert verifier.depends_on == {"redis": "service_healthy", "task": "service_started",
                                   "tls-init": "service_completed_successfully"}
    assert model.Mount("/tls", Path("/volumes/tls"), True) in verifier.mounts
    assert model.one_shot_services(processes) == {"tls-init", "api-migrate"}
    assert model.published_ports(cli.resolved_model()) == {8443: 8443, 8900: 8900}
