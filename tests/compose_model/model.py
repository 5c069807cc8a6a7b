"""compose.yaml's resolved model (`docker compose config --format json`) turned into plain processes.

Containers cannot run on every machine that runs `make test`, so the test of compose.yaml starts each
service as a process instead, inside a private network and mount namespace (run.py) where every
container path exists and 127.0.0.1 is the task's shared localhost. What a process gets comes from
the model: its command, environment, volumes and tmpfs mounts, its health check and its
dependencies. What the images would add (their files, entrypoints and default commands) comes from
:data:`IMAGES`, which mirrors deploy/docker/*.Dockerfile; tests/unit/deploy/test_compose_model.py
checks each entry against its Dockerfile so the two cannot drift apart.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE_BIN = REPO / ".cache" / "bin"


@dataclass(frozen=True)
class Image:
    """What one image contributes: files at container paths, an entrypoint, a default command and
    environment (its ENV lines)."""

    files: dict[str, Path] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)


def _python_image(extra_files: dict[str, Path] | None = None) -> Image:
    # The image's /opt/venv is the project's own virtual environment here (the same packages; the
    # project installed editable instead of copied).
    return Image(
        files={"/opt/venv": REPO / ".venv", **(extra_files or {})},
        environment={"PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
                     "PYTHONDONTWRITEBYTECODE": "1"},
    )


#: Keyed by the image name in compose.yaml (without registry and tag).
IMAGES: dict[str, Image] = {
    "entra-bff-edge/python": _python_image(),
    "entra-bff-edge/devidp": _python_image({"/etc/devidp/example.toml": REPO / "devidp" / "example.toml"}),
    "entra-bff-edge/oauth2-proxy": Image(
        files={
            "/usr/local/bin/oauth2-proxy": CACHE_BIN / "oauth2-proxy",
            "/etc/oauth2-proxy/oauth2-proxy.cfg.template": REPO / "oauth2-proxy/oauth2-proxy.cfg.template",
            "/usr/local/bin/oauth2-proxy-entrypoint": REPO / "deploy/docker/oauth2-proxy-entrypoint.sh",
        },
        entrypoint=("/usr/local/bin/oauth2-proxy-entrypoint",),
    ),
    "entra-bff-edge/nginx": Image(
        files={
            "/etc/nginx/templates/edge.conf.template": REPO / "nginx" / "edge.conf.template",
            "/usr/share/nginx/spa": REPO / "spa" / "dist",
            # The base image's own files: its main configuration and its entrypoint's template step.
            "/etc/nginx/nginx.conf": HERE / "nginx-unprivileged.conf",
            "/docker-entrypoint.sh": HERE / "nginx-image-entrypoint.sh",
        },
        entrypoint=("/docker-entrypoint.sh",),
        command=("nginx", "-g", "daemon off;"),
        environment={"NGINX_ENVSUBST_FILTER": "^EDGE_", "NGINX_ENVSUBST_TEMPLATE_DIR": "/etc/nginx/templates",
                     "NGINX_ENVSUBST_OUTPUT_DIR": "/etc/nginx/conf.d"},
    ),
    # The public Redis image: only its entrypoint's plain exec matters here; compose gives the command.
    "redis": Image(),
    # The public PostgreSQL image (standing in for RDS): its entrypoint's first-start initdb, on
    # Debian's postgresql binaries; pg_isready (the health check) on its PATH.
    "postgres": Image(
        files={"/usr/local/bin/docker-entrypoint.sh": HERE / "postgres-image-entrypoint.sh"},
        entrypoint=("/usr/local/bin/docker-entrypoint.sh",),
        command=("postgres",),
        environment={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "PGDATA": "/var/lib/postgresql/data"},
    ),
}


@dataclass(frozen=True)
class HealthCheck:
    argv: tuple[str, ...]
    timeout_seconds: float
    interval_seconds: float
    retries: int
    start_period_seconds: float


@dataclass(frozen=True)
class Mount:
    target: str
    source: Path | None  # None: a fresh tmpfs
    read_only: bool


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    argv: tuple[str, ...]
    environment: dict[str, str]
    mounts: tuple[Mount, ...]
    depends_on: dict[str, str]  # service -> condition
    health: HealthCheck | None
    restart: bool  # restarted when it exits (restart: always, unless-stopped, on-failure)


def _seconds(value: str | None, default: float) -> float:
    """compose durations as the model writes them: "10s", "1m30s", "500ms"."""
    if not value:
        return default
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else ch
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total


def unescape(value: str) -> str:
    """The model keeps compose's `$$` escape (so it stays valid compose input); a container gets `$`."""
    return value.replace("$$", "$")


def image_name(service: dict[str, Any]) -> str:
    return str(service["image"]).rsplit(":", 1)[0]


def health_of(service: dict[str, Any]) -> HealthCheck | None:
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return None
    test = list(check["test"])
    if test[0] == "CMD":
        argv = tuple(unescape(part) for part in test[1:])
    elif test[0] == "CMD-SHELL":
        argv = ("/bin/sh", "-c", unescape(test[1]))
    else:  # pragma: no cover - compose normalises the string form to CMD-SHELL
        raise ValueError(f"unknown health check form {test[0]!r}")
    return HealthCheck(
        argv=argv,
        timeout_seconds=_seconds(check.get("timeout"), 30.0),
        interval_seconds=_seconds(check.get("interval"), 30.0),
        retries=int(check.get("retries", 3)),
        start_period_seconds=_seconds(check.get("start_period"), 0.0),
    )


def mounts_of(service: dict[str, Any], volumes_dir: Path, image: Image) -> tuple[Mount, ...]:
    mounts = [Mount(target, source, True) for target, source in image.files.items()]
    for volume in service.get("volumes", []):
        if volume["type"] == "bind":
            source = Path(volume["source"])
        elif volume["type"] == "volume":
            source = volumes_dir / volume["source"]
        else:
            raise ValueError(f"{volume['type']} volumes are not supported here")
        mounts.append(Mount(volume["target"], source, bool(volume.get("read_only"))))
    for entry in service.get("tmpfs", []):
        mounts.append(Mount(str(entry).split(":", 1)[0], None, False))
    return tuple(mounts)


def process_of(name: str, service: dict[str, Any], volumes_dir: Path) -> ServiceProcess:
    image = IMAGES[image_name(service)]
    entrypoint = tuple(service.get("entrypoint") or image.entrypoint)
    command = tuple(service.get("command") or image.command)
    if isinstance(service.get("command"), str):  # pragma: no cover - the model always gives a list
        command = tuple(shlex.split(service["command"]))
    environment = {
        **image.environment,
        **{k: unescape(str(v)) for k, v in (service.get("environment") or {}).items() if v is not None},
    }
    restart = str(service.get("restart", "no"))
    return ServiceProcess(
        name=name,
        argv=tuple(unescape(part) for part in entrypoint + command),
        environment=environment,
        mounts=mounts_of(service, volumes_dir, image),
        depends_on={dep: str(spec.get("condition", "service_started"))
                    for dep, spec in (service.get("depends_on") or {}).items()},
        health=health_of(service),
        restart=restart in ("always", "unless-stopped", "on-failure"),
    )


def processes_of(model: dict[str, Any], volumes_dir: Path) -> dict[str, ServiceProcess]:
    return {name: process_of(name, service, volumes_dir) for name, service in model["services"].items()}


def one_shot_services(processes: dict[str, ServiceProcess]) -> set[str]:
    """Services another waits to see finish (`condition: service_completed_successfully`)."""
    return {
        dependency
        for process in processes.values()
        for dependency, condition in process.depends_on.items()
        if condition == "service_completed_successfully"
    }


def published_ports(model: dict[str, Any], service: str = "task") -> dict[int, int]:
    """host port -> container port of ``service``'s published ports."""
    return {int(p["published"]): int(p["target"]) for p in model["services"][service].get("ports", [])}
