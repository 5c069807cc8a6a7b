"""bench/README.md's figures are written by the benchmark, and what it says follows from them."""

from __future__ import annotations

import re
from pathlib import Path

from bench import soak
from bench.edge.report import BEGIN_MARKER as EDGE_BEGIN_MARKER
from bench.edge.report import END_MARKER as EDGE_END_MARKER
from bench.verify import (
    BEGIN_MARKER,
    END_MARKER,
    FULL_MISS,
    JWT_DECODE,
    README,
    Result,
    measured_section,
    rewrite_measured_section,
)

MICRO = {
    JWT_DECODE: 108.1,
    "jwt.get_unverified_header": 80.9,
    FULL_MISS: 51.0,
    "  of which parse_compact_jws": 16.5,
    "  of which RSA-2048 verify": 21.3,
    "cache hit (sha256 + lookup)": 2.7,
}


def _results() -> list[Result]:
    rows = []
    for connections, scale in ((32, 1.0), (1, 0.2)):
        rows += [
            Result("baseline (no-op handler)", connections, 20_000 * scale, 1.5, 4.0, 0, 80_000),
            Result("cache hit (1 token)", connections, 10_000 * scale, 1.6, 5.0, 0, 40_000),
            Result("cache miss (10,000 tokens)", connections, 3_500 * scale, 9.0, 13.0, 0, 14_000),
            Result("invalid (bad signature)", connections, 3_000 * scale, 10.0, 15.0, 12_000, 12_000),
        ]
    return rows


def _measured(text: str) -> str:
    return text[text.index(BEGIN_MARKER) + len(BEGIN_MARKER) : text.index(END_MARKER)]


def test_the_ratio_to_jwt_decode_is_computed_from_the_run() -> None:
    section = measured_section(_results(), MICRO, "2 CPUs")
    assert "`jwt.decode` with the same checks takes 108.1 µs, 2.1 times as long." in section
    assert "| verify_access_token (full miss path) | 51.0 |" in section
    assert "three times" not in section


def test_rewriting_replaces_only_the_marked_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# Benchmarks\n\nprose before\n\n", "\n\n### Reading it\n\nprose after\n"
    readme.write_text(f"{before}{BEGIN_MARKER}\nold figures\n{END_MARKER}{after}", encoding="utf-8")
    section = measured_section(_results(), MICRO, "2 CPUs")
    rewrite_measured_section(readme, section)
    text = readme.read_text(encoding="utf-8")
    assert text == f"{before}{BEGIN_MARKER}\n{section}\n{END_MARKER}{after}"
    rewrite_measured_section(readme, section)
    assert readme.read_text(encoding="utf-8") == text


def test_the_readme_holds_a_section_the_benchmark_wrote() -> None:
    measured = _measured(README.read_text(encoding="utf-8"))
    assert measured.strip().startswith("### Measured (")
    micro = {
        name.strip(): float(value)
        for name, value in re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|$", measured, re.MULTILINE)
    }
    ratio = micro[JWT_DECODE] / micro[FULL_MISS]
    claim = re.search(r"takes ([0-9.]+) µs, ([0-9.]+) times as long", measured)
    assert claim, "the measured section states no ratio to jwt.decode"
    assert float(claim.group(1)) == micro[JWT_DECODE]
    assert float(claim.group(2)) == round(ratio, 1)


def test_the_prose_outside_the_measured_section_states_no_figures() -> None:
    text = README.read_text(encoding="utf-8")
    outside = text.replace(_measured(text), "")
    # The edge section is written by `python -m bench.edge` in the same way: its figures are measured.
    edge_begin, edge_end = outside.index(EDGE_BEGIN_MARKER), outside.index(EDGE_END_MARKER)
    outside = outside[:edge_begin] + outside[edge_end:]
    # The soak's figures are written by bench/soak.py between markers of their own.
    outside = outside[: outside.index(soak.BEGIN)] + outside[outside.index(soak.END) :]
    assert not re.search(
        r"\b(twice|three times|four times|\d+(\.\d+)? ?(µs|ms|x)\b)", outside.replace("0.2 ms", "")
    )
