"""VERIFIER_REVALIDATED_ROUTES: the endpoints whose answer carries the caller's access token, written in
FastAPI's path syntax, set by every deployment to the API's own list."""

from __future__ import annotations

import pytest

from fastapi_app.revalidation import REVALIDATED_ROUTES
from tests.unit.verifier.test_settings import env
from verifier.core.forwarded_routes import needs_forwarded_token, parse_route, parse_routes
from verifier.service.settings import ConfigError, settings_from_env

PROJECT = "/api/projects/0b1c2d3e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("method", "uri", "expected"),
    [
        ("DELETE", PROJECT, True),
        ("PUT", "/api/admin/settings", True),
        ("PUT", "/api/admin/settings?x=1", True),
        ("DELETE", "/api/other/../projects/0b1c2d3e", True),
        ("DELETE", "/api/projects/%30b1c", True),
        ("DELETE", "/api//projects/0b1c", True),
        ("GET", PROJECT, False),
        ("DELETE", "/api/projects", False),
        ("DELETE", "/api/projects/", False),
        ("DELETE", f"{PROJECT}/extra", False),
        ("PUT", "/api/admin/settings/x", False),
        ("PUT", "/api/admin/../../api/admin/settings", True),
        ("PUT", "/../api/admin/settings", False),
        ("DELETE", "/api/projects/%ff", False),
    ],
)
def test_a_request_matches_on_the_path_nginx_routes_on(method: str, uri: str, expected: bool) -> None:
    routes, problems = parse_routes(", ".join(REVALIDATED_ROUTES))
    assert problems == []
    assert needs_forwarded_token(method, uri, routes) is expected


def test_no_route_configured_forwards_nothing() -> None:
    assert needs_forwarded_token("DELETE", PROJECT, ()) is False


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("delete /api/x", "the method"),
        ("FETCH /api/x", "the method"),
        ("DELETE api/x", "must start with /"),
        ("DELETE /", "must start with /"),
        ("DELETE /api/{id", "neither a plain segment"),
        ("DELETE /api/.*", "neither a plain segment"),
        ("DELETE /api/{1d}", "neither a plain segment"),
    ],
)
def test_a_malformed_route_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_route(text)


def test_the_verifier_refuses_to_start_with_a_malformed_list_and_names_each_problem() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_env(env(VERIFIER_REVALIDATED_ROUTES="DELETE /api/{x}, GET api, PUT /a/*"))
    problems = [p for p in info.value.problems if p.startswith("VERIFIER_REVALIDATED_ROUTES")]
    assert len(problems) == 2, info.value.problems


def test_the_setting_is_read() -> None:
    settings = settings_from_env(env(VERIFIER_REVALIDATED_ROUTES="DELETE /api/projects/{id},"))
    assert [str(route) for route in settings.revalidated_routes] == ["DELETE /api/projects/{id}"]
    assert settings_from_env(env()).revalidated_routes == ()
