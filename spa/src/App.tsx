import { useEffect, useMemo, useState } from "react";
import { ApiClient, ApiError } from "./api/client";
import type { Me } from "./api/types";
import { AdminPanel } from "./components/AdminPanel";
import { Alert } from "./components/Alert";
import { IdentityPanel } from "./components/IdentityPanel";
import { ProjectsPanel } from "./components/ProjectsPanel";
import { SignOutButton } from "./components/SignOutButton";
import { describeError, type ErrorMessage } from "./messages";
import { permittedActions } from "./permissions";
import type { ResumeAction } from "./resume";
import { signInUrl } from "./session";

type Session =
  | { kind: "loading" }
  | { kind: "signed-out" }
  | { kind: "signed-in"; me: Me }
  | { kind: "failed"; message: ErrorMessage };

function currentPath(): string {
  return window.location.pathname + window.location.search;
}

/** `resume`: the action a step-up sign-in interrupted, read from the address at start (main.tsx). */
export function App({ resume = null }: { resume?: ResumeAction | null }) {
  const [session, setSession] = useState<Session>({ kind: "loading" });
  // One client for the page's lifetime: it holds the current CSRF token in memory.
  const api = useMemo(
    () => new ApiClient({ onUnauthenticated: () => setSession({ kind: "signed-out" }) }),
    [],
  );

  useEffect(() => {
    let live = true;
    api
      .get<Me>("/me")
      .then((me) => live && setSession({ kind: "signed-in", me }))
      .catch((failure: unknown) => {
        if (!live) {
          return;
        }
        if (failure instanceof ApiError && failure.status === 401) {
          setSession({ kind: "signed-out" });
        } else {
          setSession({ kind: "failed", message: describeError(failure) });
        }
      });
    return () => {
      live = false;
    };
  }, [api]);

  const allowed = useMemo(
    () => (session.kind === "signed-in" ? permittedActions(session.me) : new Set<never>()),
    [session],
  );

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-inner">
          <span className="brand">Projects</span>
          {session.kind === "signed-in" && (
            <div className="who">
              <span className="who-name" data-testid="signed-in-user">
                {session.me.name || session.me.email || session.me.oid}
              </span>
              <SignOutButton />
            </div>
          )}
        </div>
      </header>
      <main id="main" className="content" tabIndex={-1}>
        {session.kind === "loading" && <p className="muted">Loading…</p>}
        {session.kind === "signed-out" && (
          <section className="card signed-out" aria-labelledby="signed-out-heading">
            <h1 id="signed-out-heading">Signed out</h1>
            <p>Your session has ended or you have not signed in yet.</p>
            <p>
              <a className="button button-primary" href={signInUrl(currentPath())}>
                Signed out — sign in
              </a>
            </p>
          </section>
        )}
        {session.kind === "failed" && (
          <section className="card" aria-labelledby="failed-heading">
            <h1 id="failed-heading">Could not load your profile</h1>
            <Alert message={session.message} />
          </section>
        )}
        {session.kind === "signed-in" && (
          <>
            <h1 className="visually-hidden">Projects for {session.me.name || session.me.email}</h1>
            <div className="layout">
              <div className="layout-main">
                {allowed.has("project.read") ? (
                  <ProjectsPanel
                    api={api}
                    allowed={allowed}
                    resumeDeleteOf={resume?.kind === "delete-project" ? resume.projectId : null}
                  />
                ) : (
                  <section className="card" aria-labelledby="no-access-heading">
                    <h2 id="no-access-heading">Projects</h2>
                    <p data-testid="no-access">
                      Your account has no role in this application yet. Ask an administrator for the Reader role.
                    </p>
                  </section>
                )}
                {allowed.has("settings.manage") && (
                  <AdminPanel api={api} resumeDraft={resume?.kind === "admin-settings" ? resume.draft : null} />
                )}
              </div>
              <aside className="layout-side">
                <IdentityPanel me={session.me} api={api} />
              </aside>
            </div>
          </>
        )}
      </main>
    </>
  );
}
