"""Request and response bodies. Requests are strict: bounded lengths, no unknown fields, no coercion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from verifier.core.identity import Principal

ProjectStatus = Literal["active", "archived"]

# The schema says everything the validation enforces, so a client generated from the OpenAPI document
# sends only what is accepted, and is refused only what the document refuses. Printable text only
# (control characters in names end up in logs, CSV exports and terminals), with no space at either
# end (a plain space, so the class means the same in every regex dialect): refused, not silently
# stripped, so the stored value is the one that was sent.
_TRIMMED_PRINTABLE = r"[^ \x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^ \x00-\x1f\x7f])?"
ProjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=f"^{_TRIMMED_PRINTABLE}$")
]
ProjectDescription = Annotated[str, StringConstraints(max_length=2000)]
Banner = Annotated[str, StringConstraints(max_length=200, pattern=f"^({_TRIMMED_PRINTABLE})?$")]


def _integral(value: object) -> object:
    # JSON has one number type, and JSON Schema calls 3.0 an integer: accept it as 3 (and nothing
    # else that is not an int: "3", true and 3.5 stay refused by the strict int below).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer as JSON Schema means it: 3 and 3.0, not "3", true or 3.5.
JsonInteger = Annotated[int, BeforeValidator(_integral)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectCreate(_Request):
    name: ProjectName
    description: ProjectDescription = ""


def _partial_change_schema(schema: dict[str, Any]) -> None:
    # At least one field (the validator below), and an absent field is "unchanged", not null: the
    # document shows no default for it.
    schema["minProperties"] = 1
    for field in schema.get("properties", {}).values():
        field.pop("default", None)


class ProjectUpdate(_Request):
    """A partial change: at least one field, each with a value (null is no value)."""

    # Merged with _Request's (strict, no unknown fields).
    model_config = ConfigDict(json_schema_extra=_partial_change_schema)

    name: ProjectName = Field(default=None)  # type: ignore[assignment]
    description: ProjectDescription = Field(default=None)  # type: ignore[assignment]
    status: ProjectStatus = Field(default=None)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _not_empty(self) -> ProjectUpdate:
        if not self.model_fields_set:
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
    max_projects_per_owner: JsonInteger = Field(ge=1, le=100_000)
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


class SessionsEnded(BaseModel):
    """How many sessions "sign out everywhere" ended, across every task."""

    ended: int = Field(ge=0)
