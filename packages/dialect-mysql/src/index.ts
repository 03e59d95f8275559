/**
 * The MySQL and MariaDB dialect. In this state: the wire protocol codec, the upstream login
 * (src/protocol) and statement analysis (src/analyze); the listener and the relay come next.
 */
export * from './protocol/index.js';
export * from './analyze/index.js';
