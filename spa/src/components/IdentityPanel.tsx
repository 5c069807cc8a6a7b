import type { ApiClient } from "../api/client";
import type { Me } from "../api/types";
import { EndAllSessionsButton } from "./EndAllSessionsButton";

function List({ values, empty }: { values: string[]; empty: string }) {
  if (values.length === 0) {
    return <span className="muted">{empty}</span>;
  }
  return (
    <ul className="tags">
      {values.map((value) => (
        <li key={value} className="tag">
          {value}
        </li>
      ))}
    </ul>
  );
}

const SOURCES: Record<string, string> = {
  session: "Browser session (oauth2-proxy)",
  bearer: "Bearer access token",
  alb: "Load balancer OIDC",
};

export function IdentityPanel({ me, api }: { me: Me; api: ApiClient }) {
  return (
    <section className="card" aria-labelledby="identity-heading">
      <h2 id="identity-heading">Signed in as</h2>
      <dl className="facts">
        <dt>Name</dt>
        <dd data-testid="me-name">{me.name || <span className="muted">(no name)</span>}</dd>
        <dt>Email</dt>
        <dd data-testid="me-email">{me.email || <span className="muted">(no email)</span>}</dd>
        <dt>Object id</dt>
        <dd>
          <code data-testid="me-oid">{me.oid}</code>
        </dd>
        <dt>Tenant</dt>
        <dd>
          <code>{me.tid}</code>
        </dd>
        <dt>Roles</dt>
        <dd data-testid="me-roles">
          <List values={me.roles} empty="No app role" />
        </dd>
        <dt>Scopes</dt>
        <dd data-testid="me-scopes">
          <List values={me.scopes} empty="No delegated scope" />
        </dd>
        <dt>Groups</dt>
        <dd>
          {me.groups_overage ? (
            <span className="muted">Too many to list in a token (group overage)</span>
          ) : (
            <span>{me.groups.length === 0 ? "None" : `${me.groups.length} group(s)`}</span>
          )}
        </dd>
        <dt>Signed in with</dt>
        <dd data-testid="me-auth-source">{SOURCES[me.auth_source] ?? me.auth_source}</dd>
      </dl>
      {me.auth_source === "session" && <EndAllSessionsButton api={api} />}
    </section>
  );
}
