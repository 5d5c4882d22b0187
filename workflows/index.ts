/**
 * Every Cairn workflow, for the worker's workflowsPath. Workflows are
 * deterministic: they import only @temporalio/workflow, ./messages and their
 * siblings, and know activities by type alone.
 */
export { backupWorkflow } from "./backup.js";
export { jobSlotsWorkflow } from "./slots.js";
export { copyWorkflow, pruneWorkflow, restoreWorkflow, verifySnapshotWorkflow, verifyWorkflow } from "./maintenance.js";
export { checkSourcesWorkflow, describeRepositoryWorkflow, downloadSnapshotWorkflow, listSnapshotsWorkflow, prepareRestoreWorkflow, registerRepositoryWorkflow, snapshotDiffWorkflow, snapshotTreeWorkflow } from "./requests.js";
export { logicalRestoreWorkflow, recoveryWindowWorkflow, recoveryWorkflow } from "./recovery.js";
export { alertNotificationWorkflow } from "./notifications.js";
export { drillWorkflow } from "./drill.js";
export { mysqlRecoveryWindowWorkflow, mysqlRecoveryWorkflow, mysqlRestoreWorkflow, previewMysqlRestoreWorkflow } from "./mysql.js";
export { workerRegisterWorkflow } from "./workers.js";
export { standbyWorkflow } from "./standby.js";
export { binlogArchiverWorkflow } from "./binlog-archiver.js";
export { failoverWorkflow } from "./failover.js";
