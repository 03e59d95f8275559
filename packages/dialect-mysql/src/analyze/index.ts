/**
 * Statement analysis for the MySQL / MariaDB dialect: the same kind of Analysis as the
 * PostgreSQL dialect gives (operations, objects, hazards, functions, result and write lineage
 * with flow kinds), so that core's policy, guardrails, masking and lineage work unchanged.
 */
export {
  analyzeUncached,
  createMySqlAnalyzer,
  fingerprintOf,
  sharedMySqlAnalyzer,
  sqlModeFlags,
  type MySqlAnalysis,
  type MySqlAnalyzer,
  type MySqlAnalyzerOptions,
  type SqlModeFlags,
} from './analyze.js';
export { resultLineageOfSql, type LineageOptions } from './lineage.js';
export { normalizeSql, type NormalizedSql } from './normalize.js';
export { EXECUTE_UNSEEN } from './statement.js';
export type { Dialect } from './parse.js';
