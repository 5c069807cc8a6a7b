"""Unix domain sockets beside loopback TCP: nginx reaching the verifier and the API through socket files.

Within one task nginx, the verifier and the API share the loopback, and the shipped templates reach
them over TCP. A Unix socket skips the kernel's TCP work on each of a request's two upstream
exchanges (the subrequest and the proxied request). This measures what that is worth: a second
verifier and a second API of the stack's own code and configuration, also answering on a socket
file (:mod:`bench.edge.uds_serve`), and an edge nginx from the real template whose two upstreams are
``unix:`` addresses (``EDGE_VERIFIER_ADDR``, ``EDGE_API_ADDR`` take them as they are).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.edge.peers import edge_nginx, extra_api, extra_verifier
from stack.launcher import Stack
from stack.processes import ManagedProcess


def uds_verifier(stack: Stack, folder: Path) -> tuple[ManagedProcess, Path]:
    """The stack's verifier, configured alike, also on the socket ``folder/verifier.sock``."""
    socket_path = folder / "verifier.sock"
    process = extra_verifier(stack, folder, "verifier (Unix socket)", {})
    process.argv = [sys.executable, "-m", "bench.edge.uds_serve", "verifier", str(socket_path)]
    return process, socket_path


def uds_api(stack: Stack, folder: Path) -> tuple[ManagedProcess, Path]:
    """The stack's API, configured alike (its own SQLite file), also on ``folder/api.sock``."""
    socket_path = folder / "api.sock"
    argv = [sys.executable, "-m", "bench.edge.uds_serve", "api", str(socket_path)]
    return extra_api(stack, folder, "our API (Unix socket)", {}, argv=argv), socket_path


def uds_edge_nginx(stack: Stack, folder: Path, verifier_socket: Path, api_socket: Path) -> ManagedProcess:
    """The edge nginx in front of the socket verifier and API."""
    return edge_nginx(
        stack,
        folder,
        verifier_addr=f"unix:{verifier_socket}",
        api_addr=f"unix:{api_socket}",
        name="edge nginx (Unix sockets to the verifier and the API)",
    )
