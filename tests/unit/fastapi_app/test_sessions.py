"""Sign out everywhere through the API: who may end whose sessions, and what reaches the verifier.

The API asks a real verifier app (its ``/sessions/end``, served on a port) whose session store is a
recorder: what it checks (the identity it signed, for the API request being served) is the
verifier's own code; what it would end is recorded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from fastapi_app import create_app
from stack.topology import free_port
from tests.support.token_forge import validation_settings
from verifier.core.jwk import KeySet
from verifier.keys.provider import StaticKeys
from verifier.service.app import create_app as create_verifier_app
from verifier.service.settings import VerifierSettings

from .conftest import ALICE, BOB, CAROL, DAEMON, KEY, Api, make_settings

BOB_OID = BOB.oid


@dataclass
class RecordingSessions:
    """The verifier's session source, as far as ending sessions goes: records whom it was asked to end."""

    ended_users: list[str] = field(default_factory=list)
    per_user: int = 2
    name: str = "session"

    def present(self, request: web.Request) -> bool:
        return False

    async def end(self, cookie_headers: Iterable[str]) -> None:
        return None

    async def end_sign_in(self, sid: str) -> int:
        return 0

    async def end_user(self, oid: str, *, now: int) -> int:
        self.ended_users.append(oid)
        return self.per_user

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
def verifier() -> Iterator[tuple[str, RecordingSessions]]:
    """A verifier app on a port of its own, in a thread with its own event loop."""
    sessions = RecordingSessions()
    settings = VerifierSettings(
        validation=validation_settings("https://login.example.test"), identity_key=KEY
    )
    app = create_verifier_app(settings, sources=[sessions], keys=StaticKeys(KeySet({})))  # type: ignore[list-item]
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", sessions
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture
def sessions_api(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, verifier: tuple[str, RecordingSessions]
) -> Iterator[Api]:
    settings = make_settings(tmp_path, verifier_url=verifier[0])
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings, rsa_key)


def test_a_signed_in_user_ends_all_of_their_own_sessions(
    sessions_api: Api, verifier: tuple[str, RecordingSessions]
) -> None:
    response = sessions_api.call("POST", "/api/me/sessions/end", ALICE)
    assert (response.status_code, response.json()) == (200, {"ended": 2})
    assert verifier[1].ended_users == [ALICE.oid]


def test_an_admin_ends_another_users_sessions_and_others_may_not(
    sessions_api: Api, verifier: tuple[str, RecordingSessions]
) -> None:
    uri = f"/api/users/{BOB_OID}/sessions/end"
    response = sessions_api.call("POST", uri, CAROL)
    assert (response.status_code, response.json()) == (200, {"ended": 2})
    refused = sessions_api.call("POST", uri, BOB)
    assert (refused.status_code, refused.json()["reason"]) == (403, "missing_role")
    assert verifier[1].ended_users == [BOB_OID]


def test_an_application_has_no_sessions_of_its_own_to_end(
    sessions_api: Api, verifier: tuple[str, RecordingSessions]
) -> None:
    response = sessions_api.call("POST", "/api/me/sessions/end", DAEMON)
    assert (response.status_code, response.json()["reason"]) == (403, "app_token_not_allowed")
    assert verifier[1].ended_users == []


def test_the_verifier_unreachable_is_503_with_retry_after_and_nothing_claimed(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    settings = make_settings(tmp_path, verifier_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client:
        response = Api(client, settings, rsa_key).call("POST", "/api/me/sessions/end", ALICE)
    assert (response.status_code, response.json()["reason"]) == (503, "session_store_unavailable")
    assert response.headers["Retry-After"] == "5"
