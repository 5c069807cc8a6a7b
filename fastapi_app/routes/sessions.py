"""Sign out everywhere: end every browser session of the caller, or (Admins) of any user, on every
task at once.

The sessions live with the edge, not the API: the verifier of this task ends them (its
``POST /sessions/end``, over localhost). It acts only for a request it authenticated itself, so the
API sends on what the verifier signed for this one (the identity headers, their signature, the
method and target they are bound to); who may end whose sessions is decided here, by the
dependencies on each route. Every end is logged with who asked and for whom (``event``
``sessions_ended``, ``oid`` the caller, ``target_oid``), here and by the verifier.
"""

from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID

import aiohttp
from fastapi import APIRouter, Depends, Request

from fastapi_app.authentication import identity_headers, request_target
from fastapi_app.authorization import CurrentPrincipal, require_scopes
from fastapi_app.errors import Unavailable
from fastapi_app.models import SessionsEnded
from fastapi_app.policy import CAN_ADMINISTER, SCOPE_READ
from fastapi_app.refusals import ApiReason, declare, route_refusals
from fastapi_app.routes.common import operation_id
from fastapi_app.settings import ApiSettings

log = logging.getLogger(__name__)

#: The verifier answers from Redis in milliseconds; a verifier that does not is as good as down.
VERIFIER_TIMEOUT_SECONDS = 3.0


class SessionStoreUnavailable(Unavailable):
    """The verifier could not end the sessions (down, or its Redis is): 503, nothing claimed."""

    def __init__(self, detail: str) -> None:
        super().__init__(ApiReason.SESSION_STORE_UNAVAILABLE)
        self.detail = detail


class VerifierSessions:
    """The verifier's ``/sessions/end``, asked on behalf of the request being served."""

    def __init__(self, verifier_url: str) -> None:
        self.url = verifier_url + "/sessions/end"

    async def end_user(self, request: Request, caller_oid: str, target_oid: str) -> SessionsEnded:
        scope = request.scope
        headers = {
            **identity_headers(scope.get("headers", [])),
            "X-Original-Method": scope["method"],
            "X-Original-URI": request_target(scope),
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=VERIFIER_TIMEOUT_SECONDS)) as http,
                http.post(self.url, json={"oid": target_oid}, headers=headers) as answer,
            ):
                body = await answer.json(content_type=None) if answer.status == 200 else None
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise SessionStoreUnavailable(f"the verifier did not answer ({type(exc).__name__})") from None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("ended"), int):
            raise SessionStoreUnavailable(f"the verifier answered {status}")
        log.info(
            "ended every session of a user",
            extra={
                "event": "sessions_ended",
                "oid": caller_oid,
                "target_oid": target_oid,
                "sessions_ended": body["ended"],
            },
        )
        return SessionsEnded(ended=body["ended"])


def _verifier_sessions(request: Request) -> VerifierSessions:
    return request.app.state.verifier_sessions  # type: ignore[no-any-return]


Sessions = Annotated[
    VerifierSessions,
    Depends(declare(_verifier_sessions, {503: [ApiReason.SESSION_STORE_UNAVAILABLE]})),
]


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["sessions"], generate_unique_id_function=operation_id)

    @router.post("/me/sessions/end", dependencies=[Depends(require_scopes(SCOPE_READ))])
    async def end_my_sessions(
        request: Request, caller: CurrentPrincipal, sessions: Sessions
    ) -> SessionsEnded:
        """End every session of mine, in every browser, this one included."""
        return await sessions.end_user(request, caller.oid, caller.oid)

    # A user id that is no UUID matches no route: 404, as for projects.
    @router.post(
        "/users/{user_oid:uuid}/sessions/end",
        dependencies=CAN_ADMINISTER,
        openapi_extra=route_refusals(r404=[ApiReason.NOT_FOUND]),
    )
    async def end_user_sessions(
        user_oid: UUID, request: Request, caller: CurrentPrincipal, sessions: Sessions
    ) -> SessionsEnded:
        """End every session of one user (Admins: a lost laptop, an incident)."""
        return await sessions.end_user(request, caller.oid, str(user_oid))

    return router
