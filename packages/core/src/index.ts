export * from './errors.js';
export * from './spi.js';
export * from './analysis/types.js';
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
} from './session/governor.js';
