export { postgresDialect } from './dialect.js';
export { postgresTargetOptions, type PostgresTargetOptions, type UpstreamEndpoint } from './config.js';
export { analyzePostgres } from './analyze/analyze.js';
export { sqlstateOf } from './errors.js';
