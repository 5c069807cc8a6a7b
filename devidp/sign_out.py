"""``/logout``, Entra's end-session endpoint, and single sign-out.

The session ends first, whatever else is wrong with the request. When apps signed in to during it
registered a front-channel logout URL (``web.logoutUrl``), the answer is a page that loads each in a
hidden iframe with ``?sid=`` and then goes on to the validated ``post_logout_redirect_uri``; else
the browser goes straight there (or sees the signed-out message). ``post_logout_redirect_uri`` is
checked against the app the request names, so the endpoint is no open redirector.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

import jwt
from aiohttp import web

from devidp import errors, pages
from devidp.errors import EntraError
from devidp.http import error_html, html
from devidp.model import Application, Tenant
from devidp.runtime import Runtime
from devidp.signin import SESSION_COOKIE, in_tenant, query_or_form, with_query
from devidp.state import SignedIn


@in_tenant
async def logout(request: web.Request, rt: Runtime, tenant: Tenant) -> web.Response:
    params = await query_or_form(request)
    ended = rt.store.end_session(request.cookies.get(SESSION_COOKIE), tenant.id)
    frames = front_channel_frames(tenant, ended)
    target = params.get("post_logout_redirect_uri", "")
    problem = _unregistered_post_logout_target(rt, tenant, params, target) if target else None
    continue_to = None
    if target and problem is None:
        continue_to = with_query(target, {"state": params["state"]} if params.get("state") else {})
    if frames:
        # The session is over whatever else is wrong with the request, so the apps are told too.
        return _front_channel_page(frames, continue_to, problem)
    if problem is not None:
        return error_html(problem)
    if continue_to is None:
        return html(
            pages.message("You signed out of your account", "It's a good idea to close all browser windows.")
        )
    return web.Response(status=302, headers={"Location": continue_to, "Cache-Control": "no-store"})


def front_channel_frames(tenant: Tenant, ended: SignedIn | None) -> list[tuple[Application, str]]:
    """The apps signed in to during the ended sign-in that registered a front-channel logout URL,
    each with the URL to load: its ``logoutUrl`` plus ``sid`` (Entra sends no ``iss``)."""
    if ended is None:
        return []
    frames = []
    for client_id in ended.client_ids:
        app = tenant.application(client_id)
        if app is not None and app.logout_url:
            frames.append((app, with_query(app.logout_url, {"sid": ended.sid})))
    return frames


def _front_channel_page(
    frames: list[tuple[Application, str]], continue_to: str | None, problem: EntraError | None
) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    page = pages.front_channel_sign_out(
        [(app.display_name, url) for app, url in frames],
        continue_to=continue_to,
        script_nonce=nonce,
        error=problem.description if problem else "",
    )
    origins = sorted({_origin(url) for _, url in frames})
    return html(
        page,
        status=400 if problem else 200,
        headers={"Content-Security-Policy": pages.csp_with_frames(nonce, origins)},
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _unregistered_post_logout_target(
    rt: Runtime, tenant: Tenant, params: Mapping[str, str], target: str
) -> EntraError | None:
    """AADSTS50011 unless ``target`` is registered by the app the request names (``client_id`` or
    ``id_token_hint``'s audience), or by any app of the tenant when it names none."""
    candidates = list(tenant.applications)
    client_id = params.get("client_id", "") or _hinted_client(rt, params.get("id_token_hint", ""))
    if client_id:
        client = tenant.application(client_id)
        candidates = [client] if client else []
    registered = (app.post_logout_redirect_uris + app.all_redirect_uris() for app in candidates)
    if any(target in uris for uris in registered):
        return None
    return errors.POST_LOGOUT_REDIRECT_NOT_REGISTERED(uri=target)


def _hinted_client(rt: Runtime, id_token_hint: str) -> str:
    if not id_token_hint:
        return ""
    try:
        # An expired ID token is still a fine hint of which app is signing out.
        return str(rt.decode_own_token(id_token_hint, verify_exp=False).get("aud", ""))
    except jwt.InvalidTokenError:
        return ""


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/{tenant}/oauth2/v2.0/logout", logout)
    app.router.add_route("POST", "/{tenant}/oauth2/v2.0/logout", logout)
