"""nginx must close idle connections to the API before uvicorn does.

Otherwise nginx can send a request down a connection uvicorn is closing at that moment; nginx does
not retry a POST, and the user gets an error for a request that never reached the API.
"""

from __future__ import annotations

import re

from fastapi_app.__main__ import KEEP_ALIVE_SECONDS
from tests.unit.fastapi_app.edge_path import edge_conf, location_block

#: nginx's keepalive_timeout for upstream connections when the block names none.
NGINX_DEFAULT_UPSTREAM_KEEPALIVE_SECONDS = 60


def nginx_api_keepalive_seconds() -> int:
    block = location_block(edge_conf(), "upstream edge_api {")
    found = re.search(r"^\s*keepalive_timeout\s+(\d+)s?;", block, re.M)
    return int(found.group(1)) if found else NGINX_DEFAULT_UPSTREAM_KEEPALIVE_SECONDS


def test_uvicorn_keeps_idle_connections_longer_than_nginx_reuses_them() -> None:
    assert nginx_api_keepalive_seconds() < KEEP_ALIVE_SECONDS
