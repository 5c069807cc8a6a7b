"""The verifier answers within nginx's time budget for one decision, even when its upstreams are slow.

nginx waits ``proxy_read_timeout`` of ``location = /_verify`` for the verifier. If the verifier's own
timeouts added up to more, a slow oauth2-proxy, JWKS endpoint or Redis would make nginx give up
first: the user would get a generic error instead of the verifier's reason, and be held longer.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from stack.launcher import nginx_templates
from stack.render import inline_includes
from verifier.keys.jwks import FETCH_TIMEOUT_SECONDS
from verifier.sources.csrf import redis_client
from verifier.sources.session.oauth2_proxy import READY_TIMEOUT_SECONDS
from verifier.sources.session.settings import SessionSettings

REPO = Path(__file__).resolve().parents[3]


def _verify_location_seconds(directive: str) -> float:
    text = inline_includes(nginx_templates(REPO))
    block = text[text.index("location = /_verify {") :]
    block = block[: block.index("\n    }")]
    found = re.search(rf"^\s*{directive}\s+(\d+)(ms|s);", block, re.M)
    assert found is not None, directive
    value = int(found.group(1))
    return value / 1000 if found.group(2) == "ms" else float(value)


def test_nginx_waits_only_a_few_seconds_for_a_decision() -> None:
    assert _verify_location_seconds("proxy_connect_timeout") <= 1
    assert _verify_location_seconds("proxy_read_timeout") <= 6


def test_the_slowest_decision_path_ends_inside_nginxs_budget() -> None:
    redis_timeout = inspect.signature(redis_client).parameters["timeout_seconds"].default
    oauth2_proxy = SessionSettings().timeout_seconds
    # A session: oauth2-proxy answers, the token names a key not loaded yet (one JWKS fetch), then
    # the CSRF token is spent in Redis. Or oauth2-proxy refuses and its readiness is asked.
    slowest = max(oauth2_proxy + FETCH_TIMEOUT_SECONDS + redis_timeout, oauth2_proxy + READY_TIMEOUT_SECONDS)
    assert slowest < _verify_location_seconds("proxy_read_timeout")
