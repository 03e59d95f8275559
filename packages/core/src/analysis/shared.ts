/**
 * What every dialect's analyzer does the same way: the fingerprint of a normalized text, the
 * analysis of a request made from its statements' analyses, and the bounded caches by shape.
 */
import * as crypto from 'node:crypto';
import type { Analysis, Hazard, ObjectRef, OperationClass } from './types.js';

// One-shot hashing (Node >= 20.12) is measurably cheaper than createHash() for short inputs.
const oneShot: ((algorithm: string, data: string, encoding: 'hex') => string) | undefined =
  typeof crypto.hash === 'function' ? crypto.hash : undefined;

/**
 * Hex digest of a normalized text: the first 16 hex characters (64 bits) of its SHA-1 over
 * the UTF-8 bytes. Not a security boundary; it groups requests by shape, across dialects.
 */
export function fingerprintOf(normalized: string): string {
  const hex = oneShot ? oneShot('sha1', normalized, 'hex') : crypto.createHash('sha1').update(normalized).digest('hex');
  return hex.slice(0, 16);
}

/** Sets `key` in a map used as a bounded cache: the oldest entry goes when it is full. */
export function rememberBounded<V>(map: Map<string, V>, key: string, value: V, limit: number): void {
  if (map.size >= limit) {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
  map.set(key, value);
}

/** One object seen by two statements: columns are known only if both knew them. */
function mergeObjects(a: ObjectRef, b: ObjectRef): ObjectRef {
  const merged: { -readonly [K in keyof ObjectRef]: ObjectRef[K] } = { ...a };
  if (a.columns !== undefined && b.columns !== undefined) {
    merged.columns = Object.freeze([...new Set([...a.columns, ...b.columns])]);
  } else {
    delete merged.columns;
  }
  return Object.freeze(merged);
}

/** A request's analysis from its statements': unions in order, without duplicates. */
export function combineAnalyses<A extends Analysis>(normalized: string, parts: readonly A[]): Analysis & { readonly parts: readonly A[] } {
  const operations: OperationClass[] = [];
  const hazards: Hazard[] = [];
  const functions: string[] = [];
  const commands: string[] = [];
  const unanalysable: string[] = [];
  const objects: ObjectRef[] = [];
  const objectIndex = new Map<string, number>();
  for (const p of parts) {
    commands.push(p.commands[0] ?? '');
    for (const op of p.operations) if (!operations.includes(op)) operations.push(op);
    for (const h of p.hazards ?? []) if (!hazards.includes(h)) hazards.push(h);
    for (const f of p.functions ?? []) if (!functions.includes(f)) functions.push(f);
    if (p.unanalysable !== undefined && !unanalysable.includes(p.unanalysable)) unanalysable.push(p.unanalysable);
    for (const o of p.objects ?? []) {
      const key = `${o.kind}\u0000${o.access}\u0000${o.schema ?? ''}\u0000${o.schema === undefined ? 0 : 1}\u0000${o.name}`;
      const at = objectIndex.get(key);
      if (at === undefined) {
        objectIndex.set(key, objects.length);
        objects.push(o);
        continue;
      }
      objects[at] = mergeObjects(objects[at]!, o);
    }
  }
  return Object.freeze({
    normalized,
    fingerprint: fingerprintOf(normalized),
    operations: Object.freeze(operations),
    statementCount: parts.length,
    commands: Object.freeze(commands),
    parts: Object.freeze([...parts]),
    objects: Object.freeze(objects),
    hazards: Object.freeze(hazards),
    functions: Object.freeze(functions),
    ...(unanalysable.length > 0 ? { unanalysable: unanalysable.join('; ') } : {}),
  });
}

const executions = new WeakMap<Analysis, WeakMap<Analysis, Analysis>>();

/**
 * A SQL-level `EXECUTE name` analysed as the statement it runs: the EXECUTE's own text,
 * fingerprint and command, the prepared statement's operations, objects, hazards, functions
 * and lineage, and the dialect's own facts named in `carry` (a cursor's name, a COPY, ...).
 * Cached per pair, so a session that executes the same statement again decides it from cache.
 */
export function executionOf<A extends Analysis>(execute: Analysis, statement: A, carry: readonly (keyof A & string)[] = []): A {
  let byStatement = executions.get(execute);
  if (!byStatement) executions.set(execute, (byStatement = new WeakMap()));
  let a = byStatement.get(statement);
  if (!a) {
    const extra: Record<string, unknown> = {};
    for (const k of carry) if (statement[k] !== undefined) extra[k] = statement[k];
    a = Object.freeze({
      normalized: execute.normalized,
      fingerprint: execute.fingerprint,
      statementCount: 1,
      commands: execute.commands,
      operations: statement.operations,
      ...(statement.objects ? { objects: statement.objects } : {}),
      ...(statement.hazards ? { hazards: statement.hazards } : {}),
      ...(statement.functions ? { functions: statement.functions } : {}),
      ...(statement.unanalysable ? { unanalysable: statement.unanalysable } : {}),
      ...(statement.lineage ? { lineage: statement.lineage } : {}),
      ...(statement.writes ? { writes: statement.writes } : {}),
      ...extra,
    });
    byStatement.set(statement, a);
  }
  return a as A;
}

/** A dialect analyzer's shape caches: statement shape, and request shape, to an analysis. */
export interface ShapeCaches<A extends Analysis> {
  readonly statements: Map<string, A>;
  readonly requests: Map<string, A>;
}

/** An analyzer with its caches, as every dialect exposes it. */
export interface CachedAnalyzer<A extends Analysis> {
  analyze(text: string): A;
  /** Number of cached raw texts. */
  readonly size: number;
  clear(): void;
}

/**
 * Wraps a dialect's text analysis in the two caches every dialect keeps: a bounded LRU of raw
 * texts (for applications that send the same text again), and the shape caches the analysis
 * fills itself (`run` gets them, or undefined when caching is off). `run` reports whether the
 * parser ran: a text whose shapes were all known differs from earlier texts only in its
 * literals and is not worth a raw-text entry (it would churn the cache with texts that will not
 * come again).
 */
export function createCachedAnalyzer<A extends Analysis>(
  run: (text: string, shapes: ShapeCaches<A> | undefined) => { readonly analysis: A; readonly parsed: boolean },
  options: { readonly cacheSize?: number | undefined; readonly maxCachedTextLength?: number | undefined } = {},
): CachedAnalyzer<A> {
  const cacheSize = Math.max(0, Math.floor(options.cacheSize ?? 5000));
  const maxLength = options.maxCachedTextLength ?? 8192;
  const cache = new Map<string, A>();
  const shapes: ShapeCaches<A> = { statements: new Map(), requests: new Map() };
  return {
    analyze(text: string): A {
      const cacheable = cacheSize > 0 && text.length <= maxLength;
      if (cacheable) {
        const hit = cache.get(text);
        if (hit !== undefined) {
          // Refresh recency: Map iteration order is insertion order.
          cache.delete(text);
          cache.set(text, hit);
          return hit;
        }
      }
      const { analysis, parsed } = run(text, cacheSize > 0 ? shapes : undefined);
      if (cacheable && parsed) rememberBounded(cache, text, analysis, cacheSize);
      return analysis;
    },
    get size() {
      return cache.size;
    },
    clear() {
      cache.clear();
      shapes.statements.clear();
      shapes.requests.clear();
    },
  };
}

/**
 * Every object (not array) in a parse tree, the root included, depth first. Iterative, so the
 * depth of the tree does not matter (the fallbacks of the lineage walkers use it on trees too
 * deep for them). Values under `skipKey` are not visited.
 */
export function* objectsIn(root: unknown, skipKey?: string): Generator<Record<string, unknown>> {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    const node = v as Record<string, unknown>;
    yield node;
    for (const key in node) if (key !== skipKey) stack.push(node[key]);
  }
}
