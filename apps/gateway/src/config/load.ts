import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type Dialect, redactUrlPassword } from '@sluice/core';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, DEFAULT_LINEAGE_STORE, type GatewayConfig } from './schema.js';
import { resolveTlsFiles } from './tls.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration in ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadedTarget {
  readonly name: string;
  readonly dialect: string;
  readonly options: unknown;
}

export interface LoadedConfig {
  readonly file: string;
  readonly config: GatewayConfig;
  readonly targets: readonly LoadedTarget[];
}

/** Keys whose values are never echoed in an error. */
const SECRET_KEY = /^(token|password|secret|clientSecret)$/i;

/** Replaces ${NAME} and ${NAME:-default} in every string; a missing variable is an error naming its key. */
function substituteEnv(value: unknown, path: string, env: NodeJS.ProcessEnv, problems: string[], lenient: boolean): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      if (lenient) return `unset-${name}`;
      problems.push(`${path}: the environment variable ${name} is not set (set it, or write \${${name}:-default})`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, `${path}[${i}]`, env, problems, lenient));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, path ? `${path}.${k}` : k, env, problems, lenient)]),
    );
  }
  return value;
}

function pathString(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/**
 * A value as it may be shown in an error: secrets under secret keys hidden and passwords taken
 * out of URLs, also inside objects and arrays (a problem reported on a whole target shows it).
 */
function withoutSecrets(key: PropertyKey | undefined, value: unknown): unknown {
  if (typeof key === 'string' && SECRET_KEY.test(key) && typeof value === 'string') return '(a secret, not shown)';
  // URLs may carry a password: show them without it.
  if (typeof value === 'string') return redactUrlPassword(value);
  if (Array.isArray(value)) return value.map((v) => withoutSecrets(undefined, v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutSecrets(k, v)]));
  }
  return value;
}

function describeValue(path: readonly PropertyKey[], value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = JSON.stringify(withoutSecrets(path.at(-1), value));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[], raw: unknown, prefix: readonly PropertyKey[] = []): string[] {
  return issues.map((issue) => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      return `${pathString(path)}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (check the spelling against docs/configuration.md)`;
    }
    const got = describeValue(path, valueAt(raw, issue.path));
    return `${pathString(path)}: ${issue.message} (got ${got})`;
  });
}

/** Resolves every string under a key ending in `File` relative to the config file (dialect options). */
function resolveFileKeys(value: unknown, file: string): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveFileKeys(v, file));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, /File$/.test(k) && typeof v === 'string' ? relativeTo(file, v) : resolveFileKeys(v, file)]),
    );
  }
  return value;
}

/** Resolves a path in the config relative to the config file's directory. */
function relativeTo(file: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dirname(file), p);
}

/**
 * Reads, substitutes and validates a config file. Throws ConfigError listing every problem
 * with its key, the bad value and what is expected.
 */
export interface LoadOptions {
  /**
   * For commands that only read state (audit verify, tail, export): an unset ${NAME} does not
   * stop them, since they need no secrets. Never use it to start the gateway.
   */
  readonly allowUnsetEnv?: boolean;
}

export function loadConfig(
  file: string,
  dialects: ReadonlyMap<string, Dialect<unknown>>,
  env: NodeJS.ProcessEnv = process.env,
  options: LoadOptions = {},
): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseConfig(text, file, dialects, env, options);
}

export function parseConfig(
  text: string,
  file: string,
  dialects: ReadonlyMap<string, Dialect<unknown>>,
  env: NodeJS.ProcessEnv = process.env,
  options: LoadOptions = {},
): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => `YAML syntax: ${e.message}`));
  }
  const problems: string[] = [];
  const raw = substituteEnv(doc.toJS(), '', env, problems, options.allowUnsetEnv ?? false);
  if (problems.length > 0) throw new ConfigError(file, problems);
  if (raw === null || typeof raw !== 'object') throw new ConfigError(file, ['the file is empty or not a YAML mapping']);
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(file, formatIssues(result.error.issues, raw));
  const config = result.data;

  const targets: LoadedTarget[] = [];
  const seen = new Set<string>();
  config.targets.forEach((t, i) => {
    if (seen.has(t.name)) problems.push(`targets[${i}].name: the name "${t.name}" is used twice`);
    seen.add(t.name);
    const dialect = dialects.get(t.dialect);
    if (!dialect) {
      problems.push(`targets[${i}].dialect: no dialect "${t.dialect}" is installed`);
      return;
    }
    const { name, dialect: _d, ...rest } = t;
    const parsed = dialect.targetOptions.safeParse(resolveFileKeys(rest, file));
    if (!parsed.success) {
      problems.push(...formatIssues(parsed.error.issues, rest, ['targets', i]));
      return;
    }
    targets.push({ name, dialect: t.dialect, options: parsed.data });
    if (!(config.listen as Record<string, string | undefined>)[t.dialect]) {
      problems.push(`targets[${i}]: the target uses dialect ${t.dialect} but listen.${t.dialect} is not set`);
    }
  });
  const targetNames = new Set(config.targets.map((t) => t.name));
  const needsApprovers: string[] = [];
  if (config.policy.default === 'review') needsApprovers.push('policy.default');
  for (const [g, mode] of Object.entries(config.policy.guardrails)) if (mode === 'review') needsApprovers.push(`policy.guardrails.${g}`);
  config.policy.rules.forEach((r, i) => {
    if (r.effect === 'review' && !r.approvers) needsApprovers.push(`policy.rules[${i}] (${r.name})`);
    for (const [g, mode] of Object.entries(r.guardrails ?? {})) if (mode === 'review') needsApprovers.push(`policy.rules[${i}].guardrails.${g}`);
    (r.targets ?? []).forEach((t, j) => {
      if (!t.includes('*') && !targetNames.has(t)) {
        problems.push(`policy.rules[${i}].targets[${j}]: no target named "${t}" is configured (targets: ${[...targetNames].join(', ')})`);
      }
    });
  });
  if (needsApprovers.length > 0 && !config.approvals.approvers) {
    problems.push(
      `approvals.approvers: ${needsApprovers.join(', ')} hold statements for review, but nobody may approve them; set approvals.approvers (groups or subjects), or give each review rule its own approvers`,
    );
  }
  if (problems.length > 0) throw new ConfigError(file, problems);

  config.audit.dir = relativeTo(file, config.audit.dir);
  config.approvals.dir = relativeTo(file, config.approvals.dir);
  config.pidFile = relativeTo(file, config.pidFile);
  // With a shared store, lineage goes there too unless lineage.store names another place.
  if (config.store !== undefined && config.lineage.store === DEFAULT_LINEAGE_STORE) config.lineage.store = config.store;
  if (!/^postgres(ql)?:\/\//i.test(config.lineage.store)) config.lineage.store = relativeTo(file, config.lineage.store);
  if (config.lineage.openlineage) {
    config.lineage.openlineage.queueDir = relativeTo(file, config.lineage.openlineage.queueDir);
    if (config.lineage.openlineage.file !== undefined) config.lineage.openlineage.file = relativeTo(file, config.lineage.openlineage.file);
  }
  resolveTlsFiles(config, (p) => relativeTo(file, p));
  return { file, config, targets };
}
