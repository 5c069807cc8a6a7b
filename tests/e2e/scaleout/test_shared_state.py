"""What two tasks share through Redis: a session, spent CSRF tokens, sign-out, a refresh."""

from __future__ import annotations

import concurrent.futures
import html
import re
import time
from urllib.parse import urlsplit

import pytest

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client
from tests.e2e.conftest import ACCESS_TOKEN_SECONDS, LEEWAY_SECONDS
from tests.e2e.scaleout.pinning import sign_in_through

pytestmark = [pytest.mark.e2e, pytest.mark.scaleout]

A, B = 0, 1


def _me(stack: ScaleOutStack, signed_in: edge_client.SignIn, task: int):
    return signed_in.client.get(stack.task_origin(task) + "/api/me")


def test_a_session_made_through_task_a_is_used_through_task_b(stack: ScaleOutStack):
    with sign_in_through(stack, A, "bob@contoso-dev.example", "bob-password") as bob:
        r = _me(stack, bob, B)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Bob Writer"
        # And through the balancer, whichever task it picks.
        assert bob.client.get(stack.topology.public_origin + "/api/me").status_code == 200


def test_a_csrf_token_spent_on_task_a_is_refused_on_task_b(stack: ScaleOutStack):
    origin = stack.topology.public_origin
    with sign_in_through(stack, A, "bob@contoso-dev.example", "bob-password") as bob:
        token = _me(stack, bob, A).headers["x-csrf-token"]
        headers = {"X-CSRF-Token": token, "Origin": origin}
        first = bob.client.post(
            stack.task_origin(A) + "/api/projects", headers=headers, json={"name": "on A"}
        )
        assert first.status_code == 201, first.text
        again = bob.client.post(
            stack.task_origin(B) + "/api/projects", headers=headers, json={"name": "on B"}
        )
        assert again.status_code == 403, again.text
        assert (again.json()["error"], again.json()["reason"]) == ("forbidden", "csrf_token_spent")


def test_sign_out_on_task_a_is_effective_on_task_b_at_once(stack: ScaleOutStack):
    name = stack.topology.session_cookie_name
    with sign_in_through(stack, A, "dave@contoso-dev.example", "dave-password") as dave:
        old = dave.client.cookies.get(name)
        assert old and _me(stack, dave, B).status_code == 200
        r = edge_client.sign_out(
            dave.client, stack.task_origin(A), public_origin=stack.topology.public_origin
        )
        assert r.status_code == 302, r.text
        with edge_client.new_client(stack) as replay:
            r = replay.get(stack.task_origin(B) + "/api/me", headers={"Cookie": f"{name}={old}"})
            assert r.status_code == 401, r.text
            assert r.json()["error"] == "unauthorized"


def _token_grants(stack: ScaleOutStack) -> int:
    """How many times anyone called devidp's token endpoint (its access log, one line each)."""
    log = stack.shared.processes["devidp"].log_path.read_text(encoding="utf-8")
    return sum(1 for line in log.splitlines() if " POST " in line and "/oauth2/v2.0/token " in line)


def test_parallel_requests_through_both_tasks_after_expiry_all_succeed_and_refresh_once(stack: ScaleOutStack):
    name = stack.topology.session_cookie_name
    signed_in_at = time.time()
    with sign_in_through(stack, A, "carol@contoso-dev.example", "carol-password") as carol:
        cookie = carol.client.cookies.get(name)
        assert _me(stack, carol, B).status_code == 200
        grants_before = _token_grants(stack)
        # Past the access token's lifetime and the verifier's leeway: every request below needs the
        # session refreshed first, and they all arrive at once, half on each task.
        time.sleep(max(0.0, signed_in_at + ACCESS_TOKEN_SECONDS + LEEWAY_SECONDS + 2 - time.time()))

        def me(task: int) -> tuple[int, str, list[str]]:
            with edge_client.new_client(stack) as c:
                r = c.get(stack.task_origin(task) + "/api/me", headers={"Cookie": f"{name}={cookie}"})
                renewed = [v for v in r.headers.get_list("set-cookie") if v.startswith(name + "=")]
                return r.status_code, r.text, renewed

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(me, [A, B] * 4))
        assert [status for status, _, _ in answers] == [200] * 8, answers
        # One refresh_token grant for the whole burst: oauth2-proxy's session lock in Redis makes
        # the other task's (and the other requests') refresh wait for it and reuse its result.
        assert _token_grants(stack) - grants_before == 1
        # Still signed in afterwards, with the cookie the browser now holds.
        renewed = next(c for _, _, cookies in answers for c in cookies)
        latest = str(edge_client.session_cookie_attributes(renewed)["value"])
        with edge_client.new_client(stack) as c:
            for task in (A, B):
                r = c.get(stack.task_origin(task) + "/api/me", headers={"Cookie": f"{name}={latest}"})
                assert r.status_code == 200, r.text


def test_an_admin_ending_bobs_sessions_through_task_a_ends_them_on_task_b_at_once(stack: ScaleOutStack):
    origin = stack.topology.public_origin
    with (
        sign_in_through(stack, A, "carol@contoso-dev.example", "carol-password") as carol,
        sign_in_through(stack, B, "bob@contoso-dev.example", "bob-password") as bob,
    ):
        # Both tasks remember bob's session now.
        name = stack.topology.session_cookie_name
        cookie = {"Cookie": f"{name}={bob.client.cookies.get(name)}"}
        bob_oid = _me(stack, bob, A).json()["oid"]
        assert _me(stack, bob, B).status_code == 200
        token = _me(stack, carol, A).headers["x-csrf-token"]
        ended = carol.client.post(
            f"{stack.task_origin(A)}/api/users/{bob_oid}/sessions/end",
            headers={"X-CSRF-Token": token, "Origin": origin},
        )
        # This session, and any other of bob's an earlier test left behind.
        assert ended.status_code == 200 and ended.json()["ended"] >= 1, ended.text
        with edge_client.new_client(stack) as replay:
            for task in (B, A):
                refused = replay.get(stack.task_origin(task) + "/api/me", headers=cookie)
                assert (refused.status_code, refused.json()["reason"]) == (401, "session_ended"), refused.text


def test_the_providers_front_channel_call_through_task_a_ends_the_session_on_task_b(stack: ScaleOutStack):
    with sign_in_through(stack, A, "dave@contoso-dev.example", "dave-password") as dave:
        assert _me(stack, dave, B).status_code == 200
        logout = dave.client.get(stack.topology.sign_out_url)
        (frame,) = re.findall(r'<iframe[^>]*data-front-channel-logout[^>]*src="([^"]+)"', logout.text)
        path = urlsplit(html.unescape(frame))
        with edge_client.new_client(stack) as provider_frame:
            assert provider_frame.get(f"{stack.task_origin(A)}{path.path}?{path.query}").status_code == 200
        refused = _me(stack, dave, B)
        assert (refused.status_code, refused.json()["reason"]) == (401, "session_ended"), refused.text
