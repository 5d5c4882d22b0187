/**
 * The shapes of the API the dashboard reads: the API's own types, generated from
 * its OpenAPI document into api-types.ts (scripts/web-types.ts), never copied by hand.
 */
export type {
  AuditEvent,
  AuditVerification,
  ComplianceReport,
  Job,
  JobProgress,
  JobSummary,
  OverallAnalytics,
  Plan,
  PlanAnalytics,
  Repository,
  SecurityEvent,
  Session,
  Snapshot,
  Token,
} from "./api-types.js";
