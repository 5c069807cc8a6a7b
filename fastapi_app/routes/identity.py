"""``/api/me``: who the caller is, as the verifier established it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fastapi_app.authentication import current_principal
from fastapi_app.models import Me
from fastapi_app.settings import ApiSettings
from verifier.identity import Principal


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["identity"])

    @router.get("/me")
    async def me(principal: Annotated[Principal, Depends(current_principal)]) -> Me:
        return Me.of(principal)

    return router
