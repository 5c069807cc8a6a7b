"""Request and response bodies. Requests are strict: bounded lengths, no unknown fields, no coercion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from verifier.core.identity import Principal

ProjectStatus = Literal["active", "archived"]

# Printable text only: control characters in names end up in logs, CSV exports and terminals.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
ProjectName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_PRINTABLE)
]
ProjectDescription = Annotated[str, StringConstraints(max_length=2000)]
Banner = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=_PRINTABLE)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectCreate(_Request):
    name: ProjectName
    description: ProjectDescription = ""


class ProjectUpdate(_Request):
    name: ProjectName | None = None
    description: ProjectDescription | None = None
    status: ProjectStatus | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProjectUpdate:
        if not self.model_fields_set or all(getattr(self, f) is None for f in self.model_fields_set):
            raise ValueError("give at least one of name, description, status")
        return self


class Project(BaseModel):
    id: UUID
    name: str
    description: str
    status: ProjectStatus
    owner_oid: str
    owner_tid: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class ProjectPage(BaseModel):
    items: list[Project]
    total: int
    limit: int
    offset: int


class ProjectReport(BaseModel):
    total: int
    by_status: dict[str, int]
    owners: int


class AdminSettingsUpdate(_Request):
    read_only: bool
    max_projects_per_owner: int = Field(ge=1, le=100_000)
    banner: Banner = ""


class AdminSettings(BaseModel):
    read_only: bool
    max_projects_per_owner: int
    banner: str
    updated_at: datetime | None
    updated_by: str


class Me(BaseModel):
    oid: str
    tid: str
    name: str
    email: str
    principal_type: str
    auth_source: str
    client_id: str
    roles: list[str]
    scopes: list[str]
    groups: list[str]
    groups_overage: bool

    @classmethod
    def of(cls, principal: Principal) -> Me:
        return cls(
            oid=principal.oid,
            tid=principal.tid,
            name=principal.name,
            email=principal.email,
            principal_type=principal.principal_type,
            auth_source=principal.auth_source,
            client_id=principal.client_id,
            roles=list(principal.roles),
            scopes=list(principal.scopes),
            groups=list(principal.groups),
            groups_overage=principal.groups_overage,
        )
