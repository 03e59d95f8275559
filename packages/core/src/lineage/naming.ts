/**
 * Dataset names per the OpenLineage naming spec: the namespace is the data source
 * (`postgres://host:port`, `mysql://host:port`), the name is `database.schema.table` for
 * PostgreSQL (an unqualified table is taken to be in `public`) and `database.table` for MySQL
 * and MariaDB (an unqualified table is in the session's current schema).
 */
import { createHash } from 'node:crypto';

export interface DatasetNaming {
  /** The namespace of the upstream's datasets. */
  readonly namespace: string;
  /** The dataset name of a table as a statement named it. */
  name(schema: string | undefined, table: string): string;
  /** What identifies this naming (sessions with the same key name datasets the same way). */
  readonly key: string;
}

const SCHEMES: Readonly<Record<string, string>> = { postgres: 'postgres', mysql: 'mysql', mongodb: 'mongodb', sqlserver: 'sqlserver' };

/** The naming of a session's datasets, from its dialect, upstream server and database. */
export function datasetNaming(dialect: string, server: { readonly address: string; readonly port: number } | undefined, database: string | undefined): DatasetNaming {
  const scheme = SCHEMES[dialect] ?? dialect;
  const host = server === undefined ? 'unknown' : server.address.includes(':') ? `[${server.address}]` : server.address;
  const namespace = server === undefined ? `${scheme}://unknown` : `${scheme}://${host}:${server.port}`;
  const db = database ?? 'default';
  const key = `${namespace}\u0000${db}`;
  if (dialect === 'postgres') {
    return { namespace, key, name: (schema, table) => `${db}.${schema ?? 'public'}.${table}` };
  }
  // MySQL, MariaDB and the like: a schema is a database.
  return { namespace, key, name: (schema, table) => `${schema ?? db}.${table}` };
}

/**
 * A UUID (version 5 layout) derived from a run key: the same job, run key and identity give the
 * same run id on every gateway, so OpenLineage consumers join the events of one run. The
 * identity is part of it: another identity naming the same key gets a run of its own.
 */
export function runIdFor(jobNamespace: string, job: string, runKey: string, subject: string): string {
  const h = createHash('sha1').update(`${jobNamespace}\u0000${job}\u0000${runKey}\u0000${subject}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
