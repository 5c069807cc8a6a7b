"""Dependencies shared by the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from fastapi_app.database import DATABASE_UNAVAILABLE_ERRORS
from fastapi_app.errors import Unavailable

log = logging.getLogger(__name__)


async def database(request: Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for this request only, returned to the pool when the endpoint is done.

    Use with ``Depends(database, scope="function")``: the connection goes back before the response
    is sent, and a database that is down, or fails in the middle of the endpoint, becomes a 503
    ``database_unavailable`` (whatever the transaction had done is rolled back) instead of a 500.
    """
    try:
        async with request.app.state.database.connect() as conn:
            yield conn
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        request.app.state.database_health.mark_unavailable()
        # The class only: driver messages can quote connection parameters.
        log.error("database unavailable: %s", type(exc).__name__, extra={"reason": "database_unavailable"})
        raise Unavailable("database_unavailable") from exc
