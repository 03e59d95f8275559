/**
 * The audit trail in PostgreSQL, for gateways that share one store (`store: postgres://…`).
 *
 * One hash chain per replica. Each replica appends to its own chain (`replica`, `seq`), with the
 * same record format, the same `seq`/`prev`/`hash` rules and the same line text as the embedded
 * store (see packages/core/src/audit/chain.ts), so a record verifies the same way wherever it
 * is kept. Why one chain per replica and not one chain for all: a single chain would put every
 * statement of every replica behind one global lock in the database (each record must know the
 * hash of the one before it), which makes the slowest replica's round trip everyone's latency
 * and a lost lock holder everyone's outage. Separate chains keep appends local and batched, and
 * are verified together: every chain from its first record to its head, every head accounted for.
 *
 * Tables (schema `sluice` by default):
 *   audit_records (replica, seq, time, line)   the stored line, byte for byte as in a file
 *   audit_heads   (replica, last_seq, last_hash) the end of each chain, updated in the same
 *                 statement as the records it covers, so a chain cut short at its end is caught
 *
 * One writer per chain: the store holds a session advisory lock on its replica's chain for as
 * long as it is connected; a second gateway with the same `replicaId` is refused at start.
 *
 * Appends get their place in the chain synchronously and are written in batches (one INSERT of
 * the whole batch plus the head update, one commit), one batch in flight. A durable append
 * starts a batch at once; others wait at most `groupCommitMs`.
 *
 * When the database cannot be reached the store is unavailable, not broken: `healthy` turns
 * false (statements are refused, fail closed), promise-returning appends reject at once, records
 * already chained are kept in order and written when the connection is back (reconnects with
 * backoff), and `healthy` turns true again after the first batch written. With
 * `deferWhileUnavailable`, `deferring` is true during such an outage: records appended without a
 * promise (the completion records of reads) are kept to be written later, up to
 * `maxPendingRecords`, and the governor lets reads run meanwhile. A record that was acknowledged
 * (its append resolved) is committed in PostgreSQL and is never lost.
 */
import {
  GENESIS_HASH,
  GroupCommit,
  encodeRecordLine,
  redactUrlPassword,
  sha256Hex,
  type AuditAppendOptions,
  type AuditEvent,
  type AuditLink,
  type AuditRecord,
  type AuditStore,
} from '@sluice/core';
import pg from 'pg';
import type { Logger } from 'pino';
import { REPLICA_ID } from '../config/schema.js';
import { DEFAULT_STORE_SCHEMA, STORE_SCHEMA_NAME } from './pg-transaction.js';

export interface PostgresAuditStoreOptions {
  /** postgres://user:password@host:port/database */
  readonly url: string;
  /** This replica's chain. Two gateways running at once must not share one. */
  readonly replicaId: string;
  readonly logger: Logger;
  /** The schema holding the tables. Default `sluice`. */
  readonly schema?: string;
  /** Longest wait, in ms, before a non-durable append is written. Default 50. */
  readonly groupCommitMs?: number;
  /** A batch that takes longer than this fails (the store becomes unavailable). Default 10,000 ms. */
  readonly writeTimeoutMs?: number;
  /** Records waiting to be written past which nothing more is kept. Default 500,000. */
  readonly maxPendingRecords?: number;
  /** During an outage, keep the records of reads to write them later (see the module comment). */
  readonly deferWhileUnavailable?: boolean;
  /** First delay before reconnecting after an outage; doubles up to 5 s. Default 250 ms. */
  readonly retryMs?: number;
}

/** First key of the advisory locks the audit store takes (the second is the replica's hash). */
const LOCK_CLASS = 0x5a1ce;
const MAX_RETRY_MS = 5_000;

export class AuditStoreError extends Error {
  override readonly name = 'AuditStoreError';
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

interface Pending {
  readonly line: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  waiter: Waiter | undefined;
}

/** Opens the PostgreSQL audit store of one replica: creates the tables when missing, takes the chain's lock, finds its head. */
export async function openPostgresAuditStore(options: PostgresAuditStoreOptions): Promise<PostgresAuditStore> {
  const schema = options.schema ?? DEFAULT_STORE_SCHEMA;
  if (!STORE_SCHEMA_NAME.test(schema)) {
    throw new AuditStoreError(`"${schema}" cannot be the store's schema: use lower-case letters, digits and underscores`);
  }
  if (!REPLICA_ID.test(options.replicaId)) {
    throw new AuditStoreError(`"${options.replicaId}" cannot be a replica id: use 1 to 100 letters, digits, _ . : and -`);
  }
  const store = new PostgresAuditStore(options, schema);
  await store.start();
  return store;
}

export class PostgresAuditStore implements AuditStore {
  readonly #url: string;
  readonly #where: string;
  readonly #replica: string;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #schema: string;
  readonly #groupCommitMs: number;
  readonly #writeTimeoutMs: number;
  readonly #maxPending: number;
  readonly #defer: boolean;
  readonly #retryMs: number;

  #client: pg.Client | null = null;
  #seq = 0;
  #prev = GENESIS_HASH;
  #syncedSeq = 0;
  #pending: Pending[] = [];
  readonly #commit: GroupCommit;
  /** Set while the database cannot be reached; cleared by the next batch written. */
  #unavailable: Error | null = null;
  /** Set when the chain cannot be continued safely: for good. */
  #failure: Error | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryDelay: number;
  #connecting: Promise<void> | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  #dropped = 0;
  #overflow = false;
  /** The server process of the current connection (it holds the chain's lock). */
  #backendPid: number | null = null;
  #batches = 0;
  #records = 0;

  /** @internal use openPostgresAuditStore */
  constructor(options: PostgresAuditStoreOptions, schema: string) {
    this.#url = options.url;
    this.#schema = schema;
    this.#where = `${redactUrlPassword(options.url)} (schema ${schema})`;
    this.#replica = options.replicaId;
    this.#logger = options.logger.child({ component: 'audit-store', replica: options.replicaId });
    this.#prefix = `"${schema}".`;
    this.#groupCommitMs = options.groupCommitMs ?? 50;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 10_000;
    this.#maxPending = options.maxPendingRecords ?? 500_000;
    this.#defer = options.deferWhileUnavailable ?? false;
    this.#retryMs = options.retryMs ?? 250;
    this.#retryDelay = this.#retryMs;
    this.#commit = new GroupCommit(this.#groupCommitMs, {
      canRun: () => this.#client !== null,
      hasWork: () => this.#pending.length > 0 && this.#failure === null && this.#client !== null,
      run: () => this.#writeBatch(this.#client!, this.#pending.slice(0, 5_000)),
    });
  }

  /** @internal */
  async start(): Promise<void> {
    try {
      await this.#connect(true);
    } catch (cause) {
      if (cause instanceof AuditStoreError) throw cause;
      throw new AuditStoreError(`cannot open the audit store at ${this.#where}: ${redactUrlPassword((cause as Error).message)}`, { cause });
    }
  }

  /** Where the store is, password redacted. */
  get where(): string {
    return this.#where;
  }

  get replicaId(): string {
    return this.#replica;
  }

  /** True when appends can be written now. */
  get healthy(): boolean {
    return this.#failure === null && this.#unavailable === null && !this.#closed && this.#client !== null && !this.#overflowing;
  }

  /** More records wait than the store keeps: statements are refused until half have been written. */
  get #overflowing(): boolean {
    if (this.#overflow && this.#pending.length < this.#maxPending / 2) this.#overflow = false;
    return this.#overflow;
  }

  /** True during an outage in which records of reads are kept to be written later. */
  get deferring(): boolean {
    // A margin below the cap: reads admitted now complete (and are recorded) later.
    return this.#defer && this.#failure === null && !this.#closed && this.#unavailable !== null && this.#pending.length < this.#maxPending * 0.9;
  }

  /** Why the store cannot write now, or null. */
  get problem(): string | null {
    if (this.#failure) return this.#failure.message;
    if (this.#closed) return `the audit store at ${this.#where} is closed`;
    if (this.#unavailable) return this.#unavailable.message;
    if (this.#client === null) return `the audit store at ${this.#where} cannot be reached: reconnecting`;
    return null;
  }

  get stats(): { readonly lastSeq: number; readonly syncedSeq: number; readonly pending: number; readonly batches: number; readonly records: number; readonly dropped: number } {
    return { lastSeq: this.#seq, syncedSeq: this.#syncedSeq, pending: this.#pending.length, batches: this.#batches, records: this.#records, dropped: this.#dropped };
  }

  // ---------------------------------------------------------------------------------------------
  // Connecting

  async #connect(first: boolean): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: Math.min(this.#writeTimeoutMs, 10_000),
      query_timeout: this.#writeTimeoutMs,
      keepAlive: true,
      application_name: `sluice audit ${this.#replica}`.slice(0, 63),
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('the connection was closed')));
    await client.connect();
    try {
      if (first) await this.#migrate(client);
      const takeLock = async () =>
        (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_CLASS, `audit:${this.#replica}`])).rows[0]?.ok === true;
      let locked = await takeLock();
      if (!locked && this.#backendPid !== null) {
        // This gateway's previous connection may be half open (the network broke, the server
        // has not noticed): its server process still holds the lock. It is ours to end.
        await client.query('SELECT pg_terminate_backend($1)', [this.#backendPid]);
        for (let i = 0; i < 20 && !locked; i++) {
          await new Promise((r) => setTimeout(r, 50));
          locked = await takeLock();
        }
      }
      if (!locked) {
        throw new AuditStoreError(
          `another gateway is writing the audit chain of replica "${this.#replica}" in ${this.#where}: give every replica its own replicaId (a second gateway with the same one would fork the chain)`,
        );
      }
      await client.query(`INSERT INTO ${this.#prefix}audit_heads (replica, last_seq, last_hash) VALUES ($1, 0, $2) ON CONFLICT (replica) DO NOTHING`, [
        this.#replica,
        GENESIS_HASH,
      ]);
      const head = await client.query<{ last_seq: string; last_hash: string }>(`SELECT last_seq, last_hash FROM ${this.#prefix}audit_heads WHERE replica = $1`, [
        this.#replica,
      ]);
      const row = head.rows[0]!;
      const lastSeq = Number(row.last_seq);
      if (first) {
        this.#seq = lastSeq;
        this.#syncedSeq = lastSeq;
        this.#prev = row.last_hash;
      } else {
        this.#reconcile(lastSeq, row.last_hash);
      }
      const pid = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      this.#backendPid = pid.rows[0]!.pid;
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
  }

  async #migrate(client: pg.Client): Promise<void> {
    const p = this.#prefix;
    await client.query('BEGIN');
    try {
      // Every gateway opening this schema waits here for the one creating it.
      await client.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_CLASS]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${p}audit_heads (
        replica TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        last_hash TEXT NOT NULL,
        first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${p}audit_records (
        replica TEXT NOT NULL,
        seq BIGINT NOT NULL,
        time TIMESTAMPTZ NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (replica, seq)
      )`);
      await client.query(`CREATE INDEX IF NOT EXISTS audit_records_time ON ${p}audit_records (time)`);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /**
   * After a reconnect: the head must be where this store left it, or a batch whose commit was
   * not confirmed (the connection broke after the commit) must be the one that got there.
   */
  #reconcile(lastSeq: number, lastHash: string): void {
    if (lastSeq === this.#syncedSeq) return;
    const committed = this.#pending.findIndex((p) => p.seq === lastSeq);
    if (lastSeq > this.#syncedSeq && committed >= 0 && this.#pending[committed]!.hash === lastHash) {
      // Written before the connection broke: those records are stored.
      const done = this.#pending.splice(0, committed + 1);
      for (const p of done) p.waiter?.resolve();
      this.#syncedSeq = lastSeq;
      this.#records += done.length;
      return;
    }
    throw this.#fail(
      new AuditStoreError(
        `the audit chain of replica "${this.#replica}" in ${this.#where} ends at seq ${lastSeq}, not at seq ${this.#syncedSeq} where this gateway left it: it was changed while the gateway was disconnected; run sluice audit verify`,
      ),
    );
  }

  /** The connection broke (or was closed): the store is unavailable until it reconnects. */
  #lost(client: pg.Client, err: Error): void {
    if (this.#client !== client) return;
    this.#client = null;
    if (this.#closed || this.#failure) return;
    this.#markUnavailable(err);
  }

  #markUnavailable(cause: unknown): void {
    const why = redactUrlPassword(cause instanceof Error ? cause.message : String(cause));
    if (this.#unavailable === null) {
      this.#unavailable = new AuditStoreError(`the audit store at ${this.#where} cannot be reached: ${why}`, { cause });
      this.#logger.error(
        { err: cause, pending: this.#pending.length },
        `audit store unavailable: statements are refused until it is back${this.#defer ? ' (reads run and are audited when it is back)' : ''}`,
      );
    }
    // Nobody waits through an outage: those who wait are told now, their records stay queued.
    for (const p of this.#pending) {
      if (p.waiter) {
        p.waiter.reject(this.#unavailable);
        p.waiter = undefined;
      }
    }
    const client = this.#client;
    this.#client = null;
    if (client) {
      client.removeAllListeners('end');
      client.end().catch(() => undefined);
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#retryTimer !== null || this.#connecting !== null || this.#closed || this.#failure) return;
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(this.#retryDelay * 2, MAX_RETRY_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#connecting = this.#connect(false)
        .then(
          () => {
            if (this.#closed) return;
            this.#logger.info({ pending: this.#pending.length }, 'audit store reachable again; writing what waited');
            this.#retryDelay = this.#retryMs;
            // The new connection may have broken already (the server was still going down).
            if (this.#client === null) return;
            if (this.#pending.length === 0) {
              // Nothing waited: the store can take appends again now.
              this.#available();
              return;
            }
            // What waited is written first; the store is available once it is.
            void this.#commit.runNow();
          },
          (err: unknown) => {
            if (err instanceof AuditStoreError || typeof (err as { severity?: unknown }).severity === 'string') {
              // The server answers but refuses (another writer holds the chain, the tables are
              // gone after a failover): that does not pass quietly.
              this.#logger.error({ err }, 'audit store: the server answers but the chain cannot be taken back; retrying');
            } else {
              this.#logger.debug({ err }, 'audit store: reconnect failed; retrying');
            }
          },
        )
        .finally(() => {
          this.#connecting = null;
          if (this.#client === null) this.#scheduleReconnect();
        });
    }, delay);
    this.#retryTimer.unref();
  }

  // ---------------------------------------------------------------------------------------------
  // Appending

  append(event: AuditEvent, options: AuditAppendOptions): Promise<AuditRecord> {
    const body: Record<string, unknown> = { ...event };
    if ('hash' in body) delete body['hash'];
    let json: string;
    try {
      json = JSON.stringify(body);
    } catch (err) {
      return Promise.reject(new Error(`the audit event cannot be serialized: ${(err as Error).message}`, { cause: err }));
    }
    return this.#chainAndQueue(json, options.durable).then(({ seq, prev, hash }) => ({ ...body, seq, prev, hash }) as unknown as AuditRecord);
  }

  appendJson(json: string, options: AuditAppendOptions): Promise<AuditLink> {
    return this.#chainAndQueue(json, options.durable);
  }

  enqueueJson(json: string): void {
    if (this.#failure || this.#closed) return;
    if (this.#pending.length >= this.#maxPending) {
      // Fail closed: nothing new is admitted until the backlog has been written.
      this.#overflow = true;
      this.#dropped++;
      if (this.#dropped === 1 || this.#dropped % 10_000 === 0) {
        this.#logger.error({ dropped: this.#dropped }, `audit store: more than ${this.#maxPending} records wait to be written; records are dropped`);
      }
      return;
    }
    this.#chain(json, undefined);
    if (this.#unavailable === null) this.#commit.soon();
  }

  #chainAndQueue(json: string, durable: boolean): Promise<AuditLink> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new AuditStoreError(`the audit store at ${this.#where} is closed`));
    // During an outage a durable append (a statement about to run, a login) is refused; others
    // (a session's end, a refused login) are kept and written when the store is back.
    if (this.#unavailable && durable) return Promise.reject(this.#unavailable);
    if (this.#pending.length >= this.#maxPending) {
      this.#overflow = true;
      return Promise.reject(new AuditStoreError(`more than ${this.#maxPending} audit records wait to be written to ${this.#where}`));
    }
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const link = this.#chain(json, { resolve, reject });
    if (this.#unavailable === null) {
      if (durable) this.#commit.now();
      else this.#commit.soon();
    }
    return done.then(() => link);
  }

  #chain(json: string, waiter: Waiter | undefined): AuditLink {
    const seq = this.#seq + 1;
    const prev = this.#prev;
    const open = json.length > 2 ? `${json.slice(0, -1)},` : '{';
    const body = `${open}"seq":${seq},"prev":"${prev}"}`;
    const hash = sha256Hex(body);
    this.#seq = seq;
    this.#prev = hash;
    this.#pending.push({ line: encodeRecordLine(body, hash), seq, hash, time: timeOf(json), waiter });
    return { seq, prev, hash };
  }

  /** Writes everything appended before the call. Rejects when the store cannot write. */
  async flush(): Promise<void> {
    const target = this.#seq;
    while (this.#syncedSeq < target && this.#failure === null && this.#unavailable === null) {
      const inFlight = this.#commit.runNow();
      if (inFlight === null) break;
      await inFlight;
    }
    if (this.#syncedSeq < target) {
      throw this.#failure ?? this.#unavailable ?? new AuditStoreError(`the audit store at ${this.#where} could not write its buffer`);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    let flushError: unknown = null;
    if (this.#failure === null && this.#unavailable === null) {
      try {
        await this.flush();
      } catch (err) {
        flushError = err;
      }
    }
    this.#closed = true;
    this.#commit.cancel();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    await this.#connecting?.catch(() => undefined);
    await this.#commit.inFlight;
    const unwritten = this.#pending.length;
    if (unwritten > 0) {
      this.#logger.error({ unwritten }, `audit store closed with ${unwritten} record(s) not written (the store could not be reached)`);
      for (const p of this.#pending) p.waiter?.reject(new AuditStoreError(`the audit store at ${this.#where} closed before the record was written`));
      this.#pending = [];
    }
    const client = this.#client;
    this.#client = null;
    if (client) {
      client.removeAllListeners('end');
      // The session lock goes with the connection.
      await client.end().catch(() => undefined);
    }
    if (flushError) throw flushError;
  }

  async #writeBatch(client: pg.Client, batch: Pending[]): Promise<void> {
    const seqs: string[] = [];
    const times: string[] = [];
    const lines: string[] = [];
    for (const p of batch) {
      seqs.push(String(p.seq));
      times.push(p.time);
      lines.push(p.line);
    }
    const last = batch.at(-1)!;
    const before = batch[0]!.seq - 1;
    try {
      const r = await client.query(
        `WITH written AS (
           INSERT INTO ${this.#prefix}audit_records (replica, seq, time, line)
           SELECT $1, r.seq, r.time, r.line FROM unnest($2::bigint[], $3::timestamptz[], $4::text[]) AS r(seq, time, line)
           WHERE EXISTS (SELECT 1 FROM ${this.#prefix}audit_heads WHERE replica = $1 AND last_seq = $7)
           RETURNING 1
         )
         UPDATE ${this.#prefix}audit_heads SET last_seq = $5, last_hash = $6, updated_at = now()
         WHERE replica = $1 AND last_seq = $7 AND (SELECT count(*) FROM written) = $8`,
        [this.#replica, seqs, times, lines, last.seq, last.hash, before, batch.length],
      );
      if (r.rowCount !== 1) {
        throw this.#fail(
          new AuditStoreError(
            `the head of the audit chain of replica "${this.#replica}" in ${this.#where} moved under this gateway (expected seq ${before}); run sluice audit verify`,
          ),
        );
      }
    } catch (err) {
      if (this.#failure) return;
      const code = (err as { code?: string }).code;
      if (code !== undefined && /^(22|23|42|54)/.test(code) && code !== '23505') {
        // The server refuses this batch itself (bad data, a missing table or right, a limit):
        // retrying cannot help.
        this.#fail(new AuditStoreError(`the audit store at ${this.#where} refuses records: ${redactUrlPassword((err as Error).message)} (SQLSTATE ${code})`, { cause: err }));
        return;
      }
      if (code === '23505') {
        this.#fail(
          new AuditStoreError(
            `records seq ${batch[0]!.seq}-${last.seq} of replica "${this.#replica}" already exist in ${this.#where}: another writer extended this chain; run sluice audit verify`,
            { cause: err },
          ),
        );
        return;
      }
      this.#markUnavailable(err);
      return;
    }
    this.#pending.splice(0, batch.length);
    this.#syncedSeq = last.seq;
    this.#batches++;
    this.#records += batch.length;
    this.#available();
    for (const p of batch) p.waiter?.resolve();
  }

  #available(): void {
    if (this.#unavailable === null) return;
    this.#unavailable = null;
    this.#logger.warn({}, 'audit store available again: statements are accepted');
  }

  #fail(error: Error): Error {
    if (this.#failure) return this.#failure;
    this.#failure = error;
    this.#commit.cancel();
    this.#logger.error({ err: error, pending: this.#pending.length }, 'audit store failed for good; every statement is refused');
    for (const p of this.#pending) p.waiter?.reject(error);
    for (const p of this.#pending) p.waiter = undefined;
    return error;
  }
}

/** An ISO-8601 UTC time as the gateway writes it (`Date#toISOString`). */
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/**
 * The `time` member of an event's JSON text (every event has one), for the indexed column; now
 * when it is missing or not a time the server would take (the record itself keeps what it says).
 */
function timeOf(json: string): string {
  const at = json.indexOf('"time":"');
  if (at >= 0) {
    const end = json.indexOf('"', at + 8);
    const time = end > at ? json.slice(at + 8, end) : '';
    if (ISO_TIME.test(time)) return time;
  }
  return new Date().toISOString();
}
