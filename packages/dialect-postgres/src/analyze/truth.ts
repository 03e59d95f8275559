/**
 * Does a WHERE clause bound a DELETE or UPDATE? A WHERE bounds the statement unless it is
 * always true (`true`, `1=1`, `'a'='a'`, `x = x`, `x IS NOT NULL OR x IS NULL`, an OR with an
 * always-true branch...) or it looks at no row at all (no column of the statement's tables,
 * no `CURRENT OF`) and cannot be shown to be false: then it deletes or updates every row or none.
 *
 * Three-valued, like SQL: `null` is neither true nor false. `unknown` means "depends on the
 * rows (or on something this evaluator does not know)".
 */
import { as, hasLiteral, isObj, list, nameList, stringNode, structure, text, typeNameOf, unwrap } from './tree.js';

export type Truth = 'true' | 'false' | 'null' | 'unknown';

/** Set when a literal's value decided the answer: such an analysis must not be shared by shape. */
export interface TruthContext {
  literal: boolean;
}

/**
 * A constant expression. `opaque` is a constant whose value this evaluator does not compute
 * (`'x'::date`, `'a' || 'b'`). `lit`: its value comes from a literal, which the normalized
 * shape hides, so any decision that looks at it depends on literals.
 */
type Const =
  | { readonly k: 'num'; readonly v: number; readonly lit: boolean }
  | { readonly k: 'str'; readonly v: string; readonly lit: boolean }
  | { readonly k: 'bool'; readonly v: boolean; readonly lit: boolean }
  | { readonly k: 'null'; readonly lit: boolean }
  | { readonly k: 'opaque'; readonly lit: boolean };

const NUMERIC = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*$/i;

function num(s: string): number | undefined {
  return NUMERIC.test(s) ? Number(s) : undefined;
}

/** PostgreSQL's boolean input: unique prefixes of true/false/yes/no, on/off, 1/0. */
function parseBool(s: string): boolean | undefined {
  const v = s.trim().toLowerCase();
  if (v.length === 0) return undefined;
  if ('true'.startsWith(v) || 'yes'.startsWith(v) || v === 'on' || v === '1') return true;
  if ('false'.startsWith(v) || 'no'.startsWith(v) || v === 'off' || v === 'of' || v === '0') return false;
  return undefined;
}

function toBool(c: Const): boolean | null | undefined {
  switch (c.k) {
    case 'bool':
      return c.v;
    case 'null':
      return null;
    case 'num':
      return c.v !== 0;
    case 'str':
      return parseBool(c.v);
    case 'opaque':
      return undefined;
  }
}

const VALUE_OPERATORS = new Set(['+', '-', '*', '/', '%', '^', '||']);
const BOOL_TYPES = new Set(['bool', 'boolean']);
const NUMBER_TYPES = new Set(['int2', 'int4', 'int8', 'smallint', 'integer', 'bigint', 'int', 'numeric', 'decimal', 'float4', 'float8', 'real']);
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'char', 'name', 'unknown']);

/**
 * The constant an expression is, or undefined when it is not a constant expression. Whether
 * an expression is constant depends on its structure only, never on a literal's value.
 */
function constOf(n: unknown): Const | undefined {
  const node = unwrap(n);
  if (node === undefined) return undefined;
  const [type, f] = node;
  switch (type) {
    case 'A_Const': {
      if (f['isnull'] === true) return { k: 'null', lit: false };
      if (isObj(f['boolval'])) return { k: 'bool', v: f['boolval']['boolval'] === true, lit: false };
      if (isObj(f['ival'])) return { k: 'num', v: typeof f['ival']['ival'] === 'number' ? f['ival']['ival'] : 0, lit: true };
      if (isObj(f['fval'])) {
        const v = num(text(f['fval']['fval']) ?? '0');
        return v === undefined ? { k: 'opaque', lit: true } : { k: 'num', v, lit: true };
      }
      if (isObj(f['sval'])) return { k: 'str', v: text(f['sval']['sval']) ?? '', lit: true };
      if (isObj(f['bsval'])) return { k: 'str', v: text(f['bsval']['bsval']) ?? '', lit: true };
      return { k: 'opaque', lit: true };
    }
    case 'TypeCast': {
      const c = constOf(f['arg']);
      if (c === undefined) return undefined;
      if (c.k === 'null') return c;
      const opaque: Const = { k: 'opaque', lit: c.lit };
      const t = typeNameOf(f['typeName']);
      if (t === undefined) return opaque;
      if (BOOL_TYPES.has(t)) {
        const b = toBool(c);
        return b === undefined || b === null ? opaque : { k: 'bool', v: b, lit: c.lit };
      }
      if (NUMBER_TYPES.has(t)) {
        if (c.k === 'num') return c;
        if (c.k === 'str') {
          const v = num(c.v);
          return v === undefined ? opaque : { k: 'num', v, lit: c.lit };
        }
        if (c.k === 'bool' && (t === 'int4' || t === 'integer' || t === 'int')) return { k: 'num', v: c.v ? 1 : 0, lit: c.lit };
        return opaque;
      }
      if (TEXT_TYPES.has(t) && c.k === 'str') return c;
      return opaque;
    }
    case 'A_Expr': {
      // Arithmetic and concatenation of constants; comparisons are truth's.
      if (f['kind'] !== 'AEXPR_OP') return undefined;
      const op = operatorName(f);
      if (op === undefined || !VALUE_OPERATORS.has(op)) return undefined;
      const r = constOf(f['rexpr']);
      if (r === undefined) return undefined;
      if (f['lexpr'] === undefined) {
        if (r.k !== 'num') return { k: 'opaque', lit: r.lit };
        return op === '-' ? { k: 'num', v: -r.v, lit: r.lit } : op === '+' ? r : { k: 'opaque', lit: r.lit };
      }
      const l = constOf(f['lexpr']);
      if (l === undefined) return undefined;
      const lit = l.lit || r.lit;
      if (l.k !== 'num' || r.k !== 'num') return { k: 'opaque', lit };
      switch (op) {
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
    default:
      return undefined;
  }
}

function operatorName(f: Record<string, unknown>): string | undefined {
  const names = nameList(f['name']);
  return names?.[names.length - 1];
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

function and(a: Truth, b: Truth): Truth {
  if (a === 'false' || b === 'false') return 'false';
  if (a === 'unknown' || b === 'unknown') return 'unknown';
  if (a === 'null' || b === 'null') return 'null';
  return 'true';
}

function or(a: Truth, b: Truth): Truth {
  if (a === 'true' || b === 'true') return 'true';
  if (a === 'unknown' || b === 'unknown') return 'unknown';
  if (a === 'null' || b === 'null') return 'null';
  return 'false';
}

/** Compares two constants; 'unknown' when the answer depends on settings (collation, types). */
function compare(a: Const, b: Const, op: string): Truth {
  if (a.k === 'null' || b.k === 'null') return 'null';
  if (a.k === 'opaque' || b.k === 'opaque') return 'unknown';
  let x: number | boolean | string;
  let y: number | boolean | string;
  if (a.k === 'num' || b.k === 'num') {
    const xa = a.k === 'num' ? a.v : a.k === 'str' ? num(a.v) : undefined;
    const yb = b.k === 'num' ? b.v : b.k === 'str' ? num(b.v) : undefined;
    if (xa === undefined || yb === undefined) return 'unknown';
    x = xa;
    y = yb;
  } else if (a.k === 'bool' || b.k === 'bool') {
    const xa = toBool(a);
    const yb = toBool(b);
    if (xa === undefined || yb === undefined || xa === null || yb === null) return 'unknown';
    x = xa;
    y = yb;
  } else {
    // Two strings: equality is exact; ordering depends on the collation.
    if (op !== '=' && op !== '<>' && op !== '!=') return 'unknown';
    x = a.v;
    y = b.v;
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

/** True when an expression gives the same value each time it is evaluated on a row. */
function deterministic(n: unknown): boolean {
  if (Array.isArray(n)) return n.every(deterministic);
  if (!isObj(n)) return true;
  for (const key in n) {
    if (key === 'FuncCall' || key === 'SubLink') return false;
    if (!deterministic(n[key])) return false;
  }
  return true;
}

function hasColumn(n: unknown): boolean {
  if (Array.isArray(n)) return n.some(hasColumn);
  if (!isObj(n)) return false;
  for (const key in n) {
    if (key === 'ColumnRef') return true;
    if (hasColumn(n[key])) return true;
  }
  return false;
}

/**
 * `x` and `y` are the same expression over columns (`a = a`, `t.a = t.a`). Comparing
 * expressions that hold literals (`a + 1` and `a + 2` have the same shape) reads their values.
 */
function sameColumns(x: unknown, y: unknown, ctx: TruthContext): boolean {
  if (x === undefined || !hasColumn(x) || !deterministic(x)) return false;
  if (!hasLiteral(x) && !hasLiteral(y)) return structure(x) === structure(y);
  if (structure(x, true) !== structure(y, true)) return false;
  ctx.literal = true;
  return structure(x) === structure(y);
}

const COMPARISONS = new Set(['=', '<>', '!=', '<', '<=', '>', '>=']);

function likeMatches(value: string, pattern: string, caseInsensitive: boolean): boolean | undefined {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) re += escapeRegExp(pattern[++i]!);
    else if (ch === '%') re += '[\\s\\S]*';
    else if (ch === '_') re += '[\\s\\S]';
    else re += escapeRegExp(ch);
  }
  try {
    return new RegExp(re + '$', caseInsensitive ? 'iu' : 'u').test(value);
  } catch {
    return undefined;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Whether an expression is always true, always false, null, or depends on the rows. */
export function truth(n: unknown, ctx: TruthContext): Truth {
  const node = unwrap(n);
  if (node === undefined) return 'unknown';
  const c = constOf(n);
  if (c !== undefined) {
    if (c.lit) ctx.literal = true;
    return fromBool(toBool(c));
  }
  const [type, f] = node;
  switch (type) {
    case 'BoolExpr':
      return boolExpr(f, ctx);
    case 'NullTest': {
      const c = constOf(f['arg']);
      if (c === undefined) return 'unknown';
      if (c.lit) ctx.literal = true;
      const isNull = c.k === 'null';
      return fromBool(f['nulltesttype'] === 'IS_NULL' ? isNull : !isNull);
    }
    case 'BooleanTest': {
      const t = truth(f['arg'], ctx);
      if (t === 'unknown') return 'unknown';
      switch (f['booltesttype']) {
        case 'IS_TRUE':
          return fromBool(t === 'true');
        case 'IS_NOT_TRUE':
          return fromBool(t !== 'true');
        case 'IS_FALSE':
          return fromBool(t === 'false');
        case 'IS_NOT_FALSE':
          return fromBool(t !== 'false');
        case 'IS_UNKNOWN':
          return fromBool(t === 'null');
        case 'IS_NOT_UNKNOWN':
          return fromBool(t !== 'null');
        default:
          return 'unknown';
      }
    }
    case 'A_Expr':
      return aExpr(f, ctx);
    default:
      return 'unknown';
  }
}

function boolExpr(f: Record<string, unknown>, ctx: TruthContext): Truth {
  const args = list(f['args']);
  switch (f['boolop']) {
    case 'NOT_EXPR':
      return negate(truth(args[0], ctx));
    case 'AND_EXPR': {
      let result: Truth = 'true';
      for (const a of args) {
        const t = truth(a, ctx);
        if (t === 'false') return 'false';
        if (t === 'unknown') result = 'unknown';
        else if (t === 'null' && result === 'true') result = 'null';
      }
      return result;
    }
    case 'OR_EXPR': {
      let result: Truth = 'false';
      for (const a of args) {
        const t = truth(a, ctx);
        if (t === 'true') return 'true';
        if (t === 'unknown') result = 'unknown';
        else if (t === 'null' && result === 'false') result = 'null';
      }
      if (result === 'unknown' && nullTautology(args, ctx)) return 'true';
      return result;
    }
    default:
      return 'unknown';
  }
}

/** `x IS NULL OR x IS NOT NULL` (in any order, among other branches). */
function nullTautology(args: readonly unknown[], ctx: TruthContext): boolean {
  const isNull = new Set<string>();
  const notNull = new Set<string>();
  for (const a of args) {
    const t = as(a, 'NullTest');
    if (t === undefined || !deterministic(t['arg'])) continue;
    (t['nulltesttype'] === 'IS_NULL' ? isNull : notNull).add(structure(t['arg'], true));
  }
  let same = false;
  for (const s of isNull) if (notNull.has(s)) same = true;
  if (!same) return false;
  // Same shape; when literals are involved, their values decide.
  isNull.clear();
  notNull.clear();
  for (const a of args) {
    const t = as(a, 'NullTest');
    if (t === undefined || !deterministic(t['arg'])) continue;
    if (hasLiteral(t['arg'])) ctx.literal = true;
    (t['nulltesttype'] === 'IS_NULL' ? isNull : notNull).add(structure(t['arg']));
  }
  for (const s of isNull) if (notNull.has(s)) return true;
  return false;
}

function aExpr(f: Record<string, unknown>, ctx: TruthContext): Truth {
  const op = operatorName(f) ?? '';
  const l = f['lexpr'];
  const r = f['rexpr'];
  switch (f['kind']) {
    case 'AEXPR_OP': {
      if (!COMPARISONS.has(op) || l === undefined) return 'unknown';
      const lc = constOf(l);
      const rc = constOf(r);
      if (lc !== undefined && rc !== undefined) {
        if (lc.lit || rc.lit) ctx.literal = true;
        return compare(lc, rc, op);
      }
      if (lc?.k === 'null' || rc?.k === 'null') return 'null';
      if (sameColumns(l, r, ctx)) return op === '=' || op === '<=' || op === '>=' ? 'true' : 'false';
      return 'unknown';
    }
    case 'AEXPR_DISTINCT':
    case 'AEXPR_NOT_DISTINCT': {
      const distinct = f['kind'] === 'AEXPR_DISTINCT';
      const lc = constOf(l);
      const rc = constOf(r);
      if (lc !== undefined && rc !== undefined) {
        if (lc.lit || rc.lit) ctx.literal = true;
        let same: Truth;
        if (lc.k === 'null' || rc.k === 'null') same = fromBool(lc.k === rc.k);
        else same = compare(lc, rc, '=');
        if (same === 'unknown') return 'unknown';
        return distinct ? negate(same) : same;
      }
      if (sameColumns(l, r, ctx)) return distinct ? 'false' : 'true';
      return 'unknown';
    }
    case 'AEXPR_IN': {
      const items = list(as(r, 'List')?.['items'] ?? r);
      const notIn = op === '<>';
      const lc = constOf(l);
      let result: Truth = 'false';
      for (const item of items) {
        const ic = constOf(item);
        let t: Truth;
        if (lc !== undefined && ic !== undefined) {
          if (lc.lit || ic.lit) ctx.literal = true;
          t = compare(lc, ic, '=');
        } else {
          t = sameColumns(l, item, ctx) ? 'true' : 'unknown';
        }
        if (t === 'true') {
          result = 'true';
          break;
        }
        if (t === 'unknown') result = 'unknown';
        else if (t === 'null' && result === 'false') result = 'null';
      }
      return notIn ? negate(result) : result;
    }
    case 'AEXPR_BETWEEN':
    case 'AEXPR_NOT_BETWEEN':
    case 'AEXPR_BETWEEN_SYM':
    case 'AEXPR_NOT_BETWEEN_SYM': {
      const bounds = list(as(r, 'List')?.['items']);
      const v = constOf(l);
      const lo = constOf(bounds[0]);
      const hi = constOf(bounds[1]);
      if (v === undefined || lo === undefined || hi === undefined) return 'unknown';
      ctx.literal = true;
      const kind = f['kind'] as string;
      const within = (low: Const, high: Const): Truth => and(compare(v, low, '>='), compare(v, high, '<='));
      let t = within(lo, hi);
      if (kind.endsWith('_SYM')) t = or(t, within(hi, lo));
      return kind.startsWith('AEXPR_NOT') ? negate(t) : t;
    }
    case 'AEXPR_LIKE':
    case 'AEXPR_ILIKE': {
      const negated = op.startsWith('!');
      const pattern = constOf(r);
      if (pattern === undefined) return 'unknown';
      if (pattern.lit) ctx.literal = true;
      if (pattern.k === 'null') return 'null';
      if (pattern.k !== 'str') return 'unknown';
      const value = constOf(l);
      let t: Truth;
      if (value !== undefined) {
        if (value.lit) ctx.literal = true;
        if (value.k === 'null') return 'null';
        if (value.k !== 'str') return 'unknown';
        t = fromBool(likeMatches(value.v, pattern.v, f['kind'] === 'AEXPR_ILIKE'));
      } else if (pattern.v.length > 0 && /^%+$/.test(pattern.v)) {
        // `col LIKE '%'` matches every non-null value.
        t = 'true';
      } else {
        return 'unknown';
      }
      return negated ? negate(t) : t;
    }
    default:
      return 'unknown';
  }
}

/**
 * True when a DELETE or UPDATE with this WHERE (undefined: none) can reach every row. `names`
 * holds the name the target is known by (its alias, or its name): a condition on the other
 * relations of USING or FROM alone (`USING u WHERE u.flag`) does not pick rows of the target.
 */
export function unboundedWhere(
  where: unknown,
  names: ReadonlySet<string>,
  ctx: TruthContext,
  variables?: ReadonlySet<string>,
): boolean {
  if (where === undefined) return true;
  const t = truth(where, ctx);
  if (t === 'true') return true;
  if (t === 'false' || t === 'null') return false;
  return !refersToRow(where, { names, variables }, false, false);
}

interface RowContext {
  readonly names: ReadonlySet<string>;
  /** PL/pgSQL variables: a reference to one is not a column. */
  readonly variables: ReadonlySet<string> | undefined;
}

/**
 * Does the expression look at the row being deleted or updated: a column outside subqueries,
 * a column of the statement's relations inside one, or `CURRENT OF`.
 */
function refersToRow(n: unknown, rc: RowContext, inSub: boolean, fromless: boolean): boolean {
  if (Array.isArray(n)) {
    for (const item of n) if (refersToRow(item, rc, inSub, fromless)) return true;
    return false;
  }
  if (!isObj(n)) return false;
  const node = unwrap(n);
  if (node !== undefined) {
    const [type, f] = node;
    switch (type) {
      case 'CurrentOfExpr':
        return true;
      case 'ColumnRef': {
        const fields = list(f['fields']);
        const first = stringNode(fields[0]);
        if (first !== undefined && rc.variables?.has(first) === true) return false;
        if (fields.length >= 2) {
          const qualifier = stringNode(fields[fields.length - 2]);
          return qualifier !== undefined && rc.names.has(qualifier);
        }
        // Unqualified: the target's column, unless a subquery's own FROM may hold it.
        return !inSub || fromless;
      }
      case 'SubLink':
        return refersToRow(f['testexpr'], rc, inSub, fromless) || refersToRow(f['subselect'], rc, true, fromless);
      case 'SelectStmt':
        if (inSub) return refersToRow(f, rc, true, f['fromClause'] === undefined);
        break;
      default:
        break;
    }
    return refersToRow(f, rc, inSub, fromless);
  }
  for (const key in n) if (refersToRow(n[key], rc, inSub, fromless)) return true;
  return false;
}
