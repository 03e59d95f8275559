/**
 * Request analysis for the PostgreSQL dialect: normalized text, fingerprint, operation classes
 * and command keywords of every statement in a request.
 *
 * Two levels of keys:
 * - the raw request text keys a bounded LRU cache here, a cheap fast path for applications
 *   that send the same text again and again (prepared-statement style, ORMs);
 * - the normalized text (and its fingerprint) is the shape of a request: requests that differ
 *   only in literals share it. Any later, more expensive analysis (a full parser) should be
 *   cached by the shape, not by the raw text.
 */
import * as crypto from 'node:crypto';
import { type Analysis, OperationClass } from '@sluice/core';
import { classifyStatement } from './classify.js';
import type { LexOptions } from './lexer.js';
import { scanSql } from './normalize.js';

export interface PostgresAnalyzerOptions extends LexOptions {
  /** Largest number of raw texts kept in the cache. Default 5000; 0 disables caching. */
  readonly cacheSize?: number;
  /**
   * Texts longer than this many characters are analyzed but not cached, which bounds the
   * cache's memory (keys are kept whole). Default 8192.
   */
  readonly maxCachedTextLength?: number;
}

export interface PostgresAnalyzer {
  analyze(text: string): Analysis;
  /** Number of cached entries. */
  readonly size: number;
  clear(): void;
}

// One-shot hashing (Node >= 20.12) is measurably cheaper than createHash() for short inputs.
const oneShot: ((algorithm: string, data: string, encoding: 'hex') => string) | undefined =
  typeof crypto.hash === 'function' ? crypto.hash : undefined;

/**
 * Hex digest of a normalized text: the first 16 hex characters (64 bits) of its SHA-1 over
 * the UTF-8 bytes. Not a security boundary; it groups requests by shape.
 */
export function fingerprintOf(normalized: string): string {
  const hex = oneShot ? oneShot('sha1', normalized, 'hex') : crypto.createHash('sha1').update(normalized).digest('hex');
  return hex.slice(0, 16);
}

/** Analyzes without any cache. */
export function analyzeUncached(text: string, options?: LexOptions): Analysis {
  return analyzeWithShapes(text, options, undefined);
}

/**
 * Analyzes a text; when `shapes` is given, a text whose normalized shape was seen before gets
 * the very same Analysis object (so fingerprinting, classification and anything callers
 * derive per analysis are done once per shape, not once per literal value).
 */
function analyzeWithShapes(text: string, options: LexOptions | undefined, shapes: Map<string, Analysis> | undefined): Analysis {
  const scan = scanSql(text, options);
  if (shapes !== undefined) {
    let normalized = '';
    for (let i = 0; i < scan.statements.length; i++) normalized += (i > 0 ? '; ' : '') + scan.statements[i]!.normalized;
    const known = shapes.get(normalized);
    // A malformed statement is unknown whatever its shape says; do not share it.
    if (known !== undefined && scan.statements.every((st) => st.wellFormed)) return known;
  }
  const statements: string[] = [];
  const commands: string[] = [];
  const operations: OperationClass[] = [];
  const parts: Analysis[] = [];
  const several = scan.statements.length > 1;
  for (const s of scan.statements) {
    statements.push(s.normalized);
    commands.push(s.command);
    const op = s.wellFormed ? classifyStatement(scan.tokens, s.start, s.end) : OperationClass.Unknown;
    if (!operations.includes(op)) operations.push(op);
    if (several) {
      parts.push(
        Object.freeze({
          normalized: s.normalized,
          fingerprint: fingerprintOf(s.normalized),
          operations: Object.freeze([op]),
          statementCount: 1,
          commands: Object.freeze([s.command]),
        }),
      );
    }
  }
  const normalized = statements.join('; ');
  const analysis: Analysis = Object.freeze({
    normalized,
    fingerprint: fingerprintOf(normalized),
    operations: Object.freeze(operations),
    statementCount: statements.length,
    commands: Object.freeze(commands),
    ...(several ? { parts: Object.freeze(parts) } : {}),
  });
  if (shapes !== undefined && scan.statements.every((st) => st.wellFormed)) {
    if (shapes.size >= SHAPE_CACHE_SIZE) {
      const oldest = shapes.keys().next();
      if (oldest.done !== true) shapes.delete(oldest.value);
    }
    shapes.set(normalized, analysis);
    newShape = true;
  }
  return analysis;
}

const SHAPE_CACHE_SIZE = 5000;
/** Set by analyzeWithShapes when the text brought a shape not seen before. */
let newShape = false;

/**
 * An analyzer with its own LRU cache. Sessions with `standard_conforming_strings = off` need
 * an analyzer made with `standardConformingStrings: false` (the text lexes differently).
 * Results are frozen and shared between callers.
 */
export function createPostgresAnalyzer(options: PostgresAnalyzerOptions = {}): PostgresAnalyzer {
  const cacheSize = Math.max(0, Math.floor(options.cacheSize ?? 5000));
  const maxLength = options.maxCachedTextLength ?? 8192;
  const lexOptions: LexOptions = { standardConformingStrings: options.standardConformingStrings ?? true };
  const cache = new Map<string, Analysis>();
  const shapes = new Map<string, Analysis>();

  return {
    analyze(text: string): Analysis {
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
      newShape = false;
      const result = analyzeWithShapes(text, lexOptions, cacheSize > 0 ? shapes : undefined);
      // A text whose shape was already known differs from earlier texts only in its literals
      // (simple-protocol clients inline them): caching it would churn the raw-text cache with
      // texts that will not come again. Cache texts that brought a new shape.
      if (cacheable && newShape) {
        if (cache.size >= cacheSize) {
          const oldest = cache.keys().next();
          if (oldest.done !== true) cache.delete(oldest.value);
        }
        cache.set(text, result);
      }
      return result;
    },
    get size() {
      return cache.size;
    },
    clear() {
      cache.clear();
      shapes.clear();
    },
  };
}

const defaultAnalyzer = createPostgresAnalyzer();

/**
 * Analyzes a request with `standard_conforming_strings = on`, through a shared cache of
 * 5000 raw texts.
 */
export function analyzePostgres(text: string): Analysis {
  return defaultAnalyzer.analyze(text);
}
