/**
 * The embedded lineage store: one SQLite file in WAL mode, so that `sluice lineage` can read
 * it while the gateway writes. A batch is written in one transaction; observations of a key
 * already stored are merged into its row.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { LineageObservation, LineageStore } from '@sluice/core';
import type { Logger } from 'pino';
import { lineageQueries, type Row } from './queries.js';
import { batchRows, type ObservationRows } from './rows.js';
import { inSchema, LineageStoreError, pendingMigrations, SCHEMA_VERSION, schemaVersionTable } from './schema.js';

export interface SqliteLineageStoreOptions {
  /** The database file; its directory is created when missing (unless `readonly`). */
  readonly path: string;
  readonly logger: Logger;
  /**
   * Opens an existing store for reading only (as `sluice lineage` does): nothing is created or
   * migrated, and a missing file or an unknown schema is an error.
   */
  readonly readonly?: boolean;
}

/** Observations deleted per statement when pruning, so that the gateway's writes are not held up long. */
const PRUNE_CHUNK = 5000;

/** `$1`, `$2` ... as named parameters `@p1`, `@p2` ... (better-sqlite3 binds them from an object). */
function named(sql: string): string {
  return inSchema(sql, '').replace(/\$(\d+)/g, '@p$1');
}

function bind(params: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  params.forEach((v, i) => (out[`p${i + 1}`] = v));
  return out;
}

export async function openSqliteLineageStore(options: SqliteLineageStoreOptions): Promise<LineageStore> {
  const path = resolve(options.path);
  const logger = options.logger.child({ component: 'lineage-store' });
  const readonly = options.readonly ?? false;
  if (readonly && !existsSync(path)) {
    throw new LineageStoreError(`there is no lineage store at ${path}: the gateway creates it once lineage is recorded`);
  }
  let db: Database.Database;
  try {
    if (!readonly) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { readonly, fileMustExist: readonly });
  } catch (cause) {
    throw new LineageStoreError(`cannot open the lineage store at ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    db.pragma('busy_timeout = 5000');
    if (!readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    db.pragma('foreign_keys = ON');
    if (readonly) checkVersion(db, path);
    else migrate(db, path);
  } catch (cause) {
    db.close();
    if (cause instanceof LineageStoreError) throw cause;
    throw new LineageStoreError(`cannot use the lineage store at ${path}: ${(cause as Error).message}`, { cause });
  }
  logger.debug({ path, readonly }, 'lineage store opened');

  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = db.prepare(named(sql));
      statements.set(sql, statement);
    }
    return statement;
  };
  let closed = false;
  const open = () => {
    if (closed) throw new LineageStoreError(`the lineage store at ${path} is closed`);
  };

  const queries = lineageQueries(async (sql, params) => {
    open();
    return prepare(sql).all(bind(params)) as Row[];
  }, '');

  const write = readonly ? undefined : writer(db, prepare);

  return {
    async record(observations: readonly LineageObservation[]) {
      open();
      if (write === undefined) throw new LineageStoreError(`the lineage store at ${path} was opened for reading only`);
      const rows = batchRows(observations);
      if (rows.length > 0) write(rows);
    },
    column: (name, query) => queries.column(name, query),
    table: (name, query) => queries.table(name, query),
    identity: (subject, query) => queries.identity(subject, query),
    async prune(before: number) {
      open();
      const chunk = prepare(`DELETE FROM {s}observations WHERE id IN (SELECT id FROM {s}observations WHERE last_seen < $1 LIMIT $2)`);
      let total = 0;
      for (;;) {
        const { changes } = chunk.run(bind([before, PRUNE_CHUNK]));
        total += changes;
        if (changes < PRUNE_CHUNK || closed) return total;
        // SQLite runs on this thread: let sessions' traffic through between chunks.
        await new Promise<void>((resolve) => setImmediate(resolve));
        open();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

function currentVersion(db: Database.Database): number {
  const row = db.prepare('SELECT max(version) AS version FROM schema_version').get() as { version: number | null };
  return row.version ?? 0;
}

function migrate(db: Database.Database, path: string): void {
  db.transaction(() => {
    db.exec(inSchema(schemaVersionTable('sqlite'), ''));
    for (const m of pendingMigrations(currentVersion(db), path)) {
      for (const sql of m.statements('sqlite')) db.exec(inSchema(sql, ''));
      db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(m.version, Date.now());
    }
  }).immediate();
}

function checkVersion(db: Database.Database, path: string): void {
  const table = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).get();
  if (table === undefined) throw new LineageStoreError(`${path} is not a sluice lineage store (it has no schema_version table)`);
  const version = currentVersion(db);
  pendingMigrations(version, path);
  if (version < SCHEMA_VERSION) {
    throw new LineageStoreError(
      `the lineage store at ${path} has schema version ${version}; this sluice reads version ${SCHEMA_VERSION}: start the gateway once to migrate it`,
    );
  }
}

/** Writes merged batches: each observation inserted, or added to the row of its key. */
function writer(db: Database.Database, prepare: (sql: string) => Database.Statement) {
  const insert = prepare(
    `INSERT INTO {s}observations (obs_key, first_seen, last_seen, executions, subject, kind, actor_groups, auth_method, job_namespace, job_name,
       run_id, run_key, session_id, target, dialect, operation, fingerprint, normalized, trace_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
     ON CONFLICT (obs_key) DO NOTHING RETURNING id`,
  );
  const merge = prepare(
    `UPDATE {s}observations
        SET executions = executions + $2,
            first_seen = CASE WHEN $3 < first_seen THEN $3 ELSE first_seen END,
            last_seen = CASE WHEN $4 > last_seen THEN $4 ELSE last_seen END
      WHERE obs_key = $1`,
  );
  const read = prepare(`INSERT INTO {s}column_reads (observation_id, namespace, dataset, field, flow_type, flow_subtype, masked) VALUES ($1, $2, $3, $4, $5, $6, $7)`);
  const flow = prepare(
    `INSERT INTO {s}column_flows (observation_id, from_namespace, from_dataset, from_field, to_namespace, to_dataset, to_field, flow_type, flow_subtype)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
  );
  const dataset = prepare(`INSERT INTO {s}datasets (observation_id, direction, namespace, name) VALUES ($1, $2, $3, $4)`);

  return db.transaction((batch: readonly ObservationRows[]) => {
    for (const { observation: o, reads, flows, datasets } of batch) {
      const inserted = insert.get(
        bind([o.key, o.firstSeen, o.lastSeen, o.count, o.subject, o.kind, o.groups, o.method, o.jobNamespace, o.jobName, o.runId, o.runKey, o.sessionId, o.target, o.dialect, o.operation, o.fingerprint, o.normalized, o.traceId]),
      ) as { id: number } | undefined;
      if (inserted === undefined) {
        merge.run(bind([o.key, o.count, o.firstSeen, o.lastSeen]));
        continue;
      }
      const id = inserted.id;
      for (const r of reads) read.run(bind([id, r.namespace, r.dataset, r.field, r.type, r.subtype, r.masked]));
      for (const f of flows) flow.run(bind([id, f.fromNamespace, f.fromDataset, f.fromField, f.toNamespace, f.toDataset, f.toField, f.type, f.subtype]));
      for (const d of datasets) dataset.run(bind([id, d.direction, d.namespace, d.name]));
    }
  }).immediate;
}
