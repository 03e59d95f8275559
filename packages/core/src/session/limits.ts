import { z } from 'zod';

/**
 * Connection and statement-rate limits per identity (subject) and per source address, kept in
 * this process. With N gateway replicas behind a load balancer each replica counts on its own:
 * the effective limit is up to N times the configured one (configure limit / N per replica for
 * a fleet-wide figure).
 *
 * One entry per identity and per source address holds its session count and its token bucket.
 * A session keeps direct references to its two entries, so deciding whether a statement may run
 * reads no map. An entry is dropped when its last session has ended and its bucket is full again
 * (a client cannot refill its bucket by reconnecting), so memory follows the sessions in use.
 */

const positive = z.number().int().positive();

/** The `limits` keys handled here (the gateway config adds message size and timeouts). */
export const sessionLimitsSchema = z
  .object({
    /** Concurrent sessions. Absent: unlimited. */
    connections: z
      .object({
        perIdentity: positive.optional(),
        perSource: positive.optional(),
      })
      .strict()
      .optional(),
    /** Statements per second (token buckets). Absent: unlimited. */
    statementsPerSecond: z
      .object({
        perIdentity: z.number().positive().optional(),
        perSource: z.number().positive().optional(),
        /** How many seconds' worth of statements may come at once after a quiet time (bucket size = rate × burstSeconds). */
        burstSeconds: z.number().positive().max(3600).default(2),
      })
      .strict()
      .optional(),
    /** Per-identity overrides of the `perIdentity` values, by subject. */
    identities: z
      .record(
        z.string().min(1),
        z
          .object({
            connections: positive.optional(),
            statementsPerSecond: z.number().positive().optional(),
          })
          .strict(),
      )
      .optional(),
  });

export type SessionLimitsConfig = z.input<typeof sessionLimitsSchema>;

/** Why a session or a statement was refused: whose limit, and the limit. */
export interface LimitRefusal {
  readonly scope: 'identity' | 'source';
  /** The subject or the address. */
  readonly key: string;
  readonly limit: number;
  /** For a statement: when the bucket has a token again. */
  readonly retryAfterSeconds?: number;
  /** For a statement: the bucket's size, the most statements one request can ever take. */
  readonly burst?: number;
}

class Entry {
  sessions = 0;
  tokens: number;
  at: number;
  constructor(
    readonly key: string,
    /** Tokens per millisecond; 0: no rate limit. */
    readonly perMs: number,
    readonly capacity: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.at = now;
  }

  /** Refills for the time passed; true when at least `n` tokens are there. */
  has(n: number, now: number): boolean {
    if (now > this.at) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.perMs);
      this.at = now;
    }
    return this.tokens >= n;
  }

  full(now: number): boolean {
    return this.perMs === 0 || this.tokens + (now - this.at) * this.perMs >= this.capacity;
  }
}

/** A session's hold on its entries: released once when it ends, asked before each statement. */
export class Admission {
  #released = false;
  constructor(
    readonly owner: SessionLimiter,
    readonly identity: Entry,
    readonly source: Entry,
    /** True when a statement rate applies to this session. */
    readonly rated: boolean,
  ) {}

  /** Takes `n` statements' tokens from both buckets; a refusal (taking nothing) when either is short. */
  take(n: number): LimitRefusal | undefined {
    const now = Date.now();
    const id = this.identity;
    const src = this.source;
    if (id.perMs > 0 && !id.has(n, now)) return refusal('identity', id, n);
    if (src.perMs > 0 && !src.has(n, now)) return refusal('source', src, n);
    if (id.perMs > 0) id.tokens -= n;
    if (src.perMs > 0) src.tokens -= n;
    return undefined;
  }

  /** Gives the session's place back. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.owner.release(this);
  }
}

function refusal(scope: 'identity' | 'source', e: Entry, n: number): LimitRefusal {
  const perSecond = e.perMs * 1000;
  return { scope, key: e.key, limit: perSecond, retryAfterSeconds: Math.max(0, n - e.tokens) / perSecond, burst: e.capacity };
}

/** How often at most entries kept after their last session are looked at. */
const SWEEP_MS = 5000;

export class SessionLimiter {
  readonly #config: SessionLimitsConfig;
  readonly #identities = new Map<string, Entry>();
  readonly #sources = new Map<string, Entry>();
  /** Entries without sessions whose bucket was not yet full when their last session ended. */
  readonly #lingering = new Set<Entry>();
  #lastSweep = 0;

  private constructor(config: SessionLimitsConfig) {
    this.#config = config;
  }

  /** A limiter for the configured limits, or undefined when none is configured (nothing to count). */
  static of(config: SessionLimitsConfig | undefined): SessionLimiter | undefined {
    if (config === undefined) return undefined;
    const c = config.connections;
    const r = config.statementsPerSecond;
    const any =
      c?.perIdentity !== undefined ||
      c?.perSource !== undefined ||
      r?.perIdentity !== undefined ||
      r?.perSource !== undefined ||
      Object.values(config.identities ?? {}).some((o) => o.connections !== undefined || o.statementsPerSecond !== undefined);
    return any ? new SessionLimiter(config) : undefined;
  }

  /** Entries held (for tests and metrics). */
  get size(): number {
    return this.#identities.size + this.#sources.size;
  }

  #maxConnections(scope: 'identity' | 'source', key: string): number | undefined {
    if (scope === 'source') return this.#config.connections?.perSource;
    return this.#config.identities?.[key]?.connections ?? this.#config.connections?.perIdentity;
  }

  #rate(scope: 'identity' | 'source', key: string): number | undefined {
    if (scope === 'source') return this.#config.statementsPerSecond?.perSource;
    return this.#config.identities?.[key]?.statementsPerSecond ?? this.#config.statementsPerSecond?.perIdentity;
  }

  #entry(scope: 'identity' | 'source', key: string, now: number): Entry {
    const map = scope === 'identity' ? this.#identities : this.#sources;
    let e = map.get(key);
    if (e === undefined) {
      const rate = this.#rate(scope, key) ?? 0;
      const capacity = Math.max(1, rate * (this.#config.statementsPerSecond?.burstSeconds ?? 2));
      e = new Entry(key, rate / 1000, capacity, now);
      map.set(key, e);
    }
    return e;
  }

  /** Whether one more session of this identity from this address would be over a limit (takes nothing). */
  check(subject: string, sourceAddress: string): LimitRefusal | undefined {
    const source = sourceKey(sourceAddress);
    const maxId = this.#maxConnections('identity', subject);
    if (maxId !== undefined && (this.#identities.get(subject)?.sessions ?? 0) >= maxId) return { scope: 'identity', key: subject, limit: maxId };
    const maxSrc = this.#maxConnections('source', source);
    if (maxSrc !== undefined && (this.#sources.get(source)?.sessions ?? 0) >= maxSrc) return { scope: 'source', key: source, limit: maxSrc };
    return undefined;
  }

  /** Counts a new session, or says which limit it is over (counting nothing). */
  admit(subject: string, sourceAddress: string): Admission | LimitRefusal {
    const now = Date.now();
    this.#sweep(now);
    const over = this.check(subject, sourceAddress);
    if (over !== undefined) return over;
    const identity = this.#entry('identity', subject, now);
    const source = this.#entry('source', sourceKey(sourceAddress), now);
    identity.sessions++;
    source.sessions++;
    this.#lingering.delete(identity);
    this.#lingering.delete(source);
    return new Admission(this, identity, source, identity.perMs > 0 || source.perMs > 0);
  }

  /** @internal Called by Admission#release. */
  release(a: Admission): void {
    const now = Date.now();
    this.#leave(this.#identities, a.identity, now);
    this.#leave(this.#sources, a.source, now);
  }

  #leave(map: Map<string, Entry>, e: Entry, now: number): void {
    e.sessions--;
    if (e.sessions > 0) return;
    if (e.full(now)) {
      if (map.get(e.key) === e) map.delete(e.key);
    } else {
      this.#lingering.add(e);
    }
  }

  /** Drops entries without sessions whose bucket has refilled. */
  #sweep(now: number): void {
    if (this.#lingering.size === 0 || now - this.#lastSweep < SWEEP_MS) return;
    this.#lastSweep = now;
    for (const e of this.#lingering) {
      if (e.sessions > 0) {
        this.#lingering.delete(e);
      } else if (e.full(now)) {
        this.#lingering.delete(e);
        if (this.#identities.get(e.key) === e) this.#identities.delete(e.key);
        if (this.#sources.get(e.key) === e) this.#sources.delete(e.key);
      }
    }
  }
}

/** The address a source limit counts by: an IPv4 client seen on a dual-stack socket as itself. */
export function sourceKey(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
