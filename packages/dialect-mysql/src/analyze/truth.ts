/**
 * Does a DELETE or UPDATE reach every row of a table it changes? It does when it has no WHERE,
 * or a WHERE that is always true (`1`, `TRUE`, `1=1`, `'a'='a'`, `x = x`, `x <=> x`,
 * `... OR 1`, `NOT 0`, `x IS NULL OR x IS NOT NULL`...), or one that looks at no row of the
 * table at all (no column of it, outside subqueries, and no qualified reference to it inside
 * one) and cannot be shown to be false. A LIMIT does not make it safe (it picks rows; it does
 * not choose which).
 *
 * MySQL's multi-table forms bound the target through their joins too: the ON of an inner join
 * counts as part of the condition (`DELETE t FROM t JOIN u ON t.id = u.id` deletes only the
 * rows of t that match), the ON of an outer join does not (`DELETE t FROM t LEFT JOIN u ON ...`
 * keeps every row of t). Each target of a multi-table statement is checked on its own.
 *
 * The statement's structure and its expressions are read from the tokens (expr.ts), with
 * MySQL's precedence, not from node-sql-parser's tree (see expr.ts). Evaluation is
 * three-valued and follows MySQL: numbers are true when not zero, a string compared with a
 * number is converted to a number (a string that is not a clean number makes the answer
 * unknown), string equality depends on the collation (equal strings are equal; strings that
 * differ only in case or trailing spaces are unknown; other ASCII strings differ).
 */
import { parseExpression, type Expr, type ExprOptions } from './expr.js';
import { stringValue, TokenKind, type LiteralOptions, type Token } from './lexer.js';

export type Truth = 'true' | 'false' | 'null' | 'unknown';

/** Set when a literal's value decided the answer: such an analysis must not be shared by shape. */
export interface TruthContext {
  literal: boolean;
}

interface Source {
  readonly text: string;
  readonly tokens: readonly Token[];
  readonly literals: LiteralOptions;
}

type Const =
  | { readonly k: 'num'; readonly v: number; readonly lit: boolean }
  | { readonly k: 'str'; readonly v: string; readonly lit: boolean }
  | { readonly k: 'null'; readonly lit: boolean }
  | { readonly k: 'opaque'; readonly lit: boolean };

const CLEAN_NUMBER = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*$/i;

function num(s: string): number | undefined {
  return CLEAN_NUMBER.test(s) ? Number(s) : undefined;
}

function toBool(c: Const): boolean | null | undefined {
  switch (c.k) {
    case 'num':
      return c.v !== 0;
    case 'null':
      return null;
    case 'str': {
      const v = num(c.v);
      return v === undefined ? undefined : v !== 0;
    }
    case 'opaque':
      return undefined;
  }
}

function fromBool(b: boolean | null | undefined): Truth {
  if (b === undefined) return 'unknown';
  if (b === null) return 'null';
  return b ? 'true' : 'false';
}

function negate(t: Truth): Truth {
  if (t === 'true') return 'false';
  if (t === 'false') return 'true';
  return t;
}

class Evaluator {
  constructor(
    readonly src: Source,
    readonly ctx: TruthContext,
  ) {}

  /** The constant an expression is, or undefined when it is not a constant expression. */
  constOf(e: Expr): Const | undefined {
    switch (e.k) {
      case 'lit': {
        const t = this.src.tokens[e.tok]!;
        if (t.kind === TokenKind.Number) {
          const v = Number(t.value);
          return Number.isFinite(v) ? { k: 'num', v, lit: true } : { k: 'opaque', lit: true };
        }
        if (t.kind === TokenKind.String) {
          const v = stringValue(this.src.text, t, this.src.literals);
          return v === undefined ? { k: 'opaque', lit: true } : { k: 'str', v, lit: true };
        }
        return { k: 'opaque', lit: true };
      }
      case 'bool':
        return { k: 'num', v: e.v ? 1 : 0, lit: false };
      case 'null':
        return { k: 'null', lit: false };
      case 'param':
        return { k: 'opaque', lit: false };
      case 'unary': {
        const c = this.constOf(e.e);
        if (c === undefined) return undefined;
        if (c.k === 'null') return c;
        if (e.op === '-' && c.k === 'num') return { k: 'num', v: -c.v, lit: c.lit };
        if (e.op === '+' && c.k === 'num') return c;
        return { k: 'opaque', lit: c.lit };
      }
      case 'not': {
        const c = this.constOf(e.e);
        if (c === undefined) return undefined;
        if (c.k === 'null') return c;
        const b = toBool(c);
        return b === undefined || b === null ? { k: 'opaque', lit: c.lit } : { k: 'num', v: b ? 0 : 1, lit: c.lit };
      }
      case 'bin': {
        if (!['+', '-', '*', '/', 'div', '%', 'mod', '|', '&', '^', '<<', '>>', '||'].includes(e.op)) return undefined;
        const l = this.constOf(e.l);
        const r = this.constOf(e.r);
        if (l === undefined || r === undefined) return undefined;
        const lit = l.lit || r.lit;
        if (l.k === 'null' || r.k === 'null') return { k: 'null', lit };
        if (l.k !== 'num' || r.k !== 'num') return { k: 'opaque', lit };
        switch (e.op) {
          case '+':
            return { k: 'num', v: l.v + r.v, lit };
          case '-':
            return { k: 'num', v: l.v - r.v, lit };
          case '*':
            return { k: 'num', v: l.v * r.v, lit };
          default:
            return { k: 'opaque', lit };
        }
      }
      case 'opaque': {
        // COLLATE, INTERVAL...: constant when its parts are, of a value not computed here.
        if (e.parts.length === 0) return undefined;
        let lit = false;
        for (const p of e.parts) {
          const c = this.constOf(p);
          if (c === undefined) return undefined;
          lit ||= c.lit;
        }
        return { k: 'opaque', lit };
      }
      default:
        return undefined;
    }
  }

  /** Reads a constant's value: the answer then depends on the literal. */
  use(c: Const): Const {
    if (c.lit) this.ctx.literal = true;
    return c;
  }

  compare(a: Const, b: Const, op: string): Truth {
    this.use(a);
    this.use(b);
    if (op === '<=>') {
      if (a.k === 'null' || b.k === 'null') return fromBool(a.k === b.k);
      return this.compare(a, b, '=');
    }
    if (a.k === 'null' || b.k === 'null') return 'null';
    if (a.k === 'opaque' || b.k === 'opaque') return 'unknown';
    let x: number | string;
    let y: number | string;
    if (a.k === 'num' || b.k === 'num') {
      const xa = a.k === 'num' ? a.v : num(a.v);
      const yb = b.k === 'num' ? b.v : num(b.v);
      if (xa === undefined || yb === undefined) return 'unknown';
      x = xa;
      y = yb;
    } else {
      // Two strings: the collation decides (case, accents, trailing spaces).
      if (op !== '=' && op !== '<>' && op !== '!=') return 'unknown';
      if (a.v === b.v) return op === '=' ? 'true' : 'false';
      const ascii = /^[\x20-\x7e]*$/;
      if (!ascii.test(a.v) || !ascii.test(b.v)) return 'unknown';
      if (a.v.toLowerCase().replace(/ +$/, '') === b.v.toLowerCase().replace(/ +$/, '')) return 'unknown';
      return op === '=' ? 'false' : 'true';
    }
    switch (op) {
      case '=':
        return fromBool(x === y);
      case '<>':
      case '!=':
        return fromBool(x !== y);
      case '<':
        return fromBool(x < y);
      case '<=':
        return fromBool(x <= y);
      case '>':
        return fromBool(x > y);
      case '>=':
        return fromBool(x >= y);
      default:
        return 'unknown';
    }
  }

  /** `x` and `y` are the same deterministic expression over columns (`a = a`, `t.a = t.a`). */
  sameColumns(x: Expr, y: Expr): boolean {
    if (!hasColumn(x) || !deterministic(x)) return false;
    const shapeX = this.structure(x, false);
    if (shapeX !== this.structure(y, false)) return false;
    if (!hasLiteral(x) && !hasLiteral(y)) return true;
    this.ctx.literal = true;
    return this.structure(x, true) === this.structure(y, true);
  }

  structure(e: Expr, values: boolean): string {
    return JSON.stringify(e, (key, v: unknown) => {
      if (key === 'tok' && typeof v === 'number') {
        const t = this.src.tokens[v]!;
        return values ? this.src.text.slice(t.start, t.end) : t.kind;
      }
      if (key === 'start' || key === 'end') return undefined;
      return v;
    });
  }

  truth(e: Expr): Truth {
    const c = this.constOf(e);
    if (c !== undefined) return fromBool(toBool(this.use(c)));
    switch (e.k) {
      case 'not':
        return negate(this.truth(e.e));
      case 'logic':
        return this.logic(e.op, e.args);
      case 'is': {
        if (e.what === 'null') {
          const v = this.constOf(e.e);
          if (v === undefined) return 'unknown';
          this.use(v);
          return fromBool((v.k === 'null') !== e.not);
        }
        const t = this.truth(e.e);
        if (t === 'unknown') return 'unknown';
        const holds = e.what === 'true' ? t === 'true' : e.what === 'false' ? t === 'false' : t === 'null';
        return fromBool(holds !== e.not);
      }
      case 'bin': {
        const op = e.op;
        if (!['=', '<>', '!=', '<', '<=', '>', '>=', '<=>'].includes(op)) return 'unknown';
        const l = this.constOf(e.l);
        const r = this.constOf(e.r);
        if (l !== undefined && r !== undefined) return this.compare(l, r, op);
        if (op !== '<=>' && (l?.k === 'null' || r?.k === 'null')) return 'null';
        if (this.sameColumns(e.l, e.r)) return op === '=' || op === '<=' || op === '>=' || op === '<=>' ? 'true' : 'false';
        return 'unknown';
      }
      case 'in': {
        const v = this.constOf(e.e);
        let result: Truth = 'false';
        for (const item of e.list) {
          const ic = this.constOf(item);
          let t: Truth;
          if (v !== undefined && ic !== undefined) t = this.compare(v, ic, '=');
          else t = this.sameColumns(e.e, item) ? 'true' : 'unknown';
          if (t === 'true') {
            result = 'true';
            break;
          }
          if (t === 'unknown') result = 'unknown';
          else if (t === 'null' && result === 'false') result = 'null';
        }
        return e.not ? negate(result) : result;
      }
      case 'between': {
        const v = this.constOf(e.e);
        const lo = this.constOf(e.lo);
        const hi = this.constOf(e.hi);
        if (v === undefined || lo === undefined || hi === undefined) return 'unknown';
        const t = this.logic('and', [], [this.compare(v, lo, '>='), this.compare(v, hi, '<=')]);
        return e.not ? negate(t) : t;
      }
      case 'like': {
        const pattern = this.constOf(e.pattern);
        if (pattern === undefined) return 'unknown';
        this.use(pattern);
        if (pattern.k === 'null') return 'null';
        if (pattern.k !== 'str' || e.escape !== undefined) return 'unknown';
        const value = this.constOf(e.e);
        let t: Truth;
        if (value !== undefined) {
          this.use(value);
          if (value.k === 'null') return 'null';
          const s = value.k === 'str' ? value.v : value.k === 'num' ? String(value.v) : undefined;
          if (s === undefined) return 'unknown';
          t = likeMatches(s, pattern.v);
        } else if (/^%+$/.test(pattern.v)) {
          // `col LIKE '%'` matches every value that is not NULL.
          t = 'true';
        } else {
          return 'unknown';
        }
        return e.not ? negate(t) : t;
      }
      case 'regexp': {
        const pattern = this.constOf(e.pattern);
        if (pattern === undefined || this.constOf(e.e) !== undefined) return 'unknown';
        this.use(pattern);
        if (pattern.k !== 'str' || !MATCH_ALL_REGEXPS.has(pattern.v)) return 'unknown';
        return e.not ? 'false' : 'true';
      }
      default:
        return 'unknown';
    }
  }

  logic(op: 'and' | 'or' | 'xor', args: readonly Expr[], known: readonly Truth[] = []): Truth {
    const values = [...known, ...args.map((a) => this.truth(a))];
    if (op === 'and') {
      if (values.includes('false')) return 'false';
      if (values.includes('unknown')) return 'unknown';
      return values.includes('null') ? 'null' : 'true';
    }
    if (op === 'or') {
      if (values.includes('true')) return 'true';
      if (this.nullTautology(args)) return 'true';
      if (values.includes('unknown')) return 'unknown';
      return values.includes('null') ? 'null' : 'false';
    }
    if (values.includes('unknown')) return 'unknown';
    if (values.includes('null')) return 'null';
    return fromBool(values.filter((v) => v === 'true').length % 2 === 1);
  }

  /** `x IS NULL OR x IS NOT NULL` among the branches of an OR. */
  nullTautology(args: readonly Expr[]): boolean {
    const tests = args.filter((a): a is Extract<Expr, { k: 'is' }> => a.k === 'is' && a.what === 'null' && deterministic(a.e));
    for (const a of tests) {
      for (const b of tests) {
        if (a.not === b.not) continue;
        if (this.structure(a.e, false) !== this.structure(b.e, false)) continue;
        if (hasLiteral(a.e)) this.ctx.literal = true;
        if (this.structure(a.e, true) === this.structure(b.e, true)) return true;
      }
    }
    return false;
  }
}

/** REGEXP patterns that match every string. */
const MATCH_ALL_REGEXPS: ReadonlySet<string> = new Set(['', '.*', '^', '$', '^.*', '.*$', '^.*$']);

/** MySQL LIKE under a case-insensitive collation; unknown where accents or case could matter. */
function likeMatches(value: string, pattern: string): Truth {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) re += escapeRegExp(pattern[++i]!);
    else if (ch === '%') re += '[\\s\\S]*';
    else if (ch === '_') re += '[\\s\\S]';
    else re += escapeRegExp(ch);
  }
  let insensitive: boolean;
  let sensitive: boolean;
  try {
    insensitive = new RegExp(re + '$', 'iu').test(value);
    sensitive = new RegExp(re + '$', 'u').test(value);
  } catch {
    return 'unknown';
  }
  if (sensitive) return 'true';
  if (insensitive || !/^[\x20-\x7e]*$/.test(value + pattern)) return 'unknown';
  return 'false';
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function children(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'not':
    case 'unary':
      return [e.e];
    case 'bin':
      return [e.l, e.r];
    case 'logic':
      return e.args;
    case 'is':
      return [e.e];
    case 'in':
      return [e.e, ...e.list];
    case 'between':
      return [e.e, e.lo, e.hi];
    case 'like':
      return e.escape === undefined ? [e.e, e.pattern] : [e.e, e.pattern, e.escape];
    case 'regexp':
      return [e.e, e.pattern];
    case 'sub':
      return e.e === undefined ? [] : [e.e];
    case 'row':
      return e.items;
    case 'func':
      return e.args;
    case 'opaque':
      return e.parts;
    default:
      return [];
  }
}

function hasColumn(e: Expr): boolean {
  return e.k === 'col' || children(e).some(hasColumn);
}

function hasLiteral(e: Expr): boolean {
  return e.k === 'lit' || children(e).some(hasLiteral);
}

/** The same value each time it is evaluated on a row. */
function deterministic(e: Expr): boolean {
  if (e.k === 'func' || e.k === 'sub' || e.k === 'var') return false;
  if (e.k === 'opaque' && e.parts.length === 0) return false;
  return children(e).every(deterministic);
}

/** Whether an expression is always true, always false, null, or depends on the rows. */
export function truthOf(e: Expr, src: Source, ctx: TruthContext): Truth {
  return new Evaluator(src, ctx).truth(e);
}

// --- does a condition look at the target's rows ---------------------------------------------

/** The names a target is known by in the statement (its alias, or its name). */
interface Target {
  readonly names: ReadonlySet<string>;
}

/**
 * Does the expression look at a row of the target: an unqualified column outside subqueries, or
 * a column qualified by the target's name anywhere (subqueries included).
 */
function refersToRow(e: Expr, target: Target, tokens: readonly Token[]): boolean {
  switch (e.k) {
    case 'col': {
      if (e.parts[e.parts.length - 1] === '*') return false;
      if (e.parts.length >= 2) return target.names.has(e.parts[e.parts.length - 2]!);
      return true;
    }
    case 'sub':
      return (e.e !== undefined && refersToRow(e.e, target, tokens)) || mentions(tokens, e.start, e.end, target);
    case 'func':
    case 'opaque':
      if (children(e).some((c) => refersToRow(c, target, tokens))) return true;
      return mentions(tokens, e.start, e.end, target);
    default:
      return children(e).some((c) => refersToRow(c, target, tokens));
  }
}

/** A `name.column` reference to the target among tokens [start, end). */
function mentions(tokens: readonly Token[], start: number, end: number, target: Target): boolean {
  for (let i = start; i + 2 < end; i++) {
    const t = tokens[i]!;
    if (t.kind !== TokenKind.Word && t.kind !== TokenKind.QuotedIdent) continue;
    const dot = tokens[i + 1]!;
    const col = tokens[i + 2]!;
    if (dot.kind !== TokenKind.Punct || dot.value !== '.') continue;
    if (col.kind !== TokenKind.Word && col.kind !== TokenKind.QuotedIdent) continue;
    const after = tokens[i + 3];
    // `t.c` (not `db.t` followed by `.c`, which the next position checks).
    if (after !== undefined && after.kind === TokenKind.Punct && after.value === '.') continue;
    if (target.names.has(t.value)) return true;
  }
  return false;
}

// --- the structure of DELETE and UPDATE ------------------------------------------------------

interface TableRef {
  readonly name: string;
  readonly schema: string | undefined;
  readonly alias: string | undefined;
}

/** The tables of a FROM / USING / UPDATE list, and the ON conditions of their joins. */
interface Refs {
  readonly tables: TableRef[];
  /** ON conditions of inner joins: part of the statement's condition. */
  readonly ons: Expr[];
  /**
   * ON conditions of outer joins, with the names of the tables the join brings: they keep
   * every row of the other side, but a WHERE on those tables (`WHERE u.id IS NULL`) picks rows
   * through them.
   */
  readonly outerOns: { readonly names: ReadonlySet<string>; readonly on: Expr }[];
  /** A NATURAL or USING join, or an `{oj}`: its condition is not known. */
  outer: boolean;
}

const NOT_ALIAS: ReadonlySet<string> = new Set([
  'on', 'using', 'join', 'inner', 'cross', 'left', 'right', 'natural', 'straight_join', 'set', 'where', 'order', 'limit',
  'use', 'force', 'ignore', 'partition', 'for', 'lock', 'window', 'group', 'having', 'union', 'returning', 'into', 'outer',
]);

class DmlParser {
  i: number;
  constructor(
    readonly tokens: readonly Token[],
    start: number,
    readonly end: number,
    readonly options: ExprOptions,
  ) {
    this.i = start;
  }

  word(at = this.i): string | undefined {
    const t = at < this.end ? this.tokens[at] : undefined;
    return t !== undefined && t.kind === TokenKind.Word ? t.value : undefined;
  }

  punct(v: string, at = this.i): boolean {
    const t = at < this.end ? this.tokens[at] : undefined;
    return t !== undefined && t.kind === TokenKind.Punct && t.value === v;
  }

  ident(at = this.i): string | undefined {
    const t = at < this.end ? this.tokens[at] : undefined;
    if (t === undefined) return undefined;
    if (t.kind === TokenKind.QuotedIdent) return t.value;
    return t.kind === TokenKind.Word ? t.value : undefined;
  }

  close(open: number): number {
    let depth = 0;
    for (let j = open; j < this.end; j++) {
      const t = this.tokens[j]!;
      if (t.kind !== TokenKind.Punct) continue;
      if (t.value === '(') depth++;
      else if (t.value === ')' && --depth === 0) return j;
    }
    return -1;
  }

  /** `WITH [RECURSIVE] name [(cols)] AS (...), ...` */
  skipWith(): boolean {
    if (this.word() !== 'with') return true;
    this.i++;
    if (this.word() === 'recursive') this.i++;
    for (;;) {
      if (this.ident() === undefined) return false;
      this.i++;
      if (this.punct('(')) {
        const c = this.close(this.i);
        if (c < 0) return false;
        this.i = c + 1;
      }
      if (this.word() !== 'as' || !this.punct('(', this.i + 1)) return false;
      const c = this.close(this.i + 1);
      if (c < 0) return false;
      this.i = c + 1;
      if (!this.punct(',')) return true;
      this.i++;
    }
  }

  /** `name`, `db.name`, optionally `.*`. */
  tableName(): TableRef | undefined {
    const first = this.ident();
    if (first === undefined || (this.tokens[this.i]!.kind === TokenKind.Word && NOT_ALIAS.has(first))) return undefined;
    this.i++;
    let ref: TableRef = { name: first, schema: undefined, alias: undefined };
    if (this.punct('.')) {
      const second = this.tokens[this.i + 1];
      if (second !== undefined && second.kind === TokenKind.Operator && second.value === '*') {
        this.i += 2;
        return ref;
      }
      const name = this.ident(this.i + 1);
      if (name === undefined) return undefined;
      this.i += 2;
      ref = { name, schema: first, alias: undefined };
      if (this.punct('.') && this.tokens[this.i + 1]?.kind === TokenKind.Operator) this.i += 2;
    }
    return ref;
  }

  /** One table factor: a table with alias, partition and index hints, a derived table, or `( refs )`. */
  factor(refs: Refs): boolean {
    if (this.word() === 'lateral') this.i++;
    if (this.punct('{')) {
      // `{ OJ ... }`
      refs.outer = true;
      let j = this.i;
      while (j < this.end && !this.punct('}', j)) j++;
      if (j >= this.end) return false;
      this.i = j + 1;
      return true;
    }
    if (this.punct('(')) {
      const c = this.close(this.i);
      if (c < 0) return false;
      const w = this.word(this.i + 1);
      if (w === 'select' || w === 'with' || w === 'values' || w === 'table' || this.punct('(', this.i + 1)) {
        // A derived table: it cannot be a target.
        this.i = c + 1;
        this.alias();
        if (this.punct('(')) {
          const cc = this.close(this.i);
          if (cc < 0) return false;
          this.i = cc + 1;
        }
        return true;
      }
      this.i++;
      if (!this.refs(refs) || this.i !== c) return false;
      this.i = c + 1;
      return true;
    }
    if (this.word() === 'json_table' && this.punct('(', this.i + 1)) {
      const c = this.close(this.i + 1);
      if (c < 0) return false;
      this.i = c + 1;
      this.alias();
      return true;
    }
    const ref = this.tableName();
    if (ref === undefined) return false;
    if (this.word() === 'partition' && this.punct('(', this.i + 1)) {
      const c = this.close(this.i + 1);
      if (c < 0) return false;
      this.i = c + 1;
    }
    const alias = this.alias();
    refs.tables.push(alias === undefined ? ref : { ...ref, alias });
    // Index hints.
    while ((this.word() === 'use' || this.word() === 'force' || this.word() === 'ignore') && (this.word(this.i + 1) === 'index' || this.word(this.i + 1) === 'key')) {
      let j = this.i + 2;
      while (j < this.end && !this.punct('(', j)) j++;
      const c = this.close(j);
      if (c < 0) return false;
      this.i = c + 1;
    }
    return true;
  }

  alias(): string | undefined {
    if (this.word() === 'as') this.i++;
    const t = this.i < this.end ? this.tokens[this.i] : undefined;
    if (t === undefined) return undefined;
    if (t.kind === TokenKind.QuotedIdent || (t.kind === TokenKind.Word && !NOT_ALIAS.has(t.value))) {
      this.i++;
      return t.value;
    }
    return undefined;
  }

  /** `table_reference [, table_reference]...` with their joins. */
  refs(refs: Refs): boolean {
    for (;;) {
      if (!this.factor(refs)) return false;
      for (;;) {
        const w = this.word();
        let outerJoin = false;
        if (w === 'natural') {
          refs.outer = true;
          this.i++;
          while (this.word() === 'outer' || this.word() === 'inner' || this.word() === 'left' || this.word() === 'right') this.i++;
          if (this.word() !== 'join') return false;
        } else if (w === 'left' || w === 'right') {
          outerJoin = true;
          this.i++;
          if (this.word() === 'outer') this.i++;
          if (this.word() !== 'join') return false;
        } else if (w === 'inner' || w === 'cross') {
          this.i++;
          if (this.word() !== 'join') return false;
        } else if (w !== 'join' && w !== 'straight_join') {
          break;
        }
        this.i++;
        const before = refs.tables.length;
        if (!this.factor(refs)) return false;
        if (this.word() === 'on') {
          const parsed = parseExpression(this.tokens, this.i + 1, this.end, this.options);
          if (parsed === undefined) return false;
          if (outerJoin) {
            // The joined side (for LEFT JOIN) or the side before it (RIGHT JOIN) may be null.
            const side = w === 'left' ? refs.tables.slice(before) : refs.tables.slice(0, before);
            refs.outerOns.push({ names: new Set(side.map((t) => t.alias ?? t.name)), on: parsed.expr });
          } else {
            refs.ons.push(parsed.expr);
          }
          this.i = parsed.next;
        } else if (this.word() === 'using' && this.punct('(', this.i + 1)) {
          refs.outer = true;
          const c = this.close(this.i + 1);
          if (c < 0) return false;
          this.i = c + 1;
        }
      }
      if (!this.punct(',')) return true;
      this.i++;
    }
  }

  /** A WHERE at the current position, if any; false when it does not parse. */
  where(): Expr | undefined | false {
    if (this.word() !== 'where') return undefined;
    const parsed = parseExpression(this.tokens, this.i + 1, this.end, this.options);
    if (parsed === undefined) return false;
    this.i = parsed.next;
    const w = this.word();
    if (this.i < this.end && w !== 'order' && w !== 'limit' && w !== 'returning') return false;
    return parsed.expr;
  }
}

export interface DmlBounds {
  /** Some table the statement changes can have all of its rows changed. */
  readonly unbounded: boolean;
}

/** Combines the WHERE and the inner joins' ON conditions of a DML statement. */
function condition(where: Expr | undefined, refs: Refs): Expr | undefined {
  const parts: Expr[] = [];
  if (!refs.outer) parts.push(...refs.ons);
  if (where !== undefined) parts.push(where);
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0]! : { k: 'logic', op: 'and', args: parts };
}

/**
 * Whether a condition (undefined: none) leaves every row of the target reachable. `outerOns`:
 * a condition on an outer-joined table looks at the target's row through the join's ON.
 */
function unboundedFor(
  cond: Expr | undefined,
  target: Target,
  src: Source,
  ctx: TruthContext,
  outerOns: Refs['outerOns'] = [],
): boolean {
  if (cond === undefined) return true;
  const t = truthOf(cond, src, ctx);
  if (t === 'true') return true;
  if (t === 'false' || t === 'null') return false;
  if (refersToRow(cond, target, src.tokens)) return false;
  for (const o of outerOns) {
    if (o.names.has([...target.names][0] ?? '')) continue;
    if (refersToRow(cond, { names: o.names }, src.tokens) && refersToRow(o.on, target, src.tokens)) return false;
  }
  return true;
}

function targetOf(ref: TableRef): Target {
  return { names: new Set([ref.alias ?? ref.name]) };
}

/**
 * Whether the DELETE or UPDATE at tokens [start, end) can change every row of a table it
 * changes. When its structure cannot be read, the first WHERE at depth 0 is judged with no
 * target name (only unqualified columns count as looking at the row), and no WHERE at all is
 * unbounded.
 */
export function dmlBounds(
  src: Source,
  start: number,
  end: number,
  options: ExprOptions,
  ctx: TruthContext,
): DmlBounds {
  try {
    return dmlBoundsOf(src, start, end, options, ctx);
  } catch (e) {
    // An expression nested too deeply for the evaluator: assume the worst.
    if (e instanceof RangeError) return { unbounded: true };
    throw e;
  }
}

function dmlBoundsOf(src: Source, start: number, end: number, options: ExprOptions, ctx: TruthContext): DmlBounds {
  const p = new DmlParser(src.tokens, start, end, options);
  const result = readDml(p, src, options, ctx);
  if (result !== undefined) return result;
  // Fallback: the first WHERE outside parentheses.
  let depth = 0;
  for (let i = start; i < end; i++) {
    const t = src.tokens[i]!;
    if (t.kind === TokenKind.Punct) {
      if (t.value === '(') depth++;
      else if (t.value === ')') depth--;
      continue;
    }
    if (depth === 0 && t.kind === TokenKind.Word && t.value === 'where') {
      const parsed = parseExpression(src.tokens, i + 1, end, options);
      if (parsed === undefined) return { unbounded: true };
      return { unbounded: unboundedFor(parsed.expr, { names: new Set() }, src, ctx) };
    }
  }
  return { unbounded: true };
}

function readDml(p: DmlParser, src: Source, options: ExprOptions, ctx: TruthContext): DmlBounds | undefined {
  if (!p.skipWith()) return undefined;
  const verb = p.word();
  if (verb !== 'delete' && verb !== 'update') return undefined;
  p.i++;
  const modifiers = verb === 'delete' ? ['low_priority', 'quick', 'ignore'] : ['low_priority', 'ignore'];
  while (modifiers.includes(p.word() ?? '')) p.i++;
  const refs: Refs = { tables: [], ons: [], outerOns: [], outer: false };
  let targets: TableRef[];

  if (verb === 'delete') {
    const named: TableRef[] = [];
    const single = p.word() === 'from';
    if (single) p.i++;
    const listStart = p.i;
    for (;;) {
      const ref = p.tableName();
      if (ref === undefined) return undefined;
      named.push(ref);
      if (!p.punct(',')) break;
      p.i++;
    }
    if (single && p.word() !== 'using') {
      // DELETE FROM t [AS alias] [PARTITION (...)]
      p.i = listStart;
      if (!p.factor(refs) || refs.tables.length !== 1) return undefined;
      targets = [refs.tables[0]!];
    } else {
      if (p.word() !== (single ? 'using' : 'from')) return undefined;
      p.i++;
      if (!p.refs(refs)) return undefined;
      targets = [];
      for (const n of named) {
        const match = refs.tables.find((t) => (t.alias ?? t.name) === n.name && (n.schema === undefined || t.schema === n.schema || t.alias !== undefined));
        if (match === undefined) return undefined;
        targets.push(match);
      }
    }
  } else {
    if (!p.refs(refs)) return undefined;
    if (p.word() !== 'set') return undefined;
    p.i++;
    const assigned = new Set<string>();
    let unqualified = false;
    for (;;) {
      const parts: string[] = [];
      for (;;) {
        const id = p.ident();
        if (id === undefined) return undefined;
        parts.push(id);
        p.i++;
        if (!p.punct('.')) break;
        p.i++;
      }
      if (parts.length >= 2) assigned.add(parts[parts.length - 2]!);
      else unqualified = true;
      const op = p.tokens[p.i];
      if (op === undefined || p.i >= p.end || op.kind !== TokenKind.Operator || (op.value !== '=' && op.value !== ':=')) return undefined;
      const value = parseExpression(p.tokens, p.i + 1, p.end, options);
      if (value === undefined) return undefined;
      p.i = value.next;
      if (!p.punct(',')) break;
      p.i++;
    }
    targets =
      refs.tables.length === 1 || unqualified ? refs.tables : refs.tables.filter((t) => assigned.has(t.alias ?? t.name));
    if (targets.length === 0) return undefined;
  }

  const where = p.where();
  if (where === false) return undefined;
  const cond = condition(where, refs);
  let unbounded = false;
  // A condition on an outer-joined table counts only through its qualified columns.
  for (const t of targets) if (unboundedFor(where === undefined && refs.ons.length === 0 ? undefined : cond, targetOf(t), src, ctx, refs.outer ? [] : refs.outerOns)) unbounded = true;
  return { unbounded };
}
