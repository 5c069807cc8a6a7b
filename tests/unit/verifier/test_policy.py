"""Route policy: TOML rules, longest prefix, methods, scope vs role reasons, path normalization."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.core.identity import Principal
from verifier.core.policy import ConfigError, RoutePolicy, load_policy, normalize_path, policy_from_mapping
from verifier.core.reasons import PolicyRejected, Reason

POLICY_TOML = """
[[route]]
prefix = "/api/admin"
scopes = ["admin"]
roles = ["Admin"]

[[route]]
prefix = "/api/projects"
methods = ["POST", "PUT", "PATCH", "DELETE"]
scopes = ["user.write"]
roles = ["Writer"]

[[route]]
prefix = "/api"
scopes = ["user.read"]
roles = ["Reader"]
"""


def user(*, scopes=("user.read",), roles=()) -> Principal:
    return Principal(
        oid="u", tid="t", principal_type="user", auth_source="bearer", scopes=scopes, roles=roles
    )


def app(*, roles=("Reader",)) -> Principal:
    return Principal(oid="a", tid="t", principal_type="app", auth_source="bearer", roles=roles)


@pytest.fixture
def policy(tmp_path: Path) -> RoutePolicy:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY_TOML)
    return load_policy(path)


def denial(policy: RoutePolicy, principal: Principal, method: str, uri: str) -> PolicyRejected:
    with pytest.raises(PolicyRejected) as info:
        policy.check(principal, method, uri)
    return info.value


def test_user_with_required_scope_passes(policy):
    policy.check(user(scopes=("user.read",)), "GET", "/api/projects/1")


def test_user_without_scope_is_denied_with_insufficient_scope_naming_the_scopes(policy):
    forbidden = denial(policy, user(scopes=("user.read",)), "POST", "/api/projects")
    assert forbidden.reason is Reason.INSUFFICIENT_SCOPE
    assert forbidden.required == ("user.write",)


def test_app_without_role_is_denied_with_insufficient_role(policy):
    forbidden = denial(policy, app(roles=("Reader",)), "DELETE", "/api/projects/7")
    assert forbidden.reason is Reason.INSUFFICIENT_ROLE
    assert forbidden.required == ("Writer",)


def test_role_satisfies_a_rule_for_a_user_without_the_scope(policy):
    policy.check(user(scopes=(), roles=("Admin",)), "GET", "/api/admin/settings")


def test_longest_prefix_decides(policy):
    assert (
        denial(policy, user(scopes=("user.read",)), "GET", "/api/admin").reason is Reason.INSUFFICIENT_SCOPE
    )


def test_prefix_matches_whole_segments_only(policy):
    # /api/administrator is not under /api/admin: the /api rule applies and user.read is enough.
    policy.check(user(scopes=("user.read",)), "GET", "/api/administrator")


def test_methods_not_listed_fall_through_to_a_shorter_rule(policy):
    policy.check(user(scopes=("user.read",)), "GET", "/api/projects")


def test_path_without_a_rule_is_allowed(policy):
    policy.check(user(scopes=()), "GET", "/")


@pytest.mark.parametrize(
    "uri",
    ["/api/public/../admin", "/api//admin/x", "/api/%61dmin", "/api/./admin?x=1", "/api/admin%2Fsettings"],
)
def test_dot_segments_slashes_and_encoding_cannot_bypass_a_rule(policy, uri):
    assert denial(policy, user(scopes=("user.read",)), "GET", uri).reason is Reason.INSUFFICIENT_SCOPE


def test_uri_escaping_the_root_is_denied(policy):
    assert denial(policy, user(), "GET", "/../../api/admin").reason is Reason.INSUFFICIENT_SCOPE


def test_normalize_path_matches_nginx_normalization():
    assert normalize_path("/a//b/./c/../d?q=/x") == "/a/b/d"
    assert normalize_path("/%7Euser/") == "/~user"
    assert normalize_path("/..") is None
    assert normalize_path("relative") is None


def test_empty_policy_allows_everything():
    RoutePolicy().check(user(scopes=()), "DELETE", "/api/admin")


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"route": [{"prefix": "api"}]}, "'prefix' must be a path"),
        ({"route": [{"prefix": "/api", "scopes": "x"}]}, "'scopes' must be a list"),
        ({"route": [{"prefix": "/api", "scopes": ["x"], "methods": ["FETCH"]}]}, "unknown methods"),
        ({"route": [{"prefix": "/api"}]}, "requires nothing"),
        ({"route": [{"prefix": "/api", "roles": ["A"], "role": ["B"]}]}, "unknown keys"),
        ({"routes": []}, "unknown top-level keys"),
        ({"route": [{"prefix": "/api/../x", "roles": ["A"]}]}, "not a normalized path"),
    ],
)
def test_bad_policy_documents_are_refused_naming_the_problem(document, fragment):
    with pytest.raises(ConfigError) as info:
        policy_from_mapping(document)
    assert any(fragment in problem for problem in info.value.problems)


def test_policy_file_that_is_not_toml_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[[route]\nprefix=")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert "not valid TOML" in info.value.problems[0]
