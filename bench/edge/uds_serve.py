"""``python -m bench.edge.uds_serve verifier|api SOCKET``: the verifier or the API, started as the stack
starts it, also answering on the Unix socket ``SOCKET`` (bench/edge/uds.py).

Bench only: it measures a lever the product does not have yet (Unix domain sockets between nginx and
the sidecars instead of loopback TCP), so it wraps the services' own start-up rather than changing
them. The verifier is ``python -m verifier`` with one more aiohttp site on the socket beside its
TCP port; the API is one uvicorn server, configured as ``python -m fastapi_app`` configures it, on
its TCP port and the socket.
"""

from __future__ import annotations

import os
import socket
import sys

from aiohttp import web


def _verifier(path: str) -> int:
    from verifier.service.main import main

    port = int(os.environ["VERIFIER_PORT"])
    tcp_site = web.TCPSite

    class TcpAndUnixSite(tcp_site):  # type: ignore[misc, valid-type]
        """The verify port's site starts a Unix site on the same runner after itself."""

        async def start(self) -> None:
            await super().start()
            if self._port == port:
                await web.UnixSite(self._runner, path).start()
                os.chmod(path, 0o666)

    web.TCPSite = TcpAndUnixSite  # type: ignore[misc]
    return main()


def _api(path: str) -> int:
    import uvicorn

    from fastapi_app.__main__ import server_options
    from fastapi_app.app import create_app
    from fastapi_app.settings import ApiSettings
    from service_runtime.logs import configure_logging
    from service_runtime.tracing import start_tracing

    settings = ApiSettings.from_env(os.environ)
    configure_logging(settings.log_level, stream=sys.stderr)
    app = create_app(settings, tracer_provider=start_tracing(settings.tracing))
    config = uvicorn.Config(app, **server_options(settings))
    # IPPROTO_TCP, as fastapi_app.__main__.tcp_listener explains: asyncio sets TCP_NODELAY only then.
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((settings.host, settings.port))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    os.chmod(path, 0o666)
    uvicorn.Server(config).run(sockets=[tcp, unix])
    return 0


def main() -> int:
    kind, path = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    return _verifier(path) if kind == "verifier" else _api(path)


if __name__ == "__main__":
    sys.exit(main())
