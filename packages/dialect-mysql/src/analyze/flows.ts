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
import { SourceSet } from '@sluice/core';

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
  return DIRECT.has(subtype) ? 'DIRECT' : 'INDIRECT';
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

function sourceKey(s: ColumnSource): string {
  return `${s.schema ?? ''}\u0000${s.table}\u0000${s.column}`;
}

/** Sources and functions, and how each source flows (a source may flow several ways). */
export class FlowSet extends SourceSet {
  readonly flows: ColumnFlow[] = [];
  readonly #flowKeys = new Set<string>();
  /** Keys of the sources that have a flow. */
  readonly #flowing = new Set<string>();

  /** `statement`: a statement's predicates, where a flow takes the kind it is merged as. */
  constructor(readonly statement = false) {
    super();
  }

  #flow(source: ColumnSource, subtype: FlowSubtype): void {
    const key = sourceKey(source);
    const flowKey = `${key}\u0000${subtype}`;
    if (this.#flowKeys.has(flowKey)) return;
    this.#flowKeys.add(flowKey);
    this.#flowing.add(key);
    this.flows.push({ source, type: flowType(subtype), subtype });
  }

  /** A table column read at a position `how`. */
  addAs(s: ColumnSource, how: How): void {
    this.add(s);
    this.#flow(s, this.statement ? how : compose(how, 'IDENTITY'));
  }

  /** Another set's sources, functions and flows, its value used at a position `how`. */
  mergeAs(other: SourceSet, how: How): void {
    if (other === this) return;
    super.merge(other);
    if (other instanceof FlowSet) {
      for (const f of other.flows) this.#flow(f.source, this.statement ? how : compose(how, f.subtype));
    } else {
      // Sources gathered without kinds: transformed, as far as can be told.
      for (const s of other.sources) this.#flow(s, this.statement ? how : compose(how, 'TRANSFORMATION'));
    }
  }

  /** Another set taken as it is (at statement level: as a FILTER). */
  override merge(other: SourceSet): void {
    this.mergeAs(other, this.statement ? 'FILTER' : 'IDENTITY');
  }

  /** Sources, functions and flows: grows with every round of a recursive query that adds something. */
  get weight(): number {
    return this.size + this.flows.length;
  }

  /** The flows, with a flow of kind `fallback` for any source gathered without one. */
  flowList(fallback: FlowSubtype): ColumnFlow[] {
    const out = [...this.flows];
    if (this.#flowing.size === this.sources.length) return out;
    for (const s of this.sources) if (!this.#flowing.has(sourceKey(s))) out.push({ source: s, type: flowType(fallback), subtype: fallback });
    return out;
  }

  /** The sources that flow DIRECT (a source gathered without a kind counts as DIRECT). */
  directSources(): ColumnSource[] {
    const direct = new Set<string>();
    for (const f of this.flows) if (f.type === 'DIRECT') direct.add(sourceKey(f.source));
    return this.sources.filter((s) => direct.has(sourceKey(s)) || !this.#flowing.has(sourceKey(s)));
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
