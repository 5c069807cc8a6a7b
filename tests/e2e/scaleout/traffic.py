"""The traffic mix the rolling-restart and fault tests send through the balancer."""

from __future__ import annotations

import httpx

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client
from tests.e2e.scaleout.load import BearerToken, Kind

READER = ("alice@contoso-dev.example", "alice-password")
WRITER = ("bob@contoso-dev.example", "bob-password")


def bearer_reads(stack: ScaleOutStack) -> Kind:
    token = BearerToken(stack, *WRITER)
    url = stack.topology.public_origin + "/api/me"
    return Kind(lambda c: c.get(url, headers=token.header()))


def bearer_writes(stack: ScaleOutStack) -> Kind:
    token = BearerToken(stack, *WRITER)
    url = stack.topology.public_origin + "/api/projects"
    return Kind(lambda c: c.post(url, headers=token.header(), json={"name": "under load"}), workers=1)


def cookie_reads(stack: ScaleOutStack) -> Kind:
    """A signed-in browser's API reads: each worker signs in once, its client keeps the cookie
    (and every refreshed one)."""
    url = stack.topology.public_origin + "/api/me"

    def sign_in(client: httpx.Client) -> None:
        edge_client.sign_in(stack, *READER, client=client)

    return Kind(lambda c: c.get(url), setup=sign_in)


def anonymous_reads(stack: ScaleOutStack) -> Kind:
    url = stack.topology.public_origin + "/api/me"
    return Kind(lambda c: c.get(url), workers=1)
