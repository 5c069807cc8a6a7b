"""Fixtures: devidp as a real TLS server on an ephemeral 127.0.0.1 port (see harness.py)."""

from __future__ import annotations

import copy
import socket
import ssl
from collections.abc import Callable, Iterator

import pytest

from devidp.app import create_app
from devidp.config import config_from_mapping
from devidp.keys import KeyRing, SigningKey, generate_signing_key
from stack.pki import TlsFiles, make_dev_pki
from tests.unit.devidp.harness import Clock, ConfigEdit, RunningIdp, ServerThread, example_mapping


@pytest.fixture(autouse=True)
def _no_ambient_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's own `verify` (MSAL sets
    # that to our development CA), so the ambient system bundle would hide the CA under test.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def shared_key() -> SigningKey:
    return generate_signing_key()


@pytest.fixture(scope="session")
def upcoming_key() -> SigningKey:
    """The key the test devidp announces as next (RSA generation is slow enough to share it)."""
    return generate_signing_key()


@pytest.fixture
def start_idp(
    tls: TlsFiles, shared_key: SigningKey, upcoming_key: SigningKey
) -> Iterator[Callable[..., RunningIdp]]:
    servers: list[ServerThread] = []

    def start(edit: ConfigEdit | None = None, *, admin: bool = False) -> RunningIdp:
        data = copy.deepcopy(example_mapping())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        data["server"] = {"host": "127.0.0.1", "port": port, "public_url": f"https://localhost:{port}"}
        data["admin"] = {"enabled": admin}
        data["lifetimes"]["device_code_interval_seconds"] = 1
        if edit is not None:
            edit(data)
        config = config_from_mapping(data, "test")
        clock = Clock()
        app = create_app(config, keys=KeyRing(shared_key, upcoming=upcoming_key, clock=clock), clock=clock)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        server = ServerThread(app, sock, ctx)
        server.start()
        servers.append(server)
        return RunningIdp(base_url=f"https://localhost:{port}", port=port, tls=tls, app=app, clock=clock)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def idp(start_idp: Callable[..., RunningIdp]) -> RunningIdp:
    return start_idp()
