"""service_runtime.logs.trace_id_of: the trace id of a valid W3C traceparent, and nothing of an
invalid one (a log line never repeats what a client made up)."""

from __future__ import annotations

import pytest

from service_runtime.logs import FIELDS, trace_id_of

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_valid_traceparent_gives_its_trace_id() -> None:
    assert trace_id_of(f"00-{TRACE}-00f067aa0ba902b7-01") == TRACE
    assert trace_id_of(f"00-{TRACE}-00f067aa0ba902b7-00") == TRACE
    assert "trace_id" in FIELDS


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"01-{TRACE}-00f067aa0ba902b7-01",
        f"00-{TRACE}-00f067aa0ba902b7-01 ",
        f"00-{TRACE}-00f067aa0ba902b7",
        f'00-{TRACE}-00f067aa0ba902b7-01"}}',
    ],
)
def test_anything_else_gives_none(value: str) -> None:
    assert trace_id_of(value) == ""
