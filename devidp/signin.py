"""The browser side: ``/authorize``, the sign-in page and device-code entry.

Errors follow Entra's split: while the client or its redirect URI is not established (unknown
tenant, unknown client, unregistered redirect URI) the error is shown on the page, because sending it
to an unverified URI would make devidp an open redirector; after that, errors go to the redirect
URI as ``error``/``error_description``/``error_uri``/``state``.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from devidp import claims, errors, pages
from devidp.auth_context import NO_CLAIMS, ClaimsRequest, SignInConditions, needs_step_up, parse_claims
from devidp.errors import EntraError
from devidp.http import error_html, html, runtime
from devidp.model import Application, Tenant, User
from devidp.runtime import Runtime
from devidp.scopes import ScopeGrant, resolve_delegated
from devidp.state import AuthorizationCode, LoginTransaction, SignedIn

SESSION_COOKIE = "devidp_session"
#: The browser's sign-in binding: one random value per browser, set by the first sign-in page and
#: left alone by later ones, so every page open in any tab stays answerable. Each page carries its
#: own transaction and CSRF token, bound server-side to this value (not the other way round), which
#: is why a second page does not invalidate the first.
LOGIN_COOKIE = "devidp_login"
_BINDING = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
PROMPTS = frozenset({"login", "none", "select_account", "consent"})
RESPONSE_MODES = frozenset({"query", "form_post", "fragment"})
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url SHA-256, no padding


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how answers go once the redirect URI is known to be registered."""

    redirect_uri: str
    response_mode: str
    state: str | None


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    tenant_id: str
    client_id: str
    platform: str
    target: Target
    grant: ScopeGrant
    nonce: str | None
    code_challenge: str | None
    prompt: str
    login_hint: str
    client_info: bool
    claims: ClaimsRequest = NO_CLAIMS  # authentication contexts asked for, capabilities declared


class ShowOnPage(Exception):
    def __init__(self, error: EntraError) -> None:
        super().__init__(error.description)
        self.error = error


class SendToClient(Exception):
    def __init__(self, error: EntraError, target: Target) -> None:
        super().__init__(error.description)
        self.error = error
        self.target = target


def redirect_platform(client: Application, uri: str) -> str | None:
    """The platform (spa, web, publicClient) under which ``uri`` is registered, matched exactly.

    The one relaxation is Entra's: a public client's ``http://localhost`` URI matches any port,
    because native apps listen on whatever port is free.
    """
    for platform, uris in (
        ("spa", client.spa_redirect_uris),
        ("web", client.web_redirect_uris),
        ("publicClient", client.public_client_redirect_uris),
    ):
        if uri in uris:
            return platform
    asked = urlsplit(uri)
    if asked.scheme == "http" and asked.hostname in ("localhost", "127.0.0.1") and not asked.query:
        for registered in client.public_client_redirect_uris:
            reg = urlsplit(registered)
            if (
                reg.scheme == "http"
                and reg.hostname == asked.hostname
                and reg.port is None
                and (reg.path or "/") == (asked.path or "/")
            ):
                return "publicClient"
    return None


def validate_authorize(tenant: Tenant, params: Mapping[str, str]) -> AuthorizeRequest:
    client_id = params.get("client_id", "")
    if not client_id:
        raise ShowOnPage(errors.MISSING_PARAMETER(name="client_id"))
    client = tenant.application(client_id)
    if client is None:
        raise ShowOnPage(errors.UNKNOWN_CLIENT(client_id=client_id, tenant=tenant.id))
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise ShowOnPage(errors.MISSING_PARAMETER(name="redirect_uri"))
    if not client.all_redirect_uris():
        raise ShowOnPage(errors.NO_REDIRECT_URI_REGISTERED(client_id=client.app_id))
    platform = redirect_platform(client, redirect_uri)
    if platform is None:
        raise ShowOnPage(errors.REDIRECT_URI_MISMATCH(redirect_uri=redirect_uri, client_id=client.app_id))

    mode = params.get("response_mode", "query") or "query"
    target = Target(redirect_uri, mode if mode in RESPONSE_MODES else "query", params.get("state") or None)
    if mode not in RESPONSE_MODES:
        raise SendToClient(errors.MALFORMED_REQUEST(), target)
    response_type = params.get("response_type", "")
    if not response_type:
        raise SendToClient(errors.MISSING_PARAMETER(name="response_type"), target)
    if response_type != "code":
        raise SendToClient(errors.UNSUPPORTED_RESPONSE_TYPE(response_type=response_type), target)
    try:
        grant = resolve_delegated(tenant, client, params.get("scope", ""), on_token_endpoint=False)
        asked = parse_claims(params.get("claims", ""))
    except EntraError as exc:
        raise SendToClient(exc, target) from exc

    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is None and method is not None:
        raise SendToClient(errors.MISSING_PARAMETER(name="code_challenge"), target)
    if challenge is not None:
        if (method or "plain") != "S256":
            raise SendToClient(errors.PKCE_METHOD_UNSUPPORTED(method=method or "plain"), target)
        if not _CHALLENGE.match(challenge):
            raise SendToClient(errors.MALFORMED_REQUEST(), target)
    elif platform in ("spa", "publicClient"):
        raise SendToClient(errors.PKCE_REQUIRED(), target)

    prompt = params.get("prompt", "")
    if prompt and prompt not in PROMPTS:
        raise SendToClient(errors.MALFORMED_REQUEST(), target)
    return AuthorizeRequest(
        tenant_id=tenant.id,
        client_id=client.app_id,
        platform=platform,
        target=target,
        grant=grant,
        nonce=params.get("nonce") or None,
        code_challenge=challenge,
        prompt=prompt,
        login_hint=params.get("login_hint", ""),
        client_info=params.get("client_info") == "1",
        claims=asked,
    )


# -- answering the client -----------------------------------------------------------------------------


def send_to_client(target: Target, fields: dict[str, str]) -> web.Response:
    if target.state is not None:
        fields = {**fields, "state": target.state}
    if target.response_mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        return html(
            pages.form_post(target.redirect_uri, fields, nonce),
            headers={"Content-Security-Policy": pages.csp_with_script(nonce)},
        )
    if target.response_mode == "fragment":
        location = f"{target.redirect_uri}#{urlencode(fields)}"
    else:
        location = with_query(target.redirect_uri, fields)
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def with_query(url: str, fields: Mapping[str, str]) -> str:
    """``url`` with ``fields`` added to its query, after whatever query it already has."""
    if not fields:
        return url
    if url.endswith(("?", "&")):
        return url + urlencode(fields)
    return url + ("&" if urlsplit(url).query else "?") + urlencode(fields)


def send_error(rt: Runtime, target: Target, error: EntraError) -> web.Response:
    body = error.body(rt.base_url)
    return send_to_client(
        target,
        {
            "error": error.error,
            "error_description": body["error_description"],
            "error_uri": body["error_uri"],
        },
    )


def issue_code(
    rt: Runtime, tenant: Tenant, req: AuthorizeRequest, user: User, signed_in: SignedIn
) -> web.Response:
    code = AuthorizationCode(
        tenant_id=tenant.id,
        client_id=req.client_id,
        redirect_uri=req.target.redirect_uri,
        platform=req.platform,
        grant=req.grant,
        user_id=user.id,
        nonce=req.nonce,
        code_challenge=req.code_challenge,
        auth_time=signed_in.auth_time,
        sid=signed_in.sid,
        expires_at=rt.clock() + rt.config.lifetimes.code_seconds,
        conditions=SignInConditions(
            requested=req.claims.contexts,
            satisfied=frozenset(signed_in.satisfied_contexts),
            capabilities=req.claims.capabilities,
        ),
    )
    signed_in.signed_in_to(req.client_id)
    fields = {"code": rt.store.add_code(code)}
    if req.client_info:
        fields["client_info"] = claims.client_info(user, tenant.id)
    fields["session_state"] = signed_in.sid
    return send_to_client(req.target, fields)


def _set_cookie(rt: Runtime, response: web.StreamResponse, name: str, value: str, samesite: str) -> None:
    response.set_cookie(name, value, path="/", httponly=True, secure=rt.secure_cookies, samesite=samesite)


def _shown_page(
    request: web.Request,
    rt: Runtime,
    tenant: Tenant,
    kind: str,
    payload: object,
    render: Callable[[LoginTransaction], web.Response],
) -> web.Response:
    """A page that waits for the browser's answer: a transaction bound to the browser's cookie."""
    binding = request.cookies.get(LOGIN_COOKIE, "")
    new_binding = not _BINDING.match(binding)
    if new_binding:
        binding = secrets.token_urlsafe(32)
    tx = rt.store.add_login(kind, tenant.id, payload, binding)
    response = render(tx)
    if new_binding:
        _set_cookie(rt, response, LOGIN_COOKIE, binding, "Strict")
    return response


def answered_transaction(
    request: web.Request, rt: Runtime, tenant: Tenant, form: Mapping[str, object], kinds: tuple[str, ...]
) -> LoginTransaction | web.Response:
    """The transaction a posted page answers, or the page that says why it cannot be answered."""
    tx = rt.store.login(str(form.get("tx", "")))
    if tx is None or tx.tenant_id != tenant.id or tx.kind not in kinds:
        # Expired, already answered (a replay or a second submit), or never shown.
        return html(
            pages.error_page(
                "Sign-in expired",
                "This sign-in page has expired or was already used. Start again from the application.",
            ),
            status=400,
        )
    sent = str(form.get("csrf", ""))
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not (hmac.compare_digest(sent, tx.csrf) and hmac.compare_digest(cookie, tx.binding)):
        return html(
            pages.error_page(
                "Sign-in refused", "The sign-in form could not be verified. Start again from the application."
            ),
            status=403,
        )
    return tx


def show_sign_in(
    request: web.Request,
    rt: Runtime,
    tenant: Tenant,
    kind: str,
    payload: object,
    app_name: str,
    *,
    login_hint: str = "",
    current: User | None = None,
) -> web.Response:
    return _shown_page(
        request,
        rt,
        tenant,
        kind,
        payload,
        lambda tx: _render_sign_in(
            rt, tenant, tx.id, tx.csrf, app_name, login_hint=login_hint, current=current
        ),
    )


@dataclass(frozen=True, slots=True)
class StepUp:
    """A signed-in user asked to step up before the code is issued: the step-up page's payload."""

    authorize: AuthorizeRequest
    user_id: str
    contexts: frozenset[str]  # the protected contexts still to satisfy


def after_sign_in(
    request: web.Request, rt: Runtime, tenant: Tenant, req: AuthorizeRequest, user: User, signed_in: SignedIn
) -> web.Response:
    """A signed-in user's authorize request: the code, or first the step-up its claims ask for.

    The step-up page comes even after single sign-on; a user who cannot satisfy a context is
    blocked (AADSTS53003) and ``prompt=none`` cannot show the page (AADSTS50076).
    """
    needed = needs_step_up(req.claims, tenant.protected_contexts, frozenset(signed_in.satisfied_contexts))
    if not needed:
        return issue_code(rt, tenant, req, user, signed_in)
    if req.prompt == "none":
        return send_error(rt, req.target, errors.STEP_UP_REQUIRED(resource=req.grant.resource_identifier))
    if not needed <= user.step_up_contexts:
        return send_error(rt, req.target, errors.BLOCKED_BY_CONDITIONAL_ACCESS())
    step_up = StepUp(req, user.id, needed)
    return _shown_page(
        request, rt, tenant, "step_up", step_up, lambda tx: render_step_up(rt, tenant, tx, step_up)
    )


def render_step_up(
    rt: Runtime, tenant: Tenant, tx: LoginTransaction, step_up: StepUp, *, error: str = ""
) -> web.Response:
    names = []
    for context_id in sorted(step_up.contexts, key=lambda c: int(c[1:])):
        context = tenant.authentication_context(context_id)
        names.append(context.display_name if context else context_id)
    page = pages.step_up(
        action=f"/{tenant.id}/stepup",
        tx_id=tx.id,
        csrf=tx.csrf,
        app_name=_app_name(rt, tenant, "authorize", step_up.authorize),
        tenant_name=tenant.display_name,
        contexts=names,
        error=error,
    )
    return html(page)


def _render_sign_in(
    rt: Runtime,
    tenant: Tenant,
    tx_id: str,
    csrf: str,
    app_name: str,
    *,
    error: str = "",
    login_hint: str = "",
    current: User | None = None,
) -> web.Response:
    page = pages.sign_in(
        action=f"/{tenant.id}/login",
        tx_id=tx_id,
        csrf=csrf,
        app_name=app_name,
        tenant_name=tenant.display_name,
        users=tenant.users,
        error=error,
        login_hint=login_hint,
        current_user_id=current.id if current else None,
    )
    return html(page)


def signed_in_user(rt: Runtime, request: web.Request, tenant: Tenant) -> tuple[User, SignedIn] | None:
    session = rt.store.session(request.cookies.get(SESSION_COOKIE))
    signed_in = session.tenants.get(tenant.id) if session else None
    user = tenant.user_by_id(signed_in.user_id) if signed_in else None
    if user is None or signed_in is None or not user.account_enabled:
        return None
    return user, signed_in


# -- handlers ---------------------------------------------------------------------------------------

TenantHandler = Callable[[web.Request, Runtime, Tenant], Awaitable[web.Response]]


def in_tenant(handler: TenantHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler for a ``/{tenant}/...`` page: an unknown tenant gets Entra's AADSTS90002 page."""

    @functools.wraps(handler)
    async def with_tenant(request: web.Request) -> web.Response:
        rt = runtime(request)
        tenant = rt.config.tenant(request.match_info["tenant"])
        if tenant is None:
            return error_html(errors.TENANT_NOT_FOUND(tenant=request.match_info["tenant"]))
        return await handler(request, rt, tenant)

    return with_tenant


async def query_or_form(request: web.Request) -> Mapping[str, str]:
    """Entra takes the authorize and logout parameters by GET query or by POSTed form alike."""
    return request.query if request.method == "GET" else await request.post()  # type: ignore[return-value]


@in_tenant
async def authorize(request: web.Request, rt: Runtime, tenant: Tenant) -> web.Response:
    params = await query_or_form(request)
    try:
        req = validate_authorize(tenant, params)
    except ShowOnPage as exc:
        return error_html(exc.error)
    except SendToClient as exc:
        return send_error(rt, exc.target, exc.error)

    current = signed_in_user(rt, request, tenant)
    hint_matches = current is not None and (
        not req.login_hint or current[0].user_principal_name.lower() == req.login_hint.lower()
    )
    if req.prompt in ("", "none") and current is not None and hint_matches:
        return after_sign_in(request, rt, tenant, req, current[0], current[1])
    if req.prompt == "none":
        return send_error(rt, req.target, errors.LOGIN_REQUIRED())
    client = tenant.application(req.client_id)
    assert client is not None  # validated above
    return show_sign_in(
        request,
        rt,
        tenant,
        "authorize",
        req,
        client.display_name,
        login_hint=req.login_hint,
        current=current[0] if current else None,
    )


@in_tenant
async def login(request: web.Request, rt: Runtime, tenant: Tenant) -> web.Response:
    form = await request.post()
    tx = answered_transaction(request, rt, tenant, form, ("authorize", "device"))
    if isinstance(tx, web.Response):
        return tx
    app_name = _app_name(rt, tenant, tx.kind, tx.request)

    if form.get("cancel"):
        rt.store.finish_login(tx.id)
        if tx.kind == "authorize":
            return send_error(rt, tx.request.target, errors.USER_DECLINED_CONSENT())
        return html(pages.message("Cancelled", "Sign-in was cancelled. You can close this window."))

    user: User | None = None
    problem: EntraError | None = None
    username = ""
    if form.get("pick"):
        user = tenant.user_by_id(str(form["pick"]))
        if user is None:
            problem = errors.USER_NOT_FOUND(name=str(form["pick"]), tenant=tenant.id)
    else:
        username = str(form.get("username", ""))
        user = tenant.user_by_name(username) if username else None
        if user is None:
            problem = errors.USER_NOT_FOUND(name=username or "(empty)", tenant=tenant.id)
        elif not hmac.compare_digest(str(form.get("password", "")).encode(), user.password.encode()):
            problem, user = errors.BAD_CREDENTIALS(), None
    if user is not None and not user.account_enabled:
        problem, user = errors.USER_DISABLED(), None
    if problem is not None or user is None:
        assert problem is not None
        return _render_sign_in(
            rt, tenant, tx.id, tx.csrf, app_name, error=problem.description, login_hint=username
        )

    rt.store.finish_login(tx.id)
    cookie_value = request.cookies.get(SESSION_COOKIE)
    session = rt.store.session(cookie_value)
    new_cookie = None
    if session is None:
        new_cookie, session = rt.store.new_session(rt.config.lifetimes.session_seconds)
    signed_in = session.tenants.get(tenant.id)
    if signed_in is not None and signed_in.user_id == user.id:
        # The same user again (prompt=login, a step-up): the same sign-in session, so the same
        # sid, and the apps already signed in still get the front-channel logout.
        signed_in.auth_time = rt.now()
    else:
        signed_in = SignedIn(user.id, rt.now(), claims.new_session_id())
        session.tenants[tenant.id] = signed_in

    if tx.kind == "authorize":
        response = after_sign_in(request, rt, tenant, tx.request, user, signed_in)
    else:
        device = rt.store.device_by_user_code(str(tx.request))
        if device is None or device.user_id is not None or rt.clock() >= device.expires_at:
            response = html(
                pages.error_page("Code expired", errors.DEVICE_CODE_EXPIRED().description), status=400
            )
        else:
            device.user_id, device.auth_time = user.id, signed_in.auth_time
            response = html(
                pages.message(
                    f"Signed in to {app_name}",
                    f"You have signed in to the {app_name} application on your device. "
                    "You may now close this window.",
                )
            )
    if new_cookie is not None:
        _set_cookie(rt, response, SESSION_COOKIE, new_cookie, "Lax")
    return response


def _app_name(rt: Runtime, tenant: Tenant, kind: str, payload: object) -> str:
    client_id = payload.client_id if isinstance(payload, AuthorizeRequest) else ""
    if kind == "device":
        device = rt.store.device_by_user_code(str(payload))
        client_id = device.client_id if device else ""
    app = tenant.application(client_id) if client_id else None
    return app.display_name if app else "the application"


async def device_entry(request: web.Request) -> web.Response:
    return html(pages.device_code_entry("/devicelogin"))


async def device_submit(request: web.Request) -> web.Response:
    rt = runtime(request)
    form = await request.post()
    user_code = str(form.get("otc", "")).strip().upper().replace("-", "")
    device = rt.store.device_by_user_code(user_code) if user_code else None
    if device is None or device.user_id is not None or device.redeemed or rt.clock() >= device.expires_at:
        return html(
            pages.device_code_entry("/devicelogin", "That code didn't work. Check the code and try again."),
            status=400,
        )
    tenant = rt.config.tenant(device.tenant_id)
    assert tenant is not None
    return show_sign_in(
        request, rt, tenant, "device", device.user_code, _app_name(rt, tenant, "device", user_code)
    )


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_route("POST", "/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_post("/{tenant}/login", login)
    app.router.add_get("/devicelogin", device_entry)
    app.router.add_post("/devicelogin", device_submit)
