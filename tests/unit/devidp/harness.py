"""What the devidp tests share: devidp as a real TLS server on an ephemeral 127.0.0.1 port.

MSAL for Python and ``requests`` are synchronous; serving devidp from a thread of its own lets the
tests drive it with those real clients without blocking the server's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import socket
import ssl
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from aiohttp import web

from devidp.runtime import RUNTIME, Runtime
from stack.pki import TlsFiles

EXAMPLE = Path(__file__).resolve().parents[3] / "devidp" / "example.toml"
TENANT = "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OTHER_TENANT = "0b6c7d8e-9f01-4a23-b456-789abcdef012"
API = "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"
API_URI = f"api://{API}"
BFF = "b7f3d1e2-6c4a-4b58-9e17-3d2c1a0f9e84"
BFF_SECRET = "bff-dev-secret-change-me"
BFF_REDIRECT = "https://localhost:8443/oauth2/callback"
BFF_LOGOUT_URL = "https://localhost:8443/oauth2/front_channel_logout"
SECOND_APP = "a8c0e2f4-5b7d-4f91-8c3e-6d8f0a2b4c61"
SECOND_APP_SECRET = "second-app-dev-secret-change-me"
SECOND_APP_REDIRECT = "http://127.0.0.1:8981/callback"
SECOND_APP_LOGOUT_URL = "http://127.0.0.1:8981/front-channel-logout"
SPA = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
SPA_REDIRECT = "https://localhost:8443/"
POSTMAN = "d3e5f7a9-2b4c-4d6e-9f80-1a2b3c4d5e6f"
DAEMON = "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70"
DAEMON_SECRET = "daemon-dev-secret-change-me"
ALICE = "a11ce000-0000-4000-8000-000000000001"
CAROL = "ca201000-0000-4000-8000-000000000003"
DAVE = "da7e0000-0000-4000-8000-000000000004"
ERIN = "e2170000-0000-4000-8000-000000000005"
FRANK = "f2a4c000-0000-4000-8000-000000000006"


def example_mapping() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


class Clock:
    """Real time plus an offset tests can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class RunningIdp:
    base_url: str
    port: int
    tls: TlsFiles
    app: web.Application
    clock: Clock

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME]

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{TENANT}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def session(self) -> requests.Session:
        s = requests.Session()
        s.verify = str(self.tls.ca_cert)
        return s

    def token(self, data: dict[str, str], tenant: str = TENANT, **kwargs: Any) -> requests.Response:
        return requests.post(
            self.url(f"/{tenant}/oauth2/v2.0/token"),
            data=data,
            verify=str(self.tls.ca_cert),
            timeout=10,
            **kwargs,
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca_cert))


class ServerThread:
    def __init__(self, app: web.Application, sock: socket.socket, ssl_context: ssl.SSLContext) -> None:
        self.app, self.sock, self.ssl_context = app, sock, ssl_context
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.SockSite(self.runner, self.sock, ssl_context=self.ssl_context)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(10), "devidp did not start"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- steps the tests share -----------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def form_fields(html_text: str) -> dict[str, str]:
    """The hidden inputs of the sign-in page (tx, csrf)."""
    return {
        unescape(n): unescape(v)
        for n, v in re.findall(r'<input type=hidden name="?([^" >]+)"? value="([^"]*)"', html_text)
    }


def form_action(html_text: str) -> str:
    match = re.search(r'<form method=post action="([^"]+)"', html_text)
    assert match, "no form on the page"
    return unescape(match.group(1))


def sign_in(
    idp: RunningIdp,
    session: requests.Session,
    authorize_url: str,
    *,
    pick: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> requests.Response:
    """Open the authorize URL, submit the sign-in form; returns devidp's answer (not followed)."""
    page = session.get(authorize_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    fields = form_fields(page.text)
    data = dict(fields)
    if pick is not None:
        data["pick"] = pick
    else:
        data.update(username=username or "", password=password or "", signin="password")
    return session.post(idp.url(form_action(page.text)), data=data, allow_redirects=False, timeout=10)


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text[:500])
    query = urlsplit(response.headers["Location"]).query
    return {k: v[0] for k, v in parse_qs(query).items()}


def authorize_url(
    idp: RunningIdp,
    client_id: str,
    redirect_uri: str,
    scope: str,
    *,
    challenge: str | None = None,
    tenant: str = TENANT,
    **extra: str,
) -> str:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "st-123",
        "nonce": "n-456",
        **extra,
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return (
        requests.Request("GET", idp.url(f"/{tenant}/oauth2/v2.0/authorize"), params=params).prepare().url
        or ""
    )


def bff_authorize_url(idp: RunningIdp, scope: str, **extra: str) -> str:
    """The BFF's sign-in request (a web app, no PKCE)."""
    return authorize_url(idp, BFF, BFF_REDIRECT, scope, **extra)


def code_for(
    idp: RunningIdp,
    session: requests.Session,
    client_id: str,
    redirect_uri: str,
    scope: str,
    *,
    challenge: str | None,
    pick: str = ALICE,
) -> str:
    params = redirect_params(
        sign_in(
            idp, session, authorize_url(idp, client_id, redirect_uri, scope, challenge=challenge), pick=pick
        )
    )
    return params["code"]


def bff_code(idp: RunningIdp, session: requests.Session, scope: str) -> str:
    """Alice signs in to the BFF (a web app, no PKCE); the code its redirect URI receives."""
    return code_for(idp, session, BFF, BFF_REDIRECT, scope, challenge=None)


def unverified(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def assert_entra_error(response: requests.Response, status: int, error: str, code: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}:"), body
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert body[key], key
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
    assert response.headers["Cache-Control"] == "no-store"
    return body


ConfigEdit = Callable[[dict[str, Any]], None]


def validate_as_resource_server(
    idp: RunningIdp, token: str, audience: str, *, version: int = 2, tenant: str = TENANT
) -> dict[str, Any]:
    """What an API does with a bearer token: discovery, JWKS by kid, RS256, issuer, audience, times."""
    session = idp.session()
    path = (
        f"/{tenant}/v2.0/.well-known/openid-configuration"
        if version == 2
        else f"/{tenant}/.well-known/openid-configuration"
    )
    doc = session.get(idp.url(path), timeout=10).json()
    jwks = jwt.PyJWKClient(doc["jwks_uri"], ssl_context=idp.ssl_context(), cache_jwk_set=False)
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=doc["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud"]},
    )


BOB_UPN = "bob@contoso-dev.example"


# -- the end-session endpoint --------------------------------------------------------------------------


def logout(
    idp: RunningIdp, session: requests.Session, tenant: str = TENANT, **params: str
) -> requests.Response:
    """The browser at the end-session endpoint (not followed)."""
    return session.get(
        idp.url(f"/{tenant}/oauth2/v2.0/logout"), params=params, allow_redirects=False, timeout=10
    )


def front_channel_frames(html_text: str) -> list[str]:
    """The ``src`` of each front-channel logout iframe on the sign-out page, in page order."""
    return [
        unescape(src)
        for src in re.findall(r"<iframe hidden data-front-channel-logout [^>]*src=\"([^\"]+)\"", html_text)
    ]


def continue_to(html_text: str) -> str | None:
    """Where the sign-out page goes once its frames have loaded (None: it stays, with a message)."""
    match = re.search(r'<div id=front-channel data-continue-to="([^"]+)"', html_text)
    return unescape(match.group(1)) if match else None
