/**
 * Write lineage: for each table a statement writes rows to, the columns written and the flows
 * into each (see `WriteLineage` in core). The lineage walker (lineage.ts) fills a WriteTarget
 * per writing statement (a data-modifying CTE is one of its own); `writeLineage` then gives one
 * entry per table, in the order the statements were walked (data-modifying CTEs first).
 */
import type { ColumnSource, WriteLineage, WrittenColumn } from '@sluice/core';
import { columnSource, NO_SOURCES, objectsIn, type SourceSet } from '@sluice/core';
import { directSources, Flow, FlowSet, flowsOf, union } from './flows.js';
import { as, isObj, list, text } from './tree.js';

/** The rows one statement writes into one table. */
export class WriteTarget {
  /**
   * Written columns by name, in the order written; undefined once positions cannot be told.
   * A column's first values are kept as given (they are not changed after), and copied when
   * more come.
   */
  #columns: Map<string, SourceSet> | undefined = new Map();
  /** Columns whose set is this target's own copy. */
  readonly #own = new Set<string>();
  /** Whether the names are positions (`$1` ...); undefined until the first column. */
  #positional: boolean | undefined;
  /** What any written column may carry, beyond `#columns` (when positions are unknown). */
  #carrying: FlowSet | undefined;

  get #carry(): FlowSet {
    return (this.#carrying ??= new FlowSet());
  }

  constructor(
    readonly schema: string | undefined,
    readonly table: string,
    /** Statement-level INDIRECT flows: what decides which rows are written. */
    readonly indirect: SourceSet,
    /** Made by `writeLineage` from several statements' targets. */
    readonly merged = false,
  ) {}

  /** Values written into a column (`$n` with `positional`). The same column again adds to it. */
  column(name: string, values: SourceSet = NO_SOURCES, positional = false): void {
    if (this.#columns !== undefined && this.#positional !== undefined && this.#positional !== positional) {
      // Named and positional columns together (MERGE with UPDATE SET and INSERT without a list).
      this.unknown();
    }
    if (this.#columns === undefined) {
      this.#carry.merge(values);
      return;
    }
    this.#positional = positional;
    const known = this.#columns.get(name);
    if (known === undefined) this.#columns.set(name, values);
    else if (this.#own.has(name)) known.merge(values);
    else {
      this.#columns.set(name, union(known, values));
      this.#own.add(name);
    }
  }

  /** Which column receives what cannot be told: every value may go into any column. */
  unknown(values: SourceSet = NO_SOURCES): void {
    if (this.#columns !== undefined) {
      for (const acc of this.#columns.values()) this.#carry.merge(acc);
      this.#columns = undefined;
    }
    this.#carry.merge(values);
  }

  /** Another statement's rows into the same table. */
  absorb(other: WriteTarget): void {
    if (other.#columns === undefined) this.unknown(other.#carry);
    else {
      for (const [name, acc] of other.#columns) this.column(name, acc, other.#positional === true);
      if (other.#carrying !== undefined) this.#carry.merge(other.#carrying);
    }
    this.indirect.merge(other.indirect);
  }

  lineage(): WriteLineage {
    const all = new FlowSet();
    const columns: WrittenColumn[] | undefined = this.#columns === undefined ? undefined : [];
    for (const [name, acc] of this.#columns ?? []) {
      columns?.push({ name, flows: flowsOf(acc) });
      all.merge(acc);
    }
    if (this.#carrying !== undefined) all.merge(this.#carrying);
    const out: { -readonly [K in keyof WriteLineage]: WriteLineage[K] } = { table: this.table, all: directSources(all), indirect: flowsOf(this.indirect) };
    if (this.schema !== undefined) out.schema = this.schema;
    if (columns !== undefined) {
      out.columns = columns;
      if (this.#positional === true) out.positional = true;
    }
    return out;
  }
}

/** One entry per table, in the order first written; several statements into one table merge. */
export function writeLineage(targets: readonly WriteTarget[]): WriteLineage[] | undefined {
  if (targets.length <= 1) return targets.length === 0 ? undefined : [targets[0]!.lineage()];
  const byTable = new Map<string, WriteTarget>();
  for (const t of targets) {
    const key = `${t.schema ?? ''}\u0000${t.table}`;
    const known = byTable.get(key);
    if (known === undefined) {
      byTable.set(key, t);
    } else {
      // A second statement into the same table: both go into a new target.
      let merged = known;
      if (!merged.merged) {
        merged = new WriteTarget(known.schema, known.table, new FlowSet(), true);
        merged.absorb(known);
        byTable.set(key, merged);
      }
      merged.absorb(t);
    }
  }
  return [...byTable.values()].map((t) => t.lineage());
}

/** The tables a statement writes rows to, by their RangeVar, from a statement node's type and fields. */
function writtenRelations(type: string, f: Record<string, unknown>): unknown[] {
  switch (type) {
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
    case 'RefreshMatViewStmt':
      return [f['relation']];
    case 'CopyStmt':
      return f['is_from'] === true ? [f['relation']] : [];
    case 'TruncateStmt':
      return [...list(f['relations'])];
    case 'CreateTableAsStmt': {
      const into = f['into'];
      return isObj(into) && into['skipData'] !== true ? [into['rel']] : [];
    }
    case 'SelectStmt': {
      const into = f['intoClause'];
      return isObj(into) ? [into['rel']] : [];
    }
    default:
      return [];
  }
}

/**
 * When the walk cannot finish (a tree too deep for it): every table the statement writes, each
 * with unknown columns that may carry any column of any table the statement names, and whose
 * rows any of them may decide. Iterative, so depth does not matter.
 */
export function fallbackWrites(stmt: unknown): WriteLineage[] | undefined {
  const tables = new FlowSet();
  const written: ColumnSource[] = [];
  for (const v of objectsIn(stmt)) {
    if (typeof v['relname'] === 'string') tables.add(columnSource(text(v['schemaname']), v['relname'], '*'));
    for (const key in v) {
      const body = v[key];
      if (isObj(body) && key.charCodeAt(0) >= 0x41 && key.charCodeAt(0) <= 0x5a) {
        for (const r of writtenRelations(key, body)) {
          const rv = as(r, 'RangeVar') ?? (isObj(r) ? r : undefined);
          if (rv !== undefined && typeof rv['relname'] === 'string') written.push(columnSource(text(rv['schemaname']), rv['relname'], '*'));
        }
      }
    }
  }
  if (written.length === 0) return undefined;
  const indirect = new FlowSet();
  indirect.mode = Flow.Filter;
  indirect.merge(tables);
  const targets = written.map((w) => {
    const t = new WriteTarget(w.schema, w.table, indirect);
    t.unknown(tables);
    return t;
  });
  return writeLineage(targets);
}
