"""The app behind Apache httpd with mod_auth_openidc: ``GET /api/me`` answered from Apache's claim headers.

mod_auth_openidc validates the caller and passes the claims it accepted to the upstream in
``OIDC_CLAIM_<claim>`` request headers (after removing any such header the client sent). This app
trusts them as they come and validates nothing again: what a team choosing design 5 runs behind
Apache. It answers the same :class:`fastapi_app.models.Me` body as our API and the in-app design,
served by uvicorn with the options ``python -m fastapi_app`` uses, so the Apache rows of the edge
benchmark differ from ours only in what sits in front.

Run by the harness as ``python -m bench.edge.claims_app`` with ``BENCH_APP_PORT`` set; one worker, as
our API runs behind nginx.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations at run time.

import os

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from fastapi_app.models import Me

#: mod_auth_openidc's default OIDCClaimPrefix, as Starlette spells header names (lower case).
CLAIM_PREFIX = "oidc_claim_"
#: Set by Apache's configuration per virtual host (mod_headers): which of its two modes admitted the call.
AUTH_SOURCE_HEADER = "x-bench-auth-source"
#: mod_auth_openidc's default OIDCClaimDelimiter, between the values of an array claim.
DELIMITER = ","


def me_from_headers(headers: dict[str, str], auth_source: str) -> Me | None:
    """The caller as Apache described it, or None when Apache passed no ``oid``."""

    def claim(name: str) -> str:
        return headers.get(CLAIM_PREFIX + name, "")

    def values(name: str, separator: str = DELIMITER) -> list[str]:
        return [v for v in claim(name).split(separator) if v]

    if not claim("oid"):
        return None
    scopes = values("scp", " ")
    return Me(
        oid=claim("oid"),
        tid=claim("tid"),
        name=claim("name"),
        email=claim("preferred_username"),
        principal_type="user" if scopes or auth_source == "session" else "app",
        auth_source=auth_source,
        client_id=claim("azp") or claim("appid") or claim("aud"),
        roles=values("roles"),
        scopes=scopes,
        groups=values("groups"),
        groups_overage=False,
    )


def claims_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/me", response_model=Me)
    async def me(request: Request) -> Response:
        headers = dict(request.headers)
        found = me_from_headers(headers, headers.get(AUTH_SOURCE_HEADER, ""))
        if found is None:
            # Apache let a request through without an identity: a configuration error, not a caller's.
            return JSONResponse({"error": "no identity from Apache"}, status_code=500)
        return Response(found.model_dump_json(), media_type="application/json")

    return app


def main() -> None:
    # The uvicorn options of fastapi_app/__main__.py and bench.edge.apps, one worker.
    uvicorn.Server(
        uvicorn.Config(
            "bench.edge.claims_app:claims_app",
            factory=True,
            host="127.0.0.1",
            port=int(os.environ["BENCH_APP_PORT"]),
            proxy_headers=False,
            access_log=False,
            server_header=False,
            log_config=None,
            log_level="warning",
        )
    ).run()


if __name__ == "__main__":
    main()
