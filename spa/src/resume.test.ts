import { describe, expect, it } from "vitest";
import {
  encodeSettingsDraft,
  parseResumeMarker,
  parseSettingsDraft,
  resumeReturnPath,
  takeResumeAction,
  withoutResumeMarker,
  type ResumeAction,
} from "./resume";

const PROJECT = "0b7e3f6c-2d4a-4c1e-9f3b-5a6d7e8f9012";
const DRAFT = { read_only: true, max_projects_per_owner: 250, banner: "Maintenance tonight" };

function draftParam(json: string): string {
  return Buffer.from(json, "utf8").toString("base64url");
}

describe("the return path of a step-up sign-in", () => {
  it("is the path and the delete marker, nothing else", () => {
    expect(resumeReturnPath("/", { kind: "delete-project", projectId: PROJECT })).toBe(
      `/?resume=delete-project&project=${PROJECT}`,
    );
  });

  it("carries the settings draft as base64url of its compact JSON, in a fixed key order", () => {
    const path = resumeReturnPath("/admin", { kind: "admin-settings", draft: { banner: "x", max_projects_per_owner: 5, read_only: false } });
    const encoded = draftParam('{"read_only":false,"max_projects_per_owner":5,"banner":"x"}');
    expect(path).toBe(`/admin?resume=admin-settings&draft=${encoded}`);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("comes back as the same action", () => {
    const actions: ResumeAction[] = [
      { kind: "delete-project", projectId: PROJECT },
      { kind: "admin-settings", draft: DRAFT },
      { kind: "admin-settings", draft: { read_only: false, max_projects_per_owner: 100000, banner: "Ünïcødé ✓ 🚧 \"quoted\" \\ <b>" } },
      { kind: "admin-settings", draft: { read_only: false, max_projects_per_owner: 1, banner: "😀".repeat(100) } },
    ];
    for (const action of actions) {
      const path = resumeReturnPath("/", action);
      expect(parseResumeMarker(path.slice(1))).toEqual(action);
    }
  });

  it("fits the largest draft the form allows", () => {
    const draft = { read_only: false, max_projects_per_owner: 100000, banner: "\u0001".repeat(200) };
    expect(parseResumeMarker(`?resume=admin-settings&draft=${encodeSettingsDraft(draft)}`)).toEqual({ kind: "admin-settings", draft });
  });
});

describe("reading the resume marker", () => {
  it("finds none in an ordinary address", () => {
    expect(parseResumeMarker("")).toBeNull();
    expect(parseResumeMarker("?page=2")).toBeNull();
    expect(parseResumeMarker(`?project=${PROJECT}`)).toBeNull();
  });

  it("reads a delete of a project by its UUID", () => {
    expect(parseResumeMarker(`?resume=delete-project&project=${PROJECT}`)).toEqual({ kind: "delete-project", projectId: PROJECT });
    expect(parseResumeMarker(`?project=${PROJECT}&resume=delete-project`)).toEqual({ kind: "delete-project", projectId: PROJECT });
  });

  it("refuses a kind it does not know", () => {
    for (const kind of ["", "delete", "Delete-project", "admin-settings ", "constructor", "__proto__", "toString"]) {
      expect(parseResumeMarker(`?resume=${encodeURIComponent(kind)}&project=${PROJECT}`), kind).toEqual({
        kind: "refused",
        reason: "unknown_kind",
      });
    }
  });

  it("refuses a parameter given twice", () => {
    for (const search of [
      `?resume=delete-project&resume=delete-project&project=${PROJECT}`,
      `?resume=delete-project&project=${PROJECT}&project=${PROJECT}`,
      `?resume=admin-settings&draft=${encodeSettingsDraft(DRAFT)}&draft=${encodeSettingsDraft(DRAFT)}`,
    ]) {
      expect(parseResumeMarker(search), search).toEqual({ kind: "refused", reason: "repeated_parameter" });
    }
  });

  it("refuses a marker without its subject", () => {
    expect(parseResumeMarker("?resume=delete-project")).toEqual({ kind: "refused", reason: "missing_parameter" });
    expect(parseResumeMarker(`?resume=admin-settings&project=${PROJECT}`)).toEqual({ kind: "refused", reason: "missing_parameter" });
  });

  it("refuses a marker with anything else in the query", () => {
    for (const search of [
      `?resume=delete-project&project=${PROJECT}&draft=${encodeSettingsDraft(DRAFT)}`,
      `?resume=delete-project&project=${PROJECT}&confirm=1`,
      `?resume=admin-settings&draft=${encodeSettingsDraft(DRAFT)}&save=yes`,
    ]) {
      expect(parseResumeMarker(search), search).toEqual({ kind: "refused", reason: "unexpected_parameter" });
    }
  });

  it("refuses a project id that is not a lower-case UUID", () => {
    const ids = ["", "1", "p1", PROJECT.toUpperCase(), PROJECT.replace(/-/g, ""), `${PROJECT}x`, ` ${PROJECT}`, `{${PROJECT}}`];
    for (const id of [...ids, "../admin/settings", `${PROJECT}/../x`]) {
      expect(parseResumeMarker(`?resume=delete-project&project=${encodeURIComponent(id)}`), id).toEqual({
        kind: "refused",
        reason: "bad_project_id",
      });
    }
  });

  it("refuses a draft that is not base64url of UTF-8", () => {
    const standard = Buffer.from('{"banner":"???>>>"}').toString("base64");
    for (const draft of ["", "a", "abc=", standard, "%%%", "a b", Buffer.from([0xff, 0xfe, 0x7b]).toString("base64url"), "A".repeat(2049)]) {
      expect(parseResumeMarker(`?resume=admin-settings&draft=${encodeURIComponent(draft)}`), draft).toEqual({
        kind: "refused",
        reason: "bad_draft_encoding",
      });
    }
  });

  it("refuses a draft that is not JSON", () => {
    for (const json of ["{", "read_only=true", "{'read_only': true}", "NaN"]) {
      expect(parseResumeMarker(`?resume=admin-settings&draft=${draftParam(json)}`), json).toEqual({
        kind: "refused",
        reason: "bad_draft_json",
      });
    }
  });

  it("refuses a draft of another shape or outside the form's bounds", () => {
    for (const json of [
      "null",
      "[]",
      '"settings"',
      '{"read_only":true,"max_projects_per_owner":250}',
      '{"read_only":true,"max_projects_per_owner":250,"banner":"","extra":1}',
      '{"read_only":true,"max_projects_per_owner":250,"banner":"","__proto__":{"x":1}}',
      '{"read_only":"true","max_projects_per_owner":250,"banner":""}',
      '{"read_only":1,"max_projects_per_owner":250,"banner":""}',
      '{"read_only":true,"max_projects_per_owner":"250","banner":""}',
      '{"read_only":true,"max_projects_per_owner":0,"banner":""}',
      '{"read_only":true,"max_projects_per_owner":100001,"banner":""}',
      '{"read_only":true,"max_projects_per_owner":2.5,"banner":""}',
      '{"read_only":true,"max_projects_per_owner":1e400,"banner":""}',
      '{"read_only":true,"max_projects_per_owner":-5,"banner":""}',
      '{"read_only":true,"max_projects_per_owner":250,"banner":null}',
      '{"read_only":true,"max_projects_per_owner":250,"banner":["x"]}',
      `{"read_only":true,"max_projects_per_owner":250,"banner":"${"x".repeat(201)}"}`,
    ]) {
      expect(parseResumeMarker(`?resume=admin-settings&draft=${draftParam(json)}`), json).toEqual({
        kind: "refused",
        reason: "bad_draft_shape",
      });
    }
  });

  it("accepts the bounds themselves", () => {
    expect(parseSettingsDraft({ read_only: false, max_projects_per_owner: 1, banner: "" })).not.toBeNull();
    expect(parseSettingsDraft({ read_only: false, max_projects_per_owner: 100000, banner: "x".repeat(200) })).not.toBeNull();
  });

  it("returns a fresh object of exactly the three fields", () => {
    const draft = parseSettingsDraft(JSON.parse('{"banner":"b","read_only":false,"max_projects_per_owner":3}'));
    expect(Object.keys(draft ?? {})).toEqual(["read_only", "max_projects_per_owner", "banner"]);
  });
});

describe("taking the marker out of the address", () => {
  function fakeHistory() {
    const replaced: string[] = [];
    const history = {
      state: { s: 1 },
      replaceState: (_state: unknown, _title: string, url?: string | URL | null) => void replaced.push(String(url)),
    };
    return { replaced, history };
  }

  it("keeps the rest of the query and the fragment", () => {
    expect(withoutResumeMarker(`?a=1&resume=delete-project&project=${PROJECT}&b=2`)).toBe("?a=1&b=2");
    expect(withoutResumeMarker(`?resume=delete-project&project=${PROJECT}`)).toBe("");
  });

  it("reads a valid marker once and removes it from the address", () => {
    const { replaced, history } = fakeHistory();
    const location = { pathname: "/", search: `?resume=delete-project&project=${PROJECT}`, hash: "#main" };
    expect(takeResumeAction(location, history)).toEqual({ kind: "delete-project", projectId: PROJECT });
    expect(replaced).toEqual(["/#main"]);
  });

  it("removes a refused marker too, and re-opens nothing", () => {
    const { replaced, history } = fakeHistory();
    const location = { pathname: "/", search: "?resume=delete-project&project=nope", hash: "" };
    expect(takeResumeAction(location, history)).toBeNull();
    expect(replaced).toEqual(["/"]);
  });

  it("leaves an address without a marker alone", () => {
    const { replaced, history } = fakeHistory();
    expect(takeResumeAction({ pathname: "/", search: "?page=2", hash: "" }, history)).toBeNull();
    expect(replaced).toEqual([]);
  });
});
