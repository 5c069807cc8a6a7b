import { useEffect, useId, useState, type FormEvent } from "react";
import type { ApiClient } from "../api/client";
import type { AdminSettings, AdminSettingsUpdate } from "../api/types";
import { describeError, type ErrorMessage } from "../messages";
import { Alert } from "./Alert";

export function AdminPanel({ api }: { api: ApiClient }) {
  const id = useId();
  const [settings, setSettings] = useState<AdminSettings | null>(null);
  const [draft, setDraft] = useState<AdminSettingsUpdate | null>(null);
  const [error, setError] = useState<ErrorMessage | null>(null);
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    api
      .get<AdminSettings>("/admin/settings")
      .then((loaded) => {
        if (live) {
          setSettings(loaded);
          setDraft({ read_only: loaded.read_only, max_projects_per_owner: loaded.max_projects_per_owner, banner: loaded.banner });
        }
      })
      .catch((failure: unknown) => live && setError(describeError(failure)));
    return () => {
      live = false;
    };
  }, [api]);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (draft === null) {
      return;
    }
    setBusy(true);
    setNotice("");
    try {
      const saved = await api.put<AdminSettings>("/admin/settings", { ...draft, banner: draft.banner.trim() });
      setSettings(saved);
      setError(null);
      setNotice("Settings saved.");
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby={`${id}-heading`} aria-busy={busy}>
      <h2 id={`${id}-heading`}>Administration</h2>
      {error !== null && <Alert message={error} onDismiss={() => setError(null)} />}
      <p className="notice" role="status">
        {notice}
      </p>
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
              min={1}
              max={100000}
              required
              value={draft.max_projects_per_owner}
              onChange={(event) => setDraft({ ...draft, max_projects_per_owner: event.target.valueAsNumber || 1 })}
            />
          </div>
          <div className="field">
            <label htmlFor={`${id}-banner`}>Banner text</label>
            <input
              id={`${id}-banner`}
              maxLength={200}
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
