"""Optional route policy: path prefix and methods -> the scopes or roles a caller must hold.

The policy file is TOML::

    [[route]]
    prefix = "/api/admin"          # matches /api/admin and /api/admin/..., not /api/administrator
    methods = ["POST", "DELETE"]   # optional; absent means every method
    scopes = ["admin"]             # a caller holding any one of these scopes passes
    roles = ["Admin"]              # ... or any one of these app roles

The longest matching prefix decides (among rules with the same prefix, the first whose methods
match); a request no rule matches is allowed (authentication alone). Loading and checking are pure;
problems in the file are reported together with their location at start-up.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from service_runtime.config_error import ConfigError
from verifier.core.identity import Principal
from verifier.core.reasons import PolicyRejected, Reason

#: The methods a rule (or a forwarded-token route) may name.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RouteRule:
    prefix: str
    methods: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def matches_path(self, path: str) -> bool:
        if self.prefix == "/":
            return True
        return path == self.prefix or path.startswith(self.prefix + "/")

    def matches_method(self, method: str) -> bool:
        return not self.methods or method in self.methods


def normalize_path(uri: str) -> str | None:
    """The path nginx routes on for an original request URI, or None when it cannot be one.

    ``X-Original-URI`` is nginx's ``$request_uri``: raw, still percent-encoded, with dot segments and
    repeated slashes. nginx routes on the normalized form, so the policy must match the same form or
    ``/api/public/../admin`` would slip past a rule for ``/api/admin``.
    """
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    decoded = unquote(path, errors="strict") if "%" in path else path
    if "\x00" in decoded:
        return None
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                return None
            segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    rules: tuple[RouteRule, ...] = ()

    def rule_for(self, method: str, path: str) -> RouteRule | None:
        best: RouteRule | None = None
        for rule in self.rules:
            if rule.matches_path(path) and rule.matches_method(method):
                if best is None or len(rule.prefix) > len(best.prefix):
                    best = rule
        return best

    def check(self, principal: Principal, method: str, uri: str) -> None:
        """Raise :class:`PolicyRejected` unless ``principal`` may make this request."""
        if not self.rules:
            return
        try:
            path = normalize_path(uri)
        except UnicodeDecodeError:
            path = None
        if path is None:
            raise PolicyRejected(
                Reason.INSUFFICIENT_SCOPE, "the original URI cannot be normalized", oid=principal.oid
            )
        rule = self.rule_for(method.upper(), path)
        if rule is None or (not rule.scopes and not rule.roles):
            return
        if rule.scopes.intersection(principal.scopes) or rule.roles.intersection(principal.roles):
            return
        wants_scope = bool(rule.scopes) and (principal.principal_type == "user" or not rule.roles)
        if wants_scope:
            raise PolicyRejected(
                Reason.INSUFFICIENT_SCOPE,
                f"{rule.prefix} needs one of the scopes {sorted(rule.scopes)}",
                required=tuple(sorted(rule.scopes)),
                oid=principal.oid,
            )
        raise PolicyRejected(
            Reason.INSUFFICIENT_ROLE,
            f"{rule.prefix} needs one of the roles {sorted(rule.roles)}",
            required=tuple(sorted(rule.roles)),
            oid=principal.oid,
        )


def _string_set(entry: Mapping[str, Any], name: str, where: str, problems: list[str]) -> frozenset[str]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: '{name}' must be a list of non-empty strings")
        return frozenset()
    return frozenset(value)


def policy_from_mapping(document: Mapping[str, Any]) -> RoutePolicy:
    """A :class:`RoutePolicy` from a parsed TOML document; raise ``ConfigError`` naming every problem."""
    problems: list[str] = []
    unknown_top = set(document) - {"route"}
    if unknown_top:
        problems.append(f"unknown top-level keys {sorted(unknown_top)}; expected only [[route]] tables")
    routes = document.get("route", [])
    if not isinstance(routes, list):
        problems.append("'route' must be an array of tables ([[route]])")
        routes = []
    rules: list[RouteRule] = []
    for index, entry in enumerate(routes):
        where = f"route #{index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        unknown = set(entry) - {"prefix", "methods", "scopes", "roles"}
        if unknown:
            problems.append(
                f"{where}: unknown keys {sorted(unknown)}; expected prefix, methods, scopes, roles"
            )
        prefix = entry.get("prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            problems.append(f"{where}: 'prefix' must be a path starting with '/'")
            continue
        normalized = normalize_path(prefix)
        if normalized != prefix.rstrip("/") and not (prefix == "/" and normalized == "/"):
            problems.append(f"{where}: 'prefix' {prefix!r} is not a normalized path (use {normalized!r})")
        methods = frozenset(m.upper() for m in _string_set(entry, "methods", where, problems))
        if methods - HTTP_METHODS:
            problems.append(f"{where}: unknown methods {sorted(methods - HTTP_METHODS)}")
        scopes = _string_set(entry, "scopes", where, problems)
        roles = _string_set(entry, "roles", where, problems)
        if not scopes and not roles:
            problems.append(f"{where}: requires nothing; give 'scopes' and/or 'roles'")
        rules.append(RouteRule(prefix=normalized or "/", methods=methods, scopes=scopes, roles=roles))
    if problems:
        raise ConfigError("the route policy", problems)
    return RoutePolicy(tuple(rules))


def load_policy(path: Path) -> RoutePolicy:
    """Read and check a TOML policy file; raise ``ConfigError`` naming every problem."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return policy_from_mapping(document)
