"""The requests whose answer carries the caller's access token (``X-Forwarded-Access-Token``).

Only the API endpoints that re-validate the token get it: every other upstream, and every other API
endpoint, never sees it, so a bug or a log line there cannot leak it, and the token's few KiB do not
ride on every request. The API declares those endpoints (``fastapi_app/revalidation.py``,
``REVALIDATED_ROUTES``, checked against its routes at start-up); the verifier is told the same list
as configuration, ``VERIFIER_REVALIDATED_ROUTES``, in FastAPI's own path syntax::

    DELETE /api/projects/{project_id}, PUT /api/admin/settings

A ``{name}`` segment matches one non-empty path segment. Requests are matched on the path nginx
routes on (dot segments and percent-encoding resolved), so an encoded variant cannot get the token
sent where it is not needed, nor miss it where it is. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from verifier.core.policy import HTTP_METHODS, normalize_path

_LITERAL = re.compile(r"^[A-Za-z0-9._~-]+$")
_PARAMETER = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")


@dataclass(frozen=True, slots=True)
class ForwardedTokenRoute:
    """One ``METHOD /path/{param}`` of the list."""

    method: str
    path: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.pattern.fullmatch(path) is not None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def parse_route(text: str) -> ForwardedTokenRoute:
    """``METHOD /path/{param}`` -> a route; ValueError says what is wrong with it."""
    method, _, path = text.strip().partition(" ")
    path = path.strip()
    if method not in HTTP_METHODS:
        raise ValueError(f"{text.strip()!r}: the method must be one of {', '.join(sorted(HTTP_METHODS))}")
    if not path.startswith("/") or path == "/":
        raise ValueError(f"{text.strip()!r}: the path must start with / and name an endpoint")
    parts = []
    for segment in path.split("/")[1:]:
        if _PARAMETER.match(segment):
            parts.append("[^/]+")
        elif _LITERAL.match(segment):
            parts.append(re.escape(segment))
        else:
            raise ValueError(f"{text.strip()!r}: {segment!r} is neither a plain segment nor {{name}}")
    return ForwardedTokenRoute(method, path, re.compile("/" + "/".join(parts)))


def parse_routes(value: str) -> tuple[tuple[ForwardedTokenRoute, ...], list[str]]:
    """The comma-separated list, and a problem for each entry that is not a route."""
    routes: list[ForwardedTokenRoute] = []
    problems: list[str] = []
    for entry in value.split(","):
        if not entry.strip():
            continue
        try:
            routes.append(parse_route(entry))
        except ValueError as exc:
            problems.append(str(exc))
    return tuple(routes), problems


def needs_forwarded_token(method: str, uri: str, routes: tuple[ForwardedTokenRoute, ...]) -> bool:
    """True when ``method uri`` (nginx's ``$request_uri``) goes to one of ``routes``."""
    if not routes:
        return False
    try:
        path = normalize_path(uri)
    except UnicodeDecodeError:
        return False
    return path is not None and any(route.matches(method, path) for route in routes)
