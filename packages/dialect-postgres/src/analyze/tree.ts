/**
 * Helpers for libpg-query's JSON parse trees. A node is `{ NodeType: fields }`; fields that
 * the grammar types as a specific struct (a statement's `relation`, a `withClause`) are inlined
 * without the wrapper. Default values are omitted (0, false, '' do not appear).
 */

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `[type, fields]` of a wrapped node, or undefined. Node types start with an upper-case letter. */
export function unwrap(v: unknown): [string, Obj] | undefined {
  if (!isObj(v)) return undefined;
  for (const key in v) {
    const c = key.charCodeAt(0);
    if (c < 0x41 || c > 0x5a) return undefined;
    const body = v[key];
    return isObj(body) ? [key, body] : undefined;
  }
  return undefined;
}

/** The fields of a node of the given type (wrapped or not), or undefined. */
export function as(v: unknown, type: string): Obj | undefined {
  if (!isObj(v)) return undefined;
  const body = v[type];
  return isObj(body) ? body : undefined;
}

export function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

export function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The value of a `{String: {sval}}` node ('' when sval is omitted). */
export function stringNode(v: unknown): string | undefined {
  const s = as(v, 'String');
  return s === undefined ? undefined : (text(s['sval']) ?? '');
}

/** The strings of a list of String nodes (a qualified name); undefined if any is not one. */
export function nameList(v: unknown): string[] | undefined {
  const out: string[] = [];
  for (const item of list(v)) {
    const s = stringNode(item);
    if (s === undefined) return undefined;
    out.push(s);
  }
  return out;
}

/** A RangeVar's fields whether inlined or wrapped. */
export function rangeVar(v: unknown): Obj | undefined {
  if (!isObj(v)) return undefined;
  const wrapped = as(v, 'RangeVar');
  if (wrapped !== undefined) return wrapped;
  return typeof v['relname'] === 'string' ? v : undefined;
}

/** The string constant an expression is (`'x'`, `'x'::text`), or undefined. */
export function stringConstant(v: unknown): string | undefined {
  const c = as(v, 'A_Const');
  if (c !== undefined) {
    const s = c['sval'];
    return isObj(s) ? (text(s['sval']) ?? '') : undefined;
  }
  const cast = as(v, 'TypeCast');
  if (cast !== undefined) {
    const last = typeNameOf(cast['typeName']);
    if (last === 'text' || last === 'varchar' || last === 'unknown') return stringConstant(cast['arg']);
  }
  return undefined;
}

/** The last part of a TypeName's name (`int4`, `bool`, `text`). */
export function typeNameOf(v: unknown): string | undefined {
  if (!isObj(v)) return undefined;
  const names = nameList(v['names']);
  return names?.[names.length - 1];
}

/**
 * True when the subtree holds a literal whose value the normalized shape hides (numbers,
 * strings, bit strings; not TRUE, FALSE or NULL, which are keywords).
 */
export function hasLiteral(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasLiteral);
  if (!isObj(v)) return false;
  for (const key in v) {
    if (key === 'A_Const') {
      const c = v[key];
      if (isObj(c) && c['isnull'] !== true && !isObj(c['boolval'])) return true;
    } else if (hasLiteral(v[key])) {
      return true;
    }
  }
  return false;
}

/**
 * A stable text of an expression without source locations, to compare two expressions for
 * structural equality (`x = x`). With `shapeOnly`, literal values are left out too: two
 * expressions equal that way have the same normalized shape.
 */
export function structure(v: unknown, shapeOnly = false): string {
  return JSON.stringify(v, (key, value: unknown) => {
    if (key === 'location') return undefined;
    if (shapeOnly && key === 'A_Const' && isObj(value) && value['isnull'] !== true && !isObj(value['boolval'])) return '?';
    return value;
  });
}
