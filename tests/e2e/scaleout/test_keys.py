"""devidp's signing keys under load: an unannounced rotation, and its JWKS endpoint not answering."""

from __future__ import annotations

import os
import re
import signal

import httpx
import jwt
import pytest

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client
from tests.e2e.scaleout.load import SteadyLoad
from tests.e2e.scaleout.traffic import WRITER, bearer_reads, cookie_reads

pytestmark = [pytest.mark.e2e, pytest.mark.scaleout]

OK = (200, "")


def _jwks_fetches(stack: ScaleOutStack, index: int) -> int:
    """verifier_jwks_fetch_total{result="success"} of task ``index``'s verifier (its metrics port)."""
    metrics = httpx.get(stack.tasks[index].topology.metrics_url + "/metrics", timeout=5.0, trust_env=False)
    pattern = r'^verifier_jwks_fetch_total\{result="success"\} ([0-9.e+]+)$'
    found = re.search(pattern, metrics.text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def test_tokens_signed_with_an_unannounced_key_work_on_both_tasks_after_one_refetch_each(
    stack: ScaleOutStack,
):
    kinds = {"bearer": bearer_reads(stack), "cookie": cookie_reads(stack)}
    fetches_before = [_jwks_fetches(stack, i) for i in range(len(stack.tasks))]
    with SteadyLoad(stack, kinds) as load:
        with edge_client.new_client(stack) as client:
            r = client.post(
                f"{stack.topology.devidp_origin}/_devidp/admin/keys/rotate", params={"announced": "false"}
            )
            assert r.status_code == 200, r.text
            token = edge_client.password_token(stack, *WRITER)
            assert jwt.get_unverified_header(token)["kid"] == r.json()["kid"]
            for index in range(len(stack.tasks)):
                me = client.get(
                    stack.task_origin(index) + "/api/me", headers={"Authorization": f"Bearer {token}"}
                )
                assert me.status_code == 200, me.text
        load.wait_for_requests(100)
    answers = load.result.snapshot()
    assert {key: n for key, n in answers.items() if key[1:] != OK} == {}, answers
    # One JWKS refetch per task for the new kid, however many requests carried it.
    assert [_jwks_fetches(stack, i) - fetches_before[i] for i in range(len(stack.tasks))] == [1, 1]


def test_valid_tokens_keep_working_while_the_jwks_endpoint_does_not_answer(stack: ScaleOutStack):
    devidp = stack.shared.processes["devidp"]
    assert devidp.pid is not None
    # Bearer reads only: a session refresh needs devidp's token endpoint, which is the same process.
    # The token is fetched now, so the load needs none from devidp while it is frozen.
    kinds = {"bearer": bearer_reads(stack)}
    with SteadyLoad(stack, kinds) as load:
        # Frozen rather than stopped: connections are accepted and never answered, the worst case
        # for a client (a stopped endpoint refuses at once).
        os.kill(devidp.pid, signal.SIGSTOP)
        try:
            mark = load.result.snapshot()
            load.wait_for_requests(300)
            frozen = load.result.snapshot() - mark
        finally:
            os.kill(devidp.pid, signal.SIGCONT)
    assert {key: n for key, n in frozen.items() if key[1:] != OK} == {}, frozen
