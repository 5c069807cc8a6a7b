"""The OpenAPI page: Swagger UI from our own origin, configured by an external script, under a strict CSP.

FastAPI's built-in page loads Swagger UI from a CDN and configures it with inline ``<script>``
blocks. Neither survives a ``script-src 'self'`` policy, and a third-party script on a page that
signs people in is a supply-chain risk. Here every piece is a file from our own origin:

- ``/swagger-ui/swagger-ui-bundle.js``, ``swagger-ui.css`` and ``oauth2-redirect.js``: copied from
  the pinned ``swagger-ui-dist`` package into the SPA build (``spa/scripts/copy-swagger-ui.mjs``) and
  served by nginx beside the SPA;
- ``/api/docs/init.js``: the configuration, generated here from the settings;
- ``/api/docs`` and ``/api/docs/oauth2-redirect``: two small HTML pages that only load the above.

This module imports nothing but the settings: the identity guard reads ``DOCS_PATHS`` from it.

"Authorize" runs authorization code + PKCE (S256) in a popup against the configured authority with
the public SPA client; the token stays in the page's memory (``persistAuthorization`` is off) and is
sent as ``Authorization: Bearer`` by "Try it out", which nginx and the verifier judge like any other
bearer call.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from fastapi_app.routes.common import operation_id
from fastapi_app.settings import ApiSettings

DOCS_PATH = "/api/docs"
DOCS_INIT_PATH = "/api/docs/init.js"
OAUTH2_REDIRECT_PATH = "/api/docs/oauth2-redirect"
OPENAPI_PATH = "/api/openapi.json"
#: Where nginx serves the files copied from swagger-ui-dist (the SPA build's ``swagger-ui/``).
SWAGGER_UI_ASSETS = "/swagger-ui"

#: Every path this module serves, for the identity guard's list of open paths.
DOCS_PATHS = frozenset({DOCS_PATH, DOCS_INIT_PATH, OAUTH2_REDIRECT_PATH, OPENAPI_PATH})

_DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<link rel="stylesheet" href="{SWAGGER_UI_ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_INIT_PATH}"></script>
</body>
</html>
"""

_OAUTH2_REDIRECT_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Signing in</title>
</head>
<body>
<script src="{SWAGGER_UI_ASSETS}/oauth2-redirect.js"></script>
</body>
</html>
"""

# Swagger UI's configuration, filled in with one JSON object. Only JSON is ever interpolated, and it
# is escaped so that no value can close a script or start markup (see ``script_json``).
_INIT_JS = """"use strict";
(function () {
  var config = %s;
  var ui = SwaggerUIBundle({
    url: config.openapiUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // The popup returns to this origin, whatever host name the page was opened under.
    oauth2RedirectUrl: window.location.origin + config.oauth2RedirectPath,
    // Tokens live in this page's memory only, never in localStorage.
    persistAuthorization: false,
    // The default would load a badge from a third-party validator.
    validatorUrl: null,
    showMutatedRequest: true
  });
  ui.initOAuth(config.initOAuth);
  window.ui = ui;
})();
"""

# Python's json.dumps leaves these as they are; in a script they could end the script element
# (``</script>``), open a comment (``<!--``) or, for U+2028/U+2029, end a line in older engines.
_SCRIPT_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(value: Any) -> str:
    """``value`` as a JSON literal that is safe to place inside JavaScript source."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True).translate(_SCRIPT_ESCAPES)


def content_security_policy(settings: ApiSettings) -> str:
    """The docs pages' policy: our own scripts only; the authority is reachable for the sign-in.

    ``connect-src`` lets Swagger UI redeem the code at the authority's token endpoint (cross-origin,
    as Entra requires for SPA clients); ``form-action`` covers the authority's sign-in form posting
    back. ``style-src 'unsafe-inline'`` is needed because Swagger UI's React components set ``style``
    attributes (collapsing sections, the models panel); no script runs from inline code.
    """
    authority = settings.authority_origin
    return (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self' {authority}; form-action 'self' {authority}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def init_script(settings: ApiSettings, *, title: str, scopes: str) -> str:
    config = {
        "openapiUrl": OPENAPI_PATH,
        "oauth2RedirectPath": OAUTH2_REDIRECT_PATH,
        "initOAuth": {
            "clientId": settings.openapi_client_id,
            "appName": title,
            "usePkceWithAuthorizationCodeGrant": True,
            "scopes": scopes,
        },
    }
    return _INIT_JS % script_json(config)


def build_router(settings: ApiSettings, *, title: str, scopes: str) -> APIRouter:
    """``scopes``: what the Authorize dialog pre-selects (space-separated)."""
    router = APIRouter(include_in_schema=False, generate_unique_id_function=operation_id)
    headers = {"Content-Security-Policy": content_security_policy(settings), "Cache-Control": "no-store"}
    page = _DOCS_HTML.replace("{title}", html.escape(title))
    script = init_script(settings, title=title, scopes=scopes)

    @router.get(DOCS_PATH)
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    @router.get(DOCS_INIT_PATH)
    async def docs_init() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get(OAUTH2_REDIRECT_PATH)
    async def oauth2_redirect() -> HTMLResponse:
        return HTMLResponse(_OAUTH2_REDIRECT_HTML, headers=headers)

    return router
