"""One real stack for the whole end-to-end session: the launcher `make run` uses, on free ports.

Lifetimes are shortened so the refresh and expiry tests finish in seconds: devidp access tokens
live ``ACCESS_TOKEN_SECONDS``, oauth2-proxy refreshes a session older than
``COOKIE_REFRESH_SECONDS`` and the verifier allows ``LEEWAY_SECONDS`` of clock skew. Every other
test uses a token or session within seconds of getting it, so the short lifetimes do not make them
flaky; they only make the refresh path run more often, which is the point.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest

from stack.launcher import Stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser
from stack.topology import free_port, free_port_topology
from tests.e2e import edge_client

ACCESS_TOKEN_SECONDS = 20
COOKIE_REFRESH_SECONDS = 5
LEEWAY_SECONDS = 1


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    topology = free_port_topology(
        tmp_path_factory.mktemp("stack"),
        access_token_lifetime_seconds=ACCESS_TOKEN_SECONDS,
        cookie_refresh_seconds=COOKIE_REFRESH_SECONDS,
        verifier_leeway_seconds=LEEWAY_SECONDS,
        oauth2_proxy_metrics_port=free_port(),
        # E2E_API_DATABASE=postgres runs every end-to-end test with the API on PostgreSQL.
        database=os.environ.get("E2E_API_DATABASE", "sqlite"),
        postgres_port=free_port(),
    )
    with Stack(topology) as running:
        yield running


@dataclass(frozen=True)
class EarlyToken:
    token: str
    expires_at: int


@pytest.fixture(scope="session", autouse=True)
def early_daemon_token(stack: Stack) -> EarlyToken:
    """A daemon token minted as the session starts, so the expiry test finds it already expired
    instead of sleeping through a token lifetime of its own."""
    token = edge_client.client_credentials_token(stack)
    return EarlyToken(token, int(jwt.decode(token, options={"verify_signature": False})["exp"]))


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    """A fresh cookie-less client that trusts only the stack's CA."""
    with edge_client.new_client(stack) as c:
        yield c


@pytest.fixture
def origin(stack: Stack) -> str:
    return stack.topology.public_origin


@pytest.fixture(scope="session")
def site(stack: Stack) -> dict[str, str]:
    """The two origins a browser sees: the app (nginx) and the identity provider (devidp)."""
    return {"app": stack.topology.public_origin, "idp": stack.topology.devidp_origin}


@pytest.fixture
def alice(stack: Stack) -> Iterator[edge_client.SignIn]:
    """alice (Reader), signed in through the browser flow; the client holds her session cookie."""
    with edge_client.sign_in(stack, "alice@contoso-dev.example", "alice-password") as signed_in:
        yield signed_in


@pytest.fixture
def bob(stack: Stack) -> Iterator[edge_client.SignIn]:
    """bob (Writer), signed in through the browser flow."""
    with edge_client.sign_in(stack, "bob@contoso-dev.example", "bob-password") as signed_in:
        yield signed_in


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    """Debian's Chromium trusting the stack's CA, shared by the pages of one test module."""
    from tests.e2e.browser import launched_chromium  # Playwright only for the modules that drive it

    with launched_chromium(stack) as chromium:
        yield chromium
