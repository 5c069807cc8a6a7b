"""The import contracts of pyproject.toml hold: `lint-imports` passes, with every contract checked."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _contract_names() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        config = tomllib.load(handle)
    return [contract["name"] for contract in config["tool"]["importlinter"]["contracts"]]


def test_the_verifier_layers_and_the_service_boundaries_are_declared() -> None:
    contracts = {
        contract["type"]: contract
        for contract in tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
            "importlinter"
        ]["contracts"]
    }
    assert contracts["layers"]["layers"] == [
        "verifier.service",
        "verifier.sources",
        "verifier.keys",
        "verifier.core",
    ]
    assert set(contracts["acyclic_siblings"]["ancestors"]) == {
        "verifier.core",
        "verifier.keys",
        "verifier.sources",
        "verifier.service",
    }


def test_lint_imports_keeps_every_contract() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = _contract_names()
    assert f"Contracts: {len(names)} kept, 0 broken." in result.stdout
    flat = " ".join(result.stdout.split())
    for name in names:
        assert f"{name} KEPT" in flat, name
