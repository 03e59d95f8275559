/**
 * The lineage store in PostgreSQL, for gateways that share one store: the same tables as the
 * embedded store, in their own schema (default `sluice`). Opening creates or migrates the
 * schema under a transaction-scoped advisory lock, so gateways starting together migrate once.
 */
import { redactUrlPassword, type LineageObservation, type LineageStore } from '@sluice/core';
import pg from 'pg';
import { DEFAULT_STORE_SCHEMA, inTransaction, STORE_SCHEMA_NAME } from '../store/pg-transaction.js';
import type { Logger } from 'pino';
import { lineageQueries, type Row } from './queries.js';
import { batchRows, type ObservationRows } from './rows.js';
import { inSchema, LineageStoreError, pendingMigrations, SCHEMA_VERSION, schemaVersionTable } from './schema.js';

export interface PostgresLineageStoreOptions {
  /** postgres://user:password@host:port/database */
  readonly url: string;
  readonly logger: Logger;
  /** The schema holding the tables. Default `sluice`. */
  readonly schema?: string;
  /** Largest number of connections. Default 4. */
  readonly maxConnections?: number;
  /**
   * Uses an existing store for reading only (as `sluice lineage` does): nothing is created or
   * migrated, and a missing schema or an older one is an error.
   */
  readonly readonly?: boolean;
}

export const DEFAULT_LINEAGE_SCHEMA = DEFAULT_STORE_SCHEMA;

/** Observations deleted per statement when pruning. */
const PRUNE_CHUNK = 5000;


export async function openPostgresLineageStore(options: PostgresLineageStoreOptions): Promise<LineageStore> {
  const schema = options.schema ?? DEFAULT_LINEAGE_SCHEMA;
  if (!STORE_SCHEMA_NAME.test(schema)) {
    throw new LineageStoreError(
      `"${schema}" cannot be the lineage store's schema: use lower-case letters, digits and underscores, starting with a letter or underscore`,
    );
  }
  const where = `${redactUrlPassword(options.url)} (schema ${schema})`;
  const logger = options.logger.child({ component: 'lineage-store' });
  const prefix = `"${schema}".`;
  // Bounded waits: a store that stops answering fails a write (retried at the next flush) instead of holding it.
  const pool = new pg.Pool({ connectionString: options.url, max: options.maxConnections ?? 4, connectionTimeoutMillis: 10_000, query_timeout: 30_000, keepAlive: true });
  // An idle connection that breaks is replaced; the error must not end the process.
  pool.on('error', (err) => logger.warn({ err }, 'lineage store: a PostgreSQL connection failed'));

  const readonly = options.readonly ?? false;
  try {
    if (readonly) await checkVersion(pool, schema, prefix, where);
    else await migrate(pool, schema, prefix, where);
  } catch (cause) {
    await pool.end().catch(() => undefined);
    if (cause instanceof LineageStoreError) throw cause;
    throw new LineageStoreError(`cannot open the lineage store at ${where}: ${redactUrlPassword((cause as Error).message)}`, { cause });
  }
  logger.debug({ store: where }, 'lineage store opened');

  let closed = false;
  const open = () => {
    if (closed) throw new LineageStoreError(`the lineage store at ${where} is closed`);
  };
  const queries = lineageQueries(async (sql, params) => {
    open();
    return (await pool.query(inSchema(sql, prefix), params as unknown[])).rows as Row[];
  }, ' COLLATE "C"');

  return {
    async record(observations: readonly LineageObservation[]) {
      open();
      if (readonly) throw new LineageStoreError(`the lineage store at ${where} was opened for reading only`);
      const rows = batchRows(observations);
      if (rows.length === 0) return;
      await inTransaction(pool, (client) => write(client, prefix, rows));
    },
    column: (name, query) => queries.column(name, query),
    table: (name, query) => queries.table(name, query),
    identity: (subject, query) => queries.identity(subject, query),
    async prune(before: number) {
      open();
      let total = 0;
      for (;;) {
        const r = await pool.query(
          `DELETE FROM ${prefix}observations WHERE id IN (SELECT id FROM ${prefix}observations WHERE last_seen < $1 LIMIT $2)`,
          [before, PRUNE_CHUNK],
        );
        const n = r.rowCount ?? 0;
        total += n;
        if (n < PRUNE_CHUNK) return total;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

async function migrate(pool: pg.Pool, schema: string, prefix: string, where: string): Promise<void> {
  await inTransaction(pool, async (client) => {
    // Every gateway opening this schema waits here for the one migrating it.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1)::bigint)', [`sluice.lineage.${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(inSchema(schemaVersionTable('postgres'), prefix));
    const { rows } = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${prefix}schema_version`);
    for (const m of pendingMigrations(rows[0]?.version ?? 0, where)) {
      for (const sql of m.statements('postgres')) await client.query(inSchema(sql, prefix));
      await client.query(`INSERT INTO ${prefix}schema_version (version, applied_at) VALUES ($1, $2)`, [m.version, Date.now()]);
    }
  });
}

async function checkVersion(pool: pg.Pool, schema: string, prefix: string, where: string): Promise<void> {
  const found = await pool.query<{ table: string | null }>('SELECT to_regclass($1)::text AS table', [`${prefix}schema_version`]);
  if (found.rows[0]?.table == null) {
    throw new LineageStoreError(`there is no lineage store at ${where}: the gateway creates the schema ${schema} once lineage is recorded`);
  }
  const { rows } = await pool.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${prefix}schema_version`);
  const version = rows[0]?.version ?? 0;
  pendingMigrations(version, where);
  if (version < SCHEMA_VERSION) {
    throw new LineageStoreError(
      `the lineage store at ${where} has schema version ${version}; this sluice reads version ${SCHEMA_VERSION}: start the gateway once to migrate it`,
    );
  }
}

/** Writes a merged batch in the caller's transaction: each observation inserted or added to its key's row, then the new rows' details. */
async function write(client: pg.PoolClient, s: string, batch: readonly ObservationRows[]): Promise<void> {
  const fresh: { id: string; rows: ObservationRows }[] = [];
  for (const rows of batch) {
    const o = rows.observation;
    for (let attempt = 0; ; attempt++) {
      const inserted = await client.query<{ id: string }>(
        `INSERT INTO ${s}observations (obs_key, first_seen, last_seen, executions, subject, kind, actor_groups, auth_method, job_namespace, job_name,
           run_id, run_key, session_id, target, dialect, operation, fingerprint, normalized, trace_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         ON CONFLICT (obs_key) DO NOTHING RETURNING id`,
        [o.key, o.firstSeen, o.lastSeen, o.count, o.subject, o.kind, o.groups, o.method, o.jobNamespace, o.jobName, o.runId, o.runKey, o.sessionId, o.target, o.dialect, o.operation, o.fingerprint, o.normalized, o.traceId],
      );
      if (inserted.rows[0] !== undefined) {
        fresh.push({ id: inserted.rows[0].id, rows });
        break;
      }
      const merged = await client.query(
        `UPDATE ${s}observations
            SET executions = executions + $2,
                first_seen = LEAST(first_seen, $3::bigint),
                last_seen = GREATEST(last_seen, $4::bigint)
          WHERE obs_key = $1`,
        [o.key, o.count, o.firstSeen, o.lastSeen],
      );
      // The row can only be missing when a prune deleted it in between: insert it again.
      if ((merged.rowCount ?? 0) > 0 || attempt > 0) break;
    }
  }
  if (fresh.length === 0) return;

  const reads = fresh.flatMap(({ id, rows }) => rows.reads.map((r) => [id, r.namespace, r.dataset, r.field, r.type, r.subtype, r.masked] as const));
  const flows = fresh.flatMap(({ id, rows }) =>
    rows.flows.map((f) => [id, f.fromNamespace, f.fromDataset, f.fromField, f.toNamespace, f.toDataset, f.toField, f.type, f.subtype] as const),
  );
  const datasets = fresh.flatMap(({ id, rows }) => rows.datasets.map((d) => [id, d.direction, d.namespace, d.name] as const));
  await insertMany(client, `${s}column_reads`, ['observation_id', 'namespace', 'dataset', 'field', 'flow_type', 'flow_subtype', 'masked'], ['bigint', 'text', 'text', 'text', 'text', 'text', 'smallint'], reads);
  await insertMany(
    client,
    `${s}column_flows`,
    ['observation_id', 'from_namespace', 'from_dataset', 'from_field', 'to_namespace', 'to_dataset', 'to_field', 'flow_type', 'flow_subtype'],
    ['bigint', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text'],
    flows,
  );
  await insertMany(client, `${s}datasets`, ['observation_id', 'direction', 'namespace', 'name'], ['bigint', 'text', 'text', 'text'], datasets);
}

/** Inserts rows in one statement, one array parameter per column. */
async function insertMany(
  client: pg.PoolClient,
  table: string,
  columns: readonly string[],
  types: readonly string[],
  rows: readonly (readonly unknown[])[],
): Promise<void> {
  if (rows.length === 0) return;
  const arrays = columns.map((_, i) => rows.map((r) => r[i]));
  await client.query(
    `INSERT INTO ${table} (${columns.join(', ')}) SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`,
    arrays,
  );
}
