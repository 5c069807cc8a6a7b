import { useCallback, useEffect, useId, useRef, useState, type FormEvent, type Ref } from "react";
import { ApiError, StepUpRequired, type ApiClient } from "../api/client";
import type { Project, ProjectCreate, ProjectPage, ProjectStatus, ProjectUpdate } from "../api/types";
import { describeError, type ErrorMessage } from "../messages";
import type { Action } from "../permissions";
import { resumeReturnPath } from "../resume";
import { stepUpUrl } from "../session";
import { Alert } from "./Alert";
import { StepUpPrompt, VerifiedDelete } from "./StepUp";

const PAGE_SIZE = 50;
const NAME_MAX = 100;
const DESCRIPTION_MAX = 2000;

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function formatDate(value: string): string {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : dateFormat.format(date);
}

interface Props {
  api: ApiClient;
  allowed: Set<Action>;
  /** The project whose delete was interrupted by a step-up sign-in (resume.ts), or null. */
  resumeDeleteOf?: string | null;
}

/** A delete waiting for a step-up sign-in ("verify"), or re-opened after one ("verified"). */
type SteppedUpDelete = { stage: "verify"; project: Project; href: string } | { stage: "verified"; project: Project };

export function ProjectsPanel({ api, allowed, resumeDeleteOf = null }: Props) {
  const [page, setPage] = useState<ProjectPage | null>(null);
  const [offset, setOffset] = useState(0);
  const [error, setError] = useState<ErrorMessage | null>(null);
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  const [confirmingDelete, setConfirmingDelete] = useState<string | null>(null);
  const [steppedUpDelete, setSteppedUpDelete] = useState<SteppedUpDelete | null>(null);
  const canDelete = allowed.has("project.delete");

  const load = useCallback(
    async (at: number) => {
      try {
        const result = await api.get<ProjectPage>(`/projects?limit=${PAGE_SIZE}&offset=${at}`);
        setPage(result);
        setError(null);
      } catch (failure) {
        setError(describeError(failure));
      }
    },
    [api],
  );

  useEffect(() => {
    void load(offset);
  }, [load, offset]);

  // Back from a step-up sign-in: re-open the delete's confirmation, wherever the project is listed.
  // Only re-open it: the address that brought us here could have come from anyone (see resume.ts).
  useEffect(() => {
    if (resumeDeleteOf === null || !canDelete) {
      return;
    }
    let live = true;
    api
      .get<Project>(`/projects/${encodeURIComponent(resumeDeleteOf)}`)
      .then((project) => live && setSteppedUpDelete({ stage: "verified", project }))
      .catch((failure: unknown) => {
        if (!live) {
          return;
        }
        if (failure instanceof ApiError && failure.status === 404) {
          setNotice("Identity verified, but the project you wanted to delete no longer exists.");
        } else {
          setError(describeError(failure));
        }
      });
    return () => {
      live = false;
    };
  }, [api, resumeDeleteOf, canDelete]);

  async function run(work: () => Promise<string>, onStepUp?: (challenge: StepUpRequired) => void): Promise<boolean> {
    setBusy(true);
    setNotice("");
    try {
      const done = await work();
      setError(null);
      setNotice(done);
      await load(offset);
      return true;
    } catch (failure) {
      if (failure instanceof StepUpRequired && onStepUp !== undefined) {
        setError(null);
        onStepUp(failure);
      } else {
        setError(describeError(failure));
      }
      return false;
    } finally {
      setBusy(false);
    }
  }

  const create = (body: ProjectCreate) =>
    run(async () => {
      const project = await api.post<Project>("/projects", body);
      return `Project “${project.name}” created.`;
    });

  const update = (project: Project, body: ProjectUpdate) =>
    run(async () => {
      const changed = await api.patch<Project>(`/projects/${encodeURIComponent(project.id)}`, body);
      setEditing(null);
      return `Project “${changed.name}” saved.`;
    });

  const remove = (project: Project) =>
    run(
      async () => {
        await api.delete(`/projects/${encodeURIComponent(project.id)}`);
        setConfirmingDelete(null);
        setSteppedUpDelete(null);
        return `Project “${project.name}” deleted.`;
      },
      (challenge) => {
        const returnTo = resumeReturnPath(window.location.pathname, { kind: "delete-project", projectId: project.id });
        setConfirmingDelete(null);
        setSteppedUpDelete({ stage: "verify", project, href: stepUpUrl(challenge.contextId, returnTo) });
      },
    );

  function confirmDelete(project: Project) {
    // One confirmation at a time, so one button is named "Confirm delete <name>".
    setSteppedUpDelete(null);
    setConfirmingDelete(project.id);
  }

  const canEdit = allowed.has("project.edit");

  return (
    <section className="card" aria-labelledby="projects-heading" aria-busy={busy}>
      <div className="card-head">
        <h2 id="projects-heading">Projects</h2>
        {page !== null && <span className="muted">{page.total} in total</span>}
      </div>

      {error !== null && <Alert message={error} onDismiss={() => setError(null)} />}
      <p className="notice" role="status">
        {notice}
      </p>
      {steppedUpDelete?.stage === "verify" && (
        <StepUpPrompt
          purpose={`delete “${steppedUpDelete.project.name}”`}
          href={steppedUpDelete.href}
          onCancel={() => setSteppedUpDelete(null)}
        />
      )}
      {steppedUpDelete?.stage === "verified" && (
        <VerifiedDelete
          project={steppedUpDelete.project}
          busy={busy}
          onConfirm={() => void remove(steppedUpDelete.project)}
          onKeep={() => setSteppedUpDelete(null)}
        />
      )}

      {allowed.has("project.create") ? (
        <CreateForm busy={busy} onCreate={create} />
      ) : (
        <p className="muted" data-testid="read-only-hint">
          You can view projects. Creating and changing them needs the Writer role.
        </p>
      )}

      {page === null ? (
        error === null && <p className="muted">Loading projects…</p>
      ) : page.items.length === 0 ? (
        <p className="empty">No projects yet.</p>
      ) : (
        <div className="table-wrap">
          <table className="projects">
            <caption className="visually-hidden">Projects</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Description</th>
                <th scope="col">Status</th>
                <th scope="col">Updated</th>
                {(canEdit || canDelete) && (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {page.items.map((project) =>
                editing === project.id ? (
                  <tr key={project.id}>
                    <td colSpan={5}>
                      <EditForm
                        project={project}
                        busy={busy}
                        onSave={(body) => update(project, body)}
                        onCancel={() => setEditing(null)}
                      />
                    </td>
                  </tr>
                ) : (
                  <tr key={project.id}>
                    <th scope="row">{project.name}</th>
                    <td className="description">{project.description || <span className="muted">—</span>}</td>
                    <td>
                      <span className={`status status-${project.status}`}>{project.status}</span>
                    </td>
                    <td>
                      <time dateTime={project.updated_at}>{formatDate(project.updated_at)}</time>
                    </td>
                    {(canEdit || canDelete) && (
                      <td className="actions">
                        {canEdit && (
                          <button
                            type="button"
                            className="button button-quiet"
                            aria-label={`Edit ${project.name}`}
                            disabled={busy}
                            onClick={() => {
                              setConfirmingDelete(null);
                              setEditing(project.id);
                            }}
                          >
                            Edit
                          </button>
                        )}
                        {canDelete &&
                          (confirmingDelete === project.id ? (
                            <>
                              <button
                                type="button"
                                className="button button-danger"
                                aria-label={`Confirm delete ${project.name}`}
                                // The Delete button just unmounted; keep the keyboard where it was.
                                autoFocus
                                disabled={busy}
                                onClick={() => void remove(project)}
                              >
                                Confirm delete
                              </button>
                              <button type="button" className="button button-quiet" onClick={() => setConfirmingDelete(null)}>
                                Keep
                              </button>
                            </>
                          ) : (
                            <button
                              type="button"
                              className="button button-quiet button-danger-text"
                              aria-label={`Delete ${project.name}`}
                              disabled={busy}
                              onClick={() => confirmDelete(project)}
                            >
                              Delete
                            </button>
                          ))}
                      </td>
                    )}
                  </tr>
                ),
              )}
            </tbody>
          </table>
        </div>
      )}

      {page !== null && page.total > PAGE_SIZE && (
        <nav className="pager" aria-label="Project pages">
          <button
            type="button"
            className="button button-secondary"
            disabled={offset === 0}
            onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
          >
            Previous
          </button>
          <span className="muted">
            {offset + 1}–{Math.min(offset + PAGE_SIZE, page.total)} of {page.total}
          </span>
          <button
            type="button"
            className="button button-secondary"
            disabled={offset + PAGE_SIZE >= page.total}
            onClick={() => setOffset(offset + PAGE_SIZE)}
          >
            Next
          </button>
        </nav>
      )}
    </section>
  );
}

/** What both project forms edit: a name and a description. */
type NameAndDescription = { name: string; description: string };

/** The name and description inputs of both project forms. */
function ProjectFields({
  id,
  value,
  onChange,
  nameRef,
  autoFocus = false,
}: {
  id: string;
  value: NameAndDescription;
  onChange: (value: NameAndDescription) => void;
  nameRef?: Ref<HTMLInputElement>;
  autoFocus?: boolean;
}) {
  return (
    <>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input
          ref={nameRef}
          id={`${id}-name`}
          name="name"
          required
          maxLength={NAME_MAX}
          autoComplete="off"
          autoFocus={autoFocus}
          value={value.name}
          onChange={(event) => onChange({ ...value, name: event.target.value })}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-description`}>Description</label>
        <textarea
          id={`${id}-description`}
          name="description"
          rows={2}
          maxLength={DESCRIPTION_MAX}
          value={value.description}
          onChange={(event) => onChange({ ...value, description: event.target.value })}
        />
      </div>
    </>
  );
}

function CreateForm({ busy, onCreate }: { busy: boolean; onCreate: (body: ProjectCreate) => Promise<boolean> }) {
  const id = useId();
  const [fields, setFields] = useState<NameAndDescription>({ name: "", description: "" });
  const nameInput = useRef<HTMLInputElement>(null);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (await onCreate({ name: fields.name.trim(), description: fields.description })) {
      setFields({ name: "", description: "" });
      // Ready for the next one; the submit button was disabled while saving and lost focus.
      nameInput.current?.focus();
    }
  }

  return (
    <form className="project-form" onSubmit={(event) => void submit(event)} aria-labelledby={`${id}-legend`}>
      <h3 id={`${id}-legend`}>New project</h3>
      <ProjectFields id={id} value={fields} onChange={setFields} nameRef={nameInput} />
      <div className="form-actions">
        <button type="submit" className="button button-primary" disabled={busy || fields.name.trim() === ""}>
          Create project
        </button>
      </div>
    </form>
  );
}

function EditForm({
  project,
  busy,
  onSave,
  onCancel,
}: {
  project: Project;
  busy: boolean;
  onSave: (body: ProjectUpdate) => Promise<boolean>;
  onCancel: () => void;
}) {
  const id = useId();
  const [fields, setFields] = useState<NameAndDescription>({ name: project.name, description: project.description });
  const [status, setStatus] = useState<ProjectStatus>(project.status);

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    void onSave({ name: fields.name.trim(), description: fields.description, status });
  }

  return (
    <form
      className="project-form project-form-inline"
      onSubmit={submit}
      onKeyDown={(event) => {
        if (event.key === "Escape") {
          onCancel();
        }
      }}
      aria-label={`Edit ${project.name}`}
    >
      <ProjectFields id={id} value={fields} onChange={setFields} autoFocus />
      <div className="field">
        <label htmlFor={`${id}-status`}>Status</label>
        <select id={`${id}-status`} value={status} onChange={(event) => setStatus(event.target.value as ProjectStatus)}>
          <option value="active">active</option>
          <option value="archived">archived</option>
        </select>
      </div>
      <div className="form-actions">
        <button type="submit" className="button button-primary" disabled={busy || fields.name.trim() === ""}>
          Save
        </button>
        <button type="button" className="button button-secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
