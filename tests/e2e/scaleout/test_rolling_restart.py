"""A rolling deployment: task A drained, stopped, started again and put back, under steady load."""

from __future__ import annotations

import pytest

from stack.scaleout import TASK_COMPONENTS, ScaleOutStack
from tests.e2e import edge_client
from tests.e2e.scaleout.load import SteadyLoad, task_requests_served
from tests.e2e.scaleout.traffic import bearer_reads, cookie_reads

pytestmark = [pytest.mark.e2e, pytest.mark.scaleout]

A = 0


def test_rolling_restart_of_task_a_under_bearer_and_cookie_load_fails_no_request(stack: ScaleOutStack):
    kinds = {"bearer": bearer_reads(stack), "cookie": cookie_reads(stack)}
    pids_before = {name: stack.tasks[A].processes[name].pid for name in TASK_COMPONENTS}
    with SteadyLoad(stack, kinds) as load:
        stack.restart_task(A)
        restarted = {name: stack.tasks[A].processes[name].pid for name in TASK_COMPONENTS}
        assert all(restarted[name] != pids_before[name] for name in TASK_COMPONENTS)
        served = task_requests_served(stack, A)
        # Task A really takes traffic again before the load ends.
        assert edge_client.wait_until(lambda: task_requests_served(stack, A) > served + 20, timeout=60)
    answers = load.result.snapshot()
    assert {key: n for key, n in answers.items() if key[1:] != (200, "")} == {}, answers
    assert answers[("bearer", 200, "")] > 0 and answers[("cookie", 200, "")] > 0
