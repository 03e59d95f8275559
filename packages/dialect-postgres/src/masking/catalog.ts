/**
 * What masking needs to know about a target's database, read from its catalog on a separate
 * connection: every user relation with its columns (so that RowDescription's table OID and
 * column number name a column whatever alias it was given), view definitions (so that a view
 * column is traced to the table columns it shows), and user-defined functions (a SQL function
 * is traced through its body; a function in another language is opaque).
 *
 * One catalog per target, shared by its sessions. It is loaded when the first session that
 * masks needs it, reloaded after a statement through the gateway changes the schema (the
 * next statement waits for the new one) and refreshed in the background after `ttlMs`
 * (changes made by other clients directly on the database).
 */
import type { ColumnSource, Logger } from '@sluice/core';
import { FrameBuffer } from '@sluice/wire';
import { resultLineageOfSql } from '../analyze/lineage.js';
import type { PostgresTargetOptions } from '../config.js';
import { readErrorField } from '../messages/error-response.js';
import { Backend, typedFraming } from '../messages/framing.js';
import { connectUpstream } from '../server/upstream.js';

export interface CatalogColumn {
  readonly attnum: number;
  readonly name: string;
  readonly typeOid: number;
  readonly typmod: number;
}

export interface CatalogRelation {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** r table, p partitioned table, f foreign table, v view, m materialized view, S sequence, c composite type. */
  readonly kind: string;
  /** In attnum order, dropped columns left out. */
  readonly columns: readonly CatalogColumn[];
}

export interface CatalogFunction {
  readonly schema: string;
  readonly name: string;
  readonly language: string;
  /** For a SQL function: the columns its body reads. Absent when the function is opaque. */
  readonly sources?: readonly ColumnSource[];
}

const QUERY_RELATIONS = `SELECT c.oid::int8, n.nspname, c.relname, c.relkind, a.attnum, a.attname, a.atttypid::int8, a.atttypmod
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind NOT IN ('i','I') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY c.oid, a.attnum`;

const QUERY_VIEWS = `SELECT c.oid::int8, pg_catalog.pg_get_viewdef(c.oid)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v','m') AND n.nspname NOT IN ('pg_catalog','information_schema')`;

const QUERY_FUNCTIONS = `SELECT n.nspname, p.proname, l.lanname, p.prosrc
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN ('pg_catalog','information_schema')`;

/** An immutable view of the catalog at one moment. */
export class CatalogSnapshot {
  readonly #byOid = new Map<number, CatalogRelation>();
  readonly #byName = new Map<string, CatalogRelation[]>();
  readonly #functions = new Map<string, CatalogFunction[]>();
  /** View OID → per column (attnum order) the base-table columns it shows. */
  readonly #viewSources = new Map<number, readonly (readonly ColumnSource[])[]>();
  readonly loadedAt = Date.now();

  constructor(relations: readonly CatalogRelation[], views: ReadonlyMap<number, string>, functions: readonly CatalogFunction[]) {
    for (const r of relations) {
      this.#byOid.set(r.oid, r);
      const list = this.#byName.get(r.name);
      if (list) list.push(r);
      else this.#byName.set(r.name, [r]);
    }
    for (const f of functions) {
      for (const key of [f.name, `${f.schema}.${f.name}`]) {
        const list = this.#functions.get(key);
        if (list) list.push(f);
        else this.#functions.set(key, [f]);
      }
    }
    const resolving = new Set<number>();
    const resolve = (oid: number): readonly (readonly ColumnSource[])[] => {
      const known = this.#viewSources.get(oid);
      if (known) return known;
      const rel = this.#byOid.get(oid);
      const def = views.get(oid);
      if (rel === undefined) return [];
      const everything: readonly ColumnSource[] = [{ schema: rel.schema, table: rel.name, column: '*' }];
      if (def === undefined || resolving.has(oid)) return rel.columns.map(() => everything);
      resolving.add(oid);
      const lineage = resultLineageOfSql(def, { columnsOf: (s, t) => this.#columnsOf(s, t) });
      let perColumn: (readonly ColumnSource[])[];
      if (lineage === undefined) perColumn = rel.columns.map(() => everything);
      else {
        const baseAll = this.#expand(lineage.all, resolve);
        perColumn = rel.columns.map((_, i) => {
          const col = lineage.columns?.[i];
          return col === undefined ? baseAll : this.#expand(col.sources, resolve);
        });
      }
      resolving.delete(oid);
      this.#viewSources.set(oid, perColumn);
      return perColumn;
    };
    for (const oid of views.keys()) resolve(oid);
  }

  relation(oid: number): CatalogRelation | undefined {
    return this.#byOid.get(oid);
  }

  /** Relations of that name: in `schema`, or in any schema when the statement did not qualify it. */
  relationsNamed(schema: string | undefined, name: string): readonly CatalogRelation[] {
    const all = this.#byName.get(name) ?? [];
    return schema === undefined ? all : all.filter((r) => r.schema === schema);
  }

  /** User-defined functions of that name (`name` or `schema.name`). */
  functionsNamed(name: string): readonly CatalogFunction[] {
    return this.#functions.get(name) ?? [];
  }

  #columnsOf(schema: string | undefined, table: string): readonly string[] | undefined {
    const rels = this.relationsNamed(schema, table);
    if (rels.length === 0) return undefined;
    // Unqualified: the search_path decides; public comes first in the default one.
    const rel = rels.length === 1 ? rels[0]! : (rels.find((r) => r.schema === 'public') ?? undefined);
    return rel?.columns.map((c) => c.name);
  }

  /** The column's sources, traced through views to base tables (the view column itself included). */
  #expand(sources: readonly ColumnSource[], resolve: (oid: number) => readonly (readonly ColumnSource[])[]): ColumnSource[] {
    const out: ColumnSource[] = [];
    for (const s of sources) {
      out.push(s);
      for (const rel of this.relationsNamed(s.schema, s.table)) {
        if (rel.kind !== 'v' && rel.kind !== 'm') continue;
        const perColumn = resolve(rel.oid);
        rel.columns.forEach((c, i) => {
          if (s.column === '*' || s.column === c.name) out.push(...(perColumn[i] ?? []));
        });
      }
    }
    return out;
  }

  /**
   * Sources as a statement names them, traced through the views they name: a view column
   * brings the base-table columns it shows.
   */
  expand(sources: readonly ColumnSource[]): ColumnSource[] {
    return this.#expand(sources, (oid) => this.#viewSources.get(oid) ?? []);
  }

  /** The base-table columns a view's column shows (empty for a table). */
  viewColumnSources(oid: number, attnum: number): readonly ColumnSource[] {
    const rel = this.#byOid.get(oid);
    const perColumn = this.#viewSources.get(oid);
    if (rel === undefined || perColumn === undefined) return [];
    const i = rel.columns.findIndex((c) => c.attnum === attnum);
    return i < 0 ? [] : (perColumn[i] ?? []);
  }
}

/** Rows of a simple query, as text (null for NULL). */
async function runQueries(options: PostgresTargetOptions, queries: readonly string[]): Promise<(string | null)[][][]> {
  const upstream = await connectUpstream(options, new Map([['application_name', 'sluice-catalog']]));
  const socket = upstream.socket;
  const frames = new FrameBuffer(typedFraming, 1 << 30);
  const results: (string | null)[][][] = [];
  try {
    return await new Promise((resolve, reject) => {
      let rows: (string | null)[][] = [];
      let error: string | undefined;
      let pending = queries.length;
      const onData = (chunk: Buffer): void => {
        frames.push(chunk);
        for (let f = frames.next(); f; f = frames.next()) {
          const b = f.buffer;
          const type = b[f.start];
          if (type === Backend.DataRow) {
            const n = b.readInt16BE(f.start + 5);
            let at = f.start + 7;
            const row: (string | null)[] = [];
            for (let i = 0; i < n; i++) {
              const len = b.readInt32BE(at);
              at += 4;
              if (len < 0) row.push(null);
              else {
                row.push(b.toString('utf8', at, at + len));
                at += len;
              }
            }
            rows.push(row);
          } else if (type === Backend.ErrorResponse) {
            error = readErrorField(b.subarray(f.start, f.end), 0x4d) ?? 'catalog query failed';
          } else if (type === Backend.ReadyForQuery) {
            if (error !== undefined) {
              reject(new Error(error));
              return;
            }
            results.push(rows);
            rows = [];
            if (--pending === 0) resolve(results);
          }
        }
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('the catalog connection closed')));
      if (upstream.leftover.length > 0) onData(upstream.leftover);
      for (const q of queries) {
        const body = Buffer.from(`${q}\0`, 'utf8');
        const head = Buffer.alloc(5);
        head[0] = 0x51;
        head.writeInt32BE(body.length + 4, 1);
        socket.write(Buffer.concat([head, body]));
      }
      socket.resume();
    });
  } finally {
    socket.destroy();
  }
}

export async function loadCatalog(options: PostgresTargetOptions): Promise<CatalogSnapshot> {
  const [relRows, viewRows, fnRows] = await runQueries(options, [QUERY_RELATIONS, QUERY_VIEWS, QUERY_FUNCTIONS]);
  const relations: CatalogRelation[] = [];
  let current: { oid: number; schema: string; name: string; kind: string; columns: CatalogColumn[] } | undefined;
  for (const r of relRows!) {
    const oid = Number(r[0]);
    if (current?.oid !== oid) {
      current = { oid, schema: r[1]!, name: r[2]!, kind: r[3]!, columns: [] };
      relations.push(current);
    }
    current.columns.push({ attnum: Number(r[4]), name: r[5]!, typeOid: Number(r[6]), typmod: Number(r[7]) });
  }
  const views = new Map<number, string>();
  for (const r of viewRows!) if (r[1] !== null) views.set(Number(r[0]), r[1]!);
  const functions: CatalogFunction[] = [];
  for (const r of fnRows!) {
    const [schema, name, language, src] = r as [string, string, string, string | null];
    let sources: readonly ColumnSource[] | undefined;
    if (language === 'sql' && src) {
      const lineage = resultLineageOfSql(src);
      // A SQL function may read anything its body reads; what it returns is traced, and what
      // its body filters on could be returned as well through a computed value.
      if (lineage !== undefined) sources = [...lineage.all, ...lineage.predicates];
    }
    functions.push({ schema, name, language, ...(sources ? { sources } : {}) });
  }
  return new CatalogSnapshot(relations, views, functions);
}

/** A target's catalog: loaded on demand, reloaded after DDL, refreshed after `ttlMs`. */
export class PostgresCatalog {
  #snapshot: CatalogSnapshot | undefined;
  #loading: Promise<CatalogSnapshot> | undefined;
  #stale = true;
  #generation = 0;

  constructor(
    readonly options: PostgresTargetOptions,
    readonly log: Logger,
    readonly ttlMs = 60_000,
    readonly loader: (options: PostgresTargetOptions) => Promise<CatalogSnapshot> = loadCatalog,
  ) {}

  /** The snapshot when it is current enough to use now; undefined when one must be awaited. */
  current(): CatalogSnapshot | undefined {
    const s = this.#snapshot;
    if (s === undefined || this.#stale) return undefined;
    if (Date.now() - s.loadedAt > this.ttlMs && this.#loading === undefined) {
      // Refreshed in the background: the old one serves until then.
      this.ready().catch((err: unknown) => this.log.warn({ err }, 'refreshing the masking catalog failed; the previous one stays in use'));
    }
    return s;
  }

  /** Loads (or reloads) the snapshot. Rejects when the database cannot be read. */
  ready(): Promise<CatalogSnapshot> {
    if (this.#loading) return this.#loading;
    const generation = this.#generation;
    const loading = this.loader(this.options).then(
      (s) => {
        if (this.#loading === loading) this.#loading = undefined;
        // A schema change seen while loading may not be in what was read: load again then.
        if (generation === this.#generation) {
          this.#snapshot = s;
          this.#stale = false;
        }
        return generation === this.#generation ? s : this.ready();
      },
      (err: unknown) => {
        if (this.#loading === loading) this.#loading = undefined;
        throw err;
      },
    );
    this.#loading = loading;
    return loading;
  }

  /** The schema changed (DDL through the gateway): the next statement waits for a new snapshot. */
  invalidate(): void {
    this.#stale = true;
    this.#generation++;
  }
}

const catalogs = new WeakMap<PostgresTargetOptions, PostgresCatalog>();

/** The catalog shared by the sessions of one target. */
export function catalogFor(options: PostgresTargetOptions, log: Logger): PostgresCatalog {
  let c = catalogs.get(options);
  if (!c) catalogs.set(options, (c = new PostgresCatalog(options, log)));
  return c;
}
