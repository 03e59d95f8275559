/**
 * Which columns are sensitive, and how they are masked: the configured column patterns, plus
 * the columns a policy `mask` rule adds for one statement. Matching is by name, schema-aware
 * and conservative: a column the statement did not qualify with a schema matches a pattern
 * for any schema, and a whole-row reference (`*`) matches every pattern of its table.
 */
import type { ColumnSource } from '../analysis/types.js';
import type { Identity } from '../identity/types.js';
import { glob } from '../util/glob.js';
import type { MaskStrategy } from './strategies.js';
import { strongerStrategy } from './strategies.js';

export interface ColumnMatch {
  readonly strategy: MaskStrategy;
  /** The rule that set the strategy (a column rule's name, or a policy rule's). */
  readonly rule: string;
}

/** Columns a policy rule masks for the statements it matches. */
export interface MaskRuleColumns {
  readonly rule: string;
  readonly columns: readonly string[];
  readonly strategy: MaskStrategy;
}

/** A column pattern split into its parts, for a dialect to look the matching columns up in its catalog. */
export interface ColumnPattern {
  /** Absent for `table.column` (any schema); may be `*` or hold `*`, like the other parts. */
  readonly schema: string | undefined;
  readonly table: string;
  readonly column: string;
  readonly strategy: MaskStrategy;
  readonly rule: string;
}

interface CompiledPattern {
  /** Absent when any schema matches (`table.column`, `*.table.column`). */
  readonly schema: ((v: string) => boolean) | undefined;
  readonly table: (v: string) => boolean;
  readonly column: (v: string) => boolean;
  readonly targets: ((v: string) => boolean)[] | undefined;
}

interface CompiledColumn extends CompiledPattern {
  readonly pattern: ColumnPattern;
}

function splitPattern(pattern: string): { schema: string | undefined; table: string; column: string } {
  const parts = pattern.split('.');
  return parts.length === 3 ? { schema: parts[0]!, table: parts[1]!, column: parts[2]! } : { schema: undefined, table: parts[0]!, column: parts[1]! };
}

function compilePattern(pattern: string, targets: readonly string[] | undefined): CompiledPattern {
  const { schema, table, column } = splitPattern(pattern);
  return {
    schema: schema === undefined || schema === '*' ? undefined : glob(schema),
    table: glob(table),
    column: glob(column),
    targets: targets?.map(glob),
  };
}

function compileColumn(pattern: string, targets: readonly string[] | undefined, strategy: MaskStrategy, rule: string): CompiledColumn {
  return { ...compilePattern(pattern, targets), pattern: { ...splitPattern(pattern), strategy, rule } };
}

function matchesTable(p: CompiledPattern, target: string, schema: string | undefined, table: string): boolean {
  if (p.targets !== undefined && !p.targets.some((t) => t(target))) return false;
  if (!p.table(table)) return false;
  // Unqualified in the statement: it may be in any schema.
  return p.schema === undefined || schema === undefined || p.schema(schema);
}

function matches(p: CompiledPattern, target: string, s: ColumnSource): boolean {
  return matchesTable(p, target, s.schema, s.table) && (s.column === '*' || p.column(s.column));
}

/** What SensitiveColumns reads of the `masking:` section (a parsed one fits). */
export interface SensitiveColumnsConfig {
  readonly columns?: readonly { column: string; strategy?: MaskStrategy; targets?: readonly string[] | undefined; name?: string | undefined }[];
  readonly scan?: readonly string[];
  readonly exempt?: { readonly subjects?: readonly string[]; readonly groups?: readonly string[]; readonly kinds?: readonly string[] };
}

/** Entries of the match cache before it is emptied (a gateway sees few distinct columns). */
const CACHE_LIMIT = 10_000;

/**
 * The sensitive columns of a configuration, compiled once; `withExtra` adds a statement's
 * policy `mask` rules. Immutable: a reload builds a new one. Matching a column is a walk over
 * the compiled patterns, remembered per target and column.
 */
export class SensitiveColumns {
  readonly #columns: readonly CompiledColumn[];
  readonly #scan: readonly CompiledPattern[];
  readonly #exempt: SensitiveColumnsConfig['exempt'];
  readonly #config: SensitiveColumnsConfig;
  readonly #extra: readonly MaskRuleColumns[];
  readonly #cache = new Map<string, ColumnMatch | null>();
  /** By the identity of the list: a decision's `masks` are one array, reused while it is cached. */
  readonly #extras = new WeakMap<readonly MaskRuleColumns[], SensitiveColumns>();

  constructor(config: SensitiveColumnsConfig, extra: readonly MaskRuleColumns[] = []) {
    this.#config = config;
    this.#extra = extra;
    const columns: CompiledColumn[] = (config.columns ?? []).map((c) =>
      compileColumn(c.column, c.targets, c.strategy ?? 'redact', c.name ?? `column:${c.column}`),
    );
    for (const m of extra) for (const c of m.columns) columns.push(compileColumn(c, undefined, m.strategy, m.rule));
    this.#columns = columns;
    this.#scan = (config.scan ?? []).map((p) => compilePattern(p, undefined));
    this.#exempt = config.exempt;
  }

  /** These columns plus those of policy `mask` rules, for one statement (cached per list). */
  withExtra(masks: readonly MaskRuleColumns[]): SensitiveColumns {
    if (masks.length === 0) return this;
    let s = this.#extras.get(masks);
    if (!s) this.#extras.set(masks, (s = new SensitiveColumns(this.#config, [...this.#extra, ...masks])));
    return s;
  }

  /** Only the columns of policy `mask` rules (for an identity exempt from the configured ones). */
  onlyExtra(masks: readonly MaskRuleColumns[]): SensitiveColumns {
    return new SensitiveColumns({}, masks);
  }

  /** Number of column patterns (configured and added). */
  get size(): number {
    return this.#columns.length;
  }

  /**
   * The strategy for a column of a result, or undefined when it is not sensitive. Of several
   * matching patterns the strongest strategy wins. `*` (a whole row) matches every pattern of
   * its table; a column the statement did not qualify matches a pattern of any schema.
   */
  match(target: string, source: ColumnSource): ColumnMatch | undefined {
    const key = `${target}\u0000${source.schema ?? '\u0001'}\u0000${source.table}\u0000${source.column}`;
    const known = this.#cache.get(key);
    if (known !== undefined) return known ?? undefined;
    let best: ColumnMatch | undefined;
    for (const c of this.#columns) {
      if (!matches(c, target, source)) continue;
      const { strategy, rule } = c.pattern;
      if (best === undefined || strongerStrategy(best.strategy, strategy) !== best.strategy) best = { strategy, rule };
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(key, best ?? null);
    return best;
  }

  /** The strongest strategy among the sources that are sensitive. */
  strongest(target: string, sources: readonly ColumnSource[]): ColumnMatch | undefined {
    let best: ColumnMatch | undefined;
    for (const s of sources) {
      const m = this.match(target, s);
      if (m !== undefined && (best === undefined || strongerStrategy(best.strategy, m.strategy) !== best.strategy)) best = m;
    }
    return best;
  }

  /** True when the source is a free-text column that is always scanned. */
  scanned(target: string, source: ColumnSource): boolean {
    for (const p of this.#scan) if (matches(p, target, source)) return true;
    return false;
  }

  /**
   * True when a column pattern (configured or added) names a column of this table: false
   * means no column of it is sensitive, so a statement over such tables needs no column
   * masking (the `scan` list and the detectors aside).
   */
  mayMatchTable(target: string, schema: string | undefined, table: string): boolean {
    for (const c of this.#columns) if (matchesTable(c, target, schema, table)) return true;
    return false;
  }

  /**
   * The column patterns that apply on a target, split into schema, table and column (each may
   * hold `*`), so a dialect can find the matching columns in its catalog.
   */
  patternsFor(target: string): readonly ColumnPattern[] {
    return this.#columns.filter((c) => c.targets === undefined || c.targets.some((t) => t(target))).map((c) => c.pattern);
  }

  /** True when the identity sees clear values (an exempt subject, group or kind). */
  isExempt(identity: Identity): boolean {
    const e = this.#exempt;
    if (e === undefined) return false;
    if (e.subjects?.includes(identity.subject)) return true;
    if (e.kinds?.includes(identity.kind)) return true;
    return identity.groups.some((g) => e.groups?.includes(g));
  }
}
