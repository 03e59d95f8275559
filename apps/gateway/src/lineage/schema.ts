/**
 * The lineage store's tables, the same in SQLite and PostgreSQL, and their migrations. The
 * applied versions are rows of `schema_version`; a store opened by an older gateway than the
 * one that last migrated it is refused.
 *
 *   observations   one statement shape within one run (merged: executions, first/last seen)
 *   column_reads   per observation, each source column × flow type × masking it used
 *   column_flows   per observation, each source column → written column flow
 *   datasets       per observation, each dataset read (input) or written (output)
 */

export interface Migration {
  readonly version: number;
  /** Statements, in order, with `{s}` where the schema prefix goes ('' in SQLite, `"name".` in PostgreSQL). */
  readonly statements: (flavour: 'sqlite' | 'postgres') => readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: (flavour) => {
      const id = flavour === 'sqlite' ? 'INTEGER PRIMARY KEY' : 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY';
      const ref = flavour === 'sqlite' ? 'INTEGER' : 'BIGINT';
      const ms = flavour === 'sqlite' ? 'INTEGER' : 'BIGINT';
      const flag = flavour === 'sqlite' ? 'INTEGER' : 'SMALLINT';
      return [
        `CREATE TABLE {s}observations (
          id ${id},
          obs_key TEXT NOT NULL UNIQUE,
          first_seen ${ms} NOT NULL,
          last_seen ${ms} NOT NULL,
          executions ${ms} NOT NULL,
          subject TEXT NOT NULL,
          kind TEXT NOT NULL,
          actor_groups TEXT NOT NULL,
          auth_method TEXT NOT NULL,
          job_namespace TEXT NOT NULL,
          job_name TEXT NOT NULL,
          run_id TEXT NOT NULL,
          run_key TEXT,
          session_id TEXT NOT NULL,
          target TEXT NOT NULL,
          dialect TEXT NOT NULL,
          operation TEXT NOT NULL,
          fingerprint TEXT NOT NULL,
          normalized TEXT NOT NULL,
          trace_id TEXT
        )`,
        `CREATE INDEX observations_last_seen ON {s}observations (last_seen)`,
        `CREATE INDEX observations_subject ON {s}observations (subject, last_seen)`,
        `CREATE TABLE {s}column_reads (
          observation_id ${ref} NOT NULL REFERENCES {s}observations (id) ON DELETE CASCADE,
          namespace TEXT NOT NULL,
          dataset TEXT NOT NULL,
          field TEXT NOT NULL,
          flow_type TEXT NOT NULL,
          flow_subtype TEXT NOT NULL,
          masked ${flag}
        )`,
        `CREATE INDEX column_reads_field ON {s}column_reads (dataset, field, namespace)`,
        `CREATE INDEX column_reads_observation ON {s}column_reads (observation_id)`,
        `CREATE TABLE {s}column_flows (
          observation_id ${ref} NOT NULL REFERENCES {s}observations (id) ON DELETE CASCADE,
          from_namespace TEXT NOT NULL,
          from_dataset TEXT NOT NULL,
          from_field TEXT NOT NULL,
          to_namespace TEXT NOT NULL,
          to_dataset TEXT NOT NULL,
          to_field TEXT NOT NULL,
          flow_type TEXT NOT NULL,
          flow_subtype TEXT NOT NULL
        )`,
        `CREATE INDEX column_flows_from ON {s}column_flows (from_dataset, from_field, from_namespace)`,
        `CREATE INDEX column_flows_to ON {s}column_flows (to_dataset, to_field, to_namespace)`,
        `CREATE INDEX column_flows_observation ON {s}column_flows (observation_id)`,
        `CREATE TABLE {s}datasets (
          observation_id ${ref} NOT NULL REFERENCES {s}observations (id) ON DELETE CASCADE,
          direction TEXT NOT NULL,
          namespace TEXT NOT NULL,
          name TEXT NOT NULL
        )`,
        `CREATE INDEX datasets_name ON {s}datasets (name, namespace)`,
        `CREATE INDEX datasets_observation ON {s}datasets (observation_id)`,
      ];
    },
  },
];

/** The version this gateway writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** `schema_version` itself, created before anything is read from it. */
export function schemaVersionTable(flavour: 'sqlite' | 'postgres'): string {
  const ms = flavour === 'sqlite' ? 'INTEGER' : 'BIGINT';
  return `CREATE TABLE IF NOT EXISTS {s}schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at ${ms} NOT NULL)`;
}

/** Replaces `{s}` with the schema prefix. */
export function inSchema(sql: string, prefix: string): string {
  return sql.replaceAll('{s}', prefix);
}

/** The migrations still to apply to a store at `current`; refuses a store newer than this gateway. */
export function pendingMigrations(current: number, where: string): readonly Migration[] {
  if (current > SCHEMA_VERSION) {
    throw new LineageStoreError(
      `the lineage store at ${where} has schema version ${current}, newer than this gateway knows (${SCHEMA_VERSION}): upgrade sluice, or point lineage at another store`,
    );
  }
  return MIGRATIONS.filter((m) => m.version > current);
}

/** The store cannot be opened, read or written; the message says which store and why. */
export class LineageStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LineageStoreError';
  }
}
