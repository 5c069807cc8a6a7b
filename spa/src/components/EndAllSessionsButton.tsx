import { useState } from "react";

import type { ApiClient } from "../api/client";
import { describeError, type ErrorMessage } from "../messages";
import { Alert } from "./Alert";

/**
 * "Sign out everywhere": ends every session of the signed-in person, in every browser and on every
 * task, this one included (POST /api/me/sessions/end, with the CSRF token like every write). Then
 * the page reloads, which finds this session gone and offers to sign in again.
 */
export function EndAllSessionsButton({ api }: { api: ApiClient }) {
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ErrorMessage | null>(null);

  async function endAll() {
    setBusy(true);
    setFailure(null);
    try {
      await api.request("POST", "/me/sessions/end");
      window.location.assign("/");
    } catch (error) {
      setFailure(describeError(error));
      setBusy(false);
    }
  }

  return (
    <div className="end-sessions">
      <button type="button" className="button button-secondary" disabled={busy} onClick={() => void endAll()}>
        Sign out everywhere
      </button>
      {failure !== null && <Alert message={failure} onDismiss={() => setFailure(null)} />}
    </div>
  );
}
