import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { Project } from "../api/types";
import { StepUpPrompt, VerifiedDelete } from "./StepUp";

// The browser tests find these controls by their accessible names; these pin the names.

const PROJECT: Project = {
  id: "0b7e3f6c-2d4a-4c1e-9f3b-5a6d7e8f9012",
  name: "Doomed <b>1</b>",
  description: "",
  status: "active",
  owner_oid: "o",
  owner_tid: "t",
  created_at: "2025-01-01T00:00:00Z",
  updated_at: "2025-01-01T00:00:00Z",
  updated_by: "o",
};

const noop = () => undefined;

describe("the step-up prompt", () => {
  it("is an alert that says why, with 'Verify and continue' and 'Cancel' buttons", () => {
    const prompt = createElement(StepUpPrompt, { purpose: "change the settings", href: "/oauth2/start", onCancel: noop });
    const html = renderToStaticMarkup(prompt);
    expect(html).toMatch(/^<div class="step-up" role="alert">/);
    expect(html).toContain("Verify your identity to change the settings.");
    // autofocus: the button that asked for the action is gone or busy; the keyboard lands here.
    expect(html).toContain('<button type="button" class="button button-primary" autofocus="">Verify and continue</button>');
    expect(html).toContain(">Cancel</button>");
  });
});

describe("the delete re-opened after a step-up", () => {
  it("names the project in its notice and its confirm button, escaped", () => {
    const html = renderToStaticMarkup(createElement(VerifiedDelete, { project: PROJECT, busy: false, onConfirm: noop, onKeep: noop }));
    expect(html).toContain("Identity verified. Confirm to delete “Doomed &lt;b&gt;1&lt;/b&gt;”.");
    expect(html).toContain('aria-label="Confirm delete Doomed &lt;b&gt;1&lt;/b&gt;"');
    expect(html).toMatch(/role="group" aria-labelledby="([^"]+)"><p id="\1"/);
    expect(html).toMatch(/<button [^>]*aria-label="Confirm delete [^"]*" autofocus=""/);
    expect(html).toContain(">Keep</button>");
  });

  it("cannot be confirmed twice while the delete runs", () => {
    const html = renderToStaticMarkup(createElement(VerifiedDelete, { project: PROJECT, busy: true, onConfirm: noop, onKeep: noop }));
    expect(html).toMatch(/<button [^>]*aria-label="Confirm delete [^"]*" autofocus="" disabled="">Confirm delete<\/button>/);
  });
});
