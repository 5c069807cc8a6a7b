"""The images themselves: who they run as, what they carry and what they must not — no compiler, no
package cache, no secret and no build-time CA in any layer — and that what they install agrees with
itself (`pip check`) and with the pinned oauth2-proxy."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile

import pytest

from deploy.docker import prepare
from tests.containers.engine import (
    BUILD_CA_FILE,
    DEV_ENV,
    DEVELOPMENT_IMAGES,
    REPO,
    SHIPPED_IMAGES,
    docker,
    image,
)

pytestmark = [pytest.mark.e2e, pytest.mark.containers, pytest.mark.timeout(600)]

ALL_IMAGES = (*SHIPPED_IMAGES, *DEVELOPMENT_IMAGES)
#: The user each image runs as: the numbers compose.yaml and the task definition pin.
USERS = {
    "nginx": "101:101", "oauth2-proxy": "65532:65532", "python": "10001:10001",
    "devidp": "10001:10001", "postgres": "999:999", "redis": "999:999",
}  # fmt: skip
#: What must not be in a final image: compilers, build tools, package managers' caches.
FORBIDDEN_PROGRAMS = ("gcc", "cc", "c++", "make", "go", "node", "npm", "git", "patch")
CACHE_PATHS = (
    "/root/.cache", "/root/.npm", "/root/go", "/go", "/var/cache/apt/archives/*.deb",
    "/var/lib/apt/lists/*_Packages",
)  # fmt: skip
#: devidp's own app registrations hold the published development client secrets (devidp.env's too):
#: the development-only devidp image carries them by design.
DEVIDP_REGISTRATIONS = "devidp/example.toml"
#: A PEM private key with its content (a library's "-----BEGIN %s PRIVATE KEY-----" string is not one).
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64}")


def run_in(name: str, script: str) -> subprocess.CompletedProcess[str]:
    return docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "--user",
        "0",
        image(name),
        "-c",
        script,
        timeout=120,
        check=False,
    )


def extra_ca_bodies() -> set[str]:
    """The certificates of the build-only CA bundle that Debian does not ship (none without a proxy)."""
    if not BUILD_CA_FILE.is_file():
        return set()
    return prepare.extra_certificates(BUILD_CA_FILE.read_text(errors="replace"))


def development_secrets() -> set[str]:
    values = set()
    for line in DEV_ENV.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if re.search(r"SECRET|PASSWORD|SIGNING_KEY", name) and value:
            values.add(value.strip())
    return values


def layer_files(name: str) -> list[tuple[str, bytes]]:
    """Every regular file of every layer of the image (docker save), with its content."""
    saved = subprocess.run(["docker", "save", image(name)], capture_output=True, timeout=300, check=True)
    archive = saved.stdout
    files: list[tuple[str, bytes]] = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        for member in outer.getmembers():
            if not member.name.endswith("layer.tar"):
                continue
            layer = outer.extractfile(member)
            assert layer is not None
            with tarfile.open(fileobj=io.BytesIO(layer.read())) as inner:
                for entry in inner.getmembers():
                    if entry.isfile():
                        content = inner.extractfile(entry)
                        files.append((f"{member.name}:{entry.name}", content.read() if content else b""))
    return files


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_the_image_runs_as_its_fixed_non_root_user_and_carries_no_build_tool_or_cache(images, name):
    config = docker("image", "inspect", "--format", "{{json .Config.User}}", image(name)).stdout.strip()
    assert config == f'"{USERS[name]}"'
    found = run_in(name, " ; ".join(f"command -v {p}" for p in FORBIDDEN_PROGRAMS))
    assert found.stdout.strip() == "", f"{name} carries {found.stdout.split()}"
    present = "for p in " + " ".join(CACHE_PATHS) + '; do [ -e "$p" ] && echo "$p"; done; true'
    caches = run_in(name, present)
    assert caches.stdout.strip() == "", f"{name} keeps {caches.stdout.split()}"


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_no_layer_holds_a_secret_a_private_key_or_the_build_only_ca(images, name):
    forbidden = {value.encode() for value in development_secrets()}
    ca_bodies = extra_ca_bodies()
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image(name)).stdout
    environment = docker("image", "inspect", "--format", "{{json .Config.Env}}", image(name)).stdout
    for text in (history, environment):
        assert not any(value.decode() in text for value in forbidden), name
        assert "build_ca" not in text or "/run/secrets/build_ca" in text, name
    for path, content in layer_files(name):
        # Libraries carry test vectors (gnutls a GOST key, for one): a key in a file is what counts.
        if not content.startswith(b"\x7fELF"):
            assert not PEM_PRIVATE_KEY.search(content), f"{name}: {path} holds a private key"
        if path.endswith(DEVIDP_REGISTRATIONS):
            continue
        for value in forbidden:
            assert value not in content, f"{name}: {path} holds a development secret"
        if ca_bodies and b"BEGIN CERTIFICATE" in content:
            assert not prepare.certificates(content.decode("latin-1")) & ca_bodies, (
                f"{name}: {path} holds a certificate of the build-only CA bundle"
            )


@pytest.mark.parametrize("name", ["python", "devidp"])
def test_pip_check_is_clean_in_the_python_images(images, name):
    done = docker("run", "--rm", "--read-only", image(name), "python", "-m", "pip", "check", check=False)
    assert done.returncode == 0 and "No broken requirements found." in done.stdout, done.stdout + done.stderr


def test_the_oauth2_proxy_image_runs_the_pinned_version_with_the_projects_patches(images):
    pinned = (REPO / "OAUTH2_PROXY_VERSION").read_text().strip()
    in_image = docker("run", "--rm", "--entrypoint", "oauth2-proxy", image("oauth2-proxy"), "--version")
    in_image = in_image.stdout
    tested = subprocess.run(
        [str(REPO / ".cache" / "bin" / "oauth2-proxy"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert in_image.split()[1].startswith(pinned + "+"), in_image
    # The same version and patch mark as the binary every other test runs.
    assert in_image.split()[1] == tested.split()[1], (in_image, tested)
