"""docs/options.md quotes `make bench-edge`'s figures exactly as bench/README.md's generated section has them.

`python -m bench.edge` rewrites the section between the bench-edge markers of bench/README.md on
every run. docs/options.md quotes some of its rows as measured, each as ``\\`row_key\\`: 258 µs/req,
6,412 req/s`` (the row's median CPU per request and median req/s), and names the run as
``bench-edge run of 2026-12-01 16:07 UTC``. A run whose figures differ makes these tests fail until
the document is brought up to date: a quote can go stale, but never silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.edge.report import BEGIN_MARKER, END_MARKER

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "README.md"
OPTIONS = REPO / "docs" / "options.md"

#: Each row key the document may quote, and the label its row has in the table (a full match).
ROW_LABELS = {
    "in_app": r"in-app: FastAPI \+ PyJWT in-process, \d+ workers?, direct, bearer",
    "azure_auth": r"in-app: FastAPI \+ fastapi-azure-auth, \d+ workers?, direct, bearer",
    "plain_cookie_me": r"plain oauth2-proxy: nginx auth_request -> /oauth2/auth, app validates, "
                       r"`/api/me` cookie",
    "apache_bearer": r"Apache \+ mod_auth_openidc `AuthType oauth20`: .* `/api/me` bearer",
    "apache_session": r"Apache \+ mod_auth_openidc `AuthType openid-connect`: .* `/api/me` cookie",
    "edge_bearer": r"edge `GET /api/me`, bearer \(verifier cache hit\)",
    "edge_cookie": r"edge `GET /api/me`, session cookie",
    "edge_cookie_uncached": r"edge `GET /api/me`, session cookie, session cache off .*",
    "edge_miss": r"edge `GET /api/me`, [\d,]+ distinct tokens \(cache miss\)",
    "edge_tls_bearer": r"edge `GET /api/me`, bearer, nginx -> verifier and API over mutual TLS 1\.3",
    "edge_tls_cookie": r"edge `GET /api/me`, session cookie, nginx -> verifier and API over mutual TLS 1\.3",
}  # fmt: skip
#: Every design that runs here must be quoted: 1 in-app, 3 and 4 our edge, 5 Apache.
MUST_QUOTE = {"in_app", "edge_bearer", "edge_cookie", "apache_bearer", "apache_session"}

QUOTE = re.compile(r"`(?P<key>[a-z_]+)`: (?P<cpu>[\d,]+) µs/req, (?P<rps>[\d,]+) req/s")
RUN_NAMED = re.compile(r"bench-edge run of (\d{4}-\d\d-\d\d \d\d:\d\d UTC)")
RUN_IN_SECTION = re.compile(r"^Run (\d{4}-\d\d-\d\d \d\d:\d\d UTC):", re.M)


def generated_section() -> str:
    text = BENCH.read_text(encoding="utf-8")
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    assert 0 <= begin < end, "bench/README.md has no section written by `python -m bench.edge`"
    return text[begin + len(BEGIN_MARKER) : end]


def main_table(section: str) -> dict[str, list[str]]:
    """The first table (``| path | req/s | ...``): label -> its cells, as written."""
    rows: dict[str, list[str]] = {}
    inside = False
    for line in section.splitlines():
        if line.startswith("| path | req/s |"):
            inside = True
            continue
        if inside and not line.startswith("|"):
            break
        if inside and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    assert rows, "the bench-edge section has no `| path | req/s |` table"
    return rows


def measured(key: str, table: dict[str, list[str]]) -> tuple[str, str]:
    """(CPU µs/req, req/s) of row ``key``, as the table writes them."""
    matches = [label for label in table if re.fullmatch(ROW_LABELS[key], label)]
    assert len(matches) == 1, f"row {key}: expected one label matching {ROW_LABELS[key]!r}, found {matches}"
    cells = table[matches[0]]  # req/s, p50 ms, p99 ms, CPU µs/req, CPU min, max
    return cells[3], cells[0]


def quotes() -> list[re.Match[str]]:
    # Whitespace as one space: a quote the text wraps over two lines is still a quote.
    return list(QUOTE.finditer(" ".join(OPTIONS.read_text(encoding="utf-8").split())))


def test_the_document_quotes_every_design_that_runs_here() -> None:
    quoted = {q["key"] for q in quotes()}
    assert MUST_QUOTE <= quoted, f"docs/options.md quotes no figure for {sorted(MUST_QUOTE - quoted)}"
    unknown = quoted - set(ROW_LABELS)
    assert not unknown, f"docs/options.md quotes rows this test cannot find: {sorted(unknown)}"


@pytest.mark.parametrize("quote", quotes(), ids=lambda q: f"{q['key']}@{q.start()}")
def test_a_quoted_figure_equals_the_generated_section(quote: re.Match[str]) -> None:
    cpu, rps = measured(quote["key"], main_table(generated_section()))
    assert (quote["cpu"], quote["rps"]) == (cpu, rps), (
        f"docs/options.md quotes `{quote['key']}` as {quote['cpu']} µs/req, {quote['rps']} req/s; "
        f"bench/README.md's bench-edge section has {cpu} µs/req, {rps} req/s: update the document"
    )


def test_the_run_the_document_names_is_the_generated_one() -> None:
    found = RUN_IN_SECTION.search(generated_section())
    assert found, "the bench-edge section names no run (`Run <date> UTC:`)"
    named = set(RUN_NAMED.findall(" ".join(OPTIONS.read_text(encoding="utf-8").split())))
    assert named == {found.group(1)}, (
        f"docs/options.md names the bench-edge run(s) {sorted(named)}; the section is of {found.group(1)}"
    )


def test_the_parser_reads_a_row_as_the_report_writes_it() -> None:
    section = (
        "| path | req/s | p50 ms | p99 ms | CPU µs/req | CPU µs/req min, max |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        "| edge `GET /api/me`, session cookie | 5,989 | 2.53 | 6.45 | 281 | 252, 288 |\n"
        "| edge `GET /api/me`, session cookie, session cache off (every request asks oauth2-proxy) "
        "| 1,933 | 8.23 | 15.25 | 836 | 786, 870 |\n"
        "\n| path | Redis |\n|---|---:|\n| edge `GET /api/me`, session cookie | 9 |\n"
    )
    table = main_table(section)
    assert measured("edge_cookie", table) == ("281", "5,989")
    assert measured("edge_cookie_uncached", table) == ("836", "1,933")
    text = "`edge_cookie`: 281 µs/req, 5,989 req/s"
    assert [m.groupdict() for m in QUOTE.finditer(text)] == [
        {"key": "edge_cookie", "cpu": "281", "rps": "5,989"}
    ]
