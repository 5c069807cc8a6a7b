"""The edge's nginx configuration is edge.conf plus parts it includes (nginx/*.template): each list of
headers, subrequest variables and error pages written once, and every part really used.

That the split configuration behaves as the single file did is shown by everything that runs it: the
end-to-end and security suites (the launcher's layout) and the container tests (the image's).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from stack.launcher import nginx_templates
from stack.render import NGINX_PARTS_DIR

REPO = Path(__file__).resolve().parents[3]
#: Three lines of the same directive in a row, as in two places, is a copied list.
LIST_WINDOW = 3
_INCLUDE = re.compile(r"^\s*include\s+(\S+);", re.M)


def _statements(text: str) -> list[str | None]:
    """The file's one-line statements, whitespace-normalised; None where a block opens or closes.
    Comment lines are left out, so a comment between two items does not split a list."""
    out: list[str | None] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        out.append(None if "{" in stripped or stripped.startswith("}") else " ".join(stripped.split()))
    return out


def repeated_lists(files: Mapping[str, str]) -> dict[tuple[str, ...], list[str]]:
    """Every run of LIST_WINDOW consecutive statements of one directive found in more than one place."""
    seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name, text in files.items():
        statements = _statements(text)
        for start in range(len(statements) - LIST_WINDOW + 1):
            window = statements[start : start + LIST_WINDOW]
            if any(s is None for s in window):
                continue
            directives = {s.split()[0] for s in window if s is not None}
            if len(directives) == 1:
                seen[tuple(s for s in window if s is not None)].append(f"{name}#{start}")
    return {window: places for window, places in seen.items() if len(places) > 1}


def test_no_list_of_headers_variables_or_error_pages_is_written_twice() -> None:
    assert repeated_lists(nginx_templates(REPO)) == {}


def test_the_check_finds_a_copied_list() -> None:
    # The shape the edge had before the parts: the same allow-list in two locations.
    allow_list = "proxy_set_header A $a;\nproxy_set_header B $b;\nproxy_set_header C $c;\n"
    files = {"edge.conf": f"location /a/ {{\n{allow_list}}}\nlocation /b/ {{\n{allow_list}}}\n"}
    assert list(repeated_lists(files).values()) == [["edge.conf#1", "edge.conf#6"]]
    # Two directives of the same list split by a block are not one list.
    assert repeated_lists({"a": "x 1;\nx 2;\n}\nx 3;\n", "b": "x 1;\nx 2;\n}\nx 3;\n"}) == {}


def test_every_part_is_included_and_every_include_is_a_part() -> None:
    files = nginx_templates(REPO)
    included = [target for text in files.values() for target in _INCLUDE.findall(text)]
    # The one include that is not a part: the TLS directives, a path the deployment chooses.
    parts = [target for target in included if not target.startswith("${")]
    assert all(target.startswith(f"{NGINX_PARTS_DIR}/") for target in parts), parts
    names = {target.removeprefix(f"{NGINX_PARTS_DIR}/") for target in parts}
    assert names == set(files) - {"edge.conf"}
    # Parts are .inc, so the image's `include conf.d/*.conf` reads edge.conf alone and each part
    # only where edge.conf includes it.
    assert all(name.endswith(".inc") for name in names)


def test_each_part_says_at_which_level_it_belongs_and_what_it_is() -> None:
    for name, text in nginx_templates(REPO).items():
        head = text.split("\n", 1)[0]
        assert head.startswith("# ") and len(head) > 20, f"{name} does not open with what it is"
