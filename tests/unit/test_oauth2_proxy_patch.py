"""oauth2-proxy as this project builds it: the module at OAUTH2_PROXY_VERSION with oauth2-proxy/patches
applied (docs/operations.md, "oauth2-proxy patch: sessions survive session-store faults").

The patches still apply cleanly to the pristine module and make exactly the source tree scripts/setup.sh
built; that tree passes oauth2-proxy's own tests of the patched packages together with the patch's
tests; and the binary the stack runs says in `--version` that it is the patched build. The Go tests run
in a throw-away copy, on the toolchain and the compiled packages setup left, in about 20 seconds.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.prerequisites import require_file, require_program

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "OAUTH2_PROXY_VERSION").read_text(encoding="utf-8").strip()
MODULE = "github.com/oauth2-proxy/oauth2-proxy/v7"
PATCHES = sorted((REPO / "oauth2-proxy" / "patches").glob("*.patch"))
#: What oauth2-proxy/build.sh appends to the version: the patches' names, as semver build metadata.
MARK = ".".join(patch.stem for patch in PATCHES)
OAUTH2_PROXY = REPO / ".cache" / "bin" / "oauth2-proxy"
GO = REPO / ".cache" / "go" / "bin" / "go"
SETUP_BUILDS_IT = "scripts/setup.sh builds it (`make setup`)"
#: The packages the patch touches, whose tests run here.
PATCHED_PACKAGES = ("./pkg/middleware/", "./pkg/sessions/...")
#: The patch's own specs, by package; each must have run and passed.
PATCH_SPECS = {
    "pkg/middleware": {
        "keeps the session and answers 503 when loading it fails",
        "keeps the session and answers 503 when the refresh lock cannot be obtained",
        "keeps the session and answers 503 when reloading it under the refresh lock fails",
        "keeps the session and answers 503 when another request holds the refresh lock too long",
        "still removes the session and its cookie when the store says the session does not exist",
        "still removes the session and its cookie when the session fails validation",
    },
    "pkg/sessions/redis": {
        "reports a missing session as missing, not as an unavailable store",
        "reports an unreachable Redis as an unavailable store and keeps the cause",
        "reports a refresh lock held elsewhere as not obtained, not as an unavailable store",
    },
}


def _go_env() -> dict[str, str]:
    """The environment setup built with: its toolchain first, modules checked against go.sum and
    -trimpath, so the packages setup compiled are reused from any directory."""
    require_file(GO, "scripts/setup.sh links the Go toolchain that built oauth2-proxy there (`make setup`)")
    return {
        **os.environ,
        "PATH": f"{GO.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod -trimpath",
    }


def _setup_source_tree() -> Path:
    """The patched source the binary in use was built from: .cache/oauth2-proxy-src/<version>+<build>
    beside .cache/bin/oauth2-proxy-<version>-<build>."""
    binary = require_file(OAUTH2_PROXY, SETUP_BUILDS_IT).resolve()
    build = binary.name.removeprefix(f"oauth2-proxy-{VERSION}-")
    return require_file(REPO / ".cache" / "oauth2-proxy-src" / f"{VERSION}+{build}", SETUP_BUILDS_IT)


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right)
    found = [str(Path(left.name) / name) for name in comparison.left_only + comparison.right_only]
    found += [str(left / name) for name in comparison.diff_files + comparison.funny_files]
    for name in comparison.common_dirs:
        found += _differences(left / name, right / name)
    return found


def test_the_project_has_the_keep_sessions_patch() -> None:
    assert [patch.name for patch in PATCHES] == ["keep-sessions-on-store-errors.patch"]


def test_the_patches_apply_cleanly_to_the_pristine_module_and_make_the_tree_setup_built(
    tmp_path: Path,
) -> None:
    patch = require_program("patch", "patch")
    download = subprocess.run(
        [str(GO), "mod", "download", "-json", f"{MODULE}@{VERSION}"],
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert download.returncode == 0, download.stdout + download.stderr
    pristine = Path(json.loads(download.stdout)["Dir"])
    patched = tmp_path / "oauth2-proxy"
    shutil.copytree(pristine, patched)
    for patch_file in PATCHES:
        applied = subprocess.run(
            [patch, "-d", str(patched), "-p1", "--forward", "--batch"],
            input=patch_file.read_text(encoding="utf-8"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert applied.returncode == 0, f"{patch_file.name}:\n{applied.stdout}{applied.stderr}"
        # Clean: every hunk where the patch says, not found elsewhere (offset) or approximately (fuzz).
        assert "offset" not in applied.stdout and "fuzz" not in applied.stdout, applied.stdout
    assert _differences(patched, _setup_source_tree()) == []


def test_the_patched_packages_pass_oauth2_proxys_tests_and_the_patchs_own(tmp_path: Path) -> None:
    source = tmp_path / "oauth2-proxy"
    shutil.copytree(_setup_source_tree(), source)
    # Every package here is a Ginkgo suite; each writes its report into its own directory.
    result = subprocess.run(
        [str(GO), "test", *PATCHED_PACKAGES, "-args", "-ginkgo.json-report=ginkgo-report.json"],
        cwd=source,
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"go test failed (exit {result.returncode}):\n{output[-8000:]}"
    for package, specs in PATCH_SPECS.items():
        (suite,) = json.loads((source / package / "ginkgo-report.json").read_text(encoding="utf-8"))
        assert suite["SuiteSucceeded"], package
        passed = {spec["LeafNodeText"] for spec in suite["SpecReports"] if spec["State"] == "passed"}
        assert specs <= passed, f"{package}: did not run or did not pass: {sorted(specs - passed)}"


def test_the_binary_in_use_reports_the_patch_mark() -> None:
    binary = require_file(OAUTH2_PROXY, SETUP_BUILDS_IT)
    shown = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True)
    assert shown.stdout.startswith(f"oauth2-proxy {VERSION}+{MARK} (built with go"), shown.stdout
