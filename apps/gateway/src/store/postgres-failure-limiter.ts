/**
 * Failed-login lockouts shared by the replicas of a shared store.
 *
 * A client guessing tokens must not get `maxAttempts` tries per replica by spreading its
 * connections over them. Every replica counts failures per source address in one table
 * (`login_failures`); the replica that records the failure that reaches `maxAttempts` within the
 * window sets `locked_until`, and every replica refuses the address until then.
 *
 * `check` is on the login path and synchronous: it consults this process's own counter (which
 * locks out on its own failures at once) and a local copy of the shared lockouts, refreshed from
 * every failure recorded here and by polling (`pollMs`, default 2 s). So a lockout made on another
 * replica takes effect here within the poll interval. When the store cannot be reached the shared
 * part is skipped (logged once per outage) and each replica still locks out on its own count.
 */
import { MemoryFailureLimiter, redactUrlPassword, type FailureLimiter } from '@sluice/core';
import pg from 'pg';
import type { Logger } from 'pino';
import { inTransaction } from './pg-transaction.js';

export interface PostgresFailureLimiterOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly schema: string;
  readonly maxAttempts: number;
  readonly windowSeconds: number;
  readonly lockoutSeconds: number;
  /** How often the shared lockouts are read. Default 2,000 ms. */
  readonly pollMs?: number;
}

/** Addresses kept in the local copy of shared lockouts at most. */
const MAX_SHARED = 100_000;

export class PostgresFailureLimiter implements FailureLimiter {
  readonly #local: MemoryFailureLimiter;
  readonly #pool: pg.Pool;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #options: PostgresFailureLimiterOptions;
  /** Shared lockouts: address → locked until (epoch ms). */
  #locked = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #failing = false;
  #closed = false;

  private constructor(options: PostgresFailureLimiterOptions, pool: pg.Pool) {
    this.#options = options;
    this.#pool = pool;
    this.#logger = options.logger.child({ component: 'login-limiter' });
    this.#prefix = `"${options.schema}".`;
    this.#local = new MemoryFailureLimiter(options);
  }

  static async open(options: PostgresFailureLimiterOptions): Promise<PostgresFailureLimiter> {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: 2,
      connectionTimeoutMillis: 5_000,
      query_timeout: 5_000,
      keepAlive: true,
      application_name: 'sluice login limiter',
    });
    pool.on('error', (err) => options.logger.warn({ err }, 'login limiter: a store connection failed'));
    const limiter = new PostgresFailureLimiter(options, pool);
    const p = limiter.#prefix;
    try {
      await inTransaction(pool, async (client) => {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1)::bigint)', [`sluice.login_failures.${options.schema}`]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`);
        await client.query(`CREATE TABLE IF NOT EXISTS ${p}login_failures (
          address TEXT PRIMARY KEY,
          window_start TIMESTAMPTZ NOT NULL,
          failures INTEGER NOT NULL,
          locked_until TIMESTAMPTZ
        )`);
      });
    } catch (cause) {
      await pool.end().catch(() => undefined);
      throw new Error(`cannot open the login limiter in ${redactUrlPassword(options.url)}: ${redactUrlPassword((cause as Error).message)}`, { cause });
    }
    await limiter.#poll();
    limiter.#schedule();
    return limiter;
  }

  check(sourceAddress: string): { allowed: true } | { allowed: false; retryAfterSeconds: number } {
    const local = this.#local.check(sourceAddress);
    if (!local.allowed) return local;
    const until = this.#locked.get(sourceAddress);
    if (until === undefined) return local;
    const now = Date.now();
    if (until <= now) {
      this.#locked.delete(sourceAddress);
      return local;
    }
    return { allowed: false, retryAfterSeconds: Math.ceil((until - now) / 1000) };
  }

  recordFailure(sourceAddress: string): void {
    this.#local.recordFailure(sourceAddress);
    const { maxAttempts, windowSeconds, lockoutSeconds } = this.#options;
    // One statement: a failure outside the window starts a new one; the one reaching the limit locks.
    this.#pool
      .query<{ locked_until: Date | null }>(
        `INSERT INTO ${this.#prefix}login_failures AS f (address, window_start, failures, locked_until)
         VALUES ($1, now(), 1, CASE WHEN $2::int <= 1 THEN now() + make_interval(secs => $4) END)
         ON CONFLICT (address) DO UPDATE SET
           window_start = CASE
             WHEN f.locked_until > now() THEN f.window_start
             WHEN f.window_start < now() - make_interval(secs => $3) OR f.locked_until IS NOT NULL THEN now()
             ELSE f.window_start END,
           failures = CASE
             WHEN f.locked_until > now() THEN f.failures
             WHEN f.window_start < now() - make_interval(secs => $3) OR f.locked_until IS NOT NULL THEN 1
             ELSE f.failures + 1 END,
           -- A failure that reaches the limit locks; a lockout that ended starts a new count.
           locked_until = CASE
             WHEN f.locked_until > now() THEN f.locked_until
             WHEN (CASE WHEN f.window_start < now() - make_interval(secs => $3) OR f.locked_until IS NOT NULL THEN 1 ELSE f.failures + 1 END) >= $2
               THEN now() + make_interval(secs => $4)
             ELSE NULL END
         RETURNING locked_until`,
        [sourceAddress, maxAttempts, windowSeconds, lockoutSeconds],
      )
      .then(
        (r) => {
          this.#ok();
          const until = r.rows[0]?.locked_until;
          if (until && until.getTime() > Date.now()) this.#lock(sourceAddress, until.getTime());
        },
        (err: unknown) => this.#failed(err),
      );
  }

  recordSuccess(sourceAddress: string): void {
    this.#local.recordSuccess(sourceAddress);
    if (this.#locked.has(sourceAddress)) return;
    this.#pool
      .query(`DELETE FROM ${this.#prefix}login_failures WHERE address = $1 AND (locked_until IS NULL OR locked_until <= now())`, [sourceAddress])
      .then(() => this.#ok(), (err: unknown) => this.#failed(err));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#pool.end().catch(() => undefined);
  }

  #lock(address: string, until: number): void {
    if (this.#locked.size >= MAX_SHARED && !this.#locked.has(address)) return;
    this.#locked.set(address, until);
  }

  async #poll(): Promise<void> {
    try {
      const r = await this.#pool.query<{ address: string; locked_until: Date }>(
        `SELECT address, locked_until FROM ${this.#prefix}login_failures WHERE locked_until > now() LIMIT ${MAX_SHARED}`,
      );
      const next = new Map<string, number>();
      for (const row of r.rows) next.set(row.address, row.locked_until.getTime());
      // Keep lockouts learned while the query ran (from this replica's own failures).
      const now = Date.now();
      for (const [address, until] of this.#locked) if (until > now && !next.has(address)) next.set(address, until);
      this.#locked = next;
      // Old rows go: a window that ended and no lockout in force.
      await this.#pool.query(
        `DELETE FROM ${this.#prefix}login_failures WHERE (locked_until IS NULL OR locked_until <= now()) AND window_start < now() - make_interval(secs => $1)`,
        [this.#options.windowSeconds],
      );
      this.#ok();
    } catch (err) {
      this.#failed(err);
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.#poll().finally(() => this.#schedule());
    }, this.#options.pollMs ?? 2_000);
    this.#timer.unref();
  }

  #ok(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#logger.info({}, 'login limiter: the shared store answers again; lockouts are shared again');
  }

  #failed(err: unknown): void {
    if (this.#closed || this.#failing) return;
    this.#failing = true;
    this.#logger.warn(
      { err },
      'login limiter: the shared store cannot be reached; failed logins are counted by this gateway alone until it is back',
    );
  }
}
