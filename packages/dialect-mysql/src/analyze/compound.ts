/**
 * Where a statement that holds a compound statement ends.
 *
 * The server reads `CREATE PROCEDURE p() BEGIN ...; ...; END` as one statement: the semicolons
 * inside the body do not end it (the `DELIMITER` command of the mysql client exists only so
 * that the client does not split there; it is not server syntax). The same holds for stored
 * functions, triggers, events, and MariaDB's compound statements outside stored programs
 * (`BEGIN NOT ATOMIC ... END`, `IF ... END IF`, `LOOP`, `WHILE`, `REPEAT`, `FOR`, `CASE`).
 *
 * The body is scanned with the grammar of compound statements (statement lists, labels,
 * IF/CASE/LOOP/WHILE/REPEAT/FOR, handler declarations) so that the end found is the server's:
 * a word such as `begin` or `end` used as a column name elsewhere does not move it. When the
 * tokens do not follow that grammar, the scan gives up and the caller splits at the next
 * semicolon, which can only make more statements than the server sees (never hide one).
 */
import { TokenKind, type Token } from './lexer.js';

/** Words that start a compound statement. */
const COMPOUND_START: ReadonlySet<string> = new Set(['begin', 'if', 'case', 'loop', 'while', 'repeat', 'for']);

/** Words that start a simple statement: a routine body that starts so ends at the next semicolon. */
const SIMPLE_START: ReadonlySet<string> = new Set([
  'select', 'insert', 'update', 'delete', 'replace', 'set', 'return', 'call', 'do', 'with', 'values', 'table', 'show',
  'signal', 'resignal', 'leave', 'iterate', 'open', 'close', 'fetch', 'declare', 'prepare', 'execute', 'deallocate',
  'drop', 'create', 'alter', 'truncate', 'rename', 'grant', 'revoke', 'start', 'commit', 'rollback', 'savepoint',
  'release', 'lock', 'unlock', 'load', 'handler', 'explain', 'describe', 'desc', 'kill', 'flush', 'reset', 'purge',
  'analyze', 'optimize', 'repair', 'check', 'checksum', 'use', 'get', 'xa', 'install', 'uninstall', 'shutdown', 'help',
  'binlog', 'change', 'cache', 'import', 'restart', 'clone', 'backup', 'goto',
]);

/** Words that end a statement list (they cannot start a statement). */
const LIST_END: ReadonlySet<string> = new Set(['end', 'else', 'elseif', 'when', 'until']);

/** The pieces of a compound statement that run: its simple statements and its conditions. */
export interface CompoundParts {
  /** Token ranges [start, end) of the simple statements (ends exclude the `;`). */
  readonly statements: [number, number][];
  /** Token ranges of conditions and values it evaluates (IF, WHILE, UNTIL, CASE, WHEN). */
  readonly expressions: [number, number][];
}

class Scanner {
  /** When set, the ranges found are recorded here. */
  parts: CompoundParts | undefined;

  constructor(
    readonly tokens: readonly Token[],
    readonly limit: number,
  ) {}

  /** Records an expression range [from, to). */
  expr(from: number, to: number): number {
    if (to > from) this.parts?.expressions.push([from, to]);
    return to;
  }

  word(i: number): string | undefined {
    const t = i < this.limit ? this.tokens[i] : undefined;
    return t !== undefined && t.kind === TokenKind.Word ? t.value : undefined;
  }

  punct(i: number, v: string): boolean {
    const t = i < this.limit ? this.tokens[i] : undefined;
    return t !== undefined && t.kind === TokenKind.Punct && t.value === v;
  }

  /** `name :` (a label), not `:=`. */
  label(i: number): boolean {
    const t = i < this.limit ? this.tokens[i] : undefined;
    return t !== undefined && (t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent) && this.punct(i + 1, ':');
  }

  /** Skips an optional label name after END of a labelled statement. */
  endLabel(i: number): number {
    const t = i < this.limit ? this.tokens[i] : undefined;
    if (t === undefined) return i;
    if (t.kind === TokenKind.QuotedIdent) return i + 1;
    if (t.kind === TokenKind.Word && !LIST_END.has(t.value)) return i + 1;
    return i;
  }

  /**
   * Skips an expression up to one of `stops` (at parenthesis depth 0, outside CASE ... END);
   * returns the index of the stop word, or -1.
   */
  expression(i: number, stops: ReadonlySet<string>): number {
    let depth = 0;
    let cases = 0;
    for (; i < this.limit; i++) {
      const t = this.tokens[i]!;
      if (t.kind === TokenKind.Punct) {
        if (t.value === '(') depth++;
        else if (t.value === ')') {
          if (--depth < 0) return -1;
        } else if (t.value === ';') return -1;
        continue;
      }
      if (t.kind !== TokenKind.Word || depth > 0) continue;
      if (cases === 0 && stops.has(t.value)) return i;
      if (t.value === 'case') cases++;
      else if (t.value === 'end' && cases > 0) cases--;
    }
    return -1;
  }

  /** A list of statements, each ended by `;`, up to a word of {@link LIST_END}; -1 on failure. */
  list(i: number): number {
    for (;;) {
      const w = this.word(i);
      if (w !== undefined && LIST_END.has(w) && !this.label(i)) return i;
      if (i >= this.limit) return -1;
      i = this.statement(i);
      if (i < 0 || !this.punct(i, ';')) return -1;
      i++;
    }
  }

  /** One statement of a body (simple or compound); returns the index after it, or -1. */
  statement(i: number): number {
    let labelled = false;
    if (this.label(i)) {
      i += 2;
      labelled = true;
    }
    const w = this.word(i);
    switch (w) {
      case 'begin': {
        i++;
        if (this.word(i) === 'not' && this.word(i + 1) === 'atomic') i += 2;
        i = this.list(i);
        if (i < 0 || this.word(i) !== 'end') return -1;
        return this.endLabel(i + 1);
      }
      case 'if': {
        const cond = i + 1;
        i = this.expression(cond, THEN);
        if (i >= 0) this.expr(cond, i);
        for (;;) {
          if (i < 0) return -1;
          i = this.list(i + 1);
          if (i < 0) return -1;
          const next = this.word(i);
          if (next === 'elseif') {
            const c = i + 1;
            i = this.expression(c, THEN);
            if (i >= 0) this.expr(c, i);
            continue;
          }
          if (next === 'else') {
            i = this.list(i + 1);
            if (i < 0) return -1;
          }
          break;
        }
        return this.word(i) === 'end' && this.word(i + 1) === 'if' ? i + 2 : -1;
      }
      case 'case': {
        const operand = i + 1;
        i = this.word(i + 1) === 'when' ? i + 1 : this.expression(i + 1, WHEN);
        if (i >= 0) this.expr(operand, i);
        while (i >= 0 && this.word(i) === 'when') {
          const c = i + 1;
          i = this.expression(c, THEN);
          if (i < 0) return -1;
          this.expr(c, i);
          i = this.list(i + 1);
        }
        if (i >= 0 && this.word(i) === 'else') i = this.list(i + 1);
        return i >= 0 && this.word(i) === 'end' && this.word(i + 1) === 'case' ? i + 2 : -1;
      }
      case 'loop':
        return this.closing(this.list(i + 1), 'loop');
      case 'while':
      case 'for': {
        const d = this.expression(i + 1, DO);
        if (d < 0) return -1;
        // FOR's range or cursor query is evaluated too.
        this.expr(w === 'for' ? this.forSource(i + 1, d) : i + 1, d);
        return this.closing(this.list(d + 1), w);
      }
      case 'repeat': {
        i = this.list(i + 1);
        if (i < 0 || this.word(i) !== 'until') return -1;
        const c = i + 1;
        i = this.expression(c, END);
        if (i >= 0) this.expr(c, i);
        return i >= 0 && this.word(i + 1) === 'repeat' ? this.endLabel(i + 2) : -1;
      }
      case 'declare':
        if (!labelled) {
          const kind = this.word(i + 1);
          if ((kind === 'continue' || kind === 'exit' || kind === 'undo') && this.word(i + 2) === 'handler' && this.word(i + 3) === 'for') {
            const body = this.conditions(i + 4);
            return body < 0 ? -1 : this.statement(body);
          }
        }
        return this.simple(i);
      default:
        // A label is allowed only before BEGIN, LOOP, WHILE, REPEAT and FOR.
        if (labelled) return -1;
        return this.simple(i);
    }
  }

  /** `END <word> [label]` after a list. */
  closing(i: number, word: string): number {
    if (i < 0 || this.word(i) !== 'end' || this.word(i + 1) !== word) return -1;
    return this.endLabel(i + 2);
  }

  /** The condition list of a handler declaration; returns where its statement starts. */
  conditions(i: number): number {
    for (;;) {
      const w = this.word(i);
      if (w === 'sqlstate') {
        i++;
        if (this.word(i) === 'value') i++;
        const t = this.tokens[i];
        if (i >= this.limit || t === undefined || t.kind !== TokenKind.String) return -1;
        i++;
      } else if (w === 'not' && this.word(i + 1) === 'found') {
        i += 2;
      } else {
        const t = i < this.limit ? this.tokens[i] : undefined;
        if (t === undefined || !(t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent || t.kind === TokenKind.Number)) return -1;
        i++;
      }
      if (!this.punct(i, ',')) return i;
      i++;
    }
  }

  /** A simple statement: up to the next `;` (or the end); returns that index. */
  simple(i: number): number {
    if (i >= this.limit) return -1;
    const start = i;
    while (i < this.limit && !this.punct(i, ';')) i++;
    this.parts?.statements.push([start, i]);
    return i;
  }

  /** `FOR x IN [REVERSE] a .. b` / `FOR r IN (query)`: the part after IN. */
  forSource(from: number, to: number): number {
    for (let i = from; i < to; i++) if (this.word(i) === 'in') return this.word(i + 1) === 'reverse' ? i + 2 : i + 1;
    return to;
  }
}

const THEN: ReadonlySet<string> = new Set(['then']);
const WHEN: ReadonlySet<string> = new Set(['when']);
const DO: ReadonlySet<string> = new Set(['do']);
const END: ReadonlySet<string> = new Set(['end']);

/**
 * For a statement starting at `start` that holds a compound body, the index just after it
 * (a `;` or `limit`); undefined when the statement has no compound body, or when its tokens do
 * not follow the grammar (the caller then splits at the next semicolon).
 */
export function compoundEnd(tokens: readonly Token[], start: number, limit: number): number | undefined {
  const s = new Scanner(tokens, limit);
  const body = bodyStart(s, start);
  if (body === undefined) return undefined;
  let end: number;
  try {
    end = s.statement(body);
  } catch (e) {
    // Nested too deeply for the scan: split at semicolons.
    if (e instanceof RangeError) return undefined;
    throw e;
  }
  if (end < 0 || !(end === limit || s.punct(end, ';'))) return undefined;
  return end;
}

/** Where the compound statement of a statement starts, if it has one. */
function bodyStart(s: Scanner, start: number): number | undefined {
  const first = s.word(start);
  // Compound statements outside stored programs (MariaDB); a plain BEGIN starts a transaction.
  if (s.label(start)) return start;
  if (first === 'begin') return s.word(start + 1) === 'not' && s.word(start + 2) === 'atomic' ? start : undefined;
  if (first !== undefined && first !== 'begin' && COMPOUND_START.has(first)) return start;
  if (first !== 'create' && first !== 'alter') return undefined;

  // CREATE [OR REPLACE] [DEFINER = ...] [AGGREGATE] PROCEDURE | FUNCTION | TRIGGER | EVENT.
  let i = start + 1;
  let kind: string | undefined;
  for (; i < s.limit && !s.punct(i, ';'); i++) {
    const w = s.word(i);
    if (w === 'procedure' || w === 'function' || w === 'trigger' || w === 'event') {
      kind = w;
      break;
    }
    // Anything else before the object kind: a table, view, user ... has no compound body.
    if (w === 'table' || w === 'view' || w === 'index' || w === 'user' || w === 'role' || w === 'database' || w === 'schema' || w === 'server' || w === 'tablespace') {
      return undefined;
    }
  }
  if (kind === undefined) return undefined;
  if (kind === 'event') {
    // ... DO body (the schedule holds no DO).
    const d = s.expression(i + 1, DO);
    return d < 0 ? undefined : scanBody(s, d + 1);
  }
  if (kind === 'trigger') {
    // ... FOR EACH ROW [FOLLOWS | PRECEDES name] body
    for (i++; i < s.limit && !s.punct(i, ';'); i++) {
      if (s.word(i) === 'for' && s.word(i + 1) === 'each' && s.word(i + 2) === 'row') return scanBody(s, i + 3);
    }
    return undefined;
  }
  // PROCEDURE / FUNCTION name ( parameters ) [RETURNS type] [characteristics] body
  for (i++; i < s.limit && !s.punct(i, '('); i++) if (s.punct(i, ';')) return undefined;
  let depth = 0;
  for (; i < s.limit; i++) {
    if (s.punct(i, '(')) depth++;
    else if (s.punct(i, ')') && --depth === 0) break;
    else if (s.punct(i, ';')) return undefined;
  }
  return scanBody(s, i + 1);
}

/**
 * The first token of a routine body after its header (return type, characteristics), when the
 * body is a compound statement; undefined when it is a simple one.
 */
function scanBody(s: Scanner, i: number): number | undefined {
  for (; i < s.limit; i++) {
    const t = s.tokens[i]!;
    if (t.kind === TokenKind.Punct && t.value === ';') return undefined;
    if (t.kind === TokenKind.Punct && t.value === '(') {
      // A type's arguments (`VARCHAR(10)`, `SET('a')`), or a parenthesized simple body.
      let depth = 0;
      for (; i < s.limit; i++) {
        if (s.punct(i, '(')) depth++;
        else if (s.punct(i, ')') && --depth === 0) break;
        else if (s.punct(i, ';')) return undefined;
      }
      continue;
    }
    if (s.label(i)) return i;
    if (t.kind !== TokenKind.Word) continue;
    if (COMPOUND_START.has(t.value)) return i;
    if (SIMPLE_START.has(t.value)) {
      // `CHARACTER SET x` and the SET type of a return type are part of the header.
      const before = i > 0 ? s.tokens[i - 1] : undefined;
      const charset = t.value === 'set' && before !== undefined && before.kind === TokenKind.Word && (before.value === 'character' || before.value === 'char');
      if (charset || (t.value === 'set' && s.punct(i + 1, '('))) continue;
      return undefined;
    }
  }
  return undefined;
}

/**
 * The simple statements and conditions of the statement starting at `start` (a compound
 * statement, or a simple one), when it ends at `limit` or at a `;`; undefined when its tokens
 * do not follow the grammar of compound statements.
 */
export function compoundParts(tokens: readonly Token[], start: number, limit: number): CompoundParts | undefined {
  const s = new Scanner(tokens, limit);
  s.parts = { statements: [], expressions: [] };
  let end: number;
  try {
    end = s.statement(start);
  } catch (e) {
    if (e instanceof RangeError) return undefined;
    throw e;
  }
  if (end < 0 || !(end === limit || (s.punct(end, ';') && end + 1 === limit))) return undefined;
  return s.parts;
}
