/**
 * The shapes of the API the dashboard reads: the API's own types, generated from
 * its OpenAPI document into api-types.ts (scripts/web-types.ts), never copied by hand.
 */
export type {
  Alert,
  AuditEvent,
  AuditVerification,
  ComplianceReport,
  DrillRecord,
  Failover,
  Job,
  JobProgress,
  JobSummary,
  MysqlRecoveryWindow,
  OverallAnalytics,
  NotificationInput,
  Plan,
  PlanAnalytics,
  PlanInput,
  PlanPatch,
  PlanScheduleState,
  RecoveryWindow,
  Repository,
  Retention,
  Schedule,
  SchedulePreview,
  SchedulePreviewInput,
  SecurityEvent,
  Session,
  Snapshot,
  Standby,
  Token,
} from "./api-types.js";
