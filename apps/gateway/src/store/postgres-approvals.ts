/**
 * Approval requests and grants in PostgreSQL, shared by gateway replicas (`store: postgres://…`):
 * a statement held on one replica can be approved through another one's admin API.
 *
 * Tables (schema `sluice` by default, next to the lineage and audit tables; migrated on their own
 * under an advisory lock, with their own version table):
 *   approval_requests  (id, status, owner, record jsonb, created_at, decided_at, updated_at)
 *   approval_grants    (id, record jsonb, ended_at, updated_at)
 *   approvals_schema_version (version, applied_at)
 *
 * Every change of a request's status is a conditional UPDATE (`WHERE status = ANY(expected)`) in
 * a transaction: of two replicas deciding the same request, the second waits for the first's row
 * lock, then finds the status changed and loses. A transition's `confirm` step (the audit record)
 * runs inside that transaction, so the change is committed, and seen by anyone, only once it is
 * audited.
 *
 * Other replicas learn of a change twice over: `NOTIFY <schema>_approvals, '<kind>:<id>'` in the
 * same transaction, heard on one dedicated connection (LISTEN) that starts a read of what changed
 * at once; and a poll every `pollIntervalMs` (rows whose `updated_at` is past the last one seen,
 * minus an overlap for transactions that committed late). A lost notification or a dropped LISTEN
 * connection therefore delays a release by at most the poll interval. The LISTEN connection is
 * re-opened with backoff, logged as it goes.
 *
 * Every wait is bounded (connecting, each query, the confirm step); an error names the store
 * with its password redacted. When the database cannot be reached every write and read rejects,
 * and the approvals service refuses what depends on it (fail closed).
 *
 * Decided requests and ended grants older than the retention are deleted when the store opens
 * (the audit trail keeps them).
 */
import { checkStoreEntry, DEFAULT_RETENTION_MS, redactUrlPassword, withDeadline } from '@sluice/core';
import type { ApprovalBackend, ApprovalRequest, ApprovalSnapshot, ApprovalStatus, Grant, StoreEntry, TransitionOptions, WriteOptions } from '@sluice/core';
import pg from 'pg';
import type { Logger } from 'pino';
import { inTransaction } from './pg-transaction.js';

export interface PostgresApprovalBackendOptions {
  /** postgres://user:password@host:port/database */
  readonly url: string;
  /** This replica's name: the owner of the requests it creates, and part of its LISTEN connection's application_name. */
  readonly replicaId: string;
  readonly logger: Logger;
  /** The schema holding the tables. Default `sluice`. */
  readonly schema?: string;
  /** How often changes of other replicas are read when no notification came. Default 1,000 ms. */
  readonly pollIntervalMs?: number;
  /** Listen for notifications (default true); without, changes arrive by polling only. */
  readonly listen?: boolean;
  /** Decided requests and ended grants older than this are deleted at open. Default 30 days. */
  readonly retentionMs?: number;
  /** Largest number of pooled connections (the LISTEN connection is one more). Default 8. */
  readonly maxConnections?: number;
  /** Longest wait for a connection. Default 5,000 ms. */
  readonly connectTimeoutMs?: number;
  /** Longest wait for one query. Default 10,000 ms. */
  readonly queryTimeoutMs?: number;
  /** Longest a transition's confirm step (the audit record) may hold its row. Default 5,000 ms. */
  readonly confirmTimeoutMs?: number;
  /** For tests: the clock of the retention. */
  readonly now?: () => number;
}

export const DEFAULT_APPROVALS_SCHEMA = 'sluice';
export const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** A schema name as written unquoted, short enough for the channel name `<schema>_approvals`. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,52}$/;
/** Changes committed up to this long after their `updated_at` are still read by the poll. */
const POLL_OVERLAP_MS = 15_000;
const MAX_LISTEN_RETRY_MS = 10_000;
/** The tables' version this gateway writes. */
export const APPROVALS_SCHEMA_VERSION = 1;

const MIGRATIONS: readonly { readonly version: number; readonly statements: readonly string[] }[] = [
  {
    version: 1,
    statements: [
      `CREATE TABLE {s}approval_requests (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        owner TEXT NOT NULL,
        record JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        decided_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
      )`,
      `CREATE INDEX approval_requests_updated ON {s}approval_requests (updated_at)`,
      `CREATE INDEX approval_requests_open ON {s}approval_requests (status) WHERE status IN ('pending', 'approved')`,
      `CREATE TABLE {s}approval_grants (
        id TEXT PRIMARY KEY,
        record JSONB NOT NULL,
        ended_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
      )`,
      `CREATE INDEX approval_grants_updated ON {s}approval_grants (updated_at)`,
    ],
  },
];

/** The approvals store cannot be opened, read or written; the message names the store and why. */
export class ApprovalStoreError extends Error {
  override readonly name = 'ApprovalStoreError';
}

/** Marks an error of a transition's confirm step, which is passed on as it is. */
class ConfirmFailure {
  constructor(readonly error: unknown) {}
}

interface ChangedRow {
  readonly kind: 'request' | 'grant';
  readonly id: string;
  readonly record: unknown;
  readonly us: string;
}

/** Opens (creating or migrating) the tables, applies the retention and starts following changes. */
export async function openPostgresApprovalBackend(options: PostgresApprovalBackendOptions): Promise<PostgresApprovalBackend> {
  const schema = options.schema ?? DEFAULT_APPROVALS_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw new ApprovalStoreError(
      `"${schema}" cannot be the approvals store's schema: use at most 53 lower-case letters, digits and underscores, starting with a letter or underscore`,
    );
  }
  if (typeof options.replicaId !== 'string' || options.replicaId === '') {
    throw new ApprovalStoreError('the approvals store needs this gateway replica\'s id (replicaId)');
  }
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  if (!(pollIntervalMs > 0)) throw new ApprovalStoreError(`pollIntervalMs must be positive, got ${pollIntervalMs}`);
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  if (!(retentionMs > 0)) throw new ApprovalStoreError(`retentionMs must be positive, got ${retentionMs}`);
  const backend = new PostgresApprovalBackend(options, schema, pollIntervalMs);
  try {
    await backend.migrate(retentionMs, (options.now ?? Date.now)());
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }
  return backend;
}

export class PostgresApprovalBackend implements ApprovalBackend {
  readonly shared = true;
  readonly description: string;
  readonly #url: string;
  readonly #replicaId: string;
  readonly #logger: Logger;
  readonly #schema: string;
  /** `"schema".` */
  readonly #s: string;
  readonly #channel: string;
  readonly #pool: pg.Pool;
  readonly #pollIntervalMs: number;
  readonly #listen: boolean;
  readonly #connectTimeoutMs: number;
  readonly #queryTimeoutMs: number;
  readonly #confirmTimeoutMs: number;
  readonly #listeners = new Set<(change: StoreEntry) => void>();

  /** Largest `updated_at` (µs since the epoch, database clock) read so far. */
  #cursorUs = 0;
  /** `kind:id` → the `updated_at` (µs) last delivered or written here, within the poll overlap. */
  readonly #seen = new Map<string, number>();
  #pollTimer: NodeJS.Timeout | null = null;
  #polling: Promise<void> | null = null;
  #pollAgain = false;
  #pollFailing = false;
  #listener: pg.Client | null = null;
  #listenRetryMs = 250;
  #listenTimer: NodeJS.Timeout | null = null;
  /** The LISTEN connection being opened, awaited by close (so no connection outlives it). */
  #connecting: Promise<void> | null = null;
  #listenFailing = false;
  #closed = false;

  constructor(options: PostgresApprovalBackendOptions, schema: string, pollIntervalMs: number) {
    this.#url = options.url;
    this.#replicaId = options.replicaId;
    this.#logger = options.logger.child({ component: 'approvals-store' });
    this.#schema = schema;
    this.#s = `"${schema}".`;
    this.#channel = `${schema}_approvals`;
    this.#pollIntervalMs = pollIntervalMs;
    this.#listen = options.listen ?? true;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.#queryTimeoutMs = options.queryTimeoutMs ?? 10_000;
    this.#confirmTimeoutMs = options.confirmTimeoutMs ?? 5_000;
    this.description = `the approvals store at ${redactUrlPassword(options.url)} (schema ${schema})`;
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.maxConnections ?? 8,
      connectionTimeoutMillis: this.#connectTimeoutMs,
      query_timeout: this.#queryTimeoutMs,
      keepAlive: true,
      application_name: `sluice-approvals ${options.replicaId}`,
    });
    // An idle connection that breaks is replaced; the error must not end the process.
    this.#pool.on('error', (err) => this.#logger.warn({ err: this.#redactErr(err) }, 'approvals store: a PostgreSQL connection failed'));
  }

  /** Creates or migrates the tables under an advisory lock, then deletes what is past the retention. */
  async migrate(retentionMs: number, now: number): Promise<void> {
    try {
      await this.#transaction(async (client) => {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1)::bigint)', [`sluice.approvals.${this.#schema}`]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
        await client.query(`CREATE TABLE IF NOT EXISTS ${this.#s}approvals_schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)`);
        const { rows } = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${this.#s}approvals_schema_version`);
        const current = rows[0]?.version ?? 0;
        if (current > APPROVALS_SCHEMA_VERSION) {
          throw new ApprovalStoreError(
            `${this.description} has schema version ${current}, newer than this gateway knows (${APPROVALS_SCHEMA_VERSION}): upgrade sluice, or point it at another store`,
          );
        }
        for (const m of MIGRATIONS.filter((x) => x.version > current)) {
          for (const sql of m.statements) await client.query(sql.replaceAll('{s}', this.#s));
          await client.query(`INSERT INTO ${this.#s}approvals_schema_version (version, applied_at) VALUES ($1, $2)`, [m.version, Date.now()]);
        }
        const cutoff = new Date(now - retentionMs).toISOString();
        await client.query(
          `DELETE FROM ${this.#s}approval_requests WHERE status NOT IN ('pending', 'approved') AND coalesce(decided_at, created_at) < $1`,
          [cutoff],
        );
        await client.query(`DELETE FROM ${this.#s}approval_grants WHERE ended_at < $1`, [cutoff]);
        return true;
      });
    } catch (err) {
      if (err instanceof ApprovalStoreError) throw err;
      throw this.#error('cannot be opened', err);
    }
  }

  async load(): Promise<ApprovalSnapshot> {
    let rows: ChangedRow[];
    try {
      // One snapshot: the clock read first, so the poll from there misses nothing committed later.
      rows = await inTransaction(
        this.#pool,
        async (client) => {
          const start = await client.query<{ us: string }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us`);
          this.#cursorUs = Number(start.rows[0]!.us);
          return (await client.query<ChangedRow>(this.#changedSql('true'))).rows;
        },
        'BEGIN ISOLATION LEVEL REPEATABLE READ',
      );
    } catch (err) {
      throw this.#error('cannot be read', err);
    }
    const requests: ApprovalRequest[] = [];
    const grants: Grant[] = [];
    for (const row of rows) {
      const entry = this.#decode(row);
      if (entry === undefined) continue;
      if (entry.kind === 'request') requests.push(entry.record);
      else grants.push(entry.record);
    }
    return { requests, grants };
  }

  async insert(entry: StoreEntry, options?: WriteOptions): Promise<boolean> {
    const what = `cannot store ${entry.kind} ${entry.record.id}`;
    return this.#write(what, async (client) => {
      const inserted = await this.#insertRow(client, entry, true);
      if (inserted === undefined) return undefined;
      await this.#confirm(options);
      await this.#announce(client, entry.kind, entry.record.id);
      return [[`${entry.kind}:${entry.record.id}`, inserted]];
    });
  }

  async transition(next: ApprovalRequest, from: readonly ApprovalStatus[], options?: TransitionOptions): Promise<boolean> {
    return this.#write(`cannot change request ${next.id} to ${next.status}`, async (client) => {
      const updated = await client.query<{ us: string }>(
        `UPDATE ${this.#s}approval_requests
            SET status = $2, record = $3, decided_at = $4, updated_at = clock_timestamp()
          WHERE id = $1 AND status = ANY($5::text[])
          RETURNING (extract(epoch FROM updated_at) * 1000000)::bigint AS us`,
        [next.id, next.status, JSON.stringify(next), next.decidedAt ?? null, [...from]],
      );
      const row = updated.rows[0];
      if (row === undefined) return undefined;
      const written: [string, number][] = [[`request:${next.id}`, Number(row.us)]];
      if (options?.grant !== undefined) {
        const us = await this.#insertRow(client, { kind: 'grant', record: options.grant }, false);
        written.push([`grant:${options.grant.id}`, us!]);
      }
      await this.#confirm(options);
      await this.#announce(client, 'request', next.id);
      if (options?.grant !== undefined) await this.#announce(client, 'grant', options.grant.id);
      return written;
    });
  }

  async revokeGrant(revoked: Grant, options?: WriteOptions): Promise<boolean> {
    return this.#write(`cannot revoke grant ${revoked.id}`, async (client) => {
      const updated = await client.query<{ us: string }>(
        `UPDATE ${this.#s}approval_grants
            SET record = $2, ended_at = $3, updated_at = clock_timestamp()
          WHERE id = $1 AND NOT (record ? 'revokedAt')
          RETURNING (extract(epoch FROM updated_at) * 1000000)::bigint AS us`,
        [revoked.id, JSON.stringify(revoked), endOf(revoked)],
      );
      const row = updated.rows[0];
      if (row === undefined) return undefined;
      await this.#confirm(options);
      await this.#announce(client, 'grant', revoked.id);
      return [[`grant:${revoked.id}`, Number(row.us)]];
    });
  }

  async getRequest(id: string): Promise<ApprovalRequest | undefined> {
    const entry = await this.#get('request', id);
    return entry?.kind === 'request' ? entry.record : undefined;
  }

  async getGrant(id: string): Promise<Grant | undefined> {
    const entry = await this.#get('grant', id);
    return entry?.kind === 'grant' ? entry.record : undefined;
  }

  subscribe(listener: (change: StoreEntry) => void): () => void {
    this.#listeners.add(listener);
    // Reading starts with the first subscriber, from where load() ended: nothing is read for nobody.
    this.#start();
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** True while the LISTEN connection is up (for tests and health checks). */
  get listening(): boolean {
    return this.#listener !== null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    if (this.#listenTimer !== null) clearTimeout(this.#listenTimer);
    const listener = this.#listener;
    this.#listener = null;
    await listener?.end().catch(() => undefined);
    await this.#connecting;
    await this.#polling?.catch(() => undefined);
    await this.#pool.end().catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Following other replicas

  #start(): void {
    if (this.#pollTimer !== null || this.#closed) return;
    this.#pollTimer = setInterval(() => this.#kick(), this.#pollIntervalMs);
    this.#pollTimer.unref();
    if (this.#listen) this.#openListener();
  }

  #openListener(): void {
    this.#connecting = this.#connectListener()
      .catch((err: unknown) => this.#logger.error({ err: this.#redactErr(err), store: this.description }, 'approvals store: the LISTEN connection cannot be opened'))
      .finally(() => {
        this.#connecting = null;
      });
  }

  /** Reads what changed now (one read at a time; a kick during a read runs another after it). */
  #kick(): void {
    if (this.#closed) return;
    this.#pollAgain = true;
    this.#polling ??= this.#pollLoop().finally(() => {
      this.#polling = null;
    });
  }

  async #pollLoop(): Promise<void> {
    while (this.#pollAgain && !this.#closed) {
      this.#pollAgain = false;
      try {
        await this.#poll();
        if (this.#pollFailing) {
          this.#pollFailing = false;
          this.#logger.info({ store: this.description }, 'approvals store: changes of other gateways are read again');
        }
      } catch (err) {
        if (!this.#pollFailing) {
          this.#pollFailing = true;
          this.#logger.error(
            { err: this.#redactErr(err), store: this.description },
            'approvals store: changes of other gateways cannot be read; retrying at every poll',
          );
        }
      }
    }
  }

  async #poll(): Promise<void> {
    const since = this.#cursorUs - POLL_OVERLAP_MS * 1000;
    const { rows } = await this.#pool.query<ChangedRow>(this.#changedSql('updated_at > to_timestamp($1::double precision / 1000000)'), [since]);
    for (const row of rows) {
      const us = Number(row.us);
      if (us > this.#cursorUs) this.#cursorUs = us;
      const key = `${row.kind}:${row.id}`;
      if (this.#seen.get(key) === us) continue;
      this.#seen.set(key, us);
      const entry = this.#decode(row);
      if (entry === undefined) continue;
      for (const listener of this.#listeners) {
        try {
          listener(entry);
        } catch (err) {
          this.#logger.error({ err, id: row.id }, 'approvals store: applying a change failed');
        }
      }
    }
    for (const [key, us] of this.#seen) if (us < since) this.#seen.delete(key);
  }

  async #connectListener(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: this.#connectTimeoutMs,
      query_timeout: this.#queryTimeoutMs,
      keepAlive: true,
      application_name: `sluice-approvals-listen ${this.#replicaId}`,
    });
    let lost = false;
    const onLost = (err: Error): void => {
      if (lost) return;
      lost = true;
      void client.end().catch(() => undefined);
      if (this.#listener === client) this.#listener = null;
      if (this.#closed) return;
      this.#listenFailing = true;
      this.#logger.warn(
        { err: this.#redactErr(err), store: this.description, retryInMs: this.#listenRetryMs },
        `approvals store: the LISTEN connection is down; changes of other gateways arrive by polling (every ${this.#pollIntervalMs} ms) until it is back`,
      );
      this.#listenTimer = setTimeout(() => {
        this.#listenTimer = null;
        this.#openListener();
      }, this.#listenRetryMs);
      this.#listenTimer.unref();
      this.#listenRetryMs = Math.min(this.#listenRetryMs * 2, MAX_LISTEN_RETRY_MS);
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the connection was closed')));
    client.on('notification', (msg) => {
      if (msg.channel === this.#channel) this.#kick();
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"`);
    } catch (err) {
      onLost(err as Error);
      return;
    }
    if (this.#closed || lost) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#listener = client;
    this.#listenRetryMs = 250;
    if (this.#listenFailing) {
      this.#listenFailing = false;
      this.#logger.info({ store: this.description }, 'approvals store: the LISTEN connection is back');
    }
    // Catch up on what changed while nobody listened.
    this.#kick();
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** Rows of both tables matching `where`, oldest change first. */
  #changedSql(where: string): string {
    const us = '(extract(epoch FROM updated_at) * 1000000)::bigint';
    return `SELECT 'request' AS kind, id, record, ${us} AS us FROM ${this.#s}approval_requests WHERE ${where}
            UNION ALL
            SELECT 'grant' AS kind, id, record, ${us} AS us FROM ${this.#s}approval_grants WHERE ${where}
            ORDER BY us`;
  }

  /** Inserts a row; its `updated_at` (µs), or undefined when the id is taken and `ifFree`. */
  async #insertRow(client: pg.PoolClient, entry: StoreEntry, ifFree: boolean): Promise<number | undefined> {
    const conflict = ifFree ? ' ON CONFLICT (id) DO NOTHING' : '';
    const returning = ' RETURNING (extract(epoch FROM updated_at) * 1000000)::bigint AS us';
    const result =
      entry.kind === 'request'
        ? await client.query<{ us: string }>(
            `INSERT INTO ${this.#s}approval_requests (id, status, owner, record, created_at, decided_at) VALUES ($1, $2, $3, $4, $5, $6)${conflict}${returning}`,
            [entry.record.id, entry.record.status, entry.record.owner ?? this.#replicaId, JSON.stringify(entry.record), entry.record.createdAt, entry.record.decidedAt ?? null],
          )
        : await client.query<{ us: string }>(
            `INSERT INTO ${this.#s}approval_grants (id, record, ended_at) VALUES ($1, $2, $3)${conflict}${returning}`,
            [entry.record.id, JSON.stringify(entry.record), endOf(entry.record)],
          );
    const row = result.rows[0];
    return row === undefined ? undefined : Number(row.us);
  }

  async #confirm(options: WriteOptions | undefined): Promise<void> {
    if (options?.confirm === undefined) return;
    try {
      await withDeadline(options.confirm(), this.#confirmTimeoutMs, 'writing the audit record of this change', '');
    } catch (err) {
      throw new ConfirmFailure(err);
    }
  }

  async #announce(client: pg.PoolClient, kind: StoreEntry['kind'], id: string): Promise<void> {
    await client.query('SELECT pg_notify($1, $2)', [this.#channel, `${kind}:${id}`]);
  }

  /** Runs a write; true once committed, false when `work` found nothing to change (rolled back). */
  async #write(what: string, work: (client: pg.PoolClient) => Promise<[string, number][] | undefined>): Promise<boolean> {
    if (this.#closed) throw new ApprovalStoreError(`${this.description} is closed`);
    let written: [string, number][] | undefined;
    try {
      written = await this.#transaction(work);
    } catch (err) {
      if (err instanceof ConfirmFailure) throw err.error;
      throw this.#error(what, err);
    }
    if (written === undefined) return false;
    // Our own changes need not come back from the poll.
    for (const [key, us] of written) this.#seen.set(key, us);
    return true;
  }

  /** Commits what `work` did, or rolls back when it returns undefined or throws. */
  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T | undefined>): Promise<T | undefined> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await work(client);
      await client.query(out === undefined ? 'ROLLBACK' : 'COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e as Error;
      });
      throw err;
    } finally {
      // A connection that failed mid-transaction is not given back to the pool.
      client.release(broken);
    }
  }

  async #get(kind: StoreEntry['kind'], id: string): Promise<StoreEntry | undefined> {
    if (this.#closed) throw new ApprovalStoreError(`${this.description} is closed`);
    const table = kind === 'request' ? 'approval_requests' : 'approval_grants';
    let rows: { record: unknown }[];
    try {
      rows = (await this.#pool.query<{ record: unknown }>(`SELECT record FROM ${this.#s}${table} WHERE id = $1`, [id])).rows;
    } catch (err) {
      throw this.#error(`cannot read ${kind} ${id}`, err);
    }
    const row = rows[0];
    return row === undefined ? undefined : this.#decode({ kind, id, record: row.record, us: '0' });
  }

  /** The entry of a row, or undefined (logged) when the row is not a well-formed record. */
  #decode(row: ChangedRow): StoreEntry | undefined {
    const entry = checkStoreEntry({ kind: row.kind, record: row.record });
    if (typeof entry === 'string') {
      this.#logger.error({ store: this.description, kind: row.kind, id: row.id }, `approvals store: ${row.kind} ${row.id} is unreadable (${entry}); it is ignored`);
      return undefined;
    }
    return entry;
  }

  #error(what: string, cause: unknown): ApprovalStoreError {
    const why = redactUrlPassword(cause instanceof Error ? cause.message || cause.name : String(cause));
    return new ApprovalStoreError(`${this.description} ${what}: ${why}`, { cause: this.#redactErr(cause) });
  }

  /** The error with any password in its message redacted (for logs). */
  #redactErr(err: unknown): unknown {
    if (!(err instanceof Error)) return err;
    const message = redactUrlPassword(err.message);
    if (message === err.message) return err;
    const copy = new Error(message);
    copy.name = err.name;
    return copy;
  }
}

/** When a grant stops being in force: its expiry, or its revocation if earlier. */
function endOf(g: Grant): string {
  if (g.revokedAt !== undefined && Date.parse(g.revokedAt) < Date.parse(g.expiresAt)) return g.revokedAt;
  return g.expiresAt;
}

