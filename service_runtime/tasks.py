"""Background tasks of a service: stopped the one way that leaves nothing running."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has really finished: a task only cancelled may still
    be running its cleanup when the caller closes what the task uses."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
