"""The headers FastAPI receives for a request that came through the edge, built by the edge's own code.

A request reaches FastAPI with headers that two parts of the chain chose: the verifier's answer to
nginx's ``auth_request`` (:func:`verifier.service.app.render`, which decides among other things whether
the caller's access token goes along) and nginx's ``/api/`` location, which copies some of that
answer's headers onto the proxied request (``auth_request_set $v $upstream_http_...`` then
``proxy_set_header Name $v``). The unit tests build their requests the same way: render the verifier's
answer for the principal and copy what the edge's nginx files (``nginx/*.template``) say it copies. A
header that neither part sends cannot appear here, so a test cannot pass on a header nothing in the
chain sets.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi_app.revalidation import REVALIDATED_ROUTES
from stack.launcher import nginx_templates
from stack.render import inline_includes
from verifier.core.decision import Decision, OriginalRequest
from verifier.core.forwarded_routes import parse_routes
from verifier.core.identity import Principal
from verifier.service.app import render

REPO = Path(__file__).resolve().parents[3]

#: The verifier configured as every deployment configures it: the API's own list.
FORWARDED, _ = parse_routes(", ".join(REVALIDATED_ROUTES))

_AUTH_SET = re.compile(r"^\s*auth_request_set\s+\$(\w+)\s+\$upstream_http_(\w+);", re.M)
_SET_HEADER = re.compile(r"^\s*proxy_set_header\s+([\w-]+)\s+\$(\w+);", re.M)


def location_block(config: str, opening: str) -> str:
    """The text of the location that starts with ``opening`` (e.g. ``location /api/ {``)."""
    start = config.index(opening)
    depth = 0
    for index in range(start, len(config)):
        if config[index] == "{":
            depth += 1
        elif config[index] == "}":
            depth -= 1
            if depth == 0:
                return config[start : index + 1]
    raise ValueError(f"unbalanced braces after {opening!r}")


@cache
def edge_conf() -> str:
    """edge.conf with every part inlined where it is included, unrendered: all that nginx reads."""
    return inline_includes(nginx_templates(REPO))


@cache
def api_header_copies() -> dict[str, str]:
    """Request header name -> verifier answer header name, as the ``/api/`` location copies them."""
    block = location_block(edge_conf(), "location /api/ {")
    from_verifier = {var: upstream.replace("_", "-").lower() for var, upstream in _AUTH_SET.findall(block)}
    return {name: from_verifier[var] for name, var in _SET_HEADER.findall(block) if var in from_verifier}


def edge_headers(
    principal: Principal, method: str, uri: str, *, access_token: str, key: bytes, now: int
) -> dict[str, str]:
    """What FastAPI receives for ``method uri`` by ``principal``, who proved itself with ``access_token``.

    ``access_token`` empty stands for a source without one (the ALB's header).
    """
    decision = Decision.allow(principal, access_token=access_token)
    answer = render(
        decision, OriginalRequest(method, uri), identity_key=key, now=now, revalidated_routes=FORWARDED
    )
    assert answer.status == 200
    received = {name.lower(): value for name, value in answer.headers.items()}
    return {name: received[source] for name, source in api_header_copies().items() if received.get(source)}
