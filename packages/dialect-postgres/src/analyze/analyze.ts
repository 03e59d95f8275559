/**
 * Request analysis for the PostgreSQL dialect: normalized text and fingerprint (from the
 * lexer), and per statement the operation classes, objects, hazards and functions found by
 * PostgreSQL's own parser (libpg-query, see parse.ts).
 *
 * Two levels of cache:
 * - the raw request text keys a bounded LRU cache, a cheap fast path for applications that
 *   send the same text again and again (prepared-statement style, ORMs);
 * - the normalized text of a statement (its shape: literals replaced by placeholders) keys the
 *   parser's analysis, so that requests differing only in literals are parsed once. That holds
 *   only when the analysis does not depend on a literal's value: a WHERE decided by constants
 *   (`1=1` and `1=2` have the same shape), a DO body, a SQL string given to a function,
 *   set_config's setting name, EXPLAIN's option values. Those analyses, and statements the
 *   parser rejects, are never shared by shape (the raw-text cache still serves the same text).
 */
import { combineAnalyses, createCachedAnalyzer, fingerprintOf, rememberBounded, type CachedAnalyzer, type ShapeCaches as CoreShapeCaches, type Analysis, type Hazard, type ObjectRef, type OperationClass, type ResultLineage, type WriteLineage } from '@sluice/core';
import { Facts } from './facts.js';
import { TokenKind, type LexOptions, type Token } from './lexer.js';
import { renderStatement, scanSql, type ScannedStatement } from './normalize.js';
import { parseSql } from './parse.js';
import { analyzeParsed } from './walk.js';
import { statementLineage, type StatementLineage } from './lineage.js';
import { as, isObj, list, stringNode, text as textOf } from './tree.js';
import type { CopyFormat } from '../masking/copy.js';

/**
 * The PostgreSQL analysis of a statement (or of a request, where these appear on each part).
 * SQL-level prepared statements are the session's to track: PREPARE says what it prepares,
 * EXECUTE names what the session must substitute, DEALLOCATE what it forgets.
 */
export interface PostgresAnalysis extends Analysis {
  /**
   * `PREPARE name AS statement`: the prepared statement's analysis. The PREPARE's own
   * operations, objects and hazards are already those of the statement, so that a policy can
   * refuse it when it is prepared.
   */
  readonly prepare?: { readonly name: string; readonly statement: Analysis };
  /**
   * `EXECUTE name`: the session substitutes the prepared statement's analysis. Without it the
   * analysis says operations ['unknown'].
   */
  readonly execute?: string;
  /** `DEALLOCATE name` ('*' for ALL, and for DISCARD ALL). */
  readonly deallocate?: string;
  /** `DECLARE name CURSOR`: the cursor whose rows `lineage` describes. */
  readonly declare?: string;
  /** `DECLARE ... WITH HOLD`: the cursor outlives its transaction. */
  readonly declareHold?: boolean;
  /** `FETCH ... name`: the cursor whose rows it returns (the session knows its lineage). */
  readonly fetch?: string;
  /** `COPY ... TO STDOUT`: the format the rows are written in. */
  readonly copy?: CopyFormat;
  readonly parts?: readonly PostgresAnalysis[];
}

export interface PostgresAnalyzerOptions extends LexOptions {
  /** Largest number of raw texts kept in the cache. Default 5000; 0 disables caching. */
  readonly cacheSize?: number;
  /**
   * Texts longer than this many characters are analyzed but not cached, which bounds the
   * cache's memory (keys are kept whole). Default 8192.
   */
  readonly maxCachedTextLength?: number;
}

export type PostgresAnalyzer = CachedAnalyzer<PostgresAnalysis>;

export { fingerprintOf };

const SHAPE_CACHE_SIZE = 5000;

type ShapeCaches = CoreShapeCaches<PostgresAnalysis>;

interface Outcome {
  readonly analysis: PostgresAnalysis;
  /** The parser ran: the text brought a new shape, or one that cannot be shared. */
  readonly parsed: boolean;
}

/** Analyzes without any cache. */
export function analyzeUncached(text: string, options?: LexOptions): PostgresAnalysis {
  return analyzeText(text, options, undefined).analysis;
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  rememberBounded(map, key, value, SHAPE_CACHE_SIZE);
}

const EMPTY_LIST: readonly never[] = Object.freeze([]);

/**
 * Analyzes a text; with `shapes`, a statement (or request) whose shape was analysed before,
 * by an analysis that did not depend on literals, gets the very same Analysis object without
 * calling the parser.
 */
function analyzeText(text: string, options: LexOptions | undefined, shapes: ShapeCaches | undefined): Outcome {
  const scan = scanSql(text, options);
  const statements = scan.statements;
  if (statements.length === 0) return { analysis: EMPTY_ANALYSIS, parsed: false };
  const several = statements.length > 1;
  let requestShape = '';
  if (several) {
    for (let i = 0; i < statements.length; i++) requestShape += (i > 0 ? '; ' : '') + statements[i]!.normalized;
    // A malformed statement can render like a well-formed one (`'abc` and `'abc'` are both `?`).
    const known = statements.every((s) => s.wellFormed) ? shapes?.requests.get(requestShape) : undefined;
    if (known !== undefined) return { analysis: known, parsed: false };
  }
  const standardStrings = options?.standardConformingStrings ?? true;
  const parts: PostgresAnalysis[] = [];
  let parsed = false;
  let shareable = true;
  for (const s of statements) {
    const known = s.wellFormed ? shapes?.statements.get(s.normalized) : undefined;
    if (known !== undefined) {
      parts.push(known);
      continue;
    }
    parsed = true;
    const result = analyzeStatement(text, scan.tokens, s, standardStrings);
    parts.push(result.analysis);
    if (result.shareable) {
      if (shapes !== undefined) remember(shapes.statements, s.normalized, result.analysis);
    } else {
      shareable = false;
    }
  }
  if (!several) return { analysis: parts[0]!, parsed };
  const analysis = combine(requestShape, parts);
  if (shapes !== undefined && shareable) remember(shapes.requests, requestShape, analysis);
  return { analysis, parsed };
}

const EMPTY_ANALYSIS: PostgresAnalysis = Object.freeze({
  normalized: '',
  fingerprint: fingerprintOf(''),
  operations: EMPTY_LIST,
  statementCount: 0,
  commands: EMPTY_LIST,
  objects: EMPTY_LIST,
  hazards: EMPTY_LIST,
  functions: EMPTY_LIST,
});

/** The request's analysis from its statements' (core's union, shared by every dialect). */
function combine(normalized: string, parts: readonly PostgresAnalysis[]): PostgresAnalysis {
  return combineAnalyses(normalized, parts);
}

/**
 * The statement's source text as the parser must see it. With `standard_conforming_strings`
 * off, a plain `'...'` string treats backslash as an escape, exactly like `E'...'`; the parser
 * always runs with the setting on, so such strings are given to it as `E'...'`.
 */
function statementSource(text: string, tokens: readonly Token[], s: ScannedStatement, standardStrings: boolean): string {
  const from = tokens[s.start]!.start;
  const to = tokens[s.end - 1]!.end;
  if (standardStrings) return text.slice(from, to);
  let out = '';
  let at = from;
  for (let i = s.start; i < s.end; i++) {
    const t = tokens[i]!;
    if (t.kind !== TokenKind.String) continue;
    const c = text.charCodeAt(t.start);
    if (c === 0x27) {
      // The space keeps `select'a'` from becoming the identifier `selecte`.
      out += text.slice(at, t.start) + ' E';
      at = t.start;
    } else if ((c === 0x6e || c === 0x4e) && text.charCodeAt(t.start + 1) === 0x27) {
      // N'...' is a plain string typed as national character.
      out += text.slice(at, t.start) + 'E';
      at = t.start + 1;
    }
  }
  return out + text.slice(at, to);
}

/** The normalized text and command of what `PREPARE name [(types)] AS` prepares. */
function preparedShape(tokens: readonly Token[], s: ScannedStatement): { normalized: string; command: string } {
  let i = s.start + 2; // PREPARE name
  const open = tokens[i];
  if (open !== undefined && open.kind === TokenKind.Punct && open.value === '(') {
    let depth = 0;
    for (; i < s.end; i++) {
      const t = tokens[i]!;
      if (t.kind !== TokenKind.Punct) continue;
      if (t.value === '(') depth++;
      else if (t.value === ')' && --depth === 0) break;
    }
    i++;
  }
  const as = tokens[i];
  if (as !== undefined && as.kind === TokenKind.Word && as.value === 'as') i++;
  let c = i;
  while (c < s.end && tokens[c]!.kind === TokenKind.Punct && tokens[c]!.value === '(') c++;
  const first = tokens[c];
  const command = c < s.end && first !== undefined && first.kind === TokenKind.Word ? first.value.toUpperCase() : '';
  return { normalized: renderStatement(tokens, i, s.end), command };
}

/**
 * The lineage of a statement's result and of its writes, from one walk; a walk that fails
 * gives none (the gateway then scans). Computed once per statement shape, with its analysis.
 */
function lineageOf(stmt: unknown): StatementLineage {
  try {
    return statementLineage(stmt);
  } catch {
    return {};
  }
}

/** The options of a COPY ... TO STDOUT. */
function copyFormat(copy: Record<string, unknown>): CopyFormat {
  const out: { -readonly [K in keyof CopyFormat]: CopyFormat[K] } = { format: 'text' };
  for (const o of list(copy['options'])) {
    const d = as(o, 'DefElem');
    if (d === undefined) continue;
    const arg = d['arg'];
    const value = stringNode(arg) ?? (isObj(arg) ? textOf(as(arg, 'Boolean')?.['boolval'] === true ? 'true' : undefined) : undefined);
    switch (d['defname']) {
      case 'format':
        if (value === 'csv' || value === 'binary' || value === 'text') out.format = value;
        break;
      case 'delimiter':
        if (value !== undefined) out.delimiter = value;
        break;
      case 'null':
        if (value !== undefined) out.null = value;
        break;
      case 'quote':
        if (value !== undefined) out.quote = value;
        break;
      case 'escape':
        if (value !== undefined) out.escape = value;
        break;
      case 'header':
        // HEADER, HEADER true/on/match: the first line names the columns.
        out.header = arg === undefined || (value !== undefined && !['false', 'off', '0'].includes(value.toLowerCase()));
        break;
    }
  }
  return Object.freeze(out);
}

interface ResultFacts {
  lineage?: ResultLineage;
  writes?: readonly WriteLineage[];
  declare?: string;
  declareHold?: boolean;
  fetch?: string;
  copy?: CopyFormat;
}

/** Facts about a statement's result that the session needs (cursors, COPY format, lineage), and its writes. */
function resultFacts(stmt: unknown): ResultFacts {
  const out: ResultFacts = {};
  const { lineage, writes } = lineageOf(stmt);
  if (lineage !== undefined) out.lineage = lineage;
  if (writes !== undefined) out.writes = writes;
  const declare = as(stmt, 'DeclareCursorStmt');
  if (declare !== undefined && typeof declare['portalname'] === 'string') {
    out.declare = declare['portalname'];
    // CURSOR_OPT_HOLD
    if (typeof declare['options'] === 'number' && (declare['options'] & 0x0020) !== 0) out.declareHold = true;
  }
  const fetch = as(stmt, 'FetchStmt');
  if (fetch !== undefined && fetch['ismove'] !== true) out.fetch = typeof fetch['portalname'] === 'string' ? fetch['portalname'] : '';
  const copy = as(stmt, 'CopyStmt');
  if (copy !== undefined && copy['is_from'] !== true && copy['filename'] === undefined && copy['is_program'] !== true) out.copy = copyFormat(copy);
  return out;
}

function freezeFacts(facts: Facts, normalized: string, command: string, result?: ResultFacts): Analysis {
  // Built by assignment, not by spreading `result` into a literal: freezing an object made
  // that way costs microseconds per statement.
  const out: { -readonly [K in keyof PostgresAnalysis]?: PostgresAnalysis[K] } = Object.assign({}, result);
  out.normalized = normalized;
  out.fingerprint = fingerprintOf(normalized);
  out.operations = Object.freeze([...facts.operations]);
  out.statementCount = 1;
  out.commands = Object.freeze([command]);
  out.objects = Object.freeze(facts.objectRefs());
  out.hazards = Object.freeze([...facts.hazards]);
  out.functions = Object.freeze([...facts.functions]);
  if (facts.unanalysable.length > 0) out.unanalysable = facts.unanalysable.join('; ');
  return Object.freeze(out) as Analysis;
}

/** Parses and analyses one statement of the request. */
function analyzeStatement(
  text: string,
  tokens: readonly Token[],
  s: ScannedStatement,
  standardStrings: boolean,
): { analysis: PostgresAnalysis; shareable: boolean } {
  const facts = new Facts();
  const result = parseSql(statementSource(text, tokens, s, standardStrings));
  let shareable = s.wellFormed;
  if (!result.ok) {
    // Literals can make a statement fail to parse (`1abc`, a bad escape): not a shape's fact.
    facts.unknown(result.error);
    shareable = false;
  } else if (!s.wellFormed) {
    facts.unknown('malformed statement (unbalanced parentheses or an unterminated literal)');
  } else if (result.stmts.length === 0) {
    facts.unknown('no statement');
  } else {
    for (const st of result.stmts) analyzeParsed(st.stmt, facts);
    if (facts.literalDependent) shareable = false;
  }
  const stmt = result.ok && result.stmts.length === 1 ? result.stmts[0]!.stmt : undefined;
  const base = freezeFacts(facts, s.normalized, s.command, stmt === undefined ? undefined : resultFacts(stmt));
  const extra: { prepare?: PostgresAnalysis['prepare']; execute?: string; deallocate?: string } = {};
  if (facts.prepare !== undefined) {
    const shape = preparedShape(tokens, s);
    const query = as(stmt, 'PrepareStmt')?.['query'];
    extra.prepare = Object.freeze({
      name: facts.prepare.name,
      statement: freezeFacts(facts.prepare.facts, shape.normalized, shape.command, query === undefined ? undefined : resultFacts(query)),
    });
  }
  if (facts.execute !== undefined) extra.execute = facts.execute;
  if (facts.deallocate !== undefined) extra.deallocate = facts.deallocate;
  const analysis: PostgresAnalysis =
    extra.prepare === undefined && extra.execute === undefined && extra.deallocate === undefined ? base : Object.freeze({ ...base, ...extra });
  return { analysis, shareable };
}

/**
 * An analyzer with its own caches. Sessions with `standard_conforming_strings = off` need an
 * analyzer made with `standardConformingStrings: false` (the text lexes differently).
 * Results are frozen and shared between callers.
 */
export function createPostgresAnalyzer(options: PostgresAnalyzerOptions = {}): PostgresAnalyzer {
  const lexOptions: LexOptions = { standardConformingStrings: options.standardConformingStrings ?? true };
  return createCachedAnalyzer((text, shapes) => analyzeText(text, lexOptions, shapes), options);
}

const defaultAnalyzer = createPostgresAnalyzer();

/**
 * Analyzes a request with `standard_conforming_strings = on`, through a shared cache of
 * 5000 raw texts.
 */
export function analyzePostgres(text: string): PostgresAnalysis {
  return defaultAnalyzer.analyze(text);
}
