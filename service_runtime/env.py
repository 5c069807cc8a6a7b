"""The one settings reader of every service: read each variable once, collect every problem.

Each method reads one variable, checks it and returns a usable value (the default when the variable
is unset or wrong); a wrong value adds a problem that names the variable, what it holds (never for a
secret) and what is expected. A service reads all its variables, then refuses to start with the whole
list (:attr:`EnvReader.problems`), so one start-up attempt shows everything that is wrong.

Hand-written rather than pydantic-settings: the services keep their own frozen dataclasses (built
directly in tests), several variables depend on each other (the ALB variables are required only
with ``VERIFIER_ALB_ARN``; a derived key falls back to another), and the messages must name the
variable exactly as an operator sets it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def raw(self, name: str) -> str | None:
        """The value exactly as set, or None when unset or empty."""
        value = self.env.get(name)
        return value if value else None

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, "").strip() or default

    def items(self, name: str) -> list[str]:
        """A comma-separated list, items stripped, empty items dropped."""
        return [item.strip() for item in self.env.get(name, "").split(",") if item.strip()]

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        text = self.env.get(name, "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            self.problem(f"{name}={text[:20]!r}: expected an integer between {low} and {high}")
            return default
        if not low <= value <= high:
            self.problem(f"{name}={value}: expected an integer between {low} and {high}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        text = self.env.get(name, "").strip().lower()
        if not text:
            return default
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        self.problem(f"{name}={text[:20]!r}: expected true or false")
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        text = self.env.get(name, "").strip().lower()
        if not text:
            return default
        if text not in allowed:
            self.problem(f"{name}={text[:20]!r}: expected one of {', '.join(allowed)}")
            return default
        return text

    def ip_host(self, name: str, default: str) -> str:
        text = self.text(name, default)
        try:
            ipaddress.ip_address(text)
        except ValueError:
            if text != "localhost":
                self.problem(f"{name}={text[:40]!r}: expected an IP address (or localhost)")
        return text

    def base_url(self, name: str, default: str) -> str:
        """An absolute https:// URL (plain http only for a loopback host), trailing slash removed."""
        value = self.env.get(name, default)
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            self.problem(f"{name}={value!r}: expected an absolute https:// URL")
        elif parts.scheme == "http" and not is_loopback(parts.hostname):
            self.problem(f"{name}={value!r}: plain http is only allowed for a loopback host; use https://")
        elif parts.query or parts.fragment:
            self.problem(f"{name}={value!r}: must not carry a query or fragment")
        return value.rstrip("/")

    def existing_file(self, name: str, what: str) -> Path | None:
        text = self.env.get(name, "").strip()
        if not text:
            return None
        if not Path(text).is_file():
            self.problem(f"{name}={text!r}: no such file ({what} is expected)")
        return Path(text)

    def matching(self, name: str, pattern: re.Pattern[str], what: str, *, required: str = "") -> str:
        """A value matching ``pattern`` once lower-cased (returned as set); ``required`` says why an
        unset variable is a problem (unset and not required: empty string)."""
        text = self.env.get(name, "").strip()
        if not text:
            if required:
                self.problem(f"{name} is required ({required})")
        elif not pattern.match(text.lower()):
            self.problem(f"{name}={text[:40]!r}: expected {what}")
        return text
