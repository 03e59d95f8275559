/** Where the gateway keeps lineage, the questions it answers, and the admin API's lineage endpoints. */
export { handleLineageRequest, lineageRoutes, LINEAGE_PATH, MAX_LINEAGE_LIMIT, parseLineageRequest, parseLineageTime } from './admin.js';
export type { LineageReportKind, LineageRequest, LineageRoute, LineageRouteContext, LineageRoutesOptions } from './admin.js';
export { DEFAULT_LINEAGE_STORE, isPostgresUrl, openLineageStore, type LineageStoreConfig } from './open.js';
export { DEFAULT_LINEAGE_SCHEMA, openPostgresLineageStore, type PostgresLineageStoreOptions } from './postgres-store.js';
export { DEFAULT_LINEAGE_LIMIT, LineageQueryError, splitColumnName } from './queries.js';
export {
  DEFAULT_LINEAGE_PRUNE_INTERVAL_MS,
  DEFAULT_LINEAGE_RETENTION_MS,
  startLineageRetention,
  type LineageRetention,
  type LineageRetentionOptions,
} from './retention.js';
export { LineageStoreError, SCHEMA_VERSION } from './schema.js';
export { openSqliteLineageStore, type SqliteLineageStoreOptions } from './sqlite-store.js';
