"""The edge keeps accepting Entra tokens across signing-key rollovers, announced or not.

devidp publishes several keys, as Entra does, and rolls them over by its admin endpoint: announced
(the key that starts signing was already in the JWKS the verifier cached) and unannounced (Entra's
emergency rollover: a key no cached JWKS holds, which the verifier must refetch on the unknown kid).
Tokens signed before a rollover keep working, because the previous key stays published.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from stack.launcher import Stack
from stack.topology import free_port_topology
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

USER, PASSWORD = "bob@contoso-dev.example", "bob-password"


@pytest.fixture(scope="module")
def rolling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own (rollovers would disturb the shared one) with devidp's admin endpoints on
    and the verifier allowed one JWKS refetch per second."""
    topology = free_port_topology(
        Path(tmp_path_factory.mktemp("key-rollover")),
        extra_env=(("VERIFIER_JWKS_MIN_REFETCH_SECONDS", "1"),),
    )
    running = Stack(topology)
    running.prepare()
    running.processes["devidp"].argv.append("--enable-admin")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _rotate(stack: Stack, *, announced: bool) -> dict[str, object]:
    with edge_client.new_client(stack) as c:
        r = c.post(
            f"{stack.topology.devidp_origin}/_devidp/admin/keys/rotate",
            params={"announced": "true" if announced else "false"},
        )
    assert r.status_code == 200, r.text
    return r.json()


def _me(stack: Stack, client: httpx.Client, token: str) -> httpx.Response:
    return client.get(stack.topology.public_origin + "/api/me", headers={"Authorization": f"Bearer {token}"})


def test_tokens_signed_before_and_after_an_announced_rollover_are_accepted(rolling_stack: Stack) -> None:
    stack = rolling_stack
    with edge_client.new_client(stack) as client:
        before = edge_client.password_token(stack, USER, PASSWORD)
        assert _me(stack, client, before).status_code == 200
        rotated = _rotate(stack, announced=True)
        after = edge_client.password_token(stack, USER, PASSWORD)
        assert (
            jwt.get_unverified_header(after)["kid"]
            == rotated["kid"]
            != jwt.get_unverified_header(before)["kid"]
        )
        for token in (after, before):
            r = _me(stack, client, token)
            assert r.status_code == 200, r.text
            assert r.json()["auth_source"] == "bearer"


def test_token_signed_with_an_unannounced_key_is_accepted_after_a_jwks_refetch(rolling_stack: Stack) -> None:
    stack = rolling_stack
    rotated = _rotate(stack, announced=False)
    token = edge_client.password_token(stack, USER, PASSWORD)
    assert jwt.get_unverified_header(token)["kid"] == rotated["kid"]
    with edge_client.new_client(stack) as client:
        # The verifier refetches the JWKS on the unknown kid, at most once a second.
        assert edge_client.wait_until(lambda: _me(stack, client, token).status_code == 200, timeout=20)
        assert _me(stack, client, token).json()["auth_source"] == "bearer"
