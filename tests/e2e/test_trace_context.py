"""W3C trace context through nginx (nginx/trace-context.inc): a caller's valid ``traceparent`` keeps
its trace, anything else starts a new one and never breaks the request; the verifier's subrequest
and FastAPI get the same trace with nginx as their parent, and the access log names the trace."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"
TRACEPARENT = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})$")
#: Each refused whole: a new trace starts, the caller's never reaches an upstream.
INVALID = {
    "upper case": f"00-{TRACE.upper()}-{PARENT}-01",
    "all-zero trace id": f"00-{'0' * 32}-{PARENT}-01",
    "all-zero parent id": f"00-{TRACE}-{'0' * 16}-01",
    "another version": f"01-{TRACE}-{PARENT}-01",
    "short trace id": f"00-{TRACE[:-1]}-{PARENT}-01",
    "trailing data": f"{VALID}-extra",
    "not one at all": "hello",
}


def _access_log_line(stack: Stack, request_id: str) -> dict[str, object]:
    path = stack.topology.logs_dir / "nginx-access.log"
    found: list[dict[str, object]] = []

    def logged() -> bool:
        # Other tests send bytes that are not UTF-8 in their requests: only our line is read as JSON.
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        found[:] = [json.loads(line) for line in lines if request_id in line]
        return bool(found)

    assert edge_client.wait_until(logged, timeout=5), f"no access log line for {request_id}"
    return found[-1]


def _sent(seen: list[edge_client.SeenRequest]) -> re.Match[str]:
    (request,) = seen
    value = request.value("traceparent")
    assert value is not None, request.headers
    match = TRACEPARENT.match(value)
    assert match is not None, value
    return match


def test_the_api_gets_the_callers_trace_with_nginx_as_parent_and_the_log_names_it(
    stack: Stack, client: httpx.Client, origin: str
) -> None:
    token = edge_client.password_token(stack, "alice@contoso-dev.example", "alice-password")
    request_id = f"trace-{uuid.uuid4().hex}"
    headers = {
        "Authorization": f"Bearer {token}",
        "traceparent": VALID,
        "tracestate": "vendor=abc,other=1",
        "X-Request-ID": request_id,
    }
    with edge_client.upstream_recorder(stack, "api", stack.topology.api_port) as seen:
        assert client.get(origin + "/api/me", headers=headers).status_code == 200
    sent = _sent(seen)
    assert sent["trace"] == TRACE and sent["flags"] == "01"
    # nginx's own span is the parent, not the caller's span.
    assert sent["parent"] != PARENT
    (request,) = seen
    assert request.value("tracestate") == "vendor=abc,other=1"
    assert _access_log_line(stack, request_id)["trace_id"] == TRACE


def test_the_verifiers_subrequest_is_in_the_same_trace_and_a_bad_traceparent_starts_a_new_one(
    stack: Stack, client: httpx.Client, origin: str
) -> None:
    cases = {"valid": VALID, "absent": None, **INVALID}
    with edge_client.upstream_recorder(stack, "verifier", stack.topology.verifier_port) as seen:
        for name, value in cases.items():
            seen.clear()
            request_id = f"trace-{uuid.uuid4().hex}"
            headers = {"X-Request-ID": request_id, "tracestate": "vendor=abc"}
            if value is not None:
                headers["traceparent"] = value
            # The stand-in verifier says yes without an identity: the API refuses, which is fine here.
            response = client.get(origin + "/api/me", headers=headers)
            assert response.status_code != 400, (name, response.text)
            verify = [r for r in seen if r.path == "/verify"]
            sent = _sent(verify)
            logged = _access_log_line(stack, request_id)["trace_id"]
            if name == "valid":
                assert (sent["trace"], sent["flags"]) == (TRACE, "01")
                assert verify[0].value("tracestate") == "vendor=abc"
            else:
                assert sent["trace"] != TRACE, name
                assert sent["flags"] == "01"
                # tracestate belongs to the caller's trace, which was not taken up.
                assert verify[0].value("tracestate") is None, name
            assert logged == sent["trace"], name


XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"
XRAY_ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793"


def test_without_a_traceparent_the_load_balancers_xray_trace_is_taken_up(
    stack: Stack, client: httpx.Client, origin: str
) -> None:
    # (X-Amzn-Trace-Id, traceparent) -> the trace and flags nginx passes on; None: a new trace.
    cases: dict[str, tuple[str, str | None, str | None, str]] = {
        "the ALB's root alone": (XRAY_ROOT, None, XRAY_TRACE, "01"),
        "self first, an X-Ray caller's unsampled parent": (
            f"Self=1-67891234-abcdef012345678912345678;{XRAY_ROOT};Parent=53995c3f42cd8ad8;Sampled=0",
            None,
            XRAY_TRACE,
            "00",
        ),
        "a valid traceparent wins": (XRAY_ROOT, VALID, TRACE, "01"),
        "an invalid traceparent falls back to the root": (XRAY_ROOT, INVALID["upper case"], XRAY_TRACE, "01"),
        "an all-zero root": ("Root=1-00000000-000000000000000000000000", None, None, "01"),
        "a root that is not hex": ("Root=1-5759e988-bd862e3fe1be46a99427279Z", None, None, "01"),
        "another version": ("Root=2-5759e988-bd862e3fe1be46a994272793", None, None, "01"),
    }
    with edge_client.upstream_recorder(stack, "verifier", stack.topology.verifier_port) as seen:
        for name, (amzn, traceparent, trace, flags) in cases.items():
            seen.clear()
            request_id = f"trace-{uuid.uuid4().hex}"
            headers = {"X-Request-ID": request_id, "X-Amzn-Trace-Id": amzn}
            if traceparent is not None:
                headers["traceparent"] = traceparent
            response = client.get(origin + "/api/me", headers=headers)
            assert response.status_code != 400, (name, response.text)
            sent = _sent([r for r in seen if r.path == "/verify"])
            if trace is None:
                assert sent["trace"] not in (XRAY_TRACE, "0" * 32), name
            else:
                assert sent["trace"] == trace, name
            assert sent["flags"] == flags, name
            assert _access_log_line(stack, request_id)["trace_id"] == sent["trace"], name
