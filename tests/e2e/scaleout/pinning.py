"""Requests pinned to one task by its nginx port, past the balancer."""

from __future__ import annotations

from urllib.parse import urljoin

from stack.scaleout import ScaleOutStack
from tests.e2e import edge_client


def pin(stack: ScaleOutStack, index: int, url: str) -> str:
    """``url`` on the public origin (the balancer) rewritten to task ``index``'s own nginx."""
    public = stack.topology.public_origin
    return stack.task_origin(index) + url[len(public) :] if url.startswith(public) else url


def sign_in_through(stack: ScaleOutStack, index: int, username: str, password: str) -> edge_client.SignIn:
    """Sign in with every request to our edge (start, callback, the page after) sent to one task.

    oauth2-proxy's redirects name the public origin (its redirect URL is the balancer's); each is
    rewritten to the task's port, as if the balancer had sent the whole flow to that one task.
    """
    client = edge_client.new_client(stack)
    result = edge_client.SignIn(client)
    url, method, data = stack.task_origin(index) + "/", "GET", None
    for _ in range(16):
        response = client.request(method, url, data=data)
        location = response.headers.get("location", "")
        result.hops.append(
            edge_client.Hop(
                method, url, response.status_code, location, response.headers.get_list("set-cookie")
            )
        )
        if response.status_code in (301, 302, 303, 307, 308) and location:
            url, method, data = pin(stack, index, urljoin(url, location)), "GET", None
            continue
        if url.startswith(stack.topology.devidp_origin) and data is None:
            action, fields = edge_client.password_form(response.text)
            fields.update({"username": username, "password": password, "signin": "password"})
            fields.pop("pick", None)
            fields.pop("cancel", None)
            url, method, data = urljoin(url, action), "POST", fields
            continue
        assert response.status_code == 200, f"{response.status_code} at {url}"
        assert url.startswith(stack.task_origin(index)), url
        return result
    raise AssertionError(f"sign-in did not finish: {[h.url for h in result.hops]}")
