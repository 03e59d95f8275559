/**
 * Request analysis for the MySQL / MariaDB dialect: normalized text and fingerprint (from the
 * lexer), and per statement the operation classes, objects, hazards, functions, result
 * lineage and write lineage (statement.ts, computed once per statement shape and cached with
 * its analysis), as the same kind of Analysis as the PostgreSQL dialect gives, so
 * that core's policy, guardrails and masking work unchanged.
 *
 * Two levels of cache, as in the PostgreSQL dialect:
 * - the raw request text keys a bounded LRU cache, for applications that send the same text
 *   again and again;
 * - the shape of a statement (its normalized text, and the kind of each literal, which is all
 *   the parser sees: see parse.ts) keys the statement's analysis, so that statements that
 *   differ only in literals are parsed once. That holds only when no literal's value decided
 *   the analysis: an always-true WHERE (`1=1` and `1=2` have the same shape), PREPARE ... FROM
 *   'text', a user name written as a string. Those analyses, and malformed statements, are
 *   never shared by shape (the raw-text cache still serves the same text).
 *
 * Cost per statement (Node 20, the development machine, analyze.bench.ts; warm JIT):
 * - raw-text cache hit: about 0.2 µs;
 * - shape-cache hit (same statement, other literals: lexing, normalizing, hashing): about 4 µs
 *   for sysbench's statements;
 * - miss, statement read from its keywords (SET, SHOW, GRANT, DROP TABLE, KILL ...): about 5 µs;
 * - miss, the parser runs: 60-120 µs for sysbench's point SELECT, UPDATE, DELETE and INSERT
 *   (the parse itself is 40-80 µs of it), about 0.5 ms for a join with an IN list and a
 *   subquery. The first few hundred parses after start are 2-3 times slower (JIT warm-up).
 *   Result and write lineage with their flow kinds are a few µs of a miss (5-10 µs for an
 *   UPDATE, DELETE or INSERT, whose write lineage walks the tree once more); hits cost nothing
 *   more, the lineage being part of the cached analysis.
 * Loading the two grammars takes about 20 ms, once per process.
 */
import { OperationClass, type Analysis, type Hazard, type ObjectRef, combineAnalyses, createCachedAnalyzer, fingerprintOf, rememberBounded, type CachedAnalyzer, type ShapeCaches as CoreShapeCaches } from '@sluice/core';
import type { ExprOptions } from './expr.js';
import type { Facts } from './facts.js';
import { lex, TokenFlag, type LexOptions } from './lexer.js';
import { literalSignature, splitTokens } from './normalize.js';
import type { Dialect } from './parse.js';
import { analyzeStatement, type Context, type StatementResult } from './statement.js';

/**
 * The MySQL analysis of a statement (or of a request, where these appear on each part).
 * SQL-level prepared statements and HANDLERs are the session's to track.
 */
export interface MySqlAnalysis extends Analysis {
  /**
   * `PREPARE name FROM 'text'`: the prepared statement's analysis. The PREPARE's own
   * operations, objects and hazards are already those of the statement.
   */
  readonly prepare?: { readonly name: string; readonly statement: Analysis };
  /** `EXECUTE name`: the session substitutes the prepared statement's analysis. */
  readonly execute?: string;
  /** `DEALLOCATE PREPARE name` / `DROP PREPARE name`. */
  readonly deallocate?: string;
  /**
   * HANDLER statements: `open` is the name the handler is known by (its alias, or the
   * table's); `read` and `close` the name used. A HANDLER ... READ names the handler, which
   * may be an alias: the session knows the table it was opened on.
   */
  readonly handler?: { readonly open?: string; readonly read?: string; readonly close?: string };
  /**
   * System variables the statement sets, lower case (`sql_mode`, `character_set_client`,
   * `names` for SET NAMES, `character set` for SET CHARACTER SET). sql_mode changes how text
   * is read (ANSI_QUOTES, NO_BACKSLASH_ESCAPES, PIPES_AS_CONCAT, HIGH_NOT_PRECEDENCE): a
   * session that sees it set must analyse what follows with an analyzer for the new mode.
   */
  readonly settings?: readonly string[];
  /**
   * The statement stores values in user variables (`@v := email`, `SELECT ... INTO @v`,
   * `SET @v = (SELECT ...)`). A later `SELECT @v` names no table: the session must judge the
   * assignment itself when the values may be masked.
   */
  readonly assignsVariables?: true;
  readonly parts?: readonly MySqlAnalysis[];
}

/** The sql_mode flags that change how text is read. */
export interface SqlModeFlags {
  /** `"..."` quotes identifiers. */
  readonly ansiQuotes?: boolean;
  /** Backslash is not an escape character in strings. */
  readonly noBackslashEscapes?: boolean;
  /** `||` concatenates (instead of meaning OR). */
  readonly pipesAsConcat?: boolean;
  /** NOT binds like `!`. */
  readonly highNotPrecedence?: boolean;
}

export interface MySqlAnalyzerOptions {
  /** `mariadb` runs `/*M! *\/` comments and MariaDB's compound statements. Default `mysql`. */
  readonly dialect?: Dialect;
  /**
   * The session's sql_mode (the server's value, `ANSI_QUOTES,NO_BACKSLASH_ESCAPES...`, or the
   * flags). A session that changes it needs an analyzer made for the new value: the text lexes
   * differently.
   */
  readonly sqlMode?: string | SqlModeFlags;
  /** Largest number of raw texts kept in the cache. Default 5000; 0 disables caching. */
  readonly cacheSize?: number;
  /** Texts longer than this are analysed but not cached. Default 8192. */
  readonly maxCachedTextLength?: number;
}

export type MySqlAnalyzer = CachedAnalyzer<MySqlAnalysis>;

const ANSI_QUOTES_MODES = new Set(['ANSI_QUOTES', 'ANSI', 'DB2', 'MAXDB', 'MSSQL', 'ORACLE', 'POSTGRESQL']);
const PIPES_MODES = new Set(['PIPES_AS_CONCAT', 'ANSI', 'DB2', 'MAXDB', 'ORACLE', 'POSTGRESQL']);

/** The flags of a sql_mode value. */
export function sqlModeFlags(mode: string | SqlModeFlags | undefined): SqlModeFlags {
  if (mode === undefined) return {};
  if (typeof mode !== 'string') return mode;
  const names = mode.split(',').map((m) => m.trim().toUpperCase());
  return {
    ansiQuotes: names.some((m) => ANSI_QUOTES_MODES.has(m)),
    noBackslashEscapes: names.includes('NO_BACKSLASH_ESCAPES'),
    pipesAsConcat: names.some((m) => PIPES_MODES.has(m)),
    highNotPrecedence: names.includes('HIGH_NOT_PRECEDENCE'),
  };
}

export { fingerprintOf };

const SHAPE_CACHE_SIZE = 5000;

type ShapeCaches = CoreShapeCaches<MySqlAnalysis>;

interface Settings {
  readonly dialect: Dialect;
  readonly lex: LexOptions;
  readonly expr: ExprOptions;
}

function settingsOf(options: MySqlAnalyzerOptions | undefined): Settings {
  const dialect = options?.dialect ?? 'mysql';
  const mode = sqlModeFlags(options?.sqlMode);
  return {
    dialect,
    lex: { dialect, ansiQuotes: mode.ansiQuotes === true, noBackslashEscapes: mode.noBackslashEscapes === true },
    expr: { pipesAsConcat: mode.pipesAsConcat === true, highNotPrecedence: mode.highNotPrecedence === true },
  };
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  rememberBounded(map, key, value, SHAPE_CACHE_SIZE);
}

const EMPTY_LIST: readonly never[] = Object.freeze([]);

const EMPTY_ANALYSIS: MySqlAnalysis = Object.freeze({
  normalized: '',
  fingerprint: fingerprintOf(''),
  operations: EMPTY_LIST,
  statementCount: 0,
  commands: EMPTY_LIST,
  objects: EMPTY_LIST,
  hazards: EMPTY_LIST,
  functions: EMPTY_LIST,
});

/** Analyzes without any cache. */
export function analyzeUncached(text: string, options?: Omit<MySqlAnalyzerOptions, 'cacheSize' | 'maxCachedTextLength'>): MySqlAnalysis {
  return analyzeText(text, settingsOf(options), undefined).analysis;
}

interface Outcome {
  readonly analysis: MySqlAnalysis;
  /** The parser (or the statement analysis) ran: the text brought a new shape. */
  readonly parsed: boolean;
}

function analyzeText(text: string, settings: Settings, shapes: ShapeCaches | undefined): Outcome {
  const tokens = lex(text, settings.lex);
  const { statements } = splitTokens(tokens);
  if (statements.length === 0) return { analysis: EMPTY_ANALYSIS, parsed: false };
  const ctx: Context = { text, tokens, dialect: settings.dialect, lex: settings.lex, expr: settings.expr, depth: 0 };
  const keys = statements.map((s) => s.normalized + '\u0000' + literalSignature(tokens, s.start, s.end));
  const several = statements.length > 1;
  let requestShape = '';
  if (several) {
    for (let i = 0; i < statements.length; i++) requestShape += (i > 0 ? '; ' : '') + statements[i]!.normalized;
    const known = statements.every((s) => s.wellFormed) ? shapes?.requests.get(keys.join('\u0001')) : undefined;
    if (known !== undefined) return { analysis: known, parsed: false };
  }
  // A versioned executable comment read two ways: what an older server would run counts too.
  const other = tokens.some((t) => (t.flags & TokenFlag.Suspect) !== 0) ? otherReading(text, settings) : undefined;
  const parts: MySqlAnalysis[] = [];
  let parsed = false;
  let shareable = true;
  statements.forEach((s, i) => {
    const key = keys[i]!;
    const known = s.wellFormed ? shapes?.statements.get(key) : undefined;
    if (known !== undefined) {
      parts.push(known);
      return;
    }
    parsed = true;
    const result = analyzeStatement(ctx, s);
    if (other !== undefined && !s.wellFormed) {
      for (const op of other.operations) result.facts.op(op);
      for (const h of other.hazards) result.facts.hazard(h);
    }
    const analysis = freeze(result, s.normalized, s.command);
    parts.push(analysis);
    if (s.wellFormed && !result.facts.literalDependent) {
      if (shapes !== undefined) remember(shapes.statements, key, analysis);
    } else {
      shareable = false;
    }
  });
  if (!several) return { analysis: parts[0]!, parsed };
  const analysis = combine(requestShape, parts);
  if (shapes !== undefined && shareable) remember(shapes.requests, keys.join('\u0001'), analysis);
  return { analysis, parsed };
}

/** The classes and hazards of the text as a server older than its versioned comments reads it. */
function otherReading(text: string, settings: Settings): { operations: OperationClass[]; hazards: Hazard[] } {
  const tokens = lex(text, { ...settings.lex, skipVersioned: true });
  const { statements } = splitTokens(tokens);
  const ctx: Context = { text, tokens, dialect: settings.dialect, lex: settings.lex, expr: settings.expr, depth: 1 };
  const operations: OperationClass[] = [];
  const hazards: Hazard[] = [];
  for (const s of statements) {
    const { facts } = analyzeStatement(ctx, s, true);
    for (const op of facts.operations) if (!operations.includes(op)) operations.push(op);
    for (const h of facts.hazards) if (!hazards.includes(h)) hazards.push(h);
  }
  return { operations, hazards };
}

function freezeFacts(facts: Facts, normalized: string, command: string, lineage: StatementResult['lineage'], writes: StatementResult['writes']): MySqlAnalysis {
  const handler = facts.handler;
  return Object.freeze({
    normalized,
    fingerprint: fingerprintOf(normalized),
    operations: Object.freeze([...facts.operations]),
    statementCount: 1,
    commands: Object.freeze([command]),
    objects: Object.freeze(facts.objectRefs()),
    hazards: Object.freeze([...facts.hazards]),
    functions: Object.freeze([...facts.functions]),
    ...(facts.unanalysable.length > 0 ? { unanalysable: facts.unanalysable.join('; ') } : {}),
    ...(lineage === undefined ? {} : { lineage }),
    ...(writes === undefined ? {} : { writes }),
    ...(facts.execute === undefined ? {} : { execute: facts.execute }),
    ...(facts.deallocate === undefined ? {} : { deallocate: facts.deallocate }),
    ...(handler === undefined ? {} : { handler: Object.freeze({ ...handler }) }),
    ...(facts.settings.length === 0 ? {} : { settings: Object.freeze([...facts.settings]) }),
    ...(facts.assignsVariables ? { assignsVariables: true } : {}),
  });
}

function freeze(result: StatementResult, normalized: string, command: string): MySqlAnalysis {
  const base = freezeFacts(result.facts, normalized, command, result.lineage, result.writes);
  const p = result.prepared;
  if (p === undefined) return base;
  const statement = freezeFacts(p.result.facts, p.normalized, p.command, p.result.lineage, p.result.writes);
  return Object.freeze({ ...base, prepare: Object.freeze({ name: p.name, statement }) });
}

/** The request's analysis from its statements' (core's union, shared by every dialect). */
function combine(normalized: string, parts: readonly MySqlAnalysis[]): MySqlAnalysis {
  return combineAnalyses(normalized, parts);
}

/**
 * An analyzer with its own caches, for one dialect and one sql_mode. Results are frozen and
 * shared between callers.
 */
export function createMySqlAnalyzer(options: MySqlAnalyzerOptions = {}): MySqlAnalyzer {
  const settings = settingsOf(options);
  return createCachedAnalyzer((text, shapes) => analyzeText(text, settings, shapes), options);
}

/** The process's analyzers, by what the analysis depends on (dialect and sql_mode flags). */
const sharedAnalyzers = new Map<string, MySqlAnalyzer>();

/**
 * The analyzer every session with these settings uses, with the default cache sizes. The
 * analysis depends on the text, the dialect and the sql_mode flags only (its results are
 * frozen), so sessions share it: one analyzer per session would keep up to three caches of
 * 5,000 entries for each session, and memory would grow with the number of sessions times the
 * statement shapes each has seen. Keyed by the flags, not the sql_mode text, there are at most
 * 2 dialects x 16 flag combinations of them, whatever sql_mode values the clients set.
 */
export function sharedMySqlAnalyzer(options: Pick<MySqlAnalyzerOptions, 'dialect' | 'sqlMode'> = {}): MySqlAnalyzer {
  const dialect = options.dialect ?? 'mysql';
  const f = sqlModeFlags(options.sqlMode);
  const key = `${dialect}:${f.ansiQuotes === true ? 1 : 0}${f.noBackslashEscapes === true ? 1 : 0}${f.pipesAsConcat === true ? 1 : 0}${f.highNotPrecedence === true ? 1 : 0}`;
  let analyzer = sharedAnalyzers.get(key);
  if (analyzer === undefined) {
    analyzer = createMySqlAnalyzer({ dialect, sqlMode: f });
    sharedAnalyzers.set(key, analyzer);
  }
  return analyzer;
}
