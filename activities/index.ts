/**
 * Cairn's activities: thin adapters from workflow steps to the engine. Each opens
 * the repository named in its input (workers need no database), reports progress
 * by heartbeat, and turns errors no retry can fix into non-retryable failures.
 */
import { speakingForBackends } from "./backend-errors.js";
import { backupActivities } from "./backup.js";
import { browseActivities } from "./browse.js";
import { drillActivities } from "./drill.js";
import { failoverActivities } from "./failover.js";
import { maintenanceActivities } from "./maintenance.js";
import { mysqlActivities } from "./mysql.js";
import { mysqlRecoveryActivities } from "./mysql-recovery.js";
import { notifyActivities } from "./notify.js";
import { replicationActivities } from "./replicate.js";
import { requestActivities } from "./requests.js";
import { logicalRestoreActivities } from "./postgres.js";
import { recoveryActivities } from "./recovery.js";
import { restoreActivities } from "./restore.js";
import { slotActivities } from "./slots.js";
import { standbyActivities } from "./standby.js";
import { binlogArchiverActivities } from "./binlog-archiver.js";
import type { ActivityDeps } from "./repository.js";

export type { ActivityDeps } from "./repository.js";
export type { NotifyInput, NotifyResult, PrepareResult, RecordResult, RetentionInput, RetentionResult, SnapshotStepResult, VerifyBackupInput } from "./backup.js";

/** Every activity a Cairn worker registers, bound to the worker's secret box and execution policy. */
export function createActivities(deps: ActivityDeps) {
  return speakingForBackends({ ...backupActivities(deps), ...maintenanceActivities(deps), ...notifyActivities(deps), ...replicationActivities(deps), ...restoreActivities(deps), ...requestActivities(deps), ...browseActivities(deps), ...recoveryActivities(deps), ...logicalRestoreActivities(deps), ...drillActivities(deps), ...failoverActivities(deps), ...slotActivities(deps), ...mysqlActivities(deps), ...mysqlRecoveryActivities(deps), ...standbyActivities(deps), ...binlogArchiverActivities(deps) });
}

export type CairnActivities = ReturnType<typeof createActivities>;
