export * from './errors.js';
export * from './spi.js';
export * from './analysis/types.js';
export { combineAnalyses, createCachedAnalyzer, executionOf, fingerprintOf, objectsIn, rememberBounded, type CachedAnalyzer, type ShapeCaches } from './analysis/shared.js';
export * from './analysis/lineage-parts.js';
export * from './analysis/facts.js';
export * from './identity/types.js';
export type { FailureLimiter } from './identity/failure-limiter.js';
export * from './audit/types.js';
export {
  Governor,
  GovernedSession,
  StatementHandle,
  type GovernorOptions,
  type LoginAttempt,
  type SessionStart,
  type StatementStart,
  type StatementOutcome,
  type RequestHandle,
  type HeldInfo,
  statementDigest,
  clientReason,
} from './session/governor.js';
export { compileMasking, type CompileMaskingOptions, type MaskingRuntime, type StatementMasking } from './session/masking.js';
export { ListenerSessions } from './session/listener-sessions.js';
export { SessionLimiter, Admission, sessionLimitsSchema, sourceKey, type SessionLimitsConfig, type LimitRefusal } from './session/limits.js';
export { SessionActivity, type ActivityHandlers, type ActivityLimits } from './session/activity.js';
export * from './identity/config.js';
export * from './identity/token-authenticator.js';
export * from './identity/oidc-authenticator.js';
export * from './identity/composite-authenticator.js';
export * from './identity/memory-failure-limiter.js';
export { looksLikeJwt } from './identity/jwt-shape.js';
export * from './identity/client-certificate.js';
export { FileAuditStore, type FileAuditStoreOptions, type FileAuditStoreStats } from './audit/file-store.js';
export { GroupCommit, type GroupCommitBatch } from './audit/group-commit.js';
export { withDeadline } from './util/deadline.js';
export { parseAuditRecordLine, readAuditRecords, verifyAuditLog, type VerifyResult, type VerifyProblem, type AuditRecordFilter } from './audit/reader.js';
export { followAuditRecords } from './audit/follow.js';
export { toCsvHeader, toCsvRow, formatRecordLine, CSV_COLUMNS } from './audit/format.js';
export { canonicalJson, encodeRecordLine, hashedTextOf, hashRecord, isHash, sha256Hex, GENESIS_HASH } from './audit/chain.js';
export type { Logger } from 'pino';
export * from './approvals/index.js';
export * from './policy/index.js';
export * from './masking/index.js';
export { glob } from './util/glob.js';
export { readUpstreamUrl, type UpstreamUrl } from './util/upstream-url.js';
export * from './lineage/types.js';
export * from './session/caller-context.js';
export * from './session/observers.js';
export { datasetNaming, runIdFor, type DatasetNaming } from './lineage/naming.js';
export { LineageRecorder, createLineageRecorder, shapeOf, type LineageRecorderOptions } from './lineage/recorder.js';
export { TelemetryObserver, callerTraceContext, querySummary, type TelemetryOptions } from './telemetry/tracing.js';
export { toOpenLineageEvent, combineSinks, inputFieldsOf, OPENLINEAGE_SPEC_VERSION, OPENLINEAGE_RUN_EVENT_SCHEMA_URL, OPENLINEAGE_FACET_SCHEMA_URLS, type OpenLineageEventOptions, type OpenLineageRunEvent, type OpenLineageDataset, type OpenLineageFacet, type OpenLineageInputField } from './lineage/openlineage.js';
export { createHttpSink, type OpenLineageHttpSink, type OpenLineageHttpSinkOptions, type OpenLineageHttpSinkStats } from './lineage/openlineage-http.js';
export { createFileSink, type OpenLineageFileSink, type OpenLineageFileSinkOptions, type OpenLineageFileSinkStats } from './lineage/openlineage-file.js';
