"""aiohttp test clients for apps a test fixture builds, all closed together when the fixture ends."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer


class AppClients:
    def __init__(self) -> None:
        self._clients: list[TestClient[Any, Any]] = []

    async def start(self, app: web.Application) -> TestClient[Any, Any]:
        """Serve ``app`` on a free loopback port and return a client for it."""
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
