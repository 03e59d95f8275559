import type { FailureLimiter } from './failure-limiter.js';

export interface MemoryFailureLimiterOptions {
  /** Failures from one address, within `windowSeconds` of the first, that trigger a lockout. */
  readonly maxAttempts: number;
  readonly windowSeconds: number;
  /** How long a locked-out address is refused. */
  readonly lockoutSeconds: number;
  /** Upper bound on tracked addresses; the least recently active is forgotten first. Default 100 000. */
  readonly maxTrackedAddresses?: number;
  /** Current time in epoch milliseconds; defaults to Date.now. */
  readonly now?: () => number;
}

interface Entry {
  /** When the current counting window started. */
  windowStart: number;
  failures: number;
  /** Refused until this time, when locked out; 0 otherwise. */
  lockedUntil: number;
}

/**
 * Counts failed logins per source address in process memory. After `maxAttempts` failures
 * within a window the address is refused for `lockoutSeconds`. Memory is bounded: stale
 * entries are swept periodically and, at the cap, the least recently active address is dropped.
 */
export class MemoryFailureLimiter implements FailureLimiter {
  readonly #maxAttempts: number;
  readonly #windowMs: number;
  readonly #lockoutMs: number;
  readonly #cap: number;
  readonly #now: () => number;
  /** Kept in order of last activity: the first entry is the least recently active. */
  readonly #entries = new Map<string, Entry>();
  #lastSweep: number;

  constructor(options: MemoryFailureLimiterOptions) {
    for (const key of ['maxAttempts', 'windowSeconds', 'lockoutSeconds'] as const) {
      const value = options[key];
      if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${key} must be a positive number, got ${value}`);
    }
    const cap = options.maxTrackedAddresses ?? 100_000;
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`maxTrackedAddresses must be a positive integer, got ${cap}`);
    this.#maxAttempts = options.maxAttempts;
    this.#windowMs = options.windowSeconds * 1000;
    this.#lockoutMs = options.lockoutSeconds * 1000;
    this.#cap = cap;
    this.#now = options.now ?? Date.now;
    this.#lastSweep = this.#now();
  }

  /** Number of addresses currently tracked. */
  get size(): number {
    return this.#entries.size;
  }

  check(sourceAddress: string): { allowed: true } | { allowed: false; retryAfterSeconds: number } {
    const entry = this.#entries.get(sourceAddress);
    if (!entry) return { allowed: true };
    const now = this.#now();
    if (entry.lockedUntil > now) return { allowed: false, retryAfterSeconds: Math.ceil((entry.lockedUntil - now) / 1000) };
    if (this.#isStale(entry, now)) this.#entries.delete(sourceAddress);
    return { allowed: true };
  }

  recordFailure(sourceAddress: string): void {
    const now = this.#now();
    this.#maybeSweep(now);
    let entry = this.#entries.get(sourceAddress);
    if (entry) {
      this.#entries.delete(sourceAddress);
      if (entry.lockedUntil > now) {
        // Already locked out: the lockout stands, the failure adds nothing.
        this.#entries.set(sourceAddress, entry);
        return;
      }
      if (this.#isStale(entry, now)) entry = undefined;
    } else if (this.#entries.size >= this.#cap) {
      this.#sweep(now);
      while (this.#entries.size >= this.#cap) {
        const oldest = this.#entries.keys().next();
        if (oldest.done) break;
        this.#entries.delete(oldest.value);
      }
    }
    entry ??= { windowStart: now, failures: 0, lockedUntil: 0 };
    entry.failures += 1;
    if (entry.failures >= this.#maxAttempts) {
      entry.lockedUntil = now + this.#lockoutMs;
      entry.failures = 0;
    }
    this.#entries.set(sourceAddress, entry);
  }

  recordSuccess(sourceAddress: string): void {
    const entry = this.#entries.get(sourceAddress);
    if (entry && entry.lockedUntil <= this.#now()) this.#entries.delete(sourceAddress);
  }

  /** An entry that neither locks nor counts toward a lockout any more. */
  #isStale(entry: Entry, now: number): boolean {
    return entry.lockedUntil <= now && (entry.failures === 0 || now - entry.windowStart >= this.#windowMs);
  }

  #maybeSweep(now: number): void {
    if (now - this.#lastSweep >= Math.min(this.#windowMs, this.#lockoutMs)) this.#sweep(now);
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [address, entry] of this.#entries) if (this.#isStale(entry, now)) this.#entries.delete(address);
  }
}
