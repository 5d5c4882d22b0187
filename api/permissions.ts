/**
 * What a token may do: fine-grained permissions, and the built-in roles as sets
 * of them. Every route names one permission (api/openapi.ts refuses a route
 * that names none); a token's role decides whether it holds it.
 */
export const PERMISSIONS = [
  "session:read",
  "plans:read",
  "plans:write",
  "plans:run",
  "jobs:read",
  "jobs:cancel",
  "jobs:retry",
  "restores:create",
  "verifications:run",
  "drills:run",
  "failovers:run",
  "repositories:read",
  "repositories:write",
  "repositories:maintain",
  "snapshots:read",
  "analytics:read",
  "metrics:read",
  "alerts:read",
  "alerts:ack",
  "tokens:manage",
  "audit:read",
  "audit:verify",
  "security:read",
  "compliance:read",
  "policy:read",
  "policy:write",
  "platform:manage",
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/** Marks a route anyone may call without a token (health checks). */
export const PUBLIC = "public";
export type RoutePermission = Permission | typeof PUBLIC;

export const ROLE_NAMES = ["viewer", "operator", "admin", "auditor"] as const;
export type Role = (typeof ROLE_NAMES)[number];

const VIEWER: Permission[] = ["session:read", "plans:read", "jobs:read", "snapshots:read", "repositories:read", "analytics:read", "metrics:read", "alerts:read"];

/**
 * Every role reads its own session (who it is, what it may do: GET /v1/session).
 * viewer reads plans, jobs, snapshots, analytics, metrics and alerts; operator also runs plans,
 * cancels and retries jobs, restores, verifies and checks, prunes and copies snapshots between
 * repositories, runs recovery drills and acknowledges alerts;
 * admin does everything, and alone fails a database over (failovers:run: it stops one server
 * and promotes another); auditor reads the audit log, security events, compliance reports and
 * alerts (whether failures were seen and handled is evidence), and nothing else.
 */
export const ROLES: Record<Role, ReadonlySet<Permission>> = {
  viewer: new Set(VIEWER),
  operator: new Set<Permission>([...VIEWER, "plans:run", "jobs:cancel", "jobs:retry", "restores:create", "verifications:run", "repositories:maintain", "drills:run", "alerts:ack"]),
  admin: new Set(PERMISSIONS),
  auditor: new Set<Permission>(["session:read", "audit:read", "audit:verify", "security:read", "compliance:read", "alerts:read"]),
};

export function isRole(name: string): name is Role {
  return (ROLE_NAMES as readonly string[]).includes(name);
}

/** The roles that hold `permission`, for refusals that say which token to ask for. */
export function rolesWith(permission: Permission): Role[] {
  return ROLE_NAMES.filter((role) => ROLES[role].has(permission));
}
