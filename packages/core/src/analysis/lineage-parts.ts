/**
 * The building blocks every dialect's result-lineage walker uses: a set of sources and
 * functions without duplicates, the column lineage of a query under construction, and how a
 * recursive query's rounds are grown to a fixed point. The walkers themselves (which read each
 * dialect's parse tree) stay in the dialects.
 */
import type { ColumnSource } from './types.js';

/** Sources and functions gathered for one value (or a whole result), without duplicates. */
export class SourceSet {
  readonly sources: ColumnSource[] = [];
  readonly functions: string[] = [];
  readonly #sources = new Set<string>();
  readonly #functions = new Set<string>();

  add(s: ColumnSource): void {
    const key = `${s.schema ?? ''}\u0000${s.table}\u0000${s.column}`;
    if (this.#sources.has(key)) return;
    this.#sources.add(key);
    this.sources.push(s);
  }

  fn(name: string): void {
    if (this.#functions.has(name)) return;
    this.#functions.add(name);
    this.functions.push(name);
  }

  merge(other: SourceSet): void {
    if (other === this) return;
    for (const s of other.sources) this.add(s);
    for (const f of other.functions) this.fn(f);
  }

  get size(): number {
    return this.sources.length + this.functions.length;
  }
}

/** A set that stays empty (shared; never add to it). */
export const NO_SOURCES = new SourceSet();

export function unionSources(...sets: readonly SourceSet[]): SourceSet {
  const out = new SourceSet();
  for (const s of sets) out.merge(s);
  return out;
}

export function columnSource(schema: string | undefined, table: string, column: string): ColumnSource {
  return schema === undefined ? { table, column } : { schema, table, column };
}

/** One output column of a query or relation. Its `acc` is never changed once built. */
export interface LineageCol {
  readonly name: string;
  readonly acc: SourceSet;
  readonly direct: boolean;
}

/** A column found by name: `definite` when the relation certainly has it. */
export interface FoundCol {
  readonly acc: SourceSet;
  readonly direct: boolean;
  readonly definite: boolean;
}

export function mergeFound(found: readonly FoundCol[]): FoundCol | undefined {
  if (found.length === 0) return undefined;
  if (found.length === 1) return found[0];
  return { acc: unionSources(...found.map((f) => f.acc)), direct: found.every((f) => f.direct), definite: found.some((f) => f.definite) };
}

/** What a query returns: its columns (undefined when positions are unknown) and everything they may carry. */
export interface QueryLineage {
  readonly columns: readonly LineageCol[] | undefined;
  readonly all: SourceSet;
  /** When positions are unknown: a column by name, as far as it can be told. */
  readonly lookup?: (name: string) => FoundCol | undefined;
}

export const NO_ROWS: QueryLineage = { columns: [], all: NO_SOURCES };

export function renamedColumns(columns: readonly LineageCol[], aliases: readonly string[]): LineageCol[] {
  return columns.map((c, i) => (aliases[i] !== undefined ? { ...c, name: aliases[i] } : c));
}

/** Rounds of a recursive query walked before its lineage is taken as complete. */
export const MAX_LINEAGE_ROUNDS = 12;

/** Grows a recursive query's result with another round's. */
export function growLineage(before: QueryLineage, next: QueryLineage): QueryLineage {
  const all = unionSources(before.all, next.all);
  const b = before.columns;
  const n = next.columns;
  let columns: LineageCol[] | undefined;
  if (b !== undefined && n !== undefined && b.length === n.length) {
    columns = n.map((c, i) => ({ name: c.name, acc: unionSources(b[i]!.acc, c.acc), direct: b[i]!.direct && c.direct }));
  } else if (n !== undefined) {
    columns = n.map((c) => ({ ...c, acc: unionSources(c.acc, before.all), direct: false }));
  } else if (b !== undefined) {
    columns = b.map((c) => ({ ...c, acc: unionSources(c.acc, next.all), direct: false }));
  }
  if (columns !== undefined) return { columns, all };
  return { columns: undefined, all, ...(next.lookup === undefined ? {} : { lookup: next.lookup }) };
}

/** How much a query's lineage holds: a round that adds nothing has reached the fixed point. */
export function lineageSize(r: QueryLineage): number {
  let size = r.all.size;
  for (const c of r.columns ?? []) size += c.acc.size;
  return size;
}
