/**
 * How source columns flow into a value, for column lineage: the sets the lineage walker
 * gathers sources into also remember, for each source, every way it reached the value
 * (OpenLineage's DIRECT IDENTITY / TRANSFORMATION / AGGREGATION and INDIRECT CONDITIONAL,
 * WINDOW, FILTER, JOIN, GROUP_BY, SORT).
 *
 * A set has a current `mode`: what a source added now becomes. The walker changes the mode
 * while it walks a part of an expression (an aggregate's arguments, a CASE condition, a
 * window clause) and restores it after. Merging a value built elsewhere (a subquery's column)
 * composes its flows with the mode: inside a CASE condition every source is CONDITIONAL,
 * inside an aggregate an IDENTITY source becomes AGGREGATION.
 *
 * The sources themselves are exactly those a plain SourceSet would hold: flows only classify
 * them, so masking, which reads `sources`, sees no difference.
 */
import type { ColumnFlow, ColumnSource, FlowSubtype, FlowType } from '@sluice/core';
import { SourceSet } from '@sluice/core';

/** One way a source reaches a value, as a bit so that a source's ways fit in one number. */
export const Flow = {
  Identity: 1,
  Transformation: 2,
  Aggregation: 4,
  Conditional: 8,
  Window: 16,
  Filter: 32,
  Join: 64,
  GroupBy: 128,
  Sort: 256,
  /**
   * In `sources` (masking must see it) but not a flow: the target's own column behind
   * `excluded.c` in ON CONFLICT, which stands for the proposed row's value.
   */
  Hidden: 512,
} as const;
export type Flow = (typeof Flow)[keyof typeof Flow];

const DIRECT = Flow.Identity | Flow.Transformation | Flow.Aggregation;

/** Each flow bit with its OpenLineage name, in the order flows are reported. */
const NAMES: readonly (readonly [Flow, FlowType, FlowSubtype])[] = [
  [Flow.Identity, 'DIRECT', 'IDENTITY'],
  [Flow.Transformation, 'DIRECT', 'TRANSFORMATION'],
  [Flow.Aggregation, 'DIRECT', 'AGGREGATION'],
  [Flow.Conditional, 'INDIRECT', 'CONDITIONAL'],
  [Flow.Window, 'INDIRECT', 'WINDOW'],
  [Flow.Join, 'INDIRECT', 'JOIN'],
  [Flow.Filter, 'INDIRECT', 'FILTER'],
  [Flow.GroupBy, 'INDIRECT', 'GROUP_BY'],
  [Flow.Sort, 'INDIRECT', 'SORT'],
];

/**
 * The flow of a source that reaches a value as `inner` through a context `outer`. The outer
 * INDIRECT kind wins (a column inside a WHERE is a FILTER whatever it passes through), then
 * an inner INDIRECT one (a CASE condition stays CONDITIONAL inside an aggregate); two DIRECT
 * kinds give the stronger, IDENTITY < TRANSFORMATION < AGGREGATION. IDENTITY is neutral.
 */
export function compose(outer: Flow, inner: Flow): Flow {
  if (inner === Flow.Hidden || outer === Flow.Hidden) return Flow.Hidden;
  if ((outer & DIRECT) === 0) return outer;
  if ((inner & DIRECT) === 0) return inner;
  return outer > inner ? outer : inner;
}

function keyOf(s: ColumnSource): string {
  return `${s.schema ?? ''}\u0000${s.table}\u0000${s.column}`;
}

/** Sets this small are searched in order; larger ones through an index. */
const SMALL = 8;

/**
 * A SourceSet that also remembers how each source flows. The walker makes many small ones:
 * they are searched in order, without building keys, until they grow.
 */
export class FlowSet extends SourceSet {
  /** What a source added now becomes (and what merged flows are composed with). */
  mode: Flow = Flow.Identity;
  /** Flow bits of each source, in the order of `sources`. */
  readonly #masks: number[] = [];
  /** Position of each source by key, once the set is not small. */
  #index: Map<string, number> | undefined;
  #bits = 0;

  #find(s: ColumnSource): number {
    const sources = this.sources;
    if (sources.length <= SMALL) {
      for (let i = 0; i < sources.length; i++) {
        const t = sources[i]!;
        if (t.column === s.column && t.table === s.table && t.schema === s.schema) return i;
      }
      return -1;
    }
    if (this.#index === undefined) {
      this.#index = new Map();
      for (let i = 0; i < sources.length; i++) this.#index.set(keyOf(sources[i]!), i);
    }
    return this.#index.get(keyOf(s)) ?? -1;
  }

  // Every source is added here: the base class's own index of sources stays unused.
  override add(s: ColumnSource, flow: Flow = this.mode): void {
    const i = this.#find(s);
    if (i < 0) {
      this.#index?.set(keyOf(s), this.sources.length);
      this.sources.push(s);
      this.#masks.push(flow);
      this.#bits++;
      return;
    }
    const mask = this.#masks[i]!;
    if ((mask & flow) === 0) {
      this.#masks[i] = mask | flow;
      this.#bits++;
    }
  }

  override merge(other: SourceSet): void {
    if (other === this) return;
    const sources = other.sources;
    const mode = this.mode;
    for (let i = 0; i < sources.length; i++) {
      // A plain SourceSet's sources (none but the shared empty one) count as IDENTITY.
      const mask = other instanceof FlowSet ? other.#masks[i]! : Flow.Identity;
      // One bit (the common case) needs no loop.
      if ((mask & (mask - 1)) === 0) this.add(sources[i]!, compose(mode, mask as Flow));
      else for (let bit = 1; bit <= mask; bit <<= 1) if ((mask & bit) !== 0) this.add(sources[i]!, compose(mode, bit as Flow));
    }
    for (const f of other.functions) this.fn(f);
  }

  /** The flow bits of the i-th source. */
  mask(i: number): number {
    return this.#masks[i] ?? 0;
  }

  /** Grows with every new flow too, so that a recursive query's rounds settle on flows as well. */
  override get size(): number {
    return super.size + this.#bits;
  }
}

/** Every source of the sets (with their flows), without duplicates. */
export function union(...sets: readonly SourceSet[]): FlowSet {
  const out = new FlowSet();
  for (const s of sets) out.merge(s);
  return out;
}

/** Runs `walk` with `set`'s mode composed with `flow`, and restores it. */
export function within(set: FlowSet, flow: Flow, walk: () => void): void {
  const saved = set.mode;
  set.mode = compose(saved, flow);
  try {
    walk();
  } finally {
    set.mode = saved;
  }
}

/** The flows of a set, source by source in order. */
export function flowsOf(set: SourceSet): ColumnFlow[] {
  const out: ColumnFlow[] = [];
  const sources = set.sources;
  for (let i = 0; i < sources.length; i++) {
    const mask = set instanceof FlowSet ? set.mask(i) : Flow.Identity;
    for (const [bit, type, subtype] of NAMES) if ((mask & bit) !== 0) out.push({ source: sources[i]!, type, subtype });
  }
  return out;
}

/** The sources of a set that flow DIRECT (their values are carried). */
export function directSources(set: SourceSet): ColumnSource[] {
  if (!(set instanceof FlowSet)) return [...set.sources];
  return set.sources.filter((_, i) => (set.mask(i) & DIRECT) !== 0);
}

/**
 * Built-in aggregate functions: their arguments flow as AGGREGATION. A call with aggregate
 * syntax (`count(*)`, DISTINCT, ORDER BY or FILTER inside the call, WITHIN GROUP) is an
 * aggregate whatever its name, and so is a function with OVER that is not a built-in window
 * function (a user aggregate used as a window function).
 */
export const AGGREGATE_FUNCTIONS: ReadonlySet<string> = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'any_value',
  'array_agg', 'string_agg', 'json_agg', 'jsonb_agg', 'json_agg_strict', 'jsonb_agg_strict',
  'json_object_agg', 'jsonb_object_agg', 'json_object_agg_strict', 'jsonb_object_agg_strict',
  'json_object_agg_unique', 'jsonb_object_agg_unique', 'json_object_agg_unique_strict', 'jsonb_object_agg_unique_strict',
  'xmlagg', 'range_agg', 'range_intersect_agg',
  'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'bit_xor',
  'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp',
  'corr', 'covar_pop', 'covar_samp', 'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2',
  'regr_slope', 'regr_sxx', 'regr_sxy', 'regr_syy',
  'percentile_cont', 'percentile_disc', 'mode',
]);

/** Built-in window functions that are not aggregates: their arguments flow as TRANSFORMATION. */
export const WINDOW_FUNCTIONS: ReadonlySet<string> = new Set([
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead', 'first_value', 'last_value', 'nth_value',
]);
