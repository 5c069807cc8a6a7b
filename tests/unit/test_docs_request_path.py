"""docs/architecture.md's "Follow one request" names the hops of a request as `file:function`; each
must still exist, so renaming or moving a function fails here until the page follows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "architecture.md"
#: `path/to/file.ext:name` inside backticks.
REFERENCE = re.compile(r"`([\w./-]+\.(?:py|template)):([^`]+)`")


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def references() -> list[tuple[str, str]]:
    text = section(ARCHITECTURE.read_text(encoding="utf-8"), "Follow one request")
    return sorted(set(REFERENCE.findall(text)))


def python_names(path: Path) -> set[str]:
    """Top-level functions and classes as ``name``, methods as ``Class.name``."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{item.name}")
        # Route handlers are defined inside their router's builder function.
        for inner in ast.walk(node):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(inner.name)
    return names


def test_the_section_names_both_paths_hop_by_hop():
    found = references()
    files = {path for path, _ in found}
    assert len(found) >= 20, found
    assert {"nginx/edge.conf.template", "verifier/service/app.py", "fastapi_app/authentication.py"} <= files


@pytest.mark.parametrize(("path", "name"), references())
def test_each_named_hop_exists(path: str, name: str):
    file = REPO / path
    assert file.is_file(), f"docs/architecture.md names {path}, which does not exist"
    if path.endswith(".py"):
        assert name in python_names(file), f"{path} has no {name}"
    else:
        assert name in file.read_text(encoding="utf-8"), f"{path} has no {name!r}"
