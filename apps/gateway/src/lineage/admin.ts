/**
 * The lineage endpoints of the admin API, as route handlers over a store:
 *
 *   GET /v1/lineage/column/:name      name = dataset.field (app.public.customers.email)
 *   GET /v1/lineage/table/:name       name = dataset (app.public.customers)
 *   GET /v1/lineage/identity/:subject
 *
 * Query parameters: since and until (an ISO 8601 time, or a span back from now such as 30m,
 * 24h, 7d), limit (1 to 1000, default 100 entries per list) and, for columns and tables,
 * namespace. The answer is `{ "report": ... }` (a ColumnReport, TableReport or IdentityReport).
 */
import type { Identity, LineageStore } from '@sluice/core';
import { HttpError, type Reply } from '../admin/http.js';
import { DEFAULT_LINEAGE_LIMIT, LineageQueryError, type NamespacedQuery } from './queries.js';
import { LineageStoreError } from './schema.js';

export type LineageReportKind = 'column' | 'table' | 'identity';

/** Largest `limit` the API accepts. */
export const MAX_LINEAGE_LIMIT = 1000;

/** What a request asks for, after its parameters were read. */
export interface LineageRequest {
  readonly kind: LineageReportKind;
  readonly name: string;
  readonly query: NamespacedQuery;
}

export interface LineageRouteContext {
  /** Path parameters: the report kind, then the (still encoded) name. */
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  /** The authenticated caller, when the server passes it (needed for `authorize`). */
  readonly identity?: Identity;
}

export interface LineageRoute {
  readonly pattern: RegExp;
  readonly methods: { readonly GET: (ctx: LineageRouteContext) => Promise<Reply> };
}

export interface LineageRoutesOptions {
  /**
   * Whether `identity` may see the answer to `request`; refused with 403 when false. Without
   * it every authenticated caller may ask.
   */
  readonly authorize?: (identity: Identity, request: LineageRequest) => boolean;
  /** The clock for spans such as 7d (tests). */
  readonly now?: () => number;
}

/** The pattern of the lineage endpoints: the kind, then the name. */
export const LINEAGE_PATH = /^\/v1\/lineage\/(column|table|identity)\/([^/]+)$/;

/** Route entries for the admin server's route table (one pattern, GET only). */
export function lineageRoutes(store: LineageStore, options: LineageRoutesOptions = {}): readonly LineageRoute[] {
  return [{ pattern: LINEAGE_PATH, methods: { GET: (ctx) => answer(store, ctx, options) } }];
}

/**
 * Answers a request for a URL: a reply (errors included, as their JSON answers) when the path
 * is a lineage endpoint, undefined when it is not one.
 */
export async function handleLineageRequest(
  store: LineageStore,
  url: URL,
  options: LineageRoutesOptions & { readonly identity?: Identity } = {},
): Promise<Reply | undefined> {
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
  const match = LINEAGE_PATH.exec(path);
  if (!match) return undefined;
  try {
    return await answer(store, { params: match.slice(1), query: url.searchParams, ...(options.identity ? { identity: options.identity } : {}) }, options);
  } catch (err) {
    if (err instanceof HttpError) return err.reply();
    throw err;
  }
}

async function answer(store: LineageStore, ctx: LineageRouteContext, options: LineageRoutesOptions): Promise<Reply> {
  const request = parseLineageRequest(ctx.params, ctx.query, options.now?.() ?? Date.now());
  if (options.authorize !== undefined && (ctx.identity === undefined || !options.authorize(ctx.identity, request))) {
    throw new HttpError(
      403,
      'not-an-approver',
      `${ctx.identity?.subject ?? 'an unidentified caller'} may not see this lineage: it is shown to the lineage readers (lineage.readers, else the approvers), and to each identity about itself`,
    );
  }
  try {
    const { kind, name, query } = request;
    const report = kind === 'column' ? await store.column(name, query) : kind === 'table' ? await store.table(name, query) : await store.identity(name, query);
    return { status: 200, body: { report } };
  } catch (err) {
    if (err instanceof LineageQueryError) throw new HttpError(400, 'invalid', err.message);
    if (err instanceof LineageStoreError) throw new HttpError(503, 'unavailable', `the lineage store cannot answer: ${err.message}`);
    throw err;
  }
}

/** Reads the kind, name and query parameters of a request; 400 naming the bad parameter. */
export function parseLineageRequest(params: readonly string[], query: URLSearchParams, now: number): LineageRequest {
  const kind = params[0] as LineageReportKind;
  if (kind !== 'column' && kind !== 'table' && kind !== 'identity') throw new HttpError(404, 'not-found', 'no such lineage report');
  let name: string;
  try {
    name = decodeURIComponent(params[1] ?? '');
  } catch {
    throw new HttpError(400, 'invalid', `the ${kind} name in the path is not valid percent-encoding`);
  }
  if (name.trim() === '') throw new HttpError(400, 'invalid', `the ${kind} name is empty`);
  if (kind === 'column') {
    const at = name.lastIndexOf('.');
    if (at <= 0 || at === name.length - 1) {
      throw new HttpError(400, 'invalid', `"${name}" is not a column name: write dataset.column, for example app.public.customers.email`);
    }
  }
  const since = timeParam(query, 'since', now);
  const until = timeParam(query, 'until', now);
  if (since !== undefined && until !== undefined && since > until) {
    throw new HttpError(400, 'invalid', `since (${new Date(since).toISOString()}) is after until (${new Date(until).toISOString()})`);
  }
  const limit = limitParam(query.get('limit'));
  const namespace = query.get('namespace');
  if (namespace !== null && kind === 'identity') {
    throw new HttpError(400, 'invalid', 'namespace: an identity report covers every namespace; leave namespace out');
  }
  if (namespace !== null && namespace.trim() === '') throw new HttpError(400, 'invalid', 'namespace: empty; leave it out to cover every namespace');
  return {
    kind,
    name,
    query: {
      limit,
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(namespace !== null ? { namespace } : {}),
    },
  };
}

const SPAN_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86_400e3, w: 604_800e3 } as const;

/** An ISO 8601 time or a span back from `now` (30m, 24h, 7d) as epoch milliseconds; undefined when absent. */
export function parseLineageTime(value: string, now: number): number | undefined {
  const span = /^(\d+)\s*([smhdw])$/.exec(value.trim());
  if (span) return now - Number(span[1]) * SPAN_MS[span[2] as keyof typeof SPAN_MS];
  if (!/^\d{4}-\d{2}-\d{2}/.test(value.trim())) return undefined;
  const t = Date.parse(value.trim());
  return Number.isNaN(t) ? undefined : t;
}

function timeParam(query: URLSearchParams, name: 'since' | 'until', now: number): number | undefined {
  const value = query.get(name);
  if (value === null || value === '') return undefined;
  const t = parseLineageTime(value, now);
  if (t === undefined) {
    throw new HttpError(400, 'invalid', `${name}: expected an ISO 8601 time (2026-01-31T12:00:00Z) or a span back from now such as 30m, 24h or 7d, got ${JSON.stringify(value)}`);
  }
  return t;
}

function limitParam(value: string | null): number {
  if (value === null || value === '') return DEFAULT_LINEAGE_LIMIT;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > MAX_LINEAGE_LIMIT) {
    throw new HttpError(400, 'invalid', `limit: expected a whole number from 1 to ${MAX_LINEAGE_LIMIT}, got ${JSON.stringify(value)}`);
  }
  return n;
}
