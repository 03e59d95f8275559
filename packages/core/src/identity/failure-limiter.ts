/** Limits failed logins per source address. */
export interface FailureLimiter {
  check(sourceAddress: string): { allowed: true } | { allowed: false; retryAfterSeconds: number };
  recordFailure(sourceAddress: string): void;
  recordSuccess(sourceAddress: string): void;
}
