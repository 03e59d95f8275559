/**
 * A parser of MySQL expressions over the lexer's tokens, with MySQL's operator precedence.
 *
 * It exists for one job: deciding whether the WHERE of a DELETE or UPDATE (and the ON of its
 * joins) is always true (truth.ts). node-sql-parser cannot be trusted with that: its MySQL
 * grammar reads `a = 1 OR b = 2 AND c = 3` as `(a = 1 OR b = 2) AND c = 3` and
 * `a = 1 || b = 2` as `a = (1 || b) = 2`, so `DELETE ... WHERE 1 = 1 OR id = 2 AND x = 3`
 * (which deletes every row) would look bounded. The grammar followed here is the server's
 * (sql_yacc.yy): `expr` (OR, `||`, XOR, AND, `&&`, NOT, IS TRUE/FALSE/UNKNOWN) over
 * `boolean_primary` (comparisons, `<=>`, IS NULL, ANY/ALL subqueries) over `predicate` (IN,
 * BETWEEN, LIKE, REGEXP, SOUNDS LIKE, MEMBER OF) over `bit_expr` (`|`, `&`, shifts, `+ -`,
 * `* / DIV % MOD`, `^`) over `simple_expr`. sql_mode PIPES_AS_CONCAT and HIGH_NOT_PRECEDENCE
 * are options.
 *
 * What it does not understand becomes an opaque node that keeps the token range it covers, so
 * that the truth evaluator can still look for column references inside it.
 */
import { RESERVED } from './keywords.js';
import { TokenKind, type Token } from './lexer.js';

export type Expr =
  /** A literal token (string, hex/bit, number). */
  | { readonly k: 'lit'; readonly tok: number }
  | { readonly k: 'bool'; readonly v: boolean }
  | { readonly k: 'null' }
  /** `?` */
  | { readonly k: 'param' }
  /** `@x`, `@@x`: may change while the statement runs (`@x := ...`). */
  | { readonly k: 'var' }
  /** A column reference: name parts as written (lower-cased unless quoted). */
  | { readonly k: 'col'; readonly parts: readonly string[] }
  | { readonly k: 'not'; readonly e: Expr }
  /** Unary `-`, `+`, `~`, BINARY. */
  | { readonly k: 'unary'; readonly op: string; readonly e: Expr }
  | { readonly k: 'bin'; readonly op: string; readonly l: Expr; readonly r: Expr }
  | { readonly k: 'logic'; readonly op: 'and' | 'or' | 'xor'; readonly args: readonly Expr[] }
  | { readonly k: 'is'; readonly not: boolean; readonly what: 'null' | 'true' | 'false' | 'unknown'; readonly e: Expr }
  | { readonly k: 'in'; readonly not: boolean; readonly e: Expr; readonly list: readonly Expr[] }
  | { readonly k: 'between'; readonly not: boolean; readonly e: Expr; readonly lo: Expr; readonly hi: Expr }
  | { readonly k: 'like'; readonly not: boolean; readonly e: Expr; readonly pattern: Expr; readonly escape: Expr | undefined }
  | { readonly k: 'regexp'; readonly not: boolean; readonly e: Expr; readonly pattern: Expr }
  /** A subquery `(SELECT ...)`, `EXISTS (...)`, `x IN (SELECT ...)`, `x = ANY (...)`: tokens [start, end). */
  | { readonly k: 'sub'; readonly start: number; readonly end: number; readonly exists: boolean; readonly e?: Expr }
  | { readonly k: 'row'; readonly items: readonly Expr[] }
  /** A function call; `args` are the arguments it could read, `range` its tokens. */
  | { readonly k: 'func'; readonly name: string; readonly args: readonly Expr[]; readonly start: number; readonly end: number }
  /** Anything else (CASE, INTERVAL, COLLATE, JSON paths...): its parts, and its tokens. */
  | { readonly k: 'opaque'; readonly parts: readonly Expr[]; readonly start: number; readonly end: number };

export interface ExprOptions {
  /** sql_mode PIPES_AS_CONCAT: `||` concatenates instead of meaning OR. */
  readonly pipesAsConcat?: boolean;
  /** sql_mode HIGH_NOT_PRECEDENCE: NOT binds like `!`. */
  readonly highNotPrecedence?: boolean;
}

class Fail extends Error {}

const COMPARISONS: ReadonlySet<string> = new Set(['=', '<>', '!=', '<', '<=', '>', '>=', '<=>']);

/** Binary operators of `bit_expr`, by precedence (higher binds tighter). */
const BIT_LEVEL: Readonly<Record<string, number>> = {
  '|': 1, '&': 2, '<<': 3, '>>': 3, '+': 4, '-': 4, '*': 5, '/': 5, div: 5, '%': 5, mod: 5, '^': 6,
};

/** Words that end an expression (they cannot continue one). */
const STOP_WORDS: ReadonlySet<string> = new Set([
  'from', 'where', 'group', 'having', 'order', 'limit', 'set', 'on', 'using', 'join', 'inner', 'cross', 'left', 'right',
  'natural', 'straight_join', 'then', 'when', 'else', 'end', 'as', 'into', 'union', 'for', 'returning', 'window', 'lock',
  'partition', 'use', 'force', 'ignore', 'separator', 'asc', 'desc', 'with', 'except', 'intersect', 'outer', 'escape',
]);

/** Functions whose name needs no parentheses. */
const NILADIC: ReadonlySet<string> = new Set([
  'current_date', 'current_time', 'current_timestamp', 'localtime', 'localtimestamp', 'current_user', 'current_role',
  'utc_date', 'utc_time', 'utc_timestamp',
]);

/** Units of EXTRACT, TIMESTAMPDIFF, DATE_ADD ... INTERVAL: keywords, not columns. */
const UNITS: ReadonlySet<string> = new Set([
  'microsecond', 'second', 'minute', 'hour', 'day', 'week', 'month', 'quarter', 'year', 'second_microsecond',
  'minute_microsecond', 'minute_second', 'hour_microsecond', 'hour_second', 'hour_minute', 'day_microsecond', 'day_second',
  'day_minute', 'day_hour', 'year_month', 'frac_second', 'sql_tsi_day',
]);

/** Keywords that separate arguments in function-call syntax: CAST(x AS t), TRIM(x FROM y)... */
const ARG_KEYWORDS: ReadonlySet<string> = new Set([
  'as', 'using', 'from', 'for', 'in', 'leading', 'trailing', 'both', 'separator', 'order', 'by', 'distinct', 'all', 'asc',
  'desc', 'returning', 'on', 'error', 'empty', 'null', 'default',
]);

class ExprParser {
  i: number;
  constructor(
    readonly tokens: readonly Token[],
    start: number,
    readonly end: number,
    readonly options: ExprOptions,
  ) {
    this.i = start;
  }

  tok(at = this.i): Token | undefined {
    return at < this.end ? this.tokens[at] : undefined;
  }

  word(at = this.i): string | undefined {
    const t = this.tok(at);
    return t !== undefined && t.kind === TokenKind.Word ? t.value : undefined;
  }

  punct(v: string, at = this.i): boolean {
    const t = this.tok(at);
    return t !== undefined && t.kind === TokenKind.Punct && t.value === v;
  }

  op(at = this.i): string | undefined {
    const t = this.tok(at);
    return t !== undefined && t.kind === TokenKind.Operator ? t.value : undefined;
  }

  expect(v: string): void {
    if (!this.punct(v)) throw new Fail();
    this.i++;
  }

  /** Index of the `)` closing the `(` at `open`. */
  close(open: number): number {
    let depth = 0;
    for (let j = open; j < this.end; j++) {
      const t = this.tokens[j]!;
      if (t.kind !== TokenKind.Punct) continue;
      if (t.value === '(') depth++;
      else if (t.value === ')' && --depth === 0) return j;
    }
    throw new Fail();
  }

  // expr: OR / || (lowest), XOR, AND / &&, NOT
  expr(): Expr {
    const args = [this.xor()];
    while (this.word() === 'or' || (this.op() === '||' && this.options.pipesAsConcat !== true)) {
      this.i++;
      args.push(this.xor());
    }
    return args.length === 1 ? args[0]! : { k: 'logic', op: 'or', args };
  }

  xor(): Expr {
    const args = [this.and()];
    while (this.word() === 'xor') {
      this.i++;
      args.push(this.and());
    }
    return args.length === 1 ? args[0]! : { k: 'logic', op: 'xor', args };
  }

  and(): Expr {
    const args = [this.not()];
    while (this.word() === 'and' || this.op() === '&&') {
      this.i++;
      args.push(this.not());
    }
    return args.length === 1 ? args[0]! : { k: 'logic', op: 'and', args };
  }

  not(): Expr {
    if (this.word() === 'not' && this.options.highNotPrecedence !== true) {
      this.i++;
      return { k: 'not', e: this.not() };
    }
    let e = this.booleanPrimary();
    // boolean_primary IS [NOT] {TRUE | FALSE | UNKNOWN}
    while (this.word() === 'is') {
      const negated = this.word(this.i + 1) === 'not';
      const what = this.word(this.i + (negated ? 2 : 1));
      if (what !== 'true' && what !== 'false' && what !== 'unknown') break;
      this.i += negated ? 3 : 2;
      e = { k: 'is', not: negated, what, e };
    }
    return e;
  }

  booleanPrimary(): Expr {
    let e = this.predicate();
    for (;;) {
      const op = this.op();
      if (op !== undefined && COMPARISONS.has(op)) {
        this.i++;
        const quantifier = this.word();
        if ((quantifier === 'any' || quantifier === 'some' || quantifier === 'all') && this.punct('(', this.i + 1)) {
          const open = this.i + 1;
          const close = this.close(open);
          this.i = close + 1;
          e = { k: 'sub', start: open + 1, end: close, exists: false, e };
          continue;
        }
        e = { k: 'bin', op, l: e, r: this.predicate() };
        continue;
      }
      if (this.word() === 'is') {
        const negated = this.word(this.i + 1) === 'not';
        if (this.word(this.i + (negated ? 2 : 1)) === 'null') {
          this.i += negated ? 3 : 2;
          e = { k: 'is', not: negated, what: 'null', e };
          continue;
        }
      }
      return e;
    }
  }

  predicate(): Expr {
    const e = this.bitExpr();
    let negated = false;
    let w = this.word();
    if (w === 'not') {
      const n = this.word(this.i + 1);
      if (n === 'in' || n === 'between' || n === 'like' || n === 'regexp' || n === 'rlike') {
        negated = true;
        this.i++;
        w = n;
      } else {
        return e;
      }
    }
    switch (w) {
      case 'in': {
        this.i++;
        const open = this.i;
        if (!this.punct('(')) throw new Fail();
        const close = this.close(open);
        if (isQueryStart(this.tokens, open + 1, close)) {
          this.i = close + 1;
          const sub: Expr = { k: 'sub', start: open + 1, end: close, exists: false, e };
          return negated ? { k: 'not', e: sub } : sub;
        }
        this.i++;
        const list = this.list(close);
        this.i = close + 1;
        return { k: 'in', not: negated, e, list };
      }
      case 'between': {
        this.i++;
        const lo = this.bitExpr();
        if (this.word() !== 'and') throw new Fail();
        this.i++;
        const hi = this.predicate();
        return { k: 'between', not: negated, e, lo, hi };
      }
      case 'like': {
        this.i++;
        const pattern = this.simple();
        let escape: Expr | undefined;
        if (this.word() === 'escape') {
          this.i++;
          escape = this.simple();
        }
        return { k: 'like', not: negated, e, pattern, escape };
      }
      case 'regexp':
      case 'rlike':
        this.i++;
        return { k: 'regexp', not: negated, e, pattern: this.bitExpr() };
      case 'sounds':
        if (this.word(this.i + 1) !== 'like') return e;
        this.i += 2;
        return { k: 'func', name: 'soundex', args: [e, this.bitExpr()], start: this.i, end: this.i };
      case 'member':
        if (this.word(this.i + 1) !== 'of') return e;
        this.i += 2;
        return { k: 'func', name: 'member of', args: [e, this.simple()], start: this.i, end: this.i };
      default:
        return e;
    }
  }

  /** Comma-separated expressions up to `close` (exclusive). */
  list(close: number): Expr[] {
    const items: Expr[] = [];
    if (this.i === close) return items;
    for (;;) {
      items.push(this.expr());
      if (this.i === close) return items;
      this.expect(',');
    }
  }

  bitExpr(level = 1): Expr {
    let e = this.simple();
    for (;;) {
      const t = this.tok();
      if (t === undefined) return e;
      let op: string | undefined;
      if (t.kind === TokenKind.Operator) op = t.value;
      else if (t.kind === TokenKind.Word && (t.value === 'div' || t.value === 'mod')) op = t.value;
      // With PIPES_AS_CONCAT, `||` concatenates (between `^` and the unary operators).
      const prec = op === '||' && this.options.pipesAsConcat === true ? 7 : op === undefined ? undefined : BIT_LEVEL[op];
      if (op === undefined || prec === undefined || prec < level) return e;
      this.i++;
      e = { k: 'bin', op, l: e, r: this.bitExpr(prec + 1) };
    }
  }

  simple(): Expr {
    const start = this.i;
    let e = this.primary();
    for (;;) {
      const w = this.word();
      if (w === 'collate') {
        // The collation changes comparisons: opaque.
        this.i += 2;
        e = { k: 'opaque', parts: [e], start, end: this.i };
        continue;
      }
      const op = this.op();
      if (op === '->' || op === '->>') {
        this.i++;
        e = { k: 'func', name: op, args: [e, this.primary()], start, end: this.i };
        continue;
      }
      return e;
    }
  }

  primary(): Expr {
    const start = this.i;
    const t = this.tok();
    if (t === undefined) throw new Fail();
    switch (t.kind) {
      case TokenKind.String:
      case TokenKind.Binary:
      case TokenKind.Number:
        this.i++;
        return { k: 'lit', tok: start };
      case TokenKind.Param:
        this.i++;
        return { k: 'param' };
      case TokenKind.Variable:
        this.i++;
        if (this.op() === ':=') {
          this.i++;
          return { k: 'opaque', parts: [{ k: 'var' }, this.expr()], start, end: this.i };
        }
        return { k: 'var' };
      case TokenKind.Operator: {
        const v = t.value;
        if (v === '-' || v === '+' || v === '~') {
          this.i++;
          return { k: 'unary', op: v, e: this.simple() };
        }
        if (v === '!') {
          this.i++;
          return { k: 'not', e: this.simple() };
        }
        throw new Fail();
      }
      case TokenKind.Punct: {
        if (t.value === '{') {
          // An ODBC escape: `{d '2020-01-01'}`, `{oj ...}`.
          let j = this.i;
          while (j < this.end && !this.punct('}', j)) j++;
          if (j >= this.end) throw new Fail();
          this.i = j + 1;
          return { k: 'opaque', parts: [], start, end: this.i };
        }
        if (t.value !== '(') throw new Fail();
        const close = this.close(this.i);
        if (isQueryStart(this.tokens, this.i + 1, close)) {
          this.i = close + 1;
          return { k: 'sub', start: start + 1, end: close, exists: false };
        }
        this.i++;
        const items = this.list(close);
        this.i = close + 1;
        if (items.length === 1) return items[0]!;
        return { k: 'row', items };
      }
      case TokenKind.QuotedIdent:
        return this.reference();
      case TokenKind.Word:
        break;
      default:
        throw new Fail();
    }
    const w = t.value;
    switch (w) {
      case 'true':
      case 'false':
        this.i++;
        return { k: 'bool', v: w === 'true' };
      case 'null':
        this.i++;
        return { k: 'null' };
      case 'not':
        // HIGH_NOT_PRECEDENCE: NOT binds like `!`.
        this.i++;
        return { k: 'not', e: this.simple() };
      case 'binary':
        this.i++;
        return { k: 'unary', op: 'binary', e: this.simple() };
      case 'exists': {
        this.i++;
        if (!this.punct('(')) throw new Fail();
        const close = this.close(this.i);
        const sub: Expr = { k: 'sub', start: this.i + 1, end: close, exists: true };
        this.i = close + 1;
        return sub;
      }
      case 'interval': {
        // INTERVAL expr unit
        this.i++;
        const e = this.expr();
        if (this.word() === undefined) throw new Fail();
        this.i++;
        return { k: 'opaque', parts: [e], start, end: this.i };
      }
      case 'row':
        if (this.punct('(', this.i + 1)) {
          this.i++;
          const close = this.close(this.i);
          this.i++;
          const items = this.list(close);
          this.i = close + 1;
          return { k: 'row', items };
        }
        break;
      case 'case':
        return this.caseExpr();
      case 'default':
        if (!this.punct('(', this.i + 1)) {
          this.i++;
          return { k: 'opaque', parts: [], start, end: this.i };
        }
        break;
      case 'match':
        if (this.punct('(', this.i + 1)) {
          // MATCH (cols) AGAINST (expr [modifier])
          this.i++;
          const close = this.close(this.i);
          this.i++;
          const cols = this.list(close);
          this.i = close + 1;
          if (this.word() !== 'against' || !this.punct('(', this.i + 1)) throw new Fail();
          const open = this.i + 1;
          const end = this.close(open);
          const args = this.arguments(open, end);
          this.i = end + 1;
          return { k: 'func', name: 'match', args: [...cols, ...args], start, end: this.i };
        }
        break;
      default:
        break;
    }
    if (STOP_WORDS.has(w)) throw new Fail();
    if (this.punct('(', this.i + 1)) {
      // A function call.
      const open = this.i + 1;
      const close = this.close(open);
      const args = this.arguments(open, close);
      this.i = close + 1;
      let e: Expr = { k: 'func', name: w, args, start, end: this.i };
      if (this.word() === 'over') {
        // A window: its specification reads columns too.
        this.i++;
        if (this.punct('(')) {
          const c = this.close(this.i);
          const spec = this.arguments(this.i, c);
          this.i = c + 1;
          e = { k: 'func', name: w, args: [...args, ...spec], start, end: this.i };
        } else {
          this.i++;
        }
      }
      return e;
    }
    if (NILADIC.has(w)) {
      this.i++;
      return { k: 'func', name: w, args: [], start, end: this.i };
    }
    // A reserved word cannot name a column (after a `.` it can: `t.key`).
    if (RESERVED.has(w)) throw new Fail();
    return this.reference();
  }

  /** A column reference `c`, `t.c`, `db.t.c` (identifiers joined by `.`). */
  reference(): Expr {
    const parts: string[] = [];
    for (;;) {
      const t = this.tok();
      if (t === undefined) throw new Fail();
      if (t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent) {
        parts.push(t.value);
        this.i++;
      } else if (t.kind === TokenKind.Operator && t.value === '*' && parts.length > 0) {
        parts.push('*');
        this.i++;
        return { k: 'col', parts };
      } else {
        throw new Fail();
      }
      if (!this.punct('.')) return { k: 'col', parts };
      this.i++;
    }
  }

  caseExpr(): Expr {
    const start = this.i;
    this.i++;
    const parts: Expr[] = [];
    if (this.word() !== 'when') parts.push(this.expr());
    while (this.word() === 'when') {
      this.i++;
      parts.push(this.expr());
      if (this.word() !== 'then') throw new Fail();
      this.i++;
      parts.push(this.expr());
    }
    if (this.word() === 'else') {
      this.i++;
      parts.push(this.expr());
    }
    if (this.word() !== 'end') throw new Fail();
    this.i++;
    return { k: 'opaque', parts, start, end: this.i };
  }

  /**
   * The arguments of a call over tokens (open, close): what can be read between the commas and
   * the keywords of call syntax (`CAST(x AS t)`, `TRIM(LEADING 'a' FROM x)`, `GROUP_CONCAT(x
   * ORDER BY y SEPARATOR ',')`). A type or character set name (after AS, USING) is skipped; a
   * part that does not parse becomes an opaque node over its tokens.
   */
  arguments(open: number, close: number): Expr[] {
    const out: Expr[] = [];
    let j = open + 1;
    let skipNext = false;
    while (j < close) {
      const t = this.tokens[j]!;
      if (t.kind === TokenKind.Punct && t.value === ',') {
        j++;
        skipNext = false;
        continue;
      }
      if (t.kind === TokenKind.Operator && t.value === '*') {
        j++;
        continue;
      }
      if (t.kind === TokenKind.Word && ARG_KEYWORDS.has(t.value)) {
        skipNext = t.value === 'as' || t.value === 'using';
        j++;
        continue;
      }
      // One part: up to the next comma or keyword at depth 0.
      let k = j;
      let depth = 0;
      for (; k < close; k++) {
        const u = this.tokens[k]!;
        if (u.kind === TokenKind.Punct) {
          if (u.value === '(') depth++;
          else if (u.value === ')') depth--;
          else if (u.value === ',' && depth === 0) break;
        } else if (depth === 0 && u.kind === TokenKind.Word && ARG_KEYWORDS.has(u.value) && k > j) {
          break;
        }
      }
      const single = this.tokens[j]!;
      if (k === j + 1 && single.kind === TokenKind.Word && UNITS.has(single.value)) skipNext = true;
      if (!skipNext) {
        const sub = new ExprParser(this.tokens, j, k, this.options);
        let part: Expr;
        try {
          part = sub.expr();
          if (sub.i !== k) part = { k: 'opaque', parts: [part], start: j, end: k };
        } catch (e) {
          if (!(e instanceof Fail)) throw e;
          part = { k: 'opaque', parts: [], start: j, end: k };
        }
        out.push(part);
      }
      skipNext = false;
      j = k;
    }
    return out;
  }
}

/** True when tokens [start, end) begin a query (`SELECT`, `WITH`, `TABLE`, `VALUES`, `(SELECT`). */
export function isQueryStart(tokens: readonly Token[], start: number, end: number): boolean {
  let i = start;
  while (i < end && tokens[i]!.kind === TokenKind.Punct && tokens[i]!.value === '(') i++;
  const t = tokens[i];
  return i < end && t !== undefined && t.kind === TokenKind.Word && (t.value === 'select' || t.value === 'with' || t.value === 'table' || t.value === 'values');
}

/**
 * Parses an expression starting at `start`; it ends where a token cannot continue it. Returns
 * the expression and the index after it, or undefined when the tokens are not an expression.
 */
export function parseExpression(
  tokens: readonly Token[],
  start: number,
  end: number,
  options: ExprOptions = {},
): { readonly expr: Expr; readonly next: number } | undefined {
  const p = new ExprParser(tokens, start, end, options);
  try {
    const expr = p.expr();
    return { expr, next: p.i };
  } catch (e) {
    if (e instanceof Fail || e instanceof RangeError) return undefined;
    throw e;
  }
}
