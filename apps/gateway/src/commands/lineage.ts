import { parseArgs } from 'node:util';
import type { ColumnFlowEntry, ColumnReadEntry, ColumnReport, IdentityReport, LineageStore, TableReport } from '@sluice/core';
import { pino } from 'pino';
import { AdminApiError, AdminUnreachableError } from '../admin/client.js';
import type { AdminErrorBody } from '../admin/http.js';
import { MAX_LINEAGE_LIMIT } from '../lineage/admin.js';
import { isPostgresUrl, openLineageStore } from '../lineage/open.js';
import { LineageQueryError, splitColumnName, type NamespacedQuery } from '../lineage/queries.js';
import { LineageStoreError } from '../lineage/schema.js';
import { adminUrl } from './approvals.js';
import { parseTime } from './audit.js';
import { UsageError } from './run.js';
import { loadOrReport } from './start.js';

/** The lines of `sluice lineage` for the CLI's usage text, under Commands. */
export const LINEAGE_USAGE = `  lineage column DATASET.COLUMN [--namespace NS] [--since T] [--until T] [--limit N]
                                       who read a column (masked or not, in which runs) and where its values went
  lineage table DATASET [--namespace NS] [--since T] [--until T] [--limit N]
                                       a table's column reads and writes, and the statements that touched it
  lineage identity SUBJECT [--since T] [--until T] [--limit N]
                                       an identity's runs and the columns it read and wrote`;

/** The paragraph on where `sluice lineage` reads, for the end of the usage text. */
export const LINEAGE_USAGE_NOTE = `The lineage commands read the lineage store of --config FILE (lineage.store), or the store at
--store PATH|URL, or ask the admin API at --admin URL (with --token or SLUICE_TOKEN); they print
the report as JSON with --json.`;

const SUBCOMMANDS = 'column, table or identity';

type Kind = 'column' | 'table' | 'identity';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  store: { type: 'string' },
  schema: { type: 'string' },
  admin: { type: 'string' },
  token: { type: 'string' },
  namespace: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** `sluice lineage column|table|identity NAME`: what the gateway recorded about who read and wrote what. */
export async function lineageCommand(args: string[], now = Date.now()): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError(`lineage needs a command: ${SUBCOMMANDS}`);
  if (sub !== 'column' && sub !== 'table' && sub !== 'identity') throw new UsageError(`unknown lineage command "${sub}" (expected ${SUBCOMMANDS})`);
  const kind: Kind = sub;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: OPTIONS });
  const what = { column: 'DATASET.COLUMN', table: 'DATASET', identity: 'SUBJECT' }[kind];
  if (positionals.length === 0) throw new UsageError(`missing ${what}: sluice lineage ${kind} ${what}`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const name = positionals[0]!;
  const query = readQuery(kind, name, values, now);

  const sources = [values.config, values.store, values.admin].filter((v) => v !== undefined && v !== '').length;
  if (sources === 0) {
    throw new UsageError('lineage needs where to read: --config FILE (the store the gateway writes), --store PATH|URL, or --admin URL');
  }
  if (sources > 1) throw new UsageError('give only one of --config, --store and --admin');

  let report: ColumnReport | TableReport | IdentityReport;
  try {
    if (values.admin !== undefined && values.admin !== '') {
      report = await fetchReport(adminUrl(values.admin), token(values.token), kind, name, query);
    } else {
      const where = storeOf(values);
      if (where === undefined) return 1;
      report = await fromStore(where, kind, name, query);
    }
  } catch (err) {
    if (err instanceof LineageStoreError || err instanceof AdminApiError || err instanceof AdminUnreachableError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  const text =
    kind === 'column'
      ? formatColumnReport(report as ColumnReport)
      : kind === 'table'
        ? formatTableReport(report as TableReport)
        : formatIdentityReport(report as IdentityReport);
  process.stdout.write(text);
  return 0;
}

interface QueryValues {
  readonly namespace?: string | undefined;
  readonly since?: string | undefined;
  readonly until?: string | undefined;
  readonly limit?: string | undefined;
}

function readQuery(kind: Kind, name: string, values: QueryValues, now: number): NamespacedQuery {
  if (name.trim() === '') throw new UsageError(`the ${kind === 'identity' ? 'subject' : `${kind} name`} is empty`);
  if (kind === 'column') {
    try {
      splitColumnName(name);
    } catch (err) {
      if (err instanceof LineageQueryError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (kind === 'identity' && values.namespace !== undefined) throw new UsageError('--namespace is for columns and tables; an identity report covers every namespace');
  if (values.namespace !== undefined && values.namespace.trim() === '') throw new UsageError('--namespace is empty; leave it out to cover every namespace');
  const since = values.since !== undefined ? parseTime(values.since, now).getTime() : undefined;
  const until = values.until !== undefined ? parseTime(values.until, now).getTime() : undefined;
  if (since !== undefined && until !== undefined && since > until) {
    throw new UsageError(`--since (${new Date(since).toISOString()}) is after --until (${new Date(until).toISOString()})`);
  }
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!/^\d+$/.test(values.limit) || limit < 1 || limit > MAX_LINEAGE_LIMIT) {
      throw new UsageError(`--limit takes a whole number from 1 to ${MAX_LINEAGE_LIMIT}, got "${values.limit}"`);
    }
  }
  return {
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
  };
}

interface StoreLocation {
  readonly store: string;
  readonly schema?: string;
  /** Where the location came from, for messages. */
  readonly origin: string;
}

/** The store of --store, or the lineage.store of --config; undefined after printing why. */
function storeOf(values: { config?: string | undefined; store?: string | undefined; schema?: string | undefined }): StoreLocation | undefined {
  if (values.store !== undefined && values.store !== '') {
    return { store: values.store, origin: '--store', ...(values.schema !== undefined ? { schema: values.schema } : {}) };
  }
  const loaded = loadOrReport(values.config!, { allowUnsetEnv: true });
  if (!loaded) return undefined;
  return { store: loaded.config.lineage.store, origin: `lineage.store of ${loaded.file}`, ...(values.schema !== undefined ? { schema: values.schema } : {}) };
}

async function fromStore(where: StoreLocation, kind: Kind, name: string, query: NamespacedQuery) {
  let store: LineageStore;
  try {
    store = await openLineageStore({
      store: where.store,
      logger: pino({ level: 'silent' }),
      readonly: true,
      ...(where.schema !== undefined ? { schema: where.schema } : {}),
    });
  } catch (err) {
    if (err instanceof LineageStoreError) throw new LineageStoreError(`${err.message} (${where.origin})`, { cause: err });
    throw err;
  }
  try {
    return kind === 'column' ? await store.column(name, query) : kind === 'table' ? await store.table(name, query) : await store.identity(name, query);
  } catch (err) {
    if (err instanceof LineageQueryError) throw new UsageError(err.message);
    if (err instanceof LineageStoreError) throw err;
    const store = isPostgresUrl(where.store) ? 'the PostgreSQL lineage store' : `the lineage store at ${where.store}`;
    throw new LineageStoreError(`cannot read ${store}: ${(err as Error).message}`, { cause: err });
  } finally {
    await store.close();
  }
}

function token(value: string | undefined): string {
  const t = value ?? process.env.SLUICE_TOKEN;
  if (t === undefined || t === '') {
    throw new UsageError('no credential for the admin API: pass --token SECRET or set SLUICE_TOKEN to a service token or an OIDC token of an identity in the gateway config');
  }
  return t;
}

/** GET /v1/lineage/KIND/NAME on the admin API. */
async function fetchReport(base: string, secret: string, kind: Kind, name: string, query: NamespacedQuery): Promise<ColumnReport | TableReport | IdentityReport> {
  const params = new URLSearchParams();
  if (query.since !== undefined) params.set('since', new Date(query.since).toISOString());
  if (query.until !== undefined) params.set('until', new Date(query.until).toISOString());
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  if (query.namespace !== undefined) params.set('namespace', query.namespace);
  const q = params.toString();
  let response: Response;
  try {
    response = await fetch(`${base}/v1/lineage/${kind}/${encodeURIComponent(name)}${q ? `?${q}` : ''}`, {
      headers: { authorization: `Bearer ${secret}`, accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    const code = (err as { cause?: { code?: unknown } }).cause?.code;
    throw new AdminUnreachableError(base, timedOut ? 'no answer within 30 s' : typeof code === 'string' ? code : undefined, { cause: err });
  }
  let body: unknown;
  try {
    body = JSON.parse(await response.text());
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body as Partial<AdminErrorBody> | undefined)?.error;
    if (error && typeof error.message === 'string') throw new AdminApiError(response.status, String(error.code), error.message);
    throw new AdminApiError(response.status, 'http', `the admin API at ${base} answered HTTP ${response.status}: does this gateway serve lineage?`);
  }
  const report = (body as { report?: unknown } | undefined)?.report;
  if (report === undefined || report === null || typeof report !== 'object') {
    throw new AdminApiError(response.status, 'http', `the admin API at ${base} answered without a lineage report`);
  }
  return report as ColumnReport | TableReport | IdentityReport;
}

/* Human output */

function grid(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

function section(title: string, header: readonly string[], rows: readonly (readonly string[])[]): string {
  return rows.length === 0 ? `${title}: none\n` : `${title}:\n${grid(header, rows)}`;
}

/** An ISO time without its zero milliseconds. */
function time(iso: string): string {
  return iso.replace(/\.000Z$/, 'Z');
}

function how(e: { type: string; subtype: string }): string {
  return `${e.type} ${e.subtype}`;
}

function masked(e: ColumnReadEntry): string {
  return e.masked === undefined ? '-' : e.masked ? 'yes' : 'no';
}

function run(e: { runId: string; runKey?: string }): string {
  return e.runKey ?? e.runId;
}

function columnName(ref: { name: string; field: string }): string {
  return `${ref.name}.${ref.field}`;
}

function scope(ref: { name: string; namespace?: string }): string {
  return ref.namespace !== undefined ? `in ${ref.namespace}` : 'in every namespace';
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

const READ_HEADER = ['SUBJECT', 'KIND', 'JOB', 'RUN', 'HOW', 'MASKED', 'COUNT', 'FIRST SEEN', 'LAST SEEN'];
const readCells = (e: ColumnReadEntry) => [e.subject, e.kind, e.job, run(e), how(e), masked(e), String(e.count), time(e.firstSeen), time(e.lastSeen)];

const FLOW_HEADER = ['FROM', 'TO', 'HOW', 'SUBJECT', 'JOB', 'RUN', 'COUNT', 'FIRST SEEN', 'LAST SEEN'];
const flowCells = (e: ColumnFlowEntry) => [columnName(e.from), columnName(e.to), how(e), e.subject, e.job, e.runId, String(e.count), time(e.firstSeen), time(e.lastSeen)];

const NOTHING = 'nothing recorded: names match exactly as the gateway records them (database.schema.table for PostgreSQL, database.table for MySQL), and only the window of --since/--until counts\n';

export function formatColumnReport(r: ColumnReport): string {
  let text = `column ${columnName(r.column)} ${scope(r.column)}\n\n`;
  text += section('read by', READ_HEADER, r.reads.map(readCells));
  text += `\n${section('flowed into', FLOW_HEADER, r.flowedInto.map(flowCells))}`;
  text += `\n${section('came from', FLOW_HEADER, r.cameFrom.map(flowCells))}`;
  if (r.reads.length + r.flowedInto.length + r.cameFrom.length === 0) text += `\n${NOTHING}`;
  return text;
}

export function formatTableReport(r: TableReport): string {
  let text = `table ${r.table.name} ${scope(r.table)}\n\n`;
  text += section('columns read', ['COLUMN', ...READ_HEADER], r.reads.map((e) => [e.field, ...readCells(e)]));
  text += `\n${section('written from', FLOW_HEADER, r.writtenFrom.map(flowCells))}`;
  text += `\n${section('flowed into', FLOW_HEADER, r.flowedInto.map(flowCells))}`;
  text += `\n${section(
    'statements',
    ['SUBJECT', 'JOB', 'RUN', 'OPERATION', 'COUNT', 'LAST SEEN', 'STATEMENT'],
    r.statements.map((s) => [s.subject, s.job, s.runId, s.operation, String(s.count), time(s.lastSeen), oneLine(s.normalized, 80)]),
  )}`;
  if (r.reads.length + r.writtenFrom.length + r.flowedInto.length + r.statements.length === 0) text += `\n${NOTHING}`;
  return text;
}

export function formatIdentityReport(r: IdentityReport): string {
  let text = `identity ${r.subject}\n\n`;
  text += section(
    'runs',
    ['RUN', 'JOB', 'FIRST SEEN', 'LAST SEEN', 'STATEMENTS'],
    r.runs.map((e) => [run(e), e.job, time(e.firstSeen), time(e.lastSeen), String(e.statements)]),
  );
  text += `\n${section(
    'columns read',
    ['COLUMN', 'NAMESPACE', 'HOW', 'MASKED', 'JOB', 'RUN', 'COUNT', 'FIRST SEEN', 'LAST SEEN'],
    r.reads.map((e) => [columnName(e.column), e.column.namespace, how(e), masked(e), e.job, run(e), String(e.count), time(e.firstSeen), time(e.lastSeen)]),
  )}`;
  text += `\n${section('columns written', FLOW_HEADER, r.writes.map(flowCells))}`;
  if (r.runs.length === 0) text += `\nnothing recorded for ${r.subject}: subjects match exactly, as the identity logs in\n`;
  return text;
}
