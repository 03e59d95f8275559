/**
 * The three lineage questions (a column, a table, an identity) as SQL both stores run: the
 * statements use `$1`, `$2` ... parameters and `{s}` for the schema prefix, and order text
 * byte-wise so that SQLite and PostgreSQL list entries in the same order.
 */
import type {
  ColumnFlowEntry,
  ColumnReadEntry,
  ColumnReport,
  FieldRef,
  FlowSubtype,
  FlowType,
  IdentityReport,
  LineageQuery,
  TableReport,
} from '@sluice/core';

/** Default largest number of entries per list of an answer. */
export const DEFAULT_LINEAGE_LIMIT = 100;

export type Row = Record<string, unknown>;

/** Runs one statement of this module (with `$n` parameters and `{s}` prefixes) and returns its rows. */
export type RunQuery = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

export type NamespacedQuery = LineageQuery & { readonly namespace?: string };

/** A name or filter the store cannot look up with (an empty name, a column name without a dataset, a bad limit). */
export class LineageQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LineageQueryError';
  }
}

/** Splits `dataset.field` on its last dot: `app.public.customers.email` → `app.public.customers` and `email`. */
export function splitColumnName(name: string): { readonly dataset: string; readonly field: string } {
  const at = name.lastIndexOf('.');
  if (at <= 0 || at === name.length - 1) {
    throw new LineageQueryError(
      `"${name}" is not a column name: write the dataset and the column separated by a dot, for example app.public.customers.email`,
    );
  }
  return { dataset: name.slice(0, at), field: name.slice(at + 1) };
}

function requireName(value: string, what: string): void {
  if (value.trim() === '') throw new LineageQueryError(`the ${what} is empty`);
}

/** A limit of a query: a positive whole number, or the default. */
function limitOf(query: LineageQuery | undefined): number {
  const limit = query?.limit ?? DEFAULT_LINEAGE_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new LineageQueryError(`limit must be a positive whole number, got ${limit}`);
  return limit;
}

/** Collects parameters and hands out their `$n`. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** `AND` conditions on an observation alias for since/until: an observation counts when its span meets the window. */
function window(o: string, query: LineageQuery | undefined, p: Params): string {
  let sql = '';
  if (query?.since !== undefined) sql += ` AND ${o}.last_seen >= ${p.add(query.since)}`;
  if (query?.until !== undefined) sql += ` AND ${o}.first_seen <= ${p.add(query.until)}`;
  return sql;
}

const iso = (value: unknown): string => new Date(Number(value)).toISOString();
const text = (value: unknown): string => String(value);

function readEntry(r: Row): ColumnReadEntry {
  const type = text(r.flow_type) as FlowType;
  return {
    subject: text(r.subject),
    kind: text(r.kind),
    job: text(r.job_name),
    runId: text(r.run_id),
    ...(r.run_key !== null && r.run_key !== undefined ? { runKey: text(r.run_key) } : {}),
    type,
    subtype: text(r.flow_subtype) as FlowSubtype,
    ...(r.masked !== null && r.masked !== undefined ? { masked: Number(r.masked) === 1 } : {}),
    count: Number(r.executions),
    firstSeen: iso(r.first_seen),
    lastSeen: iso(r.last_seen),
  };
}

function flowEntry(r: Row): ColumnFlowEntry {
  return {
    from: { namespace: text(r.from_namespace), name: text(r.from_dataset), field: text(r.from_field) },
    to: { namespace: text(r.to_namespace), name: text(r.to_dataset), field: text(r.to_field) },
    type: text(r.flow_type) as FlowType,
    subtype: text(r.flow_subtype) as FlowSubtype,
    subject: text(r.subject),
    job: text(r.job_name),
    runId: text(r.run_id),
    count: Number(r.executions),
    firstSeen: iso(r.first_seen),
    lastSeen: iso(r.last_seen),
  };
}

const AGGREGATES = 'sum(o.executions) AS executions, min(o.first_seen) AS first_seen, max(o.last_seen) AS last_seen';

/** The lineage questions over one store. `collate` is appended to text columns in ORDER BY. */
export function lineageQueries(run: RunQuery, collate: string) {
  const c = (column: string) => `${column}${collate}`;

  /** Reads matching `where` (on the column_reads alias r), grouped per observation identity, run and flow. */
  const reads = (where: string, extraColumns: readonly string[], query: LineageQuery | undefined, p: Params) => {
    const group = [...extraColumns, 'o.subject', 'o.kind', 'o.job_name', 'o.run_id', 'r.flow_type', 'r.flow_subtype', 'r.masked'];
    const order = [...extraColumns.map(c), c('o.subject'), c('o.job_name'), c('o.run_id'), c('r.flow_type'), c('r.flow_subtype'), 'COALESCE(r.masked, -1)'];
    const inner = ['observation_id', ...extraColumns.map((x) => x.replace(/^r\./, '')), 'flow_type', 'flow_subtype', 'masked'];
    return run(
      `SELECT ${group.join(', ')}, max(o.run_key) AS run_key, ${AGGREGATES}
         FROM (SELECT DISTINCT ${inner.join(', ')} FROM {s}column_reads r WHERE ${where}) r
         JOIN {s}observations o ON o.id = r.observation_id
        WHERE 1 = 1${window('o', query, p)}
        GROUP BY ${group.join(', ')}
        ORDER BY last_seen DESC, ${order.join(', ')}
        LIMIT ${p.add(limitOf(query))}`,
      p.values,
    );
  };

  /** Flows matching `where` (on the column_flows alias f), grouped per pair of columns, flow, identity and run. */
  const flows = (where: string, query: LineageQuery | undefined, p: Params) => {
    const columns = ['f.from_namespace', 'f.from_dataset', 'f.from_field', 'f.to_namespace', 'f.to_dataset', 'f.to_field', 'f.flow_type', 'f.flow_subtype'];
    const group = [...columns, 'o.subject', 'o.job_name', 'o.run_id'];
    return run(
      `SELECT ${group.join(', ')}, ${AGGREGATES}
         FROM (SELECT DISTINCT observation_id, ${columns.map((x) => x.slice(2)).join(', ')} FROM {s}column_flows f WHERE ${where}) f
         JOIN {s}observations o ON o.id = f.observation_id
        WHERE 1 = 1${window('o', query, p)}
        GROUP BY ${group.join(', ')}
        ORDER BY last_seen DESC, ${group.map(c).join(', ')}
        LIMIT ${p.add(limitOf(query))}`,
      p.values,
    );
  };

  return {
    async column(name: string, query?: NamespacedQuery): Promise<ColumnReport> {
      const { dataset, field } = splitColumnName(name);
      const ns = query?.namespace;
      const match = (prefix: string, alias: string, p: Params) =>
        `${alias}.${prefix}dataset = ${p.add(dataset)} AND ${alias}.${prefix}field = ${p.add(field)}${
          ns !== undefined ? ` AND ${alias}.${prefix}namespace = ${p.add(ns)}` : ''
        }`;
      const pr = new Params();
      const pi = new Params();
      const pc = new Params();
      const [readRows, intoRows, fromRows] = await Promise.all([
        reads(match('', 'r', pr), [], query, pr),
        flows(match('from_', 'f', pi), query, pi),
        flows(match('to_', 'f', pc), query, pc),
      ]);
      const column: FieldRef | { name: string; field: string } = ns !== undefined ? { namespace: ns, name: dataset, field } : { name: dataset, field };
      return { column, reads: readRows.map(readEntry), flowedInto: intoRows.map(flowEntry), cameFrom: fromRows.map(flowEntry) };
    },

    async table(name: string, query?: NamespacedQuery): Promise<TableReport> {
      requireName(name, 'table name');
      const ns = query?.namespace;
      const match = (column: string, nsColumn: string, p: Params) =>
        `${column} = ${p.add(name)}${ns !== undefined ? ` AND ${nsColumn} = ${p.add(ns)}` : ''}`;
      const pr = new Params();
      const pw = new Params();
      const pi = new Params();
      const ps = new Params();
      const statementWhere = match('d.name', 'd.namespace', ps);
      const [readRows, fromRows, intoRows, statementRows] = await Promise.all([
        reads(match('r.dataset', 'r.namespace', pr), ['r.field'], query, pr),
        flows(match('f.to_dataset', 'f.to_namespace', pw), query, pw),
        flows(match('f.from_dataset', 'f.from_namespace', pi), query, pi),
        run(
          `SELECT o.subject, o.job_name, o.run_id, o.operation, o.normalized, sum(o.executions) AS executions, max(o.last_seen) AS last_seen
             FROM {s}observations o
            WHERE EXISTS (SELECT 1 FROM {s}datasets d WHERE d.observation_id = o.id AND ${statementWhere})${window('o', query, ps)}
            GROUP BY o.subject, o.job_name, o.run_id, o.operation, o.normalized
            ORDER BY last_seen DESC, ${['o.subject', 'o.job_name', 'o.run_id', 'o.operation', 'o.normalized'].map(c).join(', ')}
            LIMIT ${ps.add(limitOf(query))}`,
          ps.values,
        ),
      ]);
      return {
        table: ns !== undefined ? { namespace: ns, name } : { name },
        reads: readRows.map((r) => ({ field: text(r.field), ...readEntry(r) })),
        writtenFrom: fromRows.map(flowEntry),
        flowedInto: intoRows.map(flowEntry),
        statements: statementRows.map((r) => ({
          subject: text(r.subject),
          job: text(r.job_name),
          runId: text(r.run_id),
          operation: text(r.operation),
          normalized: text(r.normalized),
          count: Number(r.executions),
          lastSeen: iso(r.last_seen),
        })),
      };
    },

    async identity(subject: string, query?: LineageQuery): Promise<IdentityReport> {
      requireName(subject, 'subject');
      const pr = new Params();
      const pd = new Params();
      const pw = new Params();
      const bySubject = (p: Params) =>
        `observation_id IN (SELECT id FROM {s}observations WHERE subject = ${p.add(subject)})`;
      const [runRows, readRows, writeRows] = await Promise.all([
        run(
          `SELECT o.run_id, max(o.run_key) AS run_key, o.job_name, ${AGGREGATES}
             FROM {s}observations o
            WHERE o.subject = ${pr.add(subject)}${window('o', query, pr)}
            GROUP BY o.run_id, o.job_name
            ORDER BY last_seen DESC, ${c('o.run_id')}, ${c('o.job_name')}
            LIMIT ${pr.add(limitOf(query))}`,
          pr.values,
        ),
        reads(bySubject(pd), ['r.namespace', 'r.dataset', 'r.field'], query, pd),
        flows(bySubject(pw), query, pw),
      ]);
      return {
        subject,
        runs: runRows.map((r) => ({
          runId: text(r.run_id),
          ...(r.run_key !== null && r.run_key !== undefined ? { runKey: text(r.run_key) } : {}),
          job: text(r.job_name),
          firstSeen: iso(r.first_seen),
          lastSeen: iso(r.last_seen),
          statements: Number(r.executions),
        })),
        reads: readRows.map((r) => ({ column: { namespace: text(r.namespace), name: text(r.dataset), field: text(r.field) }, ...readEntry(r) })),
        writes: writeRows.map(flowEntry),
      };
    },
  };
}
