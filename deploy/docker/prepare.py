"""Make what the image builds start from, before `docker compose build` (`make images` runs this).

1. **The base image.** Every image of the project builds from one Debian 12 image, ``debian:12-slim``
   unless ``BASE_IMAGE`` names another. When the engine has it, it is used; when a registry serves
   it, it is pulled; when neither (no registry reachable), it is made from Debian's archive with
   ``mmdebstrap --variant=minbase`` the way the official slim image is (minbase, no documentation,
   manual pages or translations) and imported under the same name. The root file system is kept in
   ``.cache/docker/`` per Debian release, so a wiped engine re-imports it in seconds.

2. **The extra CA bundle for build steps.** Behind a TLS-intercepting proxy, downloads from the
   Python and npm package indexes and the Go module proxy inside a build fail with "self-signed
   certificate in certificate chain". When this machine trusts a certificate Debian's own
   ca-certificates does not ship (an entry of /usr/local/share/ca-certificates, or any certificate
   of /etc/ssl/certs/ca-certificates.crt outside /usr/share/ca-certificates), the machine's bundle is
   copied to ``.cache/docker/build-ca.pem``, which compose.yaml hands to the build steps as the
   BuildKit secret ``build_ca`` (``BUILD_CA_FILE`` names another file inside the project). A secret is
   mounted only while its RUN step runs: it is never in a layer, and the final images trust only
   Debian's CAs. Without extra certificates the file is empty and the build steps use their defaults.

Usage: ``python deploy/docker/prepare.py`` from the repository root (prints one line per action).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "docker"
DEFAULT_BASE_IMAGE = "debian:12-slim"
DEBIAN_RELEASE = "bookworm"
#: The archive the made base image's apt uses: Debian's own mirror network, with updates and
#: security updates, as in the official image.
DEBIAN_SOURCES = (
    f"deb http://deb.debian.org/debian {DEBIAN_RELEASE} main",
    f"deb http://deb.debian.org/debian {DEBIAN_RELEASE}-updates main",
    f"deb http://deb.debian.org/debian-security {DEBIAN_RELEASE}-security main",
)
#: What the official slim variant leaves out (debuerreotype's slimify), kept as dpkg configuration
#: in the image so that packages the Dockerfiles add are slim too.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/locale/*",
)
#: The official image's apt configuration for containers (its /etc/apt/apt.conf.d/docker-clean):
#: downloaded packages are deleted after every install, so no layer keeps them.
DOCKER_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
    '/var/cache/apt/*.bin || true"; };\n'
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
    '/var/cache/apt/*.bin || true"; };\n'
    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
)
#: Marks a base image made here, with a hash of how it was made: a changed recipe makes it anew.
RECIPE_LABEL = "org.entra-bff-edge.base-recipe"
PULL_TIMEOUT_SECONDS = 60
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_CA_DIR = Path("/usr/share/ca-certificates")
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
BUILD_CA = CACHE / "build-ca.pem"


def say(message: str) -> None:
    print(f"[images] {message}", flush=True)


def docker(*argv: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False)


def mmdebstrap_command(output: Path) -> list[str]:
    clean = shlex.quote(DOCKER_CLEAN)
    return ["mmdebstrap", "--quiet", "--variant=minbase", "--format=tar",
            *(f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS),
            "--aptopt=Acquire::Languages \"none\"",
            f"--customize-hook=printf %s {clean} > \"$1\"/etc/apt/apt.conf.d/docker-clean",
            # apt's lists are fetched again by every build step that installs packages.
            "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
            DEBIAN_RELEASE, str(output), *DEBIAN_SOURCES]  # fmt: skip


def recipe() -> str:
    return hashlib.sha256(" ".join(mmdebstrap_command(Path("rootfs.tar"))).encode()).hexdigest()[:12]


def ensure_base_image(name: str) -> None:
    found = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}', name)
    # An image that is not ours (pulled, or the user's own) is used as it is; ours only if current.
    if found.returncode == 0 and found.stdout.strip() in ("", "<no value>", recipe()):
        return
    try:
        pulled = docker("pull", "--quiet", name, timeout=PULL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pulled = None
    if pulled is not None and pulled.returncode == 0:
        say(f"pulled the base image {name}")
        return
    if shutil.which("mmdebstrap") is None:
        sys.exit(
            f"[images] error: the base image {name} cannot be pulled and mmdebstrap is missing to "
            "make it (apt-get install mmdebstrap), or set BASE_IMAGE to a Debian 12 image you have"
        )
    rootfs = CACHE / f"debian-{DEBIAN_RELEASE}-slim-{recipe()}.tar"
    if not rootfs.exists():
        say(f"no registry serves {name}: making it from Debian's archive with mmdebstrap (about 30 s)")
        CACHE.mkdir(parents=True, exist_ok=True)
        for old in CACHE.glob(f"debian-{DEBIAN_RELEASE}-slim*.tar"):
            old.unlink()
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            partial = Path(work) / "rootfs.tar"
            made = subprocess.run(mmdebstrap_command(partial), capture_output=True, text=True, check=False)
            if made.returncode != 0:
                sys.exit(f"[images] error: mmdebstrap failed:\n{made.stderr[-3000:]}")
            partial.replace(rootfs)
    else:
        say(f"no registry serves {name}: importing it from {rootfs.relative_to(REPO)}")
    imported = docker(
        "import",
        "--change",
        'CMD ["bash"]',
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        f"LABEL {RECIPE_LABEL}={recipe()}",
        "--message",
        f"Debian {DEBIAN_RELEASE} minbase, slim, made with mmdebstrap",
        str(rootfs),
        name,
    )
    if imported.returncode != 0:
        sys.exit(f"[images] error: docker import failed: {imported.stderr.strip()}")


def certificates(pem: str) -> set[str]:
    """The certificates of a PEM bundle, each normalised to its base64 body."""
    found, body, inside = set(), [], False
    for line in pem.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            inside, body = True, []
        elif line == "-----END CERTIFICATE-----":
            inside = False
            found.add("".join(body))
        elif inside:
            body.append(line)
    return found


def extra_certificates(bundle: str) -> set[str]:
    """The certificates of a PEM ``bundle`` that Debian's ca-certificates does not ship."""
    shipped: set[str] = set()
    for path in DEBIAN_CA_DIR.rglob("*.crt") if DEBIAN_CA_DIR.is_dir() else ():
        shipped |= certificates(path.read_text(encoding="ascii", errors="replace"))
    return certificates(bundle) - shipped


def extra_trust() -> bool:
    """Whether this machine trusts a certificate Debian's ca-certificates does not ship."""
    if not HOST_BUNDLE.is_file():
        return False
    if LOCAL_CA_DIR.is_dir() and any(LOCAL_CA_DIR.rglob("*.crt")):
        return True
    return bool(extra_certificates(HOST_BUNDLE.read_text(encoding="ascii", errors="replace")))


def write_build_ca() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = HOST_BUNDLE.read_bytes() if extra_trust() else b""
    if not BUILD_CA.exists() or BUILD_CA.read_bytes() != wanted:
        BUILD_CA.write_bytes(wanted)
        if wanted:
            say(
                f"this machine trusts extra CAs (a TLS-intercepting proxy?): build steps get {HOST_BUNDLE} "
                f"as the build_ca secret ({BUILD_CA.relative_to(REPO)}); the images do not"
            )


def main() -> None:
    if docker("version", "--format", "{{.Server.Version}}").returncode != 0:
        sys.exit(
            "[images] error: no Docker engine answers (docker version): start one, or run `make test`, "
            "which starts Debian's dockerd when it runs as root"
        )
    ensure_base_image(os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE)
    write_build_ca()


if __name__ == "__main__":
    main()
