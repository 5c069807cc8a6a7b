"""The authorization policy of every protected endpoint, in one place.

- list and read projects: role Reader, Writer or Admin; delegated tokens also scope ``user.read``.
- create and change projects: role Writer or Admin; delegated tokens also scope ``user.write``.
- delete projects: role Admin; delegated tokens also scope ``admin``; critical (below).
- read admin settings: role Admin; delegated tokens also scope ``admin``.
- change admin settings: as reading them, and critical.
- project report: as listing, and membership in one of ``API_REPORT_GROUP_IDS``.

Critical actions re-validate the forwarded token and, unless ``API_STEP_UP_AUTH_CONTEXT`` is
``none``, need a user's sign-in to have satisfied that Conditional Access authentication context
(``c1`` by default; step-up, see ``authorization.require_auth_context``).

``/api/me`` needs only a valid signed identity: it tells a caller who it is and what it holds.

Roles are "any of"; App roles are granted to users and to applications alike, so an app-only token
passes on its role alone (it carries no scopes).
"""

from __future__ import annotations

from fastapi import Depends
from fastapi.params import Depends as DependsParam

from fastapi_app.authorization import require_auth_context, require_groups, require_roles, require_scopes
from fastapi_app.revalidation import revalidated_principal

READ_ROLES = ("Reader", "Writer", "Admin")
WRITE_ROLES = ("Writer", "Admin")
ADMIN_ROLES = ("Admin",)

SCOPE_READ = "user.read"
SCOPE_WRITE = "user.write"
SCOPE_ADMIN = "admin"

CAN_READ: list[DependsParam] = [
    Depends(require_roles(*READ_ROLES)),
    Depends(require_scopes(SCOPE_READ, allow_app_tokens=True)),
]
CAN_WRITE: list[DependsParam] = [
    Depends(require_roles(*WRITE_ROLES)),
    Depends(require_scopes(SCOPE_WRITE, allow_app_tokens=True)),
]
CAN_ADMINISTER: list[DependsParam] = [
    Depends(require_roles(*ADMIN_ROLES)),
    Depends(require_scopes(SCOPE_ADMIN, allow_app_tokens=True)),
]


def can_read_reports(group_ids: tuple[str, ...]) -> list[DependsParam]:
    return [*CAN_READ, Depends(require_groups(*group_ids))]


def critical(step_up_context: str | None) -> list[DependsParam]:
    """What a critical action needs besides its permissions: the forwarded token re-validated and,
    when ``step_up_context`` names one, that authentication context."""
    if step_up_context is None:
        return [Depends(revalidated_principal)]
    return [Depends(require_auth_context(step_up_context))]
