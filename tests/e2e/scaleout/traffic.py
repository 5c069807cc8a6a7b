"""The traffic mix the rolling-restart and fault tests send through the balancer."""

from __future__ import annotations

import time

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


def cookie_writes(stack: ScaleOutStack) -> Kind:
    """A signed-in Writer's SPA editing a project: each PATCH carries the single-use CSRF token the
    previous answer handed out. After a 503 it fetches a fresh token first (GET /api/me), as the SPA
    does: the refused request may have spent its token before the answer was lost. Edits, not
    creations, so the owner's project quota never runs out however long the load lasts."""
    origin = stack.topology.public_origin
    token: list[str] = []
    project: list[str] = []

    def sign_in(client: httpx.Client) -> None:
        edge_client.sign_in(stack, *WRITER, client=client)
        me = client.get(origin + "/api/me")
        assert me.status_code == 200, me.text
        listed = client.get(origin + "/api/projects", params={"limit": 1})
        assert listed.status_code == 200, listed.text
        if items := listed.json()["items"]:
            project[:] = [str(items[0]["id"])]
        else:
            created = client.post(
                origin + "/api/projects",
                headers={"X-CSRF-Token": me.headers["x-csrf-token"], "Origin": origin},
                json={"name": "edited under faults"},
            )
            assert created.status_code == 201, created.text
            project[:] = [str(created.json()["id"])]

    def write(client: httpx.Client) -> httpx.Response:
        if not token:
            response = client.get(origin + "/api/me")
        else:
            response = client.patch(
                f"{origin}/api/projects/{project[0]}",
                headers={"X-CSRF-Token": token.pop(), "Origin": origin},
                json={"description": f"edited at {time.time():.3f}"},
            )
        if fresh := response.headers.get("x-csrf-token"):
            token[:] = [fresh]
        return response

    return Kind(write, setup=sign_in, workers=1)


def sign_ins(stack: ScaleOutStack) -> Kind:
    """Browsers signing in, one after another, recorded by the status of the last hop (200: the app's
    page after the callback; the callback's own status when oauth2-proxy could not store the session)."""
    t = stack.topology

    def sign_in(client: httpx.Client) -> httpx.Response:
        client.cookies.clear()
        hops = edge_client.follow(client, "GET", t.public_origin + "/")
        page = hops[-1]
        if page.status == 200 and page.url.startswith(t.devidp_origin):
            hops = edge_client.submit_password(client, page, *READER)
        final = hops[-1]
        kept = [(k, v) for k, v in final.headers.multi_items() if k in ("set-cookie", "retry-after")]
        return httpx.Response(final.status, headers=kept)

    return Kind(sign_in, workers=1)
