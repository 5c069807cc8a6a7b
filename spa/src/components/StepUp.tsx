/**
 * The two moments of a step-up sign-in the person sees. The API refused an action until they prove
 * again that it is them (a Conditional Access authentication context): the page says so before it
 * is left, and after the identity provider sent them back it shows the action again for one more
 * click (see resume.ts for why it never performs it by itself).
 */

import { useId } from "react";
import type { Project } from "../api/types";

/** Why the page is about to be left; "Verify and continue" goes to the identity provider (`href`). */
export function StepUpPrompt({ purpose, href, onCancel }: { purpose: string; href: string; onCancel: () => void }) {
  return (
    <div className="step-up" role="alert">
      <p className="step-up-title">Verify your identity to {purpose}.</p>
      <p>This action needs a recent, stronger sign-in. You will sign in again and come back here to finish it.</p>
      <div className="form-actions">
        <button
          type="button"
          className="button button-primary"
          // The button that asked for the action is gone or busy; the next step is this one.
          autoFocus
          onClick={() => window.location.assign(href)}
        >
          Verify and continue
        </button>
        <button type="button" className="button button-quiet" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** The delete a step-up sign-in interrupted, back for the person's own confirmation. */
export function VerifiedDelete({
  project,
  busy,
  onConfirm,
  onKeep,
}: {
  project: Project;
  busy: boolean;
  onConfirm: () => void;
  onKeep: () => void;
}) {
  const id = useId();
  return (
    <div className="step-up" role="group" aria-labelledby={`${id}-text`}>
      <p id={`${id}-text`} className="step-up-title">
        Identity verified. Confirm to delete “{project.name}”.
      </p>
      <div className="form-actions">
        <button
          type="button"
          className="button button-danger"
          aria-label={`Confirm delete ${project.name}`}
          // The page was just loaded for this: the keyboard starts at the one remaining step.
          autoFocus
          disabled={busy}
          onClick={onConfirm}
        >
          Confirm delete
        </button>
        <button type="button" className="button button-quiet" onClick={onKeep}>
          Keep
        </button>
      </div>
    </div>
  );
}
