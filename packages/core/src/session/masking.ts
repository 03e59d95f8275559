/**
 * The masking in force for one statement of one session: the configured sensitive columns
 * (unless the identity is exempt), the columns the policy's `mask` rules add for this
 * statement, and the content detectors. Dialects resolve result columns to their sources and
 * ask this which strategy (if any) applies.
 */
import type { ColumnSource } from '../analysis/types.js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { MaskingConfig } from '../masking/config.js';
import { DETECTOR_NAMES, type DetectorKind } from '../masking/detectors.js';
import { SensitiveColumns } from '../masking/sensitive.js';
import type { MaskStrategy } from '../masking/strategies.js';
import type { Decision } from '../policy/engine.js';

/** Masking as configured for the gateway (the `masking:` section, compiled). */
export interface MaskingRuntime {
  readonly columns: SensitiveColumns;
  readonly detectors: ReadonlySet<DetectorKind>;
  readonly detectorStrategy: MaskStrategy;
  /** Key of the `hash` strategy. */
  readonly hashKey: Buffer;
}

export interface StatementMasking {
  readonly target: string;
  /** The strongest strategy among the sources that are sensitive, and the rule behind it. */
  strongest(sources: readonly ColumnSource[]): { readonly strategy: MaskStrategy; readonly rule: string } | undefined;
  /** True when the source is a free-text column that is always scanned. */
  scanned(source: ColumnSource): boolean;
  /** True when the table has a sensitive column. */
  sensitiveTable(schema: string | undefined, table: string): boolean;
  readonly detectors: ReadonlySet<DetectorKind>;
  readonly detectorStrategy: MaskStrategy;
  readonly hashKey: Buffer;
}

const NO_DETECTORS: ReadonlySet<DetectorKind> = new Set();

/**
 * The masking for a statement, or undefined when nothing can be masked for it (masking off,
 * or an exempt identity and no `mask` rule).
 */
export function statementMasking(
  runtime: MaskingRuntime | undefined,
  target: string,
  decision: Decision,
  exempt: boolean,
): StatementMasking | undefined {
  if (runtime === undefined) return undefined;
  const masks = decision.masks;
  if (exempt && (masks === undefined || masks.length === 0)) return undefined;
  const columns: SensitiveColumns = exempt
    ? runtime.columns.onlyExtra(masks ?? [])
    : masks !== undefined && masks.length > 0
      ? runtime.columns.withExtra(masks)
      : runtime.columns;
  return {
    target,
    strongest: (sources) => columns.strongest(target, sources),
    scanned: (source) => columns.scanned(target, source),
    sensitiveTable: (schema, table) => columns.mayMatchTable(target, schema, table),
    detectors: exempt ? NO_DETECTORS : runtime.detectors,
    detectorStrategy: runtime.detectorStrategy,
    hashKey: runtime.hashKey,
  };
}

export interface CompileMaskingOptions {
  readonly logger?: { warn(obj: object, msg: string): void };
  /** The key in use before a reload, kept when the config does not name one. */
  readonly previousKey?: Buffer;
  /** Directory `hashKeyFile` is relative to. */
  readonly baseDir?: string;
}

/**
 * Compiles the `masking:` section. The `hash` key comes from `hashKey`, the environment
 * variable `hashKeyEnv` or the file `hashKeyFile`; without one, a random key is made for this
 * process (hashed values then change when the gateway restarts) and a warning says so.
 */
export function compileMasking(config: MaskingConfig, options: CompileMaskingOptions = {}): MaskingRuntime {
  let key: Buffer | undefined;
  if (config.hashKey !== undefined) key = Buffer.from(config.hashKey, 'utf8');
  else if (config.hashKeyEnv !== undefined) {
    const value = process.env[config.hashKeyEnv];
    if (value === undefined || value.length < 16) {
      throw new Error(`masking.hashKeyEnv: the environment variable ${config.hashKeyEnv} is not set or shorter than 16 characters`);
    }
    key = Buffer.from(value, 'utf8');
  } else if (config.hashKeyFile !== undefined) {
    const file = resolvePath(options.baseDir ?? '.', config.hashKeyFile);
    try {
      key = Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
    } catch (err) {
      throw new Error(`masking.hashKeyFile: cannot read ${file}: ${(err as Error).message}`);
    }
    if (key.length < 16) throw new Error(`masking.hashKeyFile: ${file} holds fewer than 16 characters`);
  } else if (options.previousKey !== undefined) key = options.previousKey;
  else {
    key = randomBytes(32);
    options.logger?.warn({}, 'masking.hashKey is not set: hashed values use a random key and change when the gateway restarts');
  }
  const detectors = new Set<DetectorKind>();
  for (const name of DETECTOR_NAMES) if (config.detectors?.[name] !== false) detectors.add(name);
  return {
    columns: new SensitiveColumns(config),
    detectors,
    detectorStrategy: config.detectorStrategy ?? 'partial',
    hashKey: key,
  };
}
