/**
 * What the signed-in person may do, from the roles and scopes the API reports at `/api/me`.
 *
 * This only decides which buttons to show; the API enforces the same policy on every request, so a
 * button shown by mistake leads to a visible 403, never to a write that should not happen.
 * Keep in step with fastapi_app/policy.py.
 */

import type { Me } from "./api/types";

export type Action = "project.read" | "project.create" | "project.edit" | "project.delete" | "settings.manage";

export const ALL_ACTIONS: readonly Action[] = [
  "project.read",
  "project.create",
  "project.edit",
  "project.delete",
  "settings.manage",
];

interface Rule {
  roles: readonly string[];
  // Delegated (user) tokens also need the scope; app-only tokens have no scopes and are governed by
  // their roles alone.
  scope: string;
}

const RULES: Record<Action, Rule> = {
  "project.read": { roles: ["Reader", "Writer", "Admin"], scope: "user.read" },
  "project.create": { roles: ["Writer", "Admin"], scope: "user.write" },
  "project.edit": { roles: ["Writer", "Admin"], scope: "user.write" },
  "project.delete": { roles: ["Admin"], scope: "admin" },
  "settings.manage": { roles: ["Admin"], scope: "admin" },
};

/** A scope as the token carries it, short (`user.write`) or with the API's URI prefix. */
function hasScope(scopes: readonly string[], wanted: string): boolean {
  return scopes.some((scope) => scope === wanted || scope.endsWith(`/${wanted}`));
}

export function permits(me: Pick<Me, "roles" | "scopes" | "principal_type">, action: Action): boolean {
  const rule = RULES[action];
  if (!me.roles.some((role) => rule.roles.includes(role))) {
    return false;
  }
  return me.principal_type === "app" || hasScope(me.scopes, rule.scope);
}

export function permittedActions(me: Pick<Me, "roles" | "scopes" | "principal_type">): Set<Action> {
  return new Set(ALL_ACTIONS.filter((action) => permits(me, action)));
}
