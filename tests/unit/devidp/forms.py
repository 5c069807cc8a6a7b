"""Token request forms of the example directory's apps, as their clients send them.

Imported as a module (``forms.bff_refresh(token)``) so a test reads as the request it makes.
"""

from __future__ import annotations

from tests.unit.devidp.harness import (
    API_URI,
    BFF,
    BFF_REDIRECT,
    BFF_SECRET,
    DAEMON,
    DAEMON_SECRET,
    POSTMAN,
    SECOND_APP,
    SECOND_APP_REDIRECT,
    SECOND_APP_SECRET,
)


def _bff(grant_type: str, **fields: str) -> dict[str, str]:
    """A request by the BFF, a confidential web app: its id and secret in the form."""
    return {"grant_type": grant_type, "client_id": BFF, "client_secret": BFF_SECRET, **fields}


def bff_code_redemption(code: str, **extra: str) -> dict[str, str]:
    return _bff("authorization_code", code=code, redirect_uri=BFF_REDIRECT) | extra


def bff_refresh(refresh_token: str, **extra: str) -> dict[str, str]:
    return _bff("refresh_token", refresh_token=refresh_token) | extra


def second_app_code_redemption(code: str) -> dict[str, str]:
    """The sign-out test app (a confidential web app) redeeming its code."""
    return {
        "grant_type": "authorization_code",
        "client_id": SECOND_APP,
        "client_secret": SECOND_APP_SECRET,
        "code": code,
        "redirect_uri": SECOND_APP_REDIRECT,
    }


def daemon_credentials(scope: str = f"{API_URI}/.default") -> dict[str, str]:
    """The daemon's client-credentials request (by default for the API's app roles)."""
    return {
        "grant_type": "client_credentials",
        "client_id": DAEMON,
        "client_secret": DAEMON_SECRET,
        "scope": scope,
    }


def pkce_redemption(client_id: str, code: str, redirect_uri: str, verifier: str) -> dict[str, str]:
    """A public client (SPA, desktop) redeeming a code with its PKCE verifier and no secret."""
    return {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }


def password(username: str, password: str, scope: str, client_id: str = POSTMAN) -> dict[str, str]:
    """A resource-owner password request (Postman's public client by default)."""
    return {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
        "scope": scope,
    }
