/** Shapes of the API's answers (see fastapi_app/models.py). */

export interface Me {
  oid: string;
  tid: string;
  name: string;
  email: string;
  principal_type: string;
  auth_source: string;
  client_id: string;
  roles: string[];
  scopes: string[];
  groups: string[];
  groups_overage: boolean;
}

export type ProjectStatus = "active" | "archived";

export interface Project {
  id: string;
  name: string;
  description: string;
  status: ProjectStatus;
  owner_oid: string;
  owner_tid: string;
  created_at: string;
  updated_at: string;
  updated_by: string;
}

export interface ProjectPage {
  items: Project[];
  total: number;
  limit: number;
  offset: number;
}

export interface ProjectCreate {
  name: string;
  description: string;
}

export interface ProjectUpdate {
  name?: string;
  description?: string;
  status?: ProjectStatus;
}

export interface AdminSettings {
  read_only: boolean;
  max_projects_per_owner: number;
  banner: string;
  updated_at: string | null;
  updated_by: string;
}

export interface AdminSettingsUpdate {
  read_only: boolean;
  max_projects_per_owner: number;
  banner: string;
}

/** AdminSettingsUpdate's bounds as the API validates them; the settings form uses the same. */
export const ADMIN_SETTINGS_LIMITS = {
  minProjectsPerOwner: 1,
  maxProjectsPerOwner: 100_000,
  bannerMaxLength: 200,
} as const;

/** The error body every non-2xx answer carries: `{error, reason?, required?, details?}`. */
export interface ApiErrorBody {
  error?: string;
  reason?: string;
  required?: string[];
  details?: { loc: (string | number)[]; type: string; msg: string }[];
}
