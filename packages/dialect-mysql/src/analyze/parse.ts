/**
 * The statement parser: node-sql-parser (a PEG grammar of MySQL and of MariaDB compiled to
 * JavaScript). Only the two grammars this dialect needs are loaded (`build/mysql.js` and
 * `build/mariadb.js`, ~25 ms and ~540 KB together, instead of the 2.5 MB bundle of every
 * dialect).
 *
 * The parser does not see the request text. It sees a text rebuilt from the lexer's tokens
 * ({@link parserText}):
 * - every literal is replaced by a marker of its kind (`'?'` for strings, hex and bit literals,
 *   `1` for numbers, a sign absorbed) and `IN (literal, ...)` by `IN (1)`. The grammar misreads
 *   several literal forms (`1e3` becomes a column, `'a' 'b'` an alias, `.5`, `_utf8mb4'x'`,
 *   backslash escapes and NO_BACKSLASH_ESCAPES, ANSI_QUOTES) and none of that reaches it;
 *   the tree then depends only on the statement's shape, so an analysis built from it can be
 *   shared by every text of that shape. Literal values, where the analysis needs them (an
 *   always-true WHERE, PREPARE ... FROM 'text'), come from the tokens;
 * - comments are gone and executable comments are code;
 * - MySQL syntax the grammar rejects or misreads, and that does not change what is read or
 *   written, is rewritten or dropped: SELECT options (`HIGH_PRIORITY`, `STRAIGHT_JOIN`,
 *   `SQL_NO_CACHE`, `DISTINCTROW`...), DML modifiers (`LOW_PRIORITY`, `QUICK`, `IGNORE`,
 *   `DELAYED`), index hints, `PARTITION (...)` selections, locking clauses (`FOR UPDATE`,
 *   `LOCK IN SHARE MODE`; reported as {@link ParserInput.locking}), `INTO OUTFILE/DUMPFILE/@var`
 *   (reported as {@link ParserInput.into}), `NATURAL JOIN` (as a join, reported),
 *   `<=>` (as `=`), the `BINARY` operator (as unary `+`), ODBC `{d '...'}` escapes,
 *   `CURRENT_USER` and similar without parentheses, `DEFAULT` as a value, `TABLE t` (as
 *   `SELECT * FROM t`, also as an INSERT's source), `DO expr` (as `SELECT expr`) and an
 *   INSERT's row alias (reported as {@link ParserInput.rowAlias}).
 *
 * Cost (Node 20, the development machine, warm JIT): 40-80 µs for a point SELECT, UPDATE,
 * DELETE or INSERT, 0.3-0.5 ms for a join with subqueries; loading both grammars about 20 ms.
 * A statement the dialect's grammar rejects is parsed a second time with the other grammar.
 */
import { objectsIn } from '@sluice/core';
import { createRequire } from 'node:module';
import { RESERVED } from './keywords.js';
import { TokenKind, type Token } from './lexer.js';
import { isSign, quoteIdent } from './normalize.js';
import { isObj, nameOf } from './tree.js';

interface NodeSqlParser {
  astify(sql: string, opt?: { database?: string }): unknown;
}
type ParserClass = new () => NodeSqlParser;

const require = createRequire(import.meta.url);
const mysqlGrammar = (require('node-sql-parser/build/mysql.js') as { Parser: ParserClass }).Parser;
const mariadbGrammar = (require('node-sql-parser/build/mariadb.js') as { Parser: ParserClass }).Parser;
const parsers = { mysql: new mysqlGrammar(), mariadb: new mariadbGrammar() };

export type Dialect = 'mysql' | 'mariadb';

/** A parse-tree node as node-sql-parser builds it. */
export type AstNode = Record<string, unknown>;

export type ParseOutcome = { readonly ok: true; readonly ast: AstNode } | { readonly ok: false; readonly error: string };

/** Counters for tests and benchmarks: how often the parser actually ran. */
export const parserCalls = { count: 0 };

/**
 * Parses one statement's parser text with the dialect's grammar, then with the other one (each
 * rejects some statements the other accepts: MariaDB's grammar rejects `DELETE ... LIMIT`,
 * MySQL's rejects `RETURNING`). Never throws. The error is the first grammar's.
 */
/**
 * Parses tokens [from, to) of a statement: builds the parser text (with `prefix` before it),
 * parses it, and when the grammar rejects a name it reserves but MySQL does not (`SELECT x AS
 * full`), parses again with that word quoted (up to four words).
 */
export function parseTokens(
  tokens: readonly Token[],
  from: number,
  to: number,
  dialect: Dialect,
  prefix?: string,
): { readonly ok: true; readonly ast: AstNode; readonly input: ParserInput } | { readonly ok: false; readonly error: string } {
  const quote = new Set<string>();
  for (;;) {
    const input = parserText(tokens, from, to, quote.size === 0 ? undefined : quote);
    const text = prefix === undefined ? input.text : `${prefix} ${input.text}`;
    const result = parseStatement(text, dialect);
    if (result.ok) {
      const misread = misreadKeyword(result.ast, tokens, from, to);
      if (misread !== undefined) return { ok: false, error: `the parser read the keyword ${misread.toUpperCase()} as a name` };
      return { ok: true, ast: result.ast, input: { ...input, text } };
    }
    const word = reservedWordOf(result.error);
    if (word === undefined || quote.has(word) || quote.size >= 4) return result;
    quote.add(word);
  }
}

/** The word a parse error says the grammar reserves (`"full" is a reserved word ...`). */
export function reservedWordOf(error: string): string | undefined {
  return /"([A-Za-z_][A-Za-z0-9_$]*)" is a reserved word/.exec(error)?.[1]?.toLowerCase();
}

export function parseStatement(text: string, dialect: Dialect): ParseOutcome {
  const first = parseWith(text, dialect);
  if (first.ok) return first;
  const second = parseWith(text, dialect === 'mysql' ? 'mariadb' : 'mysql');
  return second.ok ? second : first;
}

function parseWith(text: string, dialect: Dialect): ParseOutcome {
  parserCalls.count++;
  try {
    const result = parsers[dialect].astify(text, { database: dialect === 'mysql' ? 'MySQL' : 'MariaDB' });
    const list = Array.isArray(result) ? result : [result];
    if (list.length !== 1 || typeof list[0] !== 'object' || list[0] === null) return { ok: false, error: 'not one statement' };
    return { ok: true, ast: list[0] as AstNode };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

const MAX_MESSAGE = 200;

/**
 * The parser's message, shortened: its list of expected tokens is long and says little. The
 * text it quotes is the parser text, whose literals are markers: no value can leak.
 */
function errorText(e: unknown): string {
  let message = e instanceof Error ? e.message : String(e);
  if (reservedWordOf(message) !== undefined) return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
  const found = /but (.+?) found\.?$/.exec(message);
  const location = (e as { location?: { start?: { offset?: number } } } | undefined)?.location?.start?.offset;
  if (found !== null) message = `syntax error at ${found[1]}` + (typeof location === 'number' ? ` (character ${location + 1} of the parsed statement)` : '');
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
}

/** The parser's input for one statement, and what the rewriting took out of it. */
export interface ParserInput {
  readonly text: string;
  /** A `FOR UPDATE`, `FOR SHARE` or `LOCK IN SHARE MODE` clause was removed. */
  readonly locking: boolean;
  /** `INTO OUTFILE`, `INTO DUMPFILE` or `INTO @var` was removed: the query returns no rows. */
  readonly into: 'file' | 'variables' | undefined;
  /** A NATURAL JOIN was made a plain join: the columns it compares are not known. */
  readonly natural: boolean;
  /**
   * `INSERT ... VALUES (...) AS alias [(columns)] ON DUPLICATE KEY UPDATE` (or `SET ... AS
   * alias`): the row alias, which the grammar rejects and was removed.
   */
  readonly rowAlias?: RowAlias;
}

/** An INSERT's row alias: its name, and the names it gives the row's columns (empty when none). */
export interface RowAlias {
  readonly name: string;
  readonly columns: readonly string[];
}

const SELECT_OPTIONS: ReadonlySet<string> = new Set([
  'all', 'distinctrow', 'high_priority', 'straight_join', 'sql_small_result', 'sql_big_result', 'sql_buffer_result',
  'sql_no_cache', 'sql_cache', 'sql_calc_found_rows',
]);
const DML_MODIFIERS: Readonly<Record<string, ReadonlySet<string>>> = {
  delete: new Set(['low_priority', 'quick', 'ignore']),
  update: new Set(['low_priority', 'ignore']),
  insert: new Set(['low_priority', 'delayed', 'high_priority']),
  replace: new Set(['low_priority', 'delayed']),
};
const INTO_OPTIONS: ReadonlySet<string> = new Set([
  'character', 'set', 'charset', 'fields', 'columns', 'lines', 'terminated', 'optionally', 'enclosed', 'escaped', 'starting', 'by',
]);
/** Functions the grammar accepts only with parentheses. */
const NILADIC: ReadonlySet<string> = new Set(['current_user', 'current_role', 'localtime', 'localtimestamp', 'utc_date', 'utc_time', 'utc_timestamp']);
/** Keywords after which an expression operand starts (so a `BINARY` there is the operator). */
const OPERAND_KEYWORDS: ReadonlySet<string> = new Set([
  'select', 'where', 'and', 'or', 'xor', 'not', 'when', 'then', 'else', 'on', 'having', 'by', 'like', 'rlike', 'regexp',
  'in', 'between', 'case', 'return', 'distinct', 'escape', 'if', 'elseif', 'do', 'until', 'div', 'mod', 'is', 'sounds',
]);

function word(t: Token | undefined): string | undefined {
  return t !== undefined && t.kind === TokenKind.Word ? t.value : undefined;
}

function punct(t: Token | undefined, v: string): boolean {
  return t !== undefined && t.kind === TokenKind.Punct && t.value === v;
}

function isLiteral(t: Token): boolean {
  return t.kind === TokenKind.String || t.kind === TokenKind.Binary || t.kind === TokenKind.Number;
}

/** Index of the `)` closing the `(` at `open`, or -1. */
function closing(tokens: readonly Token[], open: number, end: number): number {
  let depth = 0;
  for (let i = open; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind !== TokenKind.Punct) continue;
    if (t.value === '(') depth++;
    else if (t.value === ')' && --depth === 0) return i;
  }
  return -1;
}

/** `( literal, ... )` of literals and placeholders: index of its `)`, else -1. */
function literalList(tokens: readonly Token[], open: number, end: number): number {
  if (!punct(tokens[open], '(')) return -1;
  let i = open + 1;
  for (;;) {
    let t = tokens[i];
    if (i >= end || t === undefined) return -1;
    if (t.kind === TokenKind.Operator && t.value === '-' && tokens[i + 1]?.kind === TokenKind.Number) t = tokens[++i]!;
    if (!isLiteral(t) && t.kind !== TokenKind.Param) return -1;
    const sep = tokens[++i];
    if (i >= end || sep === undefined || sep.kind !== TokenKind.Punct) return -1;
    if (sep.value === ')') return i;
    if (sep.value !== ',') return -1;
    i++;
  }
}

/** True when the token can start an expression operand. */
function startsOperand(t: Token | undefined): boolean {
  if (t === undefined) return false;
  switch (t.kind) {
    case TokenKind.Word:
    case TokenKind.QuotedIdent:
    case TokenKind.String:
    case TokenKind.Binary:
    case TokenKind.Number:
    case TokenKind.Param:
    case TokenKind.Variable:
      return true;
    case TokenKind.Punct:
      return t.value === '(';
    case TokenKind.Operator:
      return t.value === '-' || t.value === '+' || t.value === '~' || t.value === '!';
    default:
      return false;
  }
}

/** True when the token before `i` leaves an operand to be read (so `BINARY` at i is the operator). */
function operandPosition(tokens: readonly Token[], i: number, start: number): boolean {
  if (i === start) return false;
  const p = tokens[i - 1]!;
  if (p.kind === TokenKind.Operator) return true;
  if (p.kind === TokenKind.Punct) return p.value === '(' || p.value === ',';
  return p.kind === TokenKind.Word && OPERAND_KEYWORDS.has(p.value);
}

/**
 * The text given to the parser for tokens [start, end) of one statement (see the module
 * comment), and what was taken out of it.
 */
export function parserText(tokens: readonly Token[], start: number, end: number, quote?: ReadonlySet<string>): ParserInput {
  const pieces: string[] = [];
  let locking = false;
  let into: ParserInput['into'];
  let natural = false;
  let rowAlias: RowAlias | undefined;
  /** An INSERT's source is a query (a `SELECT` at depth 0): an `AS` there is no row alias. */
  let insertQuery = false;
  const first = word(tokens[start]);
  const query = first === 'select' || first === 'with' || first === 'table' || first === 'do' || first === 'values' || punct(tokens[start], '(');
  let command = first;
  /** Parenthesis depth, and the depths at which `FROM` / `FOR` separate SUBSTRING's arguments. */
  let depth = 0;
  const substring: number[] = [];
  const duplicate = (first === 'insert' || first === 'replace') && tokens.slice(start, end).some((t, k, a) => t.kind === TokenKind.Word && t.value === 'on' && word(a[k + 1]) === 'duplicate');
  const skip = derivedColumnLists(tokens, start, end);
  if (first === 'delete') {
    // DELETE FROM t1, t2 USING refs ...: the grammar knows the equivalent DELETE t1, t2 FROM refs ...
    let k = start + 1;
    while (['low_priority', 'quick', 'ignore'].includes(word(tokens[k]) ?? '')) k++;
    if (word(tokens[k]) === 'from') {
      const using = depthZero(tokens, k + 1, end, 'using', 'where');
      if (using > 0) {
        const targets = parserText(tokens, k + 1, using, quote);
        const refs = parserText(tokens, using + 1, end, quote);
        return {
          text: `delete ${targets.text} from ${refs.text}`,
          locking: false,
          into: undefined,
          natural: targets.natural || refs.natural,
        };
      }
    }
  }

  for (let i = start; i < end; i++) {
    const t = tokens[i]!;
    const skipTo = skip.get(i);
    if (skipTo !== undefined) {
      i = skipTo;
      continue;
    }
    switch (t.kind) {
      case TokenKind.Word: {
        const v = t.value;
        if (first === 'delete' && depth === 0 && punct(tokens[i + 1], '.') && tokens[i + 2]?.kind === TokenKind.Operator && tokens[i + 2]!.value === '*') {
          // DELETE t.* FROM ...: the target t.
          pieces.push(v);
          i += 2;
          continue;
        }
        if ((v === 'next' || v === 'previous') && word(tokens[i + 1]) === 'value' && word(tokens[i + 2]) === 'for') {
          // MariaDB: NEXT VALUE FOR s, PREVIOUS VALUE FOR s.
          const seq: string[] = [];
          let j = i + 3;
          while (j < end && (tokens[j]!.kind === TokenKind.Word || tokens[j]!.kind === TokenKind.QuotedIdent || punct(tokens[j], '.'))) {
            const u = tokens[j]!;
            seq.push(u.kind === TokenKind.QuotedIdent ? quoteIdent(u.value) : u.value);
            j++;
            if (u.kind !== TokenKind.Punct && !punct(tokens[j], '.')) break;
          }
          if (seq.length > 0) {
            pieces.push(`${v === 'next' ? 'nextval' : 'lastval'}(${seq.join('')})`);
            i = j - 1;
            continue;
          }
        }
        if (v === 'sounds' && word(tokens[i + 1]) === 'like') {
          // a SOUNDS LIKE b compares the same operands as LIKE.
          continue;
        }
        if (v === 'member' && word(tokens[i + 1]) === 'of' && punct(tokens[i + 2], '(')) {
          // a MEMBER OF (json): as a IN (json), the same operands.
          pieces.push('in');
          i++;
          continue;
        }
        if (v === 'using' && depth > 0 && tokens[i + 1]?.kind === TokenKind.Word && punct(tokens[i + 2], ')')) {
          // CHAR(n USING charset), CONVERT(x USING charset): the character set is not an operand.
          i++;
          continue;
        }
        if (i === start && v === 'values' && word(tokens[i + 1]) === 'row') {
          // VALUES ROW(a, b), ROW(c, d): a union of SELECTs.
          let j = i + 1;
          const rows: string[] = [];
          while (word(tokens[j]) === 'row' && punct(tokens[j + 1], '(')) {
            const close = closing(tokens, j + 1, end);
            if (close < 0) break;
            rows.push('select ' + parserText(tokens, j + 2, close, quote).text);
            j = close + 1;
            if (!punct(tokens[j], ',')) break;
            j++;
          }
          if (rows.length > 0) {
            pieces.push(rows.join(' union all '));
            i = j - 1;
            continue;
          }
        }
        if ((v === 'substring' || v === 'substr' || v === 'mid') && punct(tokens[i + 1], '(')) substring.push(depth + 1);
        if ((v === 'from' || v === 'for') && substring[substring.length - 1] === depth) {
          pieces.push(',');
          continue;
        }
        if (v === 'match' && punct(tokens[i + 1], '(')) {
          // MATCH (columns) AGAINST (text [modifier]): the grammar takes a plain call.
          const close = closing(tokens, i + 1, end);
          if (close > 0 && word(tokens[close + 1]) === 'against' && punct(tokens[close + 2], '(')) {
            const close2 = closing(tokens, close + 2, end);
            let stop = close2;
            for (let k = close + 3; k < close2; k++) {
              const w = word(tokens[k]);
              if ((w === 'in' && (word(tokens[k + 1]) === 'boolean' || word(tokens[k + 1]) === 'natural')) || (w === 'with' && word(tokens[k + 1]) === 'query')) {
                stop = k;
                break;
              }
            }
            if (close2 > 0) {
              pieces.push(`match(${parserText(tokens, i + 2, close, quote).text}, ${parserText(tokens, close + 3, stop, quote).text})`);
              i = close2;
              continue;
            }
          }
        }
        if (duplicate && v === 'as' && depth === 0 && !insertQuery) {
          // INSERT ... VALUES (...) AS alias [(columns)] ON DUPLICATE KEY UPDATE (or SET ... AS alias)
          const name = tokens[i + 1];
          let j = i + 2;
          const columns: string[] = [];
          if (punct(tokens[j], '(')) {
            const close = closing(tokens, j, end);
            for (let k = j + 1; k > 0 && k < close; k++) {
              const c = tokens[k]!;
              if (c.kind === TokenKind.Word || c.kind === TokenKind.QuotedIdent) columns.push(c.value);
            }
            j = close + 1;
          }
          if (j > 0 && word(tokens[j]) === 'on' && word(tokens[j + 1]) === 'duplicate' && name !== undefined && (name.kind === TokenKind.Word || name.kind === TokenKind.QuotedIdent)) {
            rowAlias = { name: name.value, columns };
            i = j - 1;
            continue;
          }
        }
        if (v === 'select' && depth === 0 && (first === 'insert' || first === 'replace')) insertQuery = true;
        if (i === start && v === 'table') {
          pieces.push('select * from');
          continue;
        }
        if (v === 'table' && depth === 0 && (first === 'insert' || first === 'replace') && !insertQuery && i > start + 1 && insertSource(tokens, i)) {
          // INSERT INTO t [(columns)] TABLE u: the rows of u.
          insertQuery = true;
          pieces.push('select * from');
          continue;
        }
        if (i === start && v === 'do') {
          pieces.push('select');
          continue;
        }
        if (v === 'select') {
          pieces.push(v);
          while (i + 1 < end) {
            const o = word(tokens[i + 1]);
            if (o === undefined || !SELECT_OPTIONS.has(o)) break;
            if (o === 'distinctrow') pieces.push('distinct');
            i++;
          }
          continue;
        }
        if (command === v && DML_MODIFIERS[v] !== undefined) {
          pieces.push(v);
          const modifiers = DML_MODIFIERS[v]!;
          while (i + 1 < end && modifiers.has(word(tokens[i + 1]) ?? '')) i++;
          command = undefined;
          continue;
        }
        const next = word(tokens[i + 1]);
        if ((v === 'use' || v === 'force' || v === 'ignore') && (next === 'index' || next === 'key')) {
          // An index hint: `USE INDEX [FOR JOIN | ORDER BY | GROUP BY] (...)`.
          let j = i + 2;
          while (j < end && !punct(tokens[j], '(')) j++;
          const close = closing(tokens, j, end);
          if (close > 0) {
            i = close;
            continue;
          }
        }
        if (v === 'partition' && punct(tokens[i + 1], '(') && i > start && (tokens[i - 1]!.kind === TokenKind.Word || tokens[i - 1]!.kind === TokenKind.QuotedIdent)) {
          const close = closing(tokens, i + 1, end);
          if (close > 0) {
            i = close;
            continue;
          }
        }
        if (v === 'natural') {
          // NATURAL [LEFT | RIGHT] [OUTER] JOIN
          let j = i + 1;
          while (j < end && ['left', 'right', 'outer', 'inner'].includes(word(tokens[j]) ?? '')) j++;
          if (word(tokens[j]) === 'join') {
            natural = true;
            pieces.push('join');
            i = j;
            continue;
          }
        }
        if (query && v === 'into' && i > start) {
          const what = tokens[i + 1];
          const w = word(what);
          if ((w === 'outfile' || w === 'dumpfile') && tokens[i + 2] !== undefined && isLiteral(tokens[i + 2]!)) {
            into = 'file';
            let j = i + 3;
            for (; j < end; j++) {
              const o = tokens[j]!;
              const ow = word(o);
              if (ow !== undefined && INTO_OPTIONS.has(ow)) {
                // The character set name after CHARACTER SET / CHARSET.
                if ((ow === 'set' && word(tokens[j - 1]) === 'character') || ow === 'charset') {
                  if (tokens[j + 1] !== undefined && tokens[j + 1]!.kind !== TokenKind.Punct) j++;
                }
                continue;
              }
              if (o.kind === TokenKind.String || o.kind === TokenKind.Binary) continue;
              break;
            }
            i = j - 1;
            continue;
          }
          if (what !== undefined && (what.kind === TokenKind.Variable || what.kind === TokenKind.Word)) {
            into ??= 'variables';
            let j = i + 1;
            while (j < end && (tokens[j]!.kind === TokenKind.Variable || tokens[j]!.kind === TokenKind.Word) && !['from', 'where', 'for', 'lock', 'group', 'having', 'order', 'limit', 'union', 'window'].includes(word(tokens[j]) ?? '')) {
              j++;
              if (!punct(tokens[j], ',')) break;
              j++;
            }
            if (punct(tokens[j - 1], ',')) j--;
            i = j - 1;
            continue;
          }
        }
        if (query && v === 'for' && (next === 'update' || next === 'share')) {
          locking = true;
          let j = i + 2;
          if (word(tokens[j]) === 'of') {
            j++;
            while (j < end && (tokens[j]!.kind === TokenKind.Word || tokens[j]!.kind === TokenKind.QuotedIdent || punct(tokens[j], ',') || punct(tokens[j], '.'))) {
              if (['nowait', 'skip'].includes(word(tokens[j]) ?? '')) break;
              j++;
            }
          }
          if (word(tokens[j]) === 'nowait') j++;
          else if (word(tokens[j]) === 'skip' && word(tokens[j + 1]) === 'locked') j += 2;
          i = j - 1;
          continue;
        }
        if (query && v === 'lock' && next === 'in' && word(tokens[i + 2]) === 'share' && word(tokens[i + 3]) === 'mode') {
          locking = true;
          i += 3;
          continue;
        }
        if (v === 'binary' && operandPosition(tokens, i, start) && startsOperand(tokens[i + 1])) {
          pieces.push('+');
          continue;
        }
        if (NILADIC.has(v) && !punct(tokens[i + 1], '(')) {
          pieces.push(v + '()');
          continue;
        }
        if (v === 'default' && !punct(tokens[i + 1], '(') && i > start) {
          const p = tokens[i - 1]!;
          if ((p.kind === TokenKind.Operator && p.value === '=') || punct(p, ',') || punct(p, '(')) {
            pieces.push('null');
            continue;
          }
        }
        if (quote?.has(v) === true) {
          // A word the grammar reserves and MySQL does not (`full`, `first` ...), used as a name.
          pieces.push(quoteIdent(v));
          continue;
        }
        if (v === 'in') {
          const close = literalList(tokens, i + 1, end);
          if (close > 0) {
            pieces.push('in (1)');
            i = close;
            continue;
          }
        }
        pieces.push(v);
        continue;
      }
      case TokenKind.QuotedIdent:
        pieces.push(quoteIdent(t.value));
        continue;
      case TokenKind.String:
      case TokenKind.Binary:
        pieces.push("'?'");
        continue;
      case TokenKind.Number:
        pieces.push('1');
        continue;
      case TokenKind.Param:
        pieces.push('?');
        continue;
      case TokenKind.Variable:
        pieces.push(t.value === '@?' ? '@q' : t.value);
        continue;
      case TokenKind.Operator:
        if (isSign(tokens, i, start, end)) continue;
        pieces.push(t.value === '<=>' ? '=' : t.value);
        continue;
      case TokenKind.Punct:
        if (t.value === '{') {
          // ODBC escapes: `{d 'x'}`, `{ts 'x'}`, `{oj ...}`.
          const kind = word(tokens[i + 1]);
          if ((kind === 'd' || kind === 't' || kind === 'ts') && tokens[i + 2] !== undefined && isLiteral(tokens[i + 2]!) && punct(tokens[i + 3], '}')) {
            pieces.push("'?'");
            i += 3;
            continue;
          }
          if (kind === 'oj') {
            let depth = 1;
            let j = i + 2;
            for (; j < end && depth > 0; j++) {
              if (punct(tokens[j], '{')) depth++;
              else if (punct(tokens[j], '}')) depth--;
            }
            if (depth === 0) {
              // Drop the braces and `oj`, keep the join.
              const inner = parserText(tokens, i + 2, j - 1, quote);
              pieces.push(inner.text);
              natural ||= inner.natural;
              i = j - 1;
              continue;
            }
          }
        }
        if (t.value === '(' && punct(tokens[i + 1], ')') && (first === 'insert' || first === 'replace') && i > start) {
          // VALUES (), (): a row of defaults.
          const p = tokens[i - 1]!;
          if (punct(p, ',') || word(p) === 'values' || word(p) === 'value') {
            pieces.push('(', 'null', ')');
            i++;
            continue;
          }
        }
        if (t.value === '(') depth++;
        else if (t.value === ')') {
          if (substring[substring.length - 1] === depth) substring.pop();
          depth--;
        }
        pieces.push(t.value);
        continue;
      default:
        pieces.push(t.value);
    }
  }
  return { text: join(pieces), locking, into, natural, ...(rowAlias === undefined ? {} : { rowAlias }) };
}

/** `TABLE` at i follows an INSERT's target or column list (so it starts the source rows). */
function insertSource(tokens: readonly Token[], i: number): boolean {
  const p = tokens[i - 1]!;
  if (punct(p, ')')) return true;
  if (p.kind === TokenKind.QuotedIdent) return true;
  return p.kind === TokenKind.Word && !['into', 'insert', 'replace', 'ignore', 'low_priority', 'delayed', 'high_priority'].includes(p.value);
}

/** The index of `word` at depth 0 in [from, end) before any `stop` word, or -1. */
function depthZero(tokens: readonly Token[], from: number, end: number, target: string, stop: string): number {
  let depth = 0;
  for (let i = from; i < end; i++) {
    const t = tokens[i]!;
    if (punct(t, '(')) depth++;
    else if (punct(t, ')')) depth--;
    else if (depth === 0 && t.kind === TokenKind.Word) {
      if (t.value === target) return i;
      if (t.value === stop) return -1;
    }
  }
  return -1;
}

/**
 * Column lists of derived tables, `(SELECT ...) AS x (a, b)`, which the grammar rejects: the
 * index of each list's `(` mapped to its `)`. Without the list the derived table's columns keep
 * their own names; a reference to an alias then finds no column and takes the whole derived
 * table (more, never less).
 */
function derivedColumnLists(tokens: readonly Token[], start: number, end: number): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = start; i < end; i++) {
    if (!punct(tokens[i], '(')) continue;
    const w = word(tokens[i + 1]);
    if (w !== 'select' && w !== 'with' && w !== 'values' && w !== 'table') continue;
    const close = closing(tokens, i, end);
    if (close < 0) continue;
    let j = close + 1;
    if (word(tokens[j]) === 'as') j++;
    const alias = tokens[j];
    if (alias === undefined || !punct(tokens[j + 1], '(')) continue;
    if (alias.kind !== TokenKind.QuotedIdent && (alias.kind !== TokenKind.Word || RESERVED.has(alias.value))) continue;
    const listEnd = closing(tokens, j + 1, end);
    if (listEnd < 0) continue;
    let names = true;
    for (let k = j + 2; k < listEnd; k++) {
      const t = tokens[k]!;
      if (!((t.kind === TokenKind.Word && !RESERVED.has(t.value)) || t.kind === TokenKind.QuotedIdent || punct(t, ','))) names = false;
    }
    if (names) out.set(j + 1, listEnd);
  }
  return out;
}

/** Joins pieces with spaces, except around `.`, after `(` and `@` forms, and before `)` and `,`. */
function join(pieces: readonly string[]): string {
  let out = '';
  let glue = true;
  for (const p of pieces) {
    const before = p === '.' || p === ')' || p === ',' || (p === '(' && out.length > 0 && /[\w`]$/.test(out));
    out += glue || before ? p : ' ' + p;
    glue = p === '.' || p === '(';
  }
  return out;
}

/**
 * A reserved word that node-sql-parser's tree uses as a table, column or alias name when the
 * statement did not quote it: the grammar misread the statement.
 */
function misreadKeyword(ast: unknown, tokens: readonly Token[], from: number, to: number): string | undefined {
  const quoted = new Set<string>();
  for (let i = from; i < to; i++) if (tokens[i]!.kind === TokenKind.QuotedIdent) quoted.add(tokens[i]!.value.toLowerCase());
  const bad = (name: string | undefined): boolean => name !== undefined && RESERVED.has(name.toLowerCase()) && !quoted.has(name.toLowerCase());
  for (const v of objectsIn(ast, 'loc')) {
    // A name after a `.` may be a reserved word (`t.key`, `db.order`): the check is for the first part.
    const qualified = (q: unknown): boolean => nameOf(q) !== undefined;
    if (v['type'] === 'column_ref') {
      const c = nameOf(v['column']);
      if (c !== '*' && !qualified(v['table']) && bad(c)) return c;
      if (!qualified(v['db']) && bad(nameOf(v['table']))) return nameOf(v['table']);
    } else if (typeof v['table'] === 'string' && !qualified(v['db']) && bad(v['table'])) {
      return v['table'];
    }
    // Aliases of select-list entries and FROM items (`as` is the keyword elsewhere: CREATE TABLE ... AS).
    const alias = typeof v['as'] === 'string' && (isObj(v['expr']) || typeof v['table'] === 'string') ? v['as'] : undefined;
    if (bad(alias)) return alias;
  }
  return undefined;
}
