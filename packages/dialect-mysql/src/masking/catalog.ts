/**
 * What masking needs to know about a MySQL / MariaDB target, read from its
 * information_schema on the gateway's own connection:
 * - every relation (information_schema.TABLES), so that a relation a statement names and the
 *   catalog does not know marks the catalog out of date;
 * - every view's definition and columns (VIEWS, COLUMNS), so that a view's column is traced
 *   through the definition to the table columns it shows (views over views too);
 * - stored functions (ROUTINES): their bodies are procedural, so a value computed by one is
 *   opaque (the detectors scan it);
 * - the server's collations with their character sets, so that a column's declared length
 *   (in bytes) is turned into characters.
 *
 * One catalog per upstream endpoint and user, shared by its sessions. It is loaded when the
 * first session that masks needs it, reloaded after a schema change through the gateway
 * (`invalidate`: the next statement waits for the new one) and refreshed in the background
 * every `ttlMs` for changes made by other clients.
 */
import { Hazard, OperationClass, type ColumnSource, type Logger } from '@sluice/core';
import { analyzeUncached } from '../analyze/analyze.js';
import { resultLineageOfSql } from '../analyze/lineage.js';
import type { Dialect } from '../analyze/parse.js';
import { UpstreamError, type MysqlUpstreamOptions } from '../protocol/upstream.js';
import { CatalogConnection } from './query.js';
import type { CharsetInfo } from './values.js';

/** Schemas of the server itself: their tables are scanned (logs and statistics hold user values), never traced. */
export const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set(['information_schema', 'mysql', 'performance_schema', 'sys']);

export function isSystemSchema(schema: string | undefined): boolean {
  return schema !== undefined && SYSTEM_SCHEMAS.has(schema.toLowerCase());
}

export type RelationKind = 'table' | 'view' | 'other';

export interface MysqlRelation {
  readonly schema: string;
  readonly name: string;
  readonly kind: RelationKind;
}

/** A view's definition as the server shows it, with its columns in order. */
export interface MysqlViewDefinition {
  readonly schema: string;
  readonly name: string;
  /** Absent when the server does not show it (no SHOW VIEW privilege): the view is then opaque. */
  readonly definition?: string | undefined;
  readonly columns: readonly string[];
}

/** What a view column shows. */
export interface MysqlViewColumn {
  readonly name: string;
  /** The columns it draws on: the ones its definition names and, through views, the base-table columns. */
  readonly sources: readonly ColumnSource[];
  /** A stored value shown as it is (through every view on the way). */
  readonly direct: boolean;
  /** Something it draws on cannot be seen (a stored function, a view without a definition, a relation not known). */
  readonly opaque: boolean;
}

/** Everything read from a target, as rows; a snapshot is built from it. */
export interface MysqlCatalogData {
  readonly relations: readonly MysqlRelation[];
  readonly views: readonly MysqlViewDefinition[];
  readonly functions: readonly { readonly schema: string; readonly name: string }[];
  /**
   * Stored routines with their bodies (`information_schema.ROUTINES.ROUTINE_DEFINITION`; empty
   * when the account may not see it), to tell what a function or a procedure reads.
   */
  readonly routines?: readonly MysqlRoutine[];
  readonly collations?: ReadonlyMap<number, CharsetInfo> | undefined;
  /** How to read view definitions. Default `mysql`. */
  readonly dialect?: Dialect | undefined;
}

export interface MysqlRoutine {
  readonly schema: string;
  readonly name: string;
  readonly type: 'FUNCTION' | 'PROCEDURE';
  readonly definition: string | undefined;
}

/** Sources traced through views. */
export interface TracedSources {
  /** The sources as given, then what the views among them draw on. */
  readonly sources: ColumnSource[];
  /** Every view column met is a plain stored value. */
  readonly direct: boolean;
  /** Something cannot be seen: a system table, a stored function inside a view, a relation not known. */
  readonly opaque: boolean;
  /** A relation named is not in the catalog (it is out of date, or the relation is temporary). */
  readonly unknown: boolean;
}

const lower = (s: string): string => s.toLowerCase();
const key = (schema: string, name: string): string => `${lower(schema)}\u0000${lower(name)}`;

/** An immutable view of a target's catalog at one moment. */
export class MysqlCatalogSnapshot {
  readonly loadedAt = Date.now();
  readonly dialect: Dialect;
  /** By lower-case name: names are compared without case, which can only match more. */
  readonly #relations = new Map<string, MysqlRelation[]>();
  readonly #views = new Map<string, MysqlViewDefinition>();
  readonly #viewColumns = new Map<string, readonly MysqlViewColumn[]>();
  /** `schema\0name` of every stored function, and the bare names. */
  readonly #functions = new Set<string>();
  readonly #functionNames = new Set<string>();
  readonly #collations: ReadonlyMap<number, CharsetInfo>;
  readonly #resolving = new Set<string>();
  /** Routines by `type\0schema\0name`, and what each reads (traced on first use). */
  readonly #routines = new Map<string, MysqlRoutine>();
  readonly #routineReads = new Map<string, TracedSources>();

  constructor(data: MysqlCatalogData) {
    this.dialect = data.dialect ?? 'mysql';
    this.#collations = data.collations ?? new Map();
    for (const r of data.relations) this.#addRelation(r);
    for (const v of data.views) {
      this.#views.set(key(v.schema, v.name), v);
      // A view the relation list missed (it was made between the two reads) is still a view.
      if (!this.relations(v.schema, v.name).some((r) => r.kind === 'view')) this.#addRelation({ schema: v.schema, name: v.name, kind: 'view' });
    }
    for (const f of data.functions) {
      this.#functions.add(key(f.schema, f.name));
      this.#functionNames.add(lower(f.name));
    }
    for (const r of data.routines ?? []) this.#routines.set(`${r.type}\u0000${key(r.schema, r.name)}`, r);
    // Traced now, once: plans read the results for every statement.
    for (const v of data.views) this.#resolveView(v);
  }

  static empty(): MysqlCatalogSnapshot {
    return new MysqlCatalogSnapshot({ relations: [], views: [], functions: [] });
  }

  #addRelation(r: MysqlRelation): void {
    const list = this.#relations.get(lower(r.name));
    if (list) list.push(r);
    else this.#relations.set(lower(r.name), [r]);
  }

  /** Relations of that name: in `schema`, or in any schema when it is undefined. */
  relations(schema: string | undefined, name: string): readonly MysqlRelation[] {
    const all = this.#relations.get(lower(name));
    if (all === undefined) return [];
    if (schema === undefined) return all;
    const s = lower(schema);
    return all.filter((r) => lower(r.schema) === s);
  }

  /** A view's columns with what they show; undefined when it is not a view. */
  viewColumns(schema: string, name: string): readonly MysqlViewColumn[] | undefined {
    const v = this.#views.get(key(schema, name));
    return v === undefined ? undefined : this.#resolveView(v);
  }

  /** The character set of a collation id, as the server lists it. */
  charsetOf(collation: number): CharsetInfo | undefined {
    return this.#collations.get(collation);
  }

  /**
   * True when a function a statement calls is (or may be) a stored function: its body cannot be
   * seen. A qualified name always is (built-in functions cannot be qualified); an unqualified
   * one when the default schema (any schema, without one) has a function of that name.
   */
  isStoredFunction(name: string, defaultSchema: string | undefined): boolean {
    const n = lower(name);
    const dot = n.lastIndexOf('.');
    if (dot > 0) return true;
    if (defaultSchema === undefined) return this.#functionNames.has(n);
    return this.#functions.has(key(defaultSchema, n));
  }

  /**
   * What a stored routine reads: every table its body reads (as `table.*`), traced through
   * views and through the stored functions it calls; `opaque` when the body cannot be seen or
   * read, or it runs dynamic SQL. Undefined when the catalog knows no such routine (an
   * unqualified name is looked up in the default schema, then in any schema).
   */
  routineReads(name: string, type: 'FUNCTION' | 'PROCEDURE', defaultSchema: string | undefined): TracedSources | undefined {
    const n = lower(name);
    const dot = n.lastIndexOf('.');
    const schema = dot > 0 ? n.slice(0, dot).replace(/`/g, '') : defaultSchema;
    const bare = (dot > 0 ? n.slice(dot + 1) : n).replace(/`/g, '');
    const found: MysqlRoutine[] = [];
    for (const r of this.#routines.values()) {
      if (r.type !== type || lower(r.name) !== bare) continue;
      if (schema === undefined || lower(r.schema) === lower(schema)) found.push(r);
    }
    if (found.length === 0) return undefined;
    const sources: ColumnSource[] = [];
    let opaque = false;
    for (const r of found) {
      const t = this.#readsOf(r);
      sources.push(...t.sources);
      if (t.opaque) opaque = true;
    }
    return { sources, direct: false, opaque, unknown: false };
  }

  #readsOf(r: MysqlRoutine): TracedSources {
    const k = `${r.type}\u0000${key(r.schema, r.name)}`;
    const known = this.#routineReads.get(k);
    if (known !== undefined) return known;
    const opaque: TracedSources = { sources: [{ schema: r.schema, table: r.name, column: '*' }], direct: false, opaque: true, unknown: false };
    // A routine that calls itself (or a cycle of them): opaque rather than a loop.
    if (this.#resolving.has(k)) return opaque;
    this.#resolving.add(k);
    let result = opaque;
    try {
      const body = r.definition?.trim();
      if (body) {
        // A body is one statement or a BEGIN ... END block; a function's may be RETURN expr.
        // Read as the anonymous block or the SELECT that does what it does.
        const text = /^begin\b/i.test(body) ? body.replace(/^begin\b/i, 'BEGIN NOT ATOMIC') : /^return\b/i.test(body) ? body.replace(/^return\b/i, 'SELECT') : body;
        const analysis = analyzeRoutineBody(text);
        // The columns the body names when the analysis lists them (anywhere in the body, so a
        // superset of what the result shows), the whole table otherwise.
        const named: ColumnSource[] = (analysis.objects ?? [])
          .filter((o) => o.kind === 'table' && o.access === 'read')
          .flatMap((o) => (o.columns && o.columns.length > 0 && !o.columns.includes('*') ? o.columns : ['*']).map((column) => ({ schema: o.schema ?? r.schema, table: o.name, column })));
        const t = this.trace(named, r.schema, true);
        const sources = [...t.sources];
        let hidden = t.opaque || analysis.operations.includes(OperationClass.Unknown) || (analysis.hazards ?? []).includes(Hazard.DynamicSql);
        for (const f of analysis.functions ?? []) {
          const inner = this.routineReads(f, 'FUNCTION', r.schema);
          if (inner === undefined) continue;
          sources.push(...inner.sources);
          if (inner.opaque) hidden = true;
        }
        result = { sources, direct: false, opaque: hidden, unknown: false };
      }
    } catch {
      result = opaque;
    } finally {
      this.#resolving.delete(k);
    }
    this.#routineReads.set(k, result);
    return result;
  }

  /**
   * Sources as a statement (or a view definition) names them, traced through the views among
   * them. `defaultSchema` is the schema unqualified names are in; with `qualify`, unqualified
   * sources are given it (a view's definition: the view's schema is certain; a session's
   * statement keeps them unqualified, which matches a pattern of any schema).
   */
  trace(sources: readonly ColumnSource[], defaultSchema: string | undefined, qualify = false): TracedSources {
    const out: ColumnSource[] = [];
    let direct = true;
    let opaque = false;
    let unknown = false;
    for (const s of sources) {
      const schema = s.schema ?? defaultSchema;
      out.push(qualify && s.schema === undefined && schema !== undefined ? { schema, table: s.table, column: s.column } : s);
      if (isSystemSchema(schema)) {
        opaque = true;
        continue;
      }
      const rels = this.relations(schema, s.table);
      if (rels.length === 0) {
        unknown = true;
        opaque = true;
        continue;
      }
      for (const rel of rels) {
        if (rel.kind !== 'view') continue;
        const cols = this.viewColumns(rel.schema, rel.name);
        if (cols === undefined || cols.length === 0) {
          opaque = true;
          continue;
        }
        const c = lower(s.column);
        let picked = c === '*' ? cols : cols.filter((col) => lower(col.name) === c);
        // A column the catalog does not list (the view changed): it may show anything the view does.
        if (picked.length === 0) picked = cols;
        for (const col of picked) {
          out.push(...col.sources);
          if (!col.direct) direct = false;
          if (col.opaque) opaque = true;
        }
      }
    }
    return { sources: out, direct, opaque, unknown };
  }

  #resolveView(v: MysqlViewDefinition): readonly MysqlViewColumn[] {
    const k = key(v.schema, v.name);
    const known = this.#viewColumns.get(k);
    if (known !== undefined) return known;
    const opaqueAll = (): MysqlViewColumn[] =>
      v.columns.map((name) => ({ name, sources: [{ schema: v.schema, table: v.name, column: '*' }], direct: false, opaque: true }));
    // A view that reads itself (through others): it cannot be created, but a catalog read
    // while views change could show one; it is opaque rather than a loop.
    if (this.#resolving.has(k)) return opaqueAll();
    this.#resolving.add(k);
    let columns: MysqlViewColumn[];
    try {
      const lineage = v.definition ? resultLineageOfSql(v.definition, { dialect: this.dialect }) : undefined;
      if (lineage === undefined) columns = opaqueAll();
      else {
        const positioned = lineage.columns !== undefined && lineage.columns.length === v.columns.length;
        columns = v.columns.map((name, i) => {
          const lc = positioned ? lineage.columns![i]! : undefined;
          const t = this.trace(lc ? lc.sources : lineage.all, v.schema, true);
          const functions = lc ? lc.functions : lineage.functions;
          const opaque = t.opaque || functions.some((f) => this.isStoredFunction(f, v.schema));
          return { name, sources: t.sources, direct: lc !== undefined && lc.direct && t.direct, opaque };
        });
      }
    } finally {
      this.#resolving.delete(k);
    }
    this.#viewColumns.set(k, columns);
    return columns;
  }
}

const QUERY_RELATIONS = `SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
WHERE TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')`;

const QUERY_VIEWS = `SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS
WHERE TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')`;

const QUERY_VIEW_COLUMNS = `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c
JOIN information_schema.VIEWS v ON v.TABLE_SCHEMA = c.TABLE_SCHEMA AND v.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`;

const QUERY_ROUTINES = `SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION FROM information_schema.ROUTINES
WHERE ROUTINE_TYPE IN ('FUNCTION', 'PROCEDURE')`;

const QUERY_COLLATIONS = `SELECT co.ID, co.CHARACTER_SET_NAME, cs.MAXLEN FROM information_schema.COLLATIONS co
JOIN information_schema.CHARACTER_SETS cs ON cs.CHARACTER_SET_NAME = co.CHARACTER_SET_NAME`;

function kindOf(tableType: string | null): RelationKind {
  if (tableType === 'VIEW' || tableType === 'SYSTEM VIEW') return 'view';
  if (tableType === 'BASE TABLE' || tableType === 'SYSTEM VERSIONED' || tableType === 'TEMPORARY') return 'table';
  return 'other';
}

/** Reads a target's catalog on a connection of its own. Rejects when it cannot be read. */
export async function loadCatalog(options: MysqlUpstreamOptions, timeoutMs = 30_000): Promise<MysqlCatalogSnapshot> {
  const conn = await CatalogConnection.open(options);
  const timer = setTimeout(() => conn.destroy(new UpstreamError(`reading the masking catalog took longer than ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  try {
    const relations: MysqlRelation[] = [];
    for (const [schema, name, type] of await conn.query(QUERY_RELATIONS)) {
      if (schema !== null && schema !== undefined && name !== null && name !== undefined) relations.push({ schema, name, kind: kindOf(type ?? null) });
    }
    const definitions = new Map<string, { schema: string; name: string; definition: string | undefined; columns: string[] }>();
    for (const [schema, name, definition] of await conn.query(QUERY_VIEWS)) {
      if (schema == null || name == null) continue;
      // An empty definition: the user may not see it.
      definitions.set(key(schema, name), { schema, name, definition: definition || undefined, columns: [] });
    }
    for (const [schema, name, column] of await conn.query(QUERY_VIEW_COLUMNS)) {
      if (schema == null || name == null || column == null) continue;
      definitions.get(key(schema, name))?.columns.push(column);
    }
    const functions: { schema: string; name: string }[] = [];
    const routines: MysqlRoutine[] = [];
    for (const [schema, name, type, definition] of await conn.query(QUERY_ROUTINES)) {
      if (schema == null || name == null) continue;
      if (type === 'FUNCTION') functions.push({ schema, name });
      routines.push({ schema, name, type: type === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE', definition: definition || undefined });
    }
    const collations = new Map<number, CharsetInfo>();
    for (const [id, charset, maxLen] of await conn.query(QUERY_COLLATIONS)) {
      if (id == null || charset == null || maxLen == null) continue;
      collations.set(Number(id), { charset, maxLen: Number(maxLen) });
    }
    const dialect: Dialect = /mariadb/i.test(conn.serverVersion) ? 'mariadb' : 'mysql';
    conn.close();
    return new MysqlCatalogSnapshot({ relations, views: [...definitions.values()], functions, routines, collations, dialect });
  } catch (err) {
    conn.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export interface MysqlCatalogOptions {
  /** Background refresh period. Default 60 s. */
  readonly ttlMs?: number;
  /** Shortest time between two reloads asked for by relations the catalog does not know. Default 5 s. */
  readonly unknownReloadMs?: number;
  readonly loader?: (options: MysqlUpstreamOptions) => Promise<MysqlCatalogSnapshot>;
}

/** A target's catalog: loaded on demand, reloaded after DDL, refreshed in the background. */
export class MysqlCatalog {
  #snapshot: MysqlCatalogSnapshot | undefined;
  #loading: Promise<MysqlCatalogSnapshot> | undefined;
  #stale = true;
  #generation = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #lastUnknownReload = 0;
  readonly #ttlMs: number;
  readonly #unknownReloadMs: number;
  readonly #loader: (options: MysqlUpstreamOptions) => Promise<MysqlCatalogSnapshot>;

  constructor(
    readonly options: MysqlUpstreamOptions,
    readonly log: Pick<Logger, 'warn'>,
    catalogOptions: MysqlCatalogOptions = {},
  ) {
    this.#ttlMs = catalogOptions.ttlMs ?? 60_000;
    this.#unknownReloadMs = catalogOptions.unknownReloadMs ?? 5_000;
    this.#loader = catalogOptions.loader ?? ((o) => loadCatalog(o));
  }

  /** The latest snapshot loaded (possibly out of date: see `ready`); undefined before the first load. */
  get snapshot(): MysqlCatalogSnapshot | undefined {
    return this.#snapshot;
  }

  /**
   * Undefined when the snapshot is current; otherwise a promise that resolves once a current
   * one is loaded, and rejects when the catalog cannot be read (the statement waiting for it
   * must then be refused).
   */
  ready(): Promise<void> | undefined {
    if (this.#snapshot !== undefined && !this.#stale) return undefined;
    return this.#load().then(() => undefined);
  }

  /** The schema changed through the gateway: the next statement waits for a new snapshot. */
  invalidate(): void {
    this.#stale = true;
    this.#generation++;
  }

  /**
   * A statement named a relation the catalog does not know: another client made it, or it is a
   * temporary table (which never shows up). The statement is already masked conservatively
   * (its columns are scanned), so a reload runs in the background, at most once per
   * `unknownReloadMs`, instead of holding statements up.
   */
  noteUnknownRelation(): void {
    if (this.#closed || this.#loading !== undefined) return;
    const now = Date.now();
    if (now - this.#lastUnknownReload < this.#unknownReloadMs) return;
    this.#lastUnknownReload = now;
    this.#refresh();
  }

  /** Stops the background refresh. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const [k, c] of catalogs) if (c === this) catalogs.delete(k);
  }

  #refresh(): void {
    this.#load().catch((err: unknown) => this.log.warn({ err }, 'refreshing the masking catalog failed; the previous one stays in use'));
  }

  #startTimer(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => {
      if (this.#loading === undefined) this.#refresh();
    }, this.#ttlMs);
    this.#timer.unref();
  }

  #load(): Promise<MysqlCatalogSnapshot> {
    if (this.#loading) return this.#loading;
    const generation = this.#generation;
    const loading: Promise<MysqlCatalogSnapshot> = this.#loader(this.options).then(
      (s) => {
        if (this.#loading === loading) this.#loading = undefined;
        // A schema change seen while loading may not be in what was read: load again then,
        // keeping this one meanwhile (it is newer than the previous).
        this.#snapshot = s;
        this.#startTimer();
        if (generation !== this.#generation) return this.#load();
        this.#stale = false;
        return s;
      },
      (err: unknown) => {
        if (this.#loading === loading) this.#loading = undefined;
        throw err;
      },
    );
    this.#loading = loading;
    return loading;
  }
}

const catalogs = new Map<string, MysqlCatalog>();

/** The catalog shared by the sessions going to one upstream endpoint as one user. */
export function catalogFor(options: MysqlUpstreamOptions, logger: Pick<Logger, 'warn'>, catalogOptions?: MysqlCatalogOptions): MysqlCatalog {
  const k = `${options.host}\u0000${options.port}\u0000${options.user}`;
  let c = catalogs.get(k);
  if (c === undefined) catalogs.set(k, (c = new MysqlCatalog(options, logger, catalogOptions)));
  return c;
}

/**
 * The analysis of a routine's body. Read with MariaDB's grammar whatever the server: a
 * BEGIN ... END body is analysed as MariaDB's anonymous block (`BEGIN NOT ATOMIC`), which MySQL
 * has no statement for; the statements inside are the same.
 */
function analyzeRoutineBody(text: string) {
  return analyzeUncached(text, { dialect: 'mariadb' });
}
