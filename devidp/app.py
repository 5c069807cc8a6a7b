"""The devidp aiohttp application, built from a :class:`~devidp.model.DevIdpConfig`."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from devidp import admin, discovery, sign_out, signin, step_up, token
from devidp.keys import KeyRing, generate_signing_key, load_or_create_signing_key
from devidp.model import DevIdpConfig
from devidp.runtime import RUNTIME, Runtime
from devidp.state import Clock, GrantStore

log = logging.getLogger("devidp")


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Logs method, path and status but never the query string, which can carry ``id_token_hint``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms", request.remote, request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def create_app(
    config: DevIdpConfig, *, keys: KeyRing | None = None, clock: Clock = time.time
) -> web.Application:
    if keys is None:
        key_file = config.signing.key_file
        keys = KeyRing(
            load_or_create_signing_key(Path(key_file)) if key_file else generate_signing_key(),
            clock=clock,
            rotation_seconds=config.signing.rotation_seconds,
        )
    app = web.Application(client_max_size=64 * 1024)
    app[RUNTIME] = Runtime(
        config=config,
        keys=keys,
        store=GrantStore(clock),
        clock=clock,
        rng=random.Random(config.lifetimes.random_seed),
    )
    discovery.add_routes(app)
    token.add_routes(app)
    signin.add_routes(app)
    sign_out.add_routes(app)
    step_up.add_routes(app)
    if config.admin.enabled:
        admin.add_routes(app)
    return app
