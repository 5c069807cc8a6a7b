"""The documentation stands alone: every relative link in the Markdown files points at a file (and
heading) in the repository, nothing sends the reader to a design document outside it, and the
architecture page carries a diagram a code-hosting page renders (Mermaid)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".venv", ".cache", "node_modules", "run", "dist", "build"}
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.M)


def markdown_files() -> list[Path]:
    return sorted(
        p
        for p in REPO.rglob("*.md")
        if not SKIPPED_DIRS.intersection(p.relative_to(REPO).parts) and "egg-info" not in str(p)
    )


def github_anchor(heading: str) -> str:
    """The anchor a code-hosting page gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {github_anchor(h) for h in _HEADING.findall(text)}


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path):
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL with a scheme: outside this check
        where = f"{doc.relative_to(REPO)}: link to {target}"
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        assert resolved.exists(), f"{where} finds nothing"
        assert resolved == REPO or REPO in resolved.parents, f"{where} leaves the repository"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors_of(resolved), f"{where}: no such heading"


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_sends_the_reader_to_a_design_file_outside_the_repository(doc: Path):
    text = doc.read_text(encoding="utf-8")
    assert "ARCHITECTURE.md" not in text, f"{doc.relative_to(REPO)}: the design is docs/architecture.md"
    assert "design folder" not in text


def test_the_architecture_page_has_a_mermaid_diagram_and_the_readme_links_it():
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "```mermaid\nflowchart" in architecture
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_the_options_page_covers_every_design_on_every_point():
    options = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    for design in ("MSAL", "ALB", "oauth2-proxy", "hybrid", "mod_auth_openidc"):
        assert design in options, design
    for point in (
        "Where tokens live",
        "What the browser can leak",
        "CSRF",
        "XSS",
        "Latency",
        "Operations and cost",
        "Choose it when",
    ):
        assert point in options, point
