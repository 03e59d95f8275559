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

interface CompiledPattern {
  readonly schema: ((v: string) => boolean) | undefined;
  readonly table: (v: string) => boolean;
  readonly column: (v: string) => boolean;
  readonly targets: ((v: string) => boolean)[] | undefined;
}

interface CompiledColumn extends CompiledPattern {
  readonly strategy: MaskStrategy;
  readonly rule: string;
}

function compilePattern(pattern: string, targets: readonly string[] | undefined): CompiledPattern {
  const parts = pattern.split('.');
  const [schema, table, column] = parts.length === 3 ? parts : [undefined, parts[0]!, parts[1]!];
  return {
    schema: schema === undefined || schema === '*' ? undefined : glob(schema),
    table: glob(table!),
    column: glob(column!),
    targets: targets?.map(glob),
  };
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

export interface SensitiveColumnsConfig {
  readonly columns?: readonly { column: string; strategy?: MaskStrategy; targets?: readonly string[] | undefined; name?: string | undefined }[];
  readonly scan?: readonly string[];
  readonly exempt?: { readonly subjects?: readonly string[]; readonly groups?: readonly string[]; readonly kinds?: readonly string[] };
}

const CACHE_LIMIT = 10_000;

export class SensitiveColumns {
  readonly #columns: readonly CompiledColumn[];
  readonly #scan: readonly CompiledPattern[];
  readonly #exempt: SensitiveColumnsConfig['exempt'];
  readonly #config: SensitiveColumnsConfig;
  readonly #cache = new Map<string, ColumnMatch | null>();
  readonly #extras = new WeakMap<readonly MaskRuleColumns[], SensitiveColumns>();

  constructor(config: SensitiveColumnsConfig, extra: readonly MaskRuleColumns[] = []) {
    this.#config = config;
    const columns: CompiledColumn[] = (config.columns ?? []).map((c) => ({
      ...compilePattern(c.column, c.targets),
      strategy: c.strategy ?? 'redact',
      rule: c.name ?? `column:${c.column}`,
    }));
    for (const m of extra) for (const c of m.columns) columns.push({ ...compilePattern(c, undefined), strategy: m.strategy, rule: m.rule });
    this.#columns = columns;
    this.#scan = (config.scan ?? []).map((p) => compilePattern(p, undefined));
    this.#exempt = config.exempt;
  }

  /** This set plus the columns of policy `mask` rules (cached per list). */
  withExtra(masks: readonly MaskRuleColumns[]): SensitiveColumns {
    let s = this.#extras.get(masks);
    if (!s) this.#extras.set(masks, (s = new SensitiveColumns(this.#config, masks)));
    return s;
  }

  /** Only the columns of policy `mask` rules (for an identity exempt from the configured ones). */
  onlyExtra(masks: readonly MaskRuleColumns[]): SensitiveColumns {
    return new SensitiveColumns({}, masks);
  }

  get size(): number {
    return this.#columns.length;
  }

  match(target: string, source: ColumnSource): ColumnMatch | undefined {
    const key = `${target}\u0000${source.schema ?? '\u0001'}\u0000${source.table}\u0000${source.column}`;
    const known = this.#cache.get(key);
    if (known !== undefined) return known ?? undefined;
    let best: ColumnMatch | undefined;
    for (const c of this.#columns) {
      if (!matches(c, target, source)) continue;
      if (best === undefined || strongerStrategy(best.strategy, c.strategy) !== best.strategy) best = { strategy: c.strategy, rule: c.rule };
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

  /** True when a configured pattern names a column of this table. */
  mayMatchTable(target: string, schema: string | undefined, table: string): boolean {
    for (const c of this.#columns) if (matchesTable(c, target, schema, table)) return true;
    return false;
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
