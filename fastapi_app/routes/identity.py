"""``/api/me``: who the caller is, as the verifier established it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fastapi_app.authentication import current_principal
from fastapi_app.models import Me
from fastapi_app.routes.common import operation_id
from fastapi_app.settings import ApiSettings

JSON = "application/json"


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["identity"], generate_unique_id_function=operation_id)

    # The hot path of every client, so FastAPI is given as little to do as the same answer allows:
    # - the principal comes from ``current_principal`` called here rather than declared with
    #   ``Depends``: the same check (the guard's principal, or the signature checked here when the
    #   app runs without the guard), without a dependency for FastAPI to solve on each call; it has
    #   no parameters of its own, so the OpenAPI document is the same;
    # - ``response_model`` keeps the documented schema, and the body is ``Me``'s own JSON answered
    #   as is: returned as ``Me``, FastAPI would validate the model it was just given once more and
    #   serialize it through its response field, to the same bytes.
    @router.get("/me", response_model=Me)
    async def me(request: Request) -> Response:
        principal = await current_principal(request)
        return Response(Me.of(principal).model_dump_json(), media_type=JSON)

    return router
