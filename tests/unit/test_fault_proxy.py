"""The fault proxy the session fault tests put in front of Redis: it relays, resets and refuses as told."""

from __future__ import annotations

import socket
import socketserver
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.servers import serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    with serving(server):
        relay = FaultProxy(
            ("127.0.0.1", _free_port()), server.server_address, ("127.0.0.1", _free_port()), tmp_path / "log"
        ).start()
        yield relay
        relay.stop()


def _echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(1024)


def test_it_relays_then_resets_open_and_new_connections_then_relays_again(proxy: FaultProxy) -> None:
    with socket.create_connection(proxy.listen, timeout=5) as sock:
        assert _echo(sock, b"ping") == b"ping"
        proxy.set("reset")
        with pytest.raises(ConnectionResetError):
            _echo(sock, b"again")
    with socket.create_connection(proxy.listen, timeout=5) as sock, pytest.raises(ConnectionResetError):
        _echo(sock, b"new")
    proxy.set("pass")
    with socket.create_connection(proxy.listen, timeout=5) as sock:
        assert _echo(sock, b"back") == b"back"


def test_refuse_closes_the_port_until_pass(proxy: FaultProxy) -> None:
    open_before = socket.create_connection(proxy.listen, timeout=5)
    with open_before:
        assert _echo(open_before, b"x") == b"x"
        proxy.set("refuse")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.listen, timeout=5)
        with pytest.raises(ConnectionResetError):
            _echo(open_before, b"y")
    proxy.set("pass")
    with socket.create_connection(proxy.listen, timeout=5) as sock:
        assert _echo(sock, b"z") == b"z"


def test_an_unknown_command_is_refused_with_its_name(proxy: FaultProxy) -> None:
    with pytest.raises(RuntimeError, match="unknown command 'freeze'"):
        proxy.set("freeze")
