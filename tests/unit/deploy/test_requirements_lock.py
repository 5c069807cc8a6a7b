"""deploy/docker/requirements.lock: the Python packages the images install, each at one exact version
with the hashes of its files, covering every runtime dependency pyproject.toml declares (and the
setuptools that builds the project), and used with --require-hashes by both Python images."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]
LOCK = REPO / "deploy" / "docker" / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def locked_entries() -> dict[str, tuple[Version, list[str]]]:
    """Package name -> (version, sha256 hashes), from pip's requirements format."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    logical = re.sub(r"\\\n", " ", LOCK.read_text(encoding="utf-8"))
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        pin = _PIN.match(line)
        assert pin, f"not an exact pin: {line[:80]}"
        entries[canonicalize_name(pin.group(1))] = (Version(pin.group(2)), _HASH.findall(line))
    return entries


@pytest.fixture(scope="module")
def locked() -> dict[str, tuple[Version, list[str]]]:
    return locked_entries()


def test_every_locked_package_is_pinned_with_at_least_one_hash(locked):
    assert locked
    for name, (_version, hashes) in locked.items():
        assert hashes, f"{name} has no --hash: pip --require-hashes would refuse the whole file"


@pytest.mark.parametrize("declared", PYPROJECT["project"]["dependencies"])
def test_every_runtime_dependency_of_pyproject_is_locked_within_its_range(locked, declared):
    requirement = Requirement(declared)
    name = canonicalize_name(requirement.name)
    assert name in locked, f"{requirement.name} is a runtime dependency but not in {LOCK.name}: re-lock"
    version, _hashes = locked[name]
    assert requirement.specifier.contains(version, prereleases=True), (
        f"{requirement.name} {version} in the lock is outside pyproject's {requirement.specifier}: re-lock"
    )


def test_the_build_backend_is_locked_too(locked):
    # The images install the project with --no-build-isolation --no-index: setuptools comes from the lock.
    for declared in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(declared)
        version, _hashes = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version)


def test_test_only_packages_stay_out_of_the_images(locked):
    for declared in PYPROJECT["project"]["optional-dependencies"]["test"]:
        name = canonicalize_name(Requirement(declared).name)
        assert name not in locked, f"{name} is a test tool; it does not belong in a production image"


@pytest.mark.parametrize("dockerfile", ["python.Dockerfile", "devidp.Dockerfile"])
def test_python_images_install_only_from_the_lock(dockerfile):
    text = (REPO / "deploy" / "docker" / dockerfile).read_text(encoding="utf-8")
    installs = [line for line in re.sub(r"\\\n", " ", text).splitlines() if "pip install" in line]
    assert any("--require-hashes --no-deps -r requirements.lock" in line for line in installs)
    for line in installs:
        for command in line.split("&&"):
            if "pip install" in command and "-r requirements.lock" not in command:
                # The project itself: nothing fetched, nothing resolved.
                assert "--no-deps" in command and "--no-index" in command, command.strip()
