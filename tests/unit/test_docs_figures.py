"""Figures the documents quote from a measured section of bench/README.md equal that section.

`python -m bench.verify` rewrites its section of bench/README.md on every run; a document that quotes
one of its figures would silently go stale. Each quote is listed here once, with how it is derived
from the section's tables, and must appear in its document exactly so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "README.md"
MARK = "<!-- measured by `python -m bench.verify`: "
SECTION = re.compile(re.escape(MARK) + r"begin.*?-->(.*?)" + re.escape(MARK) + "end -->", re.S)


def table_rows(section: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (with the connection count when there is one)."""
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        header = cells[0] in ("scenario", "in-process, per call")
        if len(cells) < 2 or set(cells[0]) <= {"-", ":"} or header:
            continue
        key = cells[0] if not cells[1].isdigit() else f"{cells[0]} @{cells[1]}"
        rows[key] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def measured() -> dict[str, float]:
    found = SECTION.search(BENCH.read_text(encoding="utf-8"))
    assert found, "bench/README.md has no section measured by `python -m bench.verify`"
    rows = table_rows(found.group(1))

    def p50(scenario: str) -> float:
        return float(rows[f"{scenario} @1"][2])  # conns, req/s, p50 ms, ...

    def in_process(name: str) -> float:
        return float(rows[name][0])

    baseline = p50("baseline (no-op handler)")
    return {
        "baseline_p50_ms": baseline,
        "hit_p50_ms": p50("cache hit (1 token)"),
        "hit_adds_ms": p50("cache hit (1 token)") - baseline,
        "miss_adds_ms": p50("cache miss (10,000 tokens)") - baseline,
        "verify_us": in_process("verify_access_token (full miss path)"),
        "jwt_decode_us": in_process("jwt.decode (RS256, aud, iss, required claims)"),
        "hit_us": in_process("cache hit (sha256 + lookup)"),
    }


#: (document, the text it must contain, written with the measured figures). Compared with every run of
#: white space as one space, so reflowing a paragraph changes nothing.
QUOTES = [
    ("docs/options.md", "{verify_us:.1f} µs per token for this project's `verify_access_token`"),
    ("docs/options.md", "and {jwt_decode_us:.1f} µs for PyJWT's `jwt.decode` with the same checks"),
    ("docs/options.md", "and {hit_us:.1f} µs for a cache hit"),
    ("docs/options.md", "cache hit adds {hit_adds_ms:.3f} ms at the median over a no-op handler at one "
                        "connection ({hit_p50_ms:.3f} ms against {baseline_p50_ms:.3f} ms)"),
    ("docs/options.md", "a full validation (cache miss) adds {miss_adds_ms:.3f} ms"),
    ("docs/options.md", "a cache hit adds {hit_adds_ms:.3f} ms p50 over the no-op baseline and a miss "
                        "(a full validation) adds {miss_adds_ms:.3f} ms"),
]  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("document", "quote"), QUOTES)
def test_the_document_quotes_the_measured_figure(measured: dict[str, float], document: str, quote: str):
    expected = quote.format(**measured)
    text = flat((REPO / document).read_text(encoding="utf-8"))
    assert expected in text, f"{document} should say: {expected!r}"


def test_every_quoted_document_still_cites_the_benchmark():
    for document in {document for document, _ in QUOTES}:
        assert "bench/README.md" in (REPO / document).read_text(encoding="utf-8"), document
