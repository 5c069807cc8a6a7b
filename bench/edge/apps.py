"""The comparison designs' FastAPI apps, served by uvicorn exactly as ``python -m fastapi_app`` serves ours.

* ``bare``: one endpoint that answers ``{"status": "ok"}`` and does nothing else: the floor of the
  server, loop, HTTP parser and framework our API runs on.
* ``in_app``: the "validate in the app" design. ``GET /api/me`` validates the caller's bearer token
  with PyJWT in-process (RS256, issuer, audience, required claims, the devidp JWKS fetched once at
  start-up) and answers the same :class:`fastapi_app.models.Me` body ours does. The plain
  oauth2-proxy design reuses it behind nginx: there nginx puts the session's access token from
  oauth2-proxy's ``/oauth2/auth`` into ``Authorization``, and the app validates it the same way.

Run by the harness as ``python -m bench.edge.apps <bare|in_app>`` with its settings in ``BENCH_APP_*``
environment variables; uvicorn's ``factory=True`` builds the app in each worker.
"""

# No `from __future__ import annotations`: FastAPI must resolve the nested dependencies' annotations.

import os
import socket
import ssl
import sys
from typing import Annotated, Any

import httpx
import jwt
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from uvicorn.supervisors import Multiprocess

from fastapi_app.models import Me

REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "oid", "tid"]


def bare_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _signing_keys(jwks_url: str, ca_file: str) -> dict[str, Any]:
    """kid -> public key, fetched once: the in-app design at its best (keys preloaded, no refetch)."""
    response = httpx.get(jwks_url, verify=ca_file, timeout=10.0, trust_env=False)
    response.raise_for_status()
    key_set = jwt.PyJWKSet.from_dict(response.json())
    return {key.key_id: key.key for key in key_set.keys}


def in_app() -> FastAPI:
    issuer = os.environ["BENCH_APP_ISSUER"]
    audiences = os.environ["BENCH_APP_AUDIENCES"].split(",")
    keys = _signing_keys(os.environ["BENCH_APP_JWKS_URL"], os.environ["BENCH_APP_CA_FILE"])
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    async def bearer_claims(authorization: str | None) -> dict[str, Any]:
        # async: validation runs on the event loop, not the thread pool, the cheapest way FastAPI allows.
        if authorization is None or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        token = authorization[len("Bearer ") :]
        try:
            key = keys.get(jwt.get_unverified_header(token).get("kid", ""))
            if key is None:
                raise jwt.InvalidTokenError("unknown kid")
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            raise HTTPException(
                401, "invalid token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from exc

    # As lean as our own /api/me (fastapi_app/routes/identity.py), so the two differ only in where
    # identity is decided: no dependency for FastAPI to solve, Me's own JSON answered as is.
    @app.get("/api/me", response_model=Me)
    async def me(request: Request) -> Response:
        claims = await bearer_claims(request.headers.get("authorization"))
        return Response(me_from_claims(claims).model_dump_json(), media_type="application/json")

    return app


def me_from_claims(claims: dict[str, Any]) -> Me:
    """What our ``/api/me`` answers, built from validated claims as an in-app design has them."""
    return Me(
        oid=claims["oid"],
        tid=claims["tid"],
        name=claims.get("name", ""),
        email=claims.get("preferred_username", ""),
        principal_type="user" if "scp" in claims else "app",
        auth_source="bearer",
        client_id=claims.get("azp", claims.get("appid", "")),
        roles=list(claims.get("roles", [])),
        scopes=claims.get("scp", "").split(),
        groups=list(claims.get("groups", [])),
        groups_overage=False,
    )


def azure_auth_app() -> FastAPI:
    """The in-app design with fastapi-azure-auth instead of hand-written PyJWT calls.

    Pointed at devidp without patching it: ``openid_config_url`` names devidp's discovery document and
    ``http_client_config`` trusts the stack's CA. Keys are loaded on the first request and cached for
    24 hours, as the library does; every request then validates with PyJWT and builds its ``User``.
    """
    from fastapi import Security
    from fastapi_azure_auth.auth import AzureAuthorizationCodeBearerBase
    from fastapi_azure_auth.user import User

    auth = AzureAuthorizationCodeBearerBase(
        app_client_id=os.environ["BENCH_APP_CLIENT_ID"],
        tenant_id=os.environ["BENCH_APP_TENANT_ID"],
        openid_config_url=os.environ["BENCH_APP_OPENID_CONFIG_URL"],
        openapi_authorization_url=os.environ["BENCH_APP_OPENID_CONFIG_URL"],
        openapi_token_url=os.environ["BENCH_APP_OPENID_CONFIG_URL"],
        http_client_config={"verify": ssl.create_default_context(cafile=os.environ["BENCH_APP_CA_FILE"])},
    )
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/me")
    async def me(user: Annotated[User, Security(auth)]) -> Me:
        return me_from_claims(user.claims)

    return app


FACTORIES = {"bare": "bare_app", "in_app": "in_app", "azure_auth": "azure_auth_app"}


def main(kind: str) -> None:
    # The same uvicorn options as fastapi_app/__main__.py: loop and http "auto", which picks uvloop
    # and httptools where they are installed (ours names them; on the base commit neither is).
    config = uvicorn.Config(
        f"bench.edge.apps:{FACTORIES[kind]}",
        factory=True,
        host="127.0.0.1",
        port=int(os.environ["BENCH_APP_PORT"]),
        workers=int(os.environ.get("BENCH_APP_WORKERS", "1")),
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_config=None,
        log_level="warning",
    )
    if config.workers == 1:
        uvicorn.Server(config).run()
        return
    # What uvicorn.run does for workers > 1, with one correction: Config.bind_socket() leaves the
    # listener's proto at 0, accepted sockets inherit it, and asyncio then never sets TCP_NODELAY on
    # them, so every keep-alive response waits ~40 ms for the client's delayed ACK (uvicorn issue
    # 3149, open for 0.54). Declaring the protocol gives the multi-worker design the same TCP
    # behaviour as a single worker.
    bound = config.bind_socket()
    listener = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    Multiprocess(config, sockets=[listener]).run()


if __name__ == "__main__":
    main(sys.argv[1])
