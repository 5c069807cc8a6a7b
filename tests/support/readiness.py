"""Waiting for a verifier under test to load its keys: on a condition, with a generous deadline."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient


async def wait_ready(client: TestClient, *, deadline_seconds: float = 5.0) -> None:
    """Return once ``/readyz`` answers 200; fail the test after ``deadline_seconds``."""
    async with asyncio.timeout(deadline_seconds):
        while True:
            async with client.get("/readyz") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.02)
