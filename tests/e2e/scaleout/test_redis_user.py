"""The tasks reach Redis as ElastiCache's app user does: signed in as that user, with exactly the
rights the CloudFormation template's access string grants (stack.render.redis_args). Every other
scale-out test (sign-in, refresh, CSRF, sign-out broadcast, session start, oauth2-proxy's start-up
check, the fault matrix) therefore runs under those rights."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import NoPermissionError

from stack.scaleout import REDIS_APP_USER, ScaleOutStack
from tests.e2e import edge_client
from tests.e2e.scaleout.traffic import READER

pytestmark = [pytest.mark.e2e, pytest.mark.scaleout]


def test_every_task_connection_to_redis_is_signed_in_as_the_templates_user(stack: ScaleOutStack):
    with edge_client.sign_in(stack, *READER) as signed_in:
        assert signed_in.client.get(stack.topology.public_origin + "/api/me").status_code == 200
    admin = redis.Redis.from_url(stack.topology.redis_admin_url)
    with admin:

        def task_clients() -> list[dict[str, str]]:
            return [c for c in admin.client_list() if c["user"] != "default"]

        def listeners() -> int:
            return sum(1 for c in task_clients() if int(c.get("sub", 0)) > 0)

        # Each verifier's sign-out listener (subscribed again within a second after an earlier
        # test's Redis fault).
        assert edge_client.wait_until(lambda: listeners() == len(stack.tasks), timeout=15), task_clients()
        # Nobody but the operator's connection (this one) signs in as the default user.
        clients = admin.client_list()
        assert {c["user"] for c in clients if c.get("cmd") != "client|list"} == {REDIS_APP_USER}, clients
        # Both oauth2-proxies and both verifiers.
        assert len(task_clients()) >= 2 * len(stack.tasks)


def test_the_app_user_is_refused_everything_the_access_string_leaves_out(stack: ScaleOutStack):
    app = redis.Redis.from_url(stack.topology.redis_client_url)
    with app:
        assert app.ping()
        with pytest.raises(NoPermissionError):
            app.set("not-ours", "x")
        with pytest.raises(NoPermissionError):
            app.keys("*")  # -@dangerous
        with pytest.raises(NoPermissionError):
            app.flushall()
        with pytest.raises(NoPermissionError):
            app.publish("some-other-channel", "x")
