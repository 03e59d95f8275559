/**
 * The MySQL / MariaDB dialect: wire protocol codec, upstream connection, statement analysis
 * and the gateway's listener and session relay.
 */
export { mysqlDialect } from './dialect.js';
export { mysqlTargetOptions, type MysqlTargetOptions } from './config.js';
export { nativeErrorOf, encodeClientError } from './errors.js';
export * from './protocol/index.js';
export * from './analyze/index.js';
export * from './masking/index.js';
