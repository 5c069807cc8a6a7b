import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { StepUpRequired, type ApiClient } from "../api/client";
import { ADMIN_SETTINGS_LIMITS, type AdminSettings, type AdminSettingsUpdate } from "../api/types";
import { describeError, type ErrorMessage } from "../messages";
import { resumeReturnPath } from "../resume";
import { stepUpUrl } from "../session";
import { Alert } from "./Alert";
import { StepUpPrompt } from "./StepUp";

interface Props {
  api: ApiClient;
  /** The draft whose save was interrupted by a step-up sign-in (resume.ts), or null. */
  resumeDraft?: AdminSettingsUpdate | null;
}

export function AdminPanel({ api, resumeDraft = null }: Props) {
  const id = useId();
  const [settings, setSettings] = useState<AdminSettings | null>(null);
  const [draft, setDraft] = useState<AdminSettingsUpdate | null>(null);
  const [error, setError] = useState<ErrorMessage | null>(null);
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  const [stepUpHref, setStepUpHref] = useState<string | null>(null);
  const [resumed, setResumed] = useState(false);
  const noticeLine = useRef<HTMLParagraphElement>(null);

  useEffect(() => {
    let live = true;
    api
      .get<AdminSettings>("/admin/settings")
      .then((loaded) => {
        if (!live) {
          return;
        }
        setSettings(loaded);
        if (resumeDraft === null) {
          setDraft({ read_only: loaded.read_only, max_projects_per_owner: loaded.max_projects_per_owner, banner: loaded.banner });
        } else {
          // Back from a step-up sign-in: the form holds what the person meant to save, and waits for
          // them to save it; the address that brought us here could have come from anyone (resume.ts).
          setDraft(resumeDraft);
          setNotice("Identity verified. Review and save your settings.");
          setResumed(true);
        }
      })
      .catch((failure: unknown) => live && setError(describeError(failure)));
    return () => {
      live = false;
    };
  }, [api, resumeDraft]);

  useEffect(() => {
    if (resumed) {
      // Rendered with its text by now, so it is read out; Tab goes on into the filled form.
      noticeLine.current?.focus();
    }
  }, [resumed]);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (draft === null) {
      return;
    }
    const body: AdminSettingsUpdate = { ...draft, banner: draft.banner.trim() };
    setBusy(true);
    setNotice("");
    setStepUpHref(null);
    try {
      const saved = await api.put<AdminSettings>("/admin/settings", body);
      setSettings(saved);
      setError(null);
      setNotice("Settings saved.");
    } catch (failure) {
      if (failure instanceof StepUpRequired) {
        setError(null);
        const returnTo = resumeReturnPath(window.location.pathname, { kind: "admin-settings", draft: body });
        setStepUpHref(stepUpUrl(failure.contextId, returnTo));
      } else {
        setError(describeError(failure));
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby={`${id}-heading`} aria-busy={busy}>
      <h2 id={`${id}-heading`}>Administration</h2>
      {error !== null && <Alert message={error} onDismiss={() => setError(null)} />}
      {/* Focusable, so that a person back from a step-up sign-in starts at what happened. */}
      <p ref={noticeLine} className="notice" role="status" tabIndex={-1}>
        {notice}
      </p>
      {stepUpHref !== null && (
        <StepUpPrompt purpose="change the settings" href={stepUpHref} onCancel={() => setStepUpHref(null)} />
      )}
      {draft === null ? (
        error === null && <p className="muted">Loading settings…</p>
      ) : (
        <form className="settings-form" onSubmit={(event) => void submit(event)}>
          <div className="field field-check">
            <input
              id={`${id}-read-only`}
              type="checkbox"
              checked={draft.read_only}
              onChange={(event) => setDraft({ ...draft, read_only: event.target.checked })}
            />
            <label htmlFor={`${id}-read-only`}>Read-only mode (refuse all project changes)</label>
          </div>
          <div className="field">
            <label htmlFor={`${id}-quota`}>Maximum projects per owner</label>
            <input
              id={`${id}-quota`}
              type="number"
              min={ADMIN_SETTINGS_LIMITS.minProjectsPerOwner}
              max={ADMIN_SETTINGS_LIMITS.maxProjectsPerOwner}
              required
              value={draft.max_projects_per_owner}
              onChange={(event) =>
                setDraft({
                  ...draft,
                  max_projects_per_owner: event.target.valueAsNumber || ADMIN_SETTINGS_LIMITS.minProjectsPerOwner,
                })
              }
            />
          </div>
          <div className="field">
            <label htmlFor={`${id}-banner`}>Banner text</label>
            <input
              id={`${id}-banner`}
              maxLength={ADMIN_SETTINGS_LIMITS.bannerMaxLength}
              value={draft.banner}
              onChange={(event) => setDraft({ ...draft, banner: event.target.value })}
            />
          </div>
          <div className="form-actions">
            <button type="submit" className="button button-primary" disabled={busy}>
              Save settings
            </button>
            {settings?.updated_at && (
              <span className="muted">
                Last changed <time dateTime={settings.updated_at}>{new Date(settings.updated_at).toLocaleString()}</time>
              </span>
            )}
          </div>
        </form>
      )}
    </section>
  );
}
