export { postgresDialect } from './dialect.js';
export { postgresTargetOptions, type PostgresTargetOptions, type UpstreamEndpoint } from './config.js';
export {
  analyzePostgres,
  createPostgresAnalyzer,
  type PostgresAnalysis,
  type PostgresAnalyzer,
  type PostgresAnalyzerOptions,
} from './analyze/analyze.js';
export { sqlstateOf } from './errors.js';
/** Message encoders for code that speaks the protocol itself (the demo's embedded server). */
export { encodeErrorResponse, type ErrorFields } from './messages/error-response.js';
export { encodeStartupMessage } from './messages/startup-message.js';
