/**
 * Flow kinds for column lineage (`ColumnFlow` in core): a set of sources that also says how
 * each source reaches the value it was gathered for, and how kinds compose when a value is used
 * inside another one.
 *
 * A walker gathers a value's sources while it walks the value's expression, with the kind its
 * position gives (`How`): IDENTITY where the value is copied as it is (a plain column reference,
 * a column of a derived table taken as it is), TRANSFORMATION inside an expression or a
 * function, AGGREGATION inside an aggregate, CONDITIONAL in a CASE or IF() condition, WINDOW in
 * a window's PARTITION BY / ORDER BY, SORT in the ORDER BY of an aggregate. A source that
 * reaches a value through another value takes the stronger kind: IDENTITY then TRANSFORMATION
 * then AGGREGATION; an INDIRECT flow stays what it is. At statement level (the set of a
 * statement's predicates), every flow takes the kind of the clause that reads it: JOIN, FILTER,
 * GROUP_BY, SORT or WINDOW.
 *
 * The query lineage parts here are core's (lineage-parts.ts) over these sets, so that flows
 * survive unions, renames and the rounds of a recursive query.
 */
import type { ColumnFlow, ColumnSource, FlowSubtype, FlowType } from '@sluice/core';
import type { SourceSet } from '@sluice/core';

/**
 * Aggregate functions, lower case: a value passed through one flows as AGGREGATION (also when
 * the aggregate runs over a window). `std` and `variance` are listed although the parser
 * rejects them today.
 */
export const AGGREGATE_FUNCTIONS: ReadonlySet<string> = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'group_concat', 'json_arrayagg', 'json_objectagg', 'bit_and', 'bit_or', 'bit_xor',
  'std', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp',
]);

/** How a value at some position flows into what is being gathered: the kind a DIRECT IDENTITY flow takes there. */
export type How = FlowSubtype;

const DIRECT: ReadonlySet<FlowSubtype> = new Set<FlowSubtype>(['IDENTITY', 'TRANSFORMATION', 'AGGREGATION']);

export function flowType(subtype: FlowSubtype): FlowType {
  return subtype === 'IDENTITY' || subtype === 'TRANSFORMATION' || subtype === 'AGGREGATION' ? 'DIRECT' : 'INDIRECT';
}

/** The position of an operand of an expression or function at a position `how`. */
export function operandOf(how: How): How {
  return how === 'IDENTITY' ? 'TRANSFORMATION' : how;
}

/** The position of an aggregate's argument at a position `how`. */
export function aggregatedOf(how: How): How {
  return DIRECT.has(how) ? 'AGGREGATION' : how;
}

/** An INDIRECT position of `kind` (CONDITIONAL, WINDOW, SORT) inside a value at a position `how`. */
export function indirectOf(how: How, kind: FlowSubtype): How {
  return DIRECT.has(how) ? kind : how;
}

/** The kind of a flow of kind `inner` into a value, once the value is used at a position `how`. */
export function compose(how: How, inner: FlowSubtype): FlowSubtype {
  if (how === 'IDENTITY' || !DIRECT.has(inner)) return inner;
  if (how === 'TRANSFORMATION') return inner === 'IDENTITY' ? how : inner;
  return how;
}

function sameSource(a: ColumnSource, b: ColumnSource): boolean {
  return a === b || (a.column === b.column && a.table === b.table && a.schema === b.schema);
}

function sourceKey(s: ColumnSource): string {
  return `${s.schema ?? ''}\u0000${s.table}\u0000${s.column}`;
}

/** Entries a set holds before it indexes them (most values have a few). */
const LINEAR = 16;

/**
 * Sources and functions without duplicates (as core's `SourceSet`, which it reads too), and how
 * each source flows (a source may flow several ways). Every source added through `addAs` /
 * `mergeAs` has a flow; one added otherwise gets a fallback kind when the flows are read. Small
 * sets are searched in order, larger ones indexed: a walk builds many small sets.
 */
export class FlowSet {
  readonly sources: ColumnSource[] = [];
  readonly functions: string[] = [];
  readonly flows: ColumnFlow[] = [];
  /** Keys of the sources, once there are many. */
  #sourceIndex: Set<string> | undefined;
  /** Keys of the flows and of their sources, once there are many. */
  #flowIndex: Set<string> | undefined;
  /** Number of sources that have a flow. */
  #flowing = 0;

  /** `statement`: a statement's predicates, where a flow takes the kind it is merged as. */
  constructor(readonly statement = false) {}

  get size(): number {
    return this.sources.length + this.functions.length;
  }

  /** Sources, functions and flows: grows with every round of a recursive query that adds something. */
  get weight(): number {
    return this.size + this.flows.length;
  }

  /** A source, without a flow (see `addAs`). */
  add(s: ColumnSource): void {
    const sources = this.sources;
    let index = this.#sourceIndex;
    if (index === undefined) {
      for (let i = 0; i < sources.length; i++) if (sameSource(sources[i]!, s)) return;
      if (sources.length >= LINEAR) {
        this.#sourceIndex = index = new Set(sources.map(sourceKey));
        index.add(sourceKey(s));
      }
    } else {
      const key = sourceKey(s);
      if (index.has(key)) return;
      index.add(key);
    }
    sources.push(s);
  }

  fn(name: string): void {
    if (!this.functions.includes(name)) this.functions.push(name);
  }

  #flow(source: ColumnSource, subtype: FlowSubtype): void {
    const flows = this.flows;
    let index = this.#flowIndex;
    if (index === undefined) {
      let seen = false;
      for (let i = 0; i < flows.length; i++) {
        const f = flows[i]!;
        if (!sameSource(f.source, source)) continue;
        if (f.subtype === subtype) return;
        seen = true;
      }
      if (!seen) this.#flowing++;
      if (flows.length >= LINEAR) {
        this.#flowIndex = index = new Set();
        for (const f of flows) {
          const key = sourceKey(f.source);
          index.add(key);
          index.add(`${key}\u0000${f.subtype}`);
        }
        const key = sourceKey(source);
        index.add(key);
        index.add(`${key}\u0000${subtype}`);
      }
    } else {
      const key = sourceKey(source);
      const flowKey = `${key}\u0000${subtype}`;
      if (index.has(flowKey)) return;
      if (!index.has(key)) {
        index.add(key);
        this.#flowing++;
      }
      index.add(flowKey);
    }
    flows.push({ source, type: flowType(subtype), subtype });
  }

  /** True when the source has a flow. */
  #flows(source: ColumnSource): boolean {
    if (this.#flowIndex !== undefined) return this.#flowIndex.has(sourceKey(source));
    for (const f of this.flows) if (sameSource(f.source, source)) return true;
    return false;
  }

  /** A table column read at a position `how`. */
  addAs(s: ColumnSource, how: How): void {
    this.add(s);
    this.#flow(s, this.statement ? how : compose(how, 'IDENTITY'));
  }

  /** Another set's sources, functions and flows, its value used at a position `how`. */
  mergeAs(other: FlowSet | SourceSet, how: How): void {
    if (other === this) return;
    for (const s of other.sources) this.add(s);
    for (const f of other.functions) this.fn(f);
    const kinds = other instanceof FlowSet ? other : undefined;
    if (kinds !== undefined) for (const f of kinds.flows) this.#flow(f.source, this.statement ? how : compose(how, f.subtype));
    if (kinds !== undefined && kinds.#flowing === kinds.sources.length) return;
    // Sources gathered without a kind: transformed, as far as can be told.
    for (const s of other.sources) {
      if (kinds === undefined || !kinds.#flows(s)) this.#flow(s, this.statement ? how : compose(how, 'TRANSFORMATION'));
    }
  }

  /** Another set taken as it is (at statement level: as a FILTER). */
  merge(other: FlowSet | SourceSet): void {
    this.mergeAs(other, this.statement ? 'FILTER' : 'IDENTITY');
  }

  /** The flows, with a flow of kind `fallback` for any source gathered without one. */
  flowList(fallback: FlowSubtype): ColumnFlow[] {
    const out = [...this.flows];
    if (this.#flowing === this.sources.length) return out;
    for (const s of this.sources) if (!this.#flows(s)) out.push({ source: s, type: flowType(fallback), subtype: fallback });
    return out;
  }

  /** The sources that flow DIRECT (a source gathered without a kind counts as DIRECT). */
  directSources(): ColumnSource[] {
    if (this.sources.length <= LINEAR) {
      return this.sources.filter((s) => !this.#flows(s) || this.flows.some((f) => f.type === 'DIRECT' && sameSource(f.source, s)));
    }
    const direct = new Set<string>();
    for (const f of this.flows) if (f.type === 'DIRECT') direct.add(sourceKey(f.source));
    return this.sources.filter((s) => direct.has(sourceKey(s)) || !this.#flows(s));
  }
}

/** A set that stays empty (shared; never add to it). */
export const NO_FLOWS = new FlowSet();

export function unionFlows(...sets: readonly FlowSet[]): FlowSet {
  const out = new FlowSet();
  for (const s of sets) out.mergeAs(s, 'IDENTITY');
  return out;
}

// --- query lineage parts over flow sets (as core's lineage-parts.ts) --------------------------

/** One output column of a query or relation. Its `acc` is never changed once built. */
export interface Col {
  readonly name: string;
  readonly acc: FlowSet;
  readonly direct: boolean;
}

/** A column found by name: `definite` when the relation certainly has it. */
export interface Found {
  readonly acc: FlowSet;
  readonly direct: boolean;
  readonly definite: boolean;
}

export function mergeFound(found: readonly Found[]): Found | undefined {
  if (found.length === 0) return undefined;
  if (found.length === 1) return found[0];
  return { acc: unionFlows(...found.map((f) => f.acc)), direct: found.every((f) => f.direct), definite: found.some((f) => f.definite) };
}

/** What a query returns: its columns (undefined when positions are unknown) and everything they may carry. */
export interface QueryResult {
  readonly columns: readonly Col[] | undefined;
  readonly all: FlowSet;
  /** When positions are unknown: a column by name, as far as it can be told. */
  readonly lookup?: (name: string) => Found | undefined;
}

export const NO_ROWS: QueryResult = { columns: [], all: NO_FLOWS };

export function renamed(columns: readonly Col[], aliases: readonly string[]): Col[] {
  return columns.map((c, i) => (aliases[i] !== undefined ? { ...c, name: aliases[i] } : c));
}

/** Grows a recursive query's result with another round's. */
export function grow(before: QueryResult, next: QueryResult): QueryResult {
  const all = unionFlows(before.all, next.all);
  const b = before.columns;
  const n = next.columns;
  let columns: Col[] | undefined;
  if (b !== undefined && n !== undefined && b.length === n.length) {
    columns = n.map((c, i) => ({ name: c.name, acc: unionFlows(b[i]!.acc, c.acc), direct: b[i]!.direct && c.direct }));
  } else if (n !== undefined) {
    columns = n.map((c) => ({ ...c, acc: unionFlows(c.acc, before.all), direct: false }));
  } else if (b !== undefined) {
    columns = b.map((c) => ({ ...c, acc: unionFlows(c.acc, next.all), direct: false }));
  }
  if (columns !== undefined) return { columns, all };
  return { columns: undefined, all, ...(next.lookup === undefined ? {} : { lookup: next.lookup }) };
}

/** How much a query's lineage holds: a round that adds nothing has reached the fixed point. */
export function sizeOf(r: QueryResult): number {
  let size = r.all.weight;
  for (const c of r.columns ?? []) size += c.acc.weight;
  return size;
}
