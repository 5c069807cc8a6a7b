import { describe, expect, it } from "vitest";
import { ALL_ACTIONS, permittedActions, permits, type Action } from "./permissions";

const ALL_SCOPES = ["user.read", "user.write", "admin"];

function user(roles: string[], scopes: string[] = ALL_SCOPES) {
  return { roles, scopes, principal_type: "user" };
}

function sorted(actions: Set<Action>): Action[] {
  return [...actions].sort();
}

describe("permittedActions", () => {
  it("lets a Reader only read", () => {
    expect(sorted(permittedActions(user(["Reader"])))).toEqual(["project.read"]);
  });

  it("lets a Writer read, create and edit but not delete or manage settings", () => {
    expect(sorted(permittedActions(user(["Writer"])))).toEqual(["project.create", "project.edit", "project.read"]);
  });

  it("lets an Admin do everything", () => {
    expect(sorted(permittedActions(user(["Admin"])))).toEqual([...ALL_ACTIONS].sort());
  });

  it("gives nothing to a user without an app role, whatever the scopes", () => {
    expect(permittedActions(user([])).size).toBe(0);
  });

  it("ignores roles it does not know and role names in the wrong case", () => {
    expect(permittedActions(user(["writer", "ADMIN", "Owner"])).size).toBe(0);
  });

  it("needs the matching delegated scope as well as the role", () => {
    expect(sorted(permittedActions(user(["Admin"], ["user.read"])))).toEqual(["project.read"]);
    expect(sorted(permittedActions(user(["Writer"], ["user.read", "user.write"])))).toEqual([
      "project.create",
      "project.edit",
      "project.read",
    ]);
    expect(permits(user(["Admin"], ["user.read", "user.write"]), "project.delete")).toBe(false);
    expect(permits(user(["Admin"], ["user.read", "user.write"]), "settings.manage")).toBe(false);
  });

  it("accepts scopes written with the API's URI prefix", () => {
    const prefixed = ALL_SCOPES.map((s) => `api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57/${s}`);
    expect(permits(user(["Writer"], prefixed), "project.create")).toBe(true);
  });

  it("does not mistake a scope that merely ends with the name for the scope", () => {
    expect(permits(user(["Writer"], ["superuser.write"]), "project.create")).toBe(false);
  });

  it("governs app-only principals by their roles alone, since they carry no scopes", () => {
    const app = { roles: ["Writer"], scopes: [], principal_type: "app" };
    expect(sorted(permittedActions(app))).toEqual(["project.create", "project.edit", "project.read"]);
  });
});
