/**
 * Helpers for node-sql-parser's trees. Nodes are plain objects with a `type` (`select`,
 * `column_ref`, `binary_expr`, `function`...); identifiers are strings, or `{ value }` /
 * `{ expr: { value } }` objects when they were quoted; subqueries are `{ ast, tableList,
 * columnList }`; a set operation chains its next query in `_next` with `set_op`.
 */

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

export function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** An identifier however the parser wrote it: `'x'`, `{ value: 'x' }`, `{ expr: { value: 'x' } }`. */
export function nameOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (!isObj(v)) return undefined;
  if (typeof v['value'] === 'string') return v['value'];
  if (isObj(v['expr']) && typeof v['expr']['value'] === 'string') return v['expr']['value'];
  return undefined;
}

/** The query of a subquery node (`{ ast }`), or the node itself when it is a query. */
export function queryOf(v: unknown): Obj | undefined {
  if (!isObj(v)) return undefined;
  if (isObj(v['ast'])) return v['ast'];
  if (isObj(v['expr']) && isObj(v['expr']['ast'])) return v['expr']['ast'];
  return v['type'] === 'select' ? v : undefined;
}

/** A function node's name, lower case, schema-qualified when written so. */
export function functionName(f: Obj): string {
  if (f['type'] === 'aggr_func') return (text(f['name']) ?? '').toLowerCase();
  const n = f['name'];
  if (typeof n === 'string') return n.toLowerCase();
  if (!isObj(n)) return '';
  const parts = list(n['name']).map((p) => (nameOf(p) ?? '').toLowerCase());
  const schema = nameOf(n['schema']);
  return (schema === undefined ? parts : [schema.toLowerCase(), ...parts]).join('.');
}

/** A set operation's branches, in order (`a UNION b UNION c` chains them in `_next`). */
export function branches(select: Obj): Obj[] {
  const out: Obj[] = [];
  for (let q: unknown = select; isObj(q); q = q['_next']) out.push(q);
  return out;
}

/** FROM items as a flat list (a parenthesized FROM is `{ expr: [...] }`). */
export function fromItems(from: unknown): readonly unknown[] {
  if (Array.isArray(from)) return from;
  if (isObj(from) && Array.isArray(from['expr'])) return from['expr'];
  return [];
}
