/**
 * Column lineage of the rows a statement returns, from node-sql-parser's tree: for each result
 * column, the table columns its values come from (through aliases, expressions, function
 * calls, casts, aggregates, CASE, subqueries, CTEs, set operations, derived tables and joins),
 * the columns that WHERE, JOIN ... ON/USING, GROUP BY, HAVING, ORDER BY, window clauses and
 * EXISTS/IN subqueries read, and the functions the statement calls. The design is the
 * PostgreSQL dialect's (same classes of relations and the same conservative rules):
 *
 * - when the walk cannot tell which relation a column belongs to, it names every relation it
 *   could belong to (outer levels of correlated subqueries included): an unqualified column in
 *   a join is attributed to every table in scope;
 * - a node it does not understand inside an expression draws on every relation in scope;
 * - a `*` over a relation whose columns it does not know leaves positions unknown (`columns`
 *   absent) and the result only says what it may carry.
 *
 * Masking may then mask more than needed, never less.
 *
 * Each result column also says how each source flows into it (`flows`: IDENTITY,
 * TRANSFORMATION, AGGREGATION, CONDITIONAL for CASE / IF() conditions, WINDOW for a window's
 * PARTITION BY / ORDER BY; see flows.ts), and the predicates are classed by the clause that
 * reads them (`indirect`: JOIN, FILTER, GROUP_BY, SORT, WINDOW). The sources stay what they
 * were: flows only classify them.
 *
 * MySQL names an unaliased expression column after the expression's text, literals included;
 * the analysis is shared between texts that differ only in literals, so such a column is named
 * here after its function (`count`), its column, or `?column?`.
 */
import type { ResultColumn, ResultLineage } from '@sluice/core';
import { columnSource as source, MAX_LINEAGE_ROUNDS as MAX_ROUNDS, objectsIn, SourceSet } from '@sluice/core';
import {
  AGGREGATE_FUNCTIONS,
  aggregatedOf,
  type Col,
  FlowSet as Acc,
  type Found,
  grow,
  type How,
  indirectOf,
  mergeFound,
  NO_FLOWS as EMPTY,
  NO_ROWS,
  operandOf,
  type QueryResult,
  renamed,
  sizeOf,
  unionFlows as union,
} from './flows.js';
import { lex, type LexOptions } from './lexer.js';
import { splitTokens } from './normalize.js';
import { parseTokens, type Dialect } from './parse.js';
import { branches, fromItems, functionName, isObj, list, nameOf, queryOf, text, type Obj } from './tree.js';

export interface LineageOptions {
  /** Column names, in order, of a table or view (schema absent when unqualified); undefined when not known. Lets `*` be expanded. */
  readonly columnsOf?: (schema: string | undefined, table: string) => readonly string[] | undefined;
  /** The statement had a NATURAL JOIN (made a plain join for the parser). */
  readonly natural?: boolean;
}

export type { QueryResult };

// --- sources -----------------------------------------------------------------------------------


/** Column names compare without case in MySQL. */
function sameName(a: string, b: string): boolean {
  return a === b || a.toLowerCase() === b.toLowerCase();
}

function findByName(columns: readonly Col[], name: string): Found | undefined {
  return mergeFound(columns.filter((c) => sameName(c.name, name)).map((c) => ({ acc: c.acc, direct: c.direct, definite: true })));
}

// --- relations -----------------------------------------------------------------------------------

export interface Relation {
  readonly name: string | undefined;
  readonly schema?: string;
  /** Found only by a qualified name (an INSERT's row alias without a column list). */
  readonly qualifiedOnly?: boolean;
  columns(): readonly Col[] | undefined;
  column(name: string): Found | undefined;
  whole(acc: Acc, how: How): void;
}

/** Values written into a DML target's columns: what RETURNING returns for them. */
export class Assigned {
  readonly byName = new Map<string, Acc>();
  readonly any = new Acc();

  add(column: string, acc: Acc): void {
    const key = column.toLowerCase();
    const known = this.byName.get(key);
    if (known === undefined) this.byName.set(key, union(acc));
    else known.merge(acc);
  }

  /** The column now holds `acc` only (a later assignment of a single-table UPDATE). */
  replace(column: string, acc: Acc): void {
    this.byName.set(column.toLowerCase(), union(acc));
  }

  of(column: string): Acc | undefined {
    const named = this.byName.get(column.toLowerCase());
    if (named === undefined && this.any.size === 0) return undefined;
    return union(named ?? EMPTY, this.any);
  }
}

export class TableRel implements Relation {
  /**
   * `assigned`: values written to the row's columns, which a reference may see besides the
   * stored ones; with `replaces`, instead of them (a single-table UPDATE's later assignments).
   */
  constructor(
    readonly table: string,
    readonly tableSchema: string | undefined,
    readonly name: string,
    readonly schema: string | undefined,
    readonly known: readonly string[] | undefined,
    public assigned: Assigned | undefined,
    public replaces = false,
  ) {}

  #col(column: string, definite: boolean): Found {
    const extra = this.assigned?.of(column);
    if (extra !== undefined && this.replaces) return { acc: extra, direct: false, definite };
    const acc = new Acc();
    acc.addAs(source(this.tableSchema, this.table, column.toLowerCase()), 'IDENTITY');
    if (extra !== undefined) acc.merge(extra);
    return { acc, direct: extra === undefined, definite };
  }

  columns(): readonly Col[] | undefined {
    return this.known?.map((c) => {
      const f = this.#col(c, true);
      return { name: c, acc: f.acc, direct: f.direct };
    });
  }

  column(name: string): Found | undefined {
    if (this.known === undefined) return this.#col(name, false);
    if (this.known.some((k) => sameName(k, name))) return this.#col(name, true);
    return undefined;
  }

  whole(acc: Acc, how: How): void {
    acc.addAs(source(this.tableSchema, this.table, '*'), how);
    if (this.assigned !== undefined) {
      for (const a of this.assigned.byName.values()) acc.mergeAs(a, how);
      acc.mergeAs(this.assigned.any, how);
    }
  }
}

export class DerivedRel implements Relation {
  readonly schema = undefined;
  constructor(
    readonly name: string | undefined,
    readonly result: QueryResult,
    readonly aliases: readonly string[],
  ) {}

  columns(): readonly Col[] | undefined {
    return this.result.columns === undefined ? undefined : renamed(this.result.columns, this.aliases);
  }

  column(name: string): Found | undefined {
    const cols = this.columns();
    if (cols !== undefined) return findByName(cols, name);
    const aliased = this.aliases.some((a) => sameName(a, name));
    if (aliased || this.result.lookup === undefined) return { acc: this.result.all, direct: false, definite: aliased };
    return this.result.lookup(name);
  }

  whole(acc: Acc, how: How): void {
    acc.mergeAs(this.result.all, how);
  }
}

/** A FROM item: a relation, or a join of two items. */
export type Item =
  | { readonly kind: 'rel'; readonly rel: Relation }
  | {
      readonly kind: 'join';
      readonly left: Item;
      readonly right: Item;
      /** USING columns; undefined for NATURAL (the common columns). */
      readonly using: readonly string[] | undefined;
      readonly leaves: readonly Relation[];
    };

function leavesOf(item: Item): readonly Relation[] {
  return item.kind === 'rel' ? [item.rel] : item.leaves;
}

function itemColumn(item: Item, name: string): Found | undefined {
  const found: Found[] = [];
  for (const rel of leavesOf(item)) {
    const f = rel.column(name);
    if (f !== undefined) found.push(f);
  }
  return mergeFound(found);
}

function itemWhole(item: Item, acc: Acc, how: How): void {
  for (const rel of leavesOf(item)) rel.whole(acc, how);
}

/** The columns `*` gives for an item, in order, or undefined when not known. */
function expandItem(item: Item): readonly Col[] | undefined {
  if (item.kind === 'rel') return item.rel.columns();
  const left = expandItem(item.left);
  const right = expandItem(item.right);
  if (left === undefined || right === undefined) return undefined;
  if (item.using !== undefined && item.using.length === 0) return [...left, ...right];
  const common = item.using ?? left.map((c) => c.name).filter((n) => right.some((r) => sameName(r.name, n)));
  const using = [...new Set(common)];
  const merged = using.map(
    (name): Col => ({ name, acc: union(...[...left, ...right].filter((c) => sameName(c.name, name)).map((c) => c.acc)), direct: false }),
  );
  const skip = (c: Col): boolean => using.some((u) => sameName(u, c.name));
  return [...merged, ...left.filter((c) => !skip(c)), ...right.filter((c) => !skip(c))];
}

interface CteBinding {
  result: QueryResult;
  touched: boolean;
}

export class Scope {
  readonly rels: Relation[] = [];
  readonly items: Item[] = [];
  readonly ctes = new Map<string, CteBinding>();
  readonly windows = new Map<string, unknown>();

  constructor(
    readonly parent: Scope | undefined,
    readonly cteParent: Scope | undefined = parent,
  ) {}

  cte(name: string): CteBinding | undefined {
    for (let s: Scope | undefined = this; s !== undefined; s = s.cteParent) {
      const b = s.ctes.get(name);
      if (b !== undefined) return b;
    }
    return undefined;
  }
}

/** Node types whose fields are walked as they are: every column inside flows into the value. */
const PLAIN: ReadonlySet<string> = new Set([
  'binary_expr', 'unary_expr', 'case', 'when', 'else', 'cast', 'interval', 'extract', 'expr_list', 'assign', 'collate',
  'window', 'ESCAPE', 'array', 'json',
]);

/** Node types with no column inside. */
const LEAVES: ReadonlySet<string> = new Set([
  'number', 'bigint', 'bool', 'boolean', 'null', 'single_quote_string', 'double_quote_string', 'hex_string',
  'full_hex_string', 'bit_string', 'natural_string', 'regex_string', 'string', 'origin', 'param', 'default', 'date',
  'datetime', 'time', 'timestamp', 'var_string', 'var', 'star', 'backticks_quote_string',
]);


export class LineageWalker {
  /** Columns read by the statement's clauses, each flow of the clause's kind. */
  readonly predicates = new Acc(true);
  readonly functions = new SourceSet();
  readonly #columnsOf = new Map<string, readonly string[] | undefined>();
  /**
   * Inside an INSERT's ON DUPLICATE KEY UPDATE: the value the row would have had for a column
   * (`VALUES(col)`).
   */
  valuesOf: ((column: string) => Acc) | undefined;

  constructor(readonly options: LineageOptions) {}

  known(schema: string | undefined, table: string): readonly string[] | undefined {
    const key = `${schema ?? ''}\u0000${table}`;
    if (this.#columnsOf.has(key)) return this.#columnsOf.get(key);
    const names = this.options.columnsOf?.(schema, table);
    const copy = names === undefined ? undefined : [...names];
    this.#columnsOf.set(key, copy);
    return copy;
  }

  statement(ast: Obj): ResultLineage | undefined {
    switch (ast['type']) {
      case 'select':
        return this.#lineage(this.query(ast, undefined));
      case 'insert':
      case 'replace':
      case 'update':
      case 'delete': {
        const r = this.#returning(ast);
        return r === undefined ? undefined : this.#lineage(r);
      }
      default:
        return undefined;
    }
  }

  #lineage(r: QueryResult): ResultLineage {
    const all = union(r.all);
    for (const c of r.columns ?? []) all.merge(c.acc);
    return {
      ...(r.columns === undefined
        ? {}
        : {
            columns: r.columns.map(
              (c): ResultColumn => ({
                name: c.name,
                sources: [...c.acc.sources],
                direct: c.direct,
                functions: [...c.acc.functions],
                flows: c.acc.flowList('TRANSFORMATION'),
              }),
            ),
          }),
      all: all.sources,
      predicates: this.predicates.sources,
      functions: this.functions.functions,
      indirect: this.predicates.flowList('FILTER'),
    };
  }

  // --- MariaDB's INSERT / REPLACE / DELETE ... RETURNING --------------------------------------

  #returning(f: Obj): QueryResult | undefined {
    const ret = f['returning'];
    if (!isObj(ret)) return undefined;
    const target = list(f['table'])[0];
    if (!isObj(target)) return undefined;
    const table = nameOf(target['table']) ?? '';
    const schema = nameOf(target['db']);
    const alias = nameOf(target['as']);
    const known = this.known(schema, table);
    const assigned = new Assigned();
    const scope = new Scope(undefined);
    const type = f['type'];
    if (type === 'insert' || type === 'replace') {
      const values = f['values'];
      const q = queryOf(values);
      const rows = q !== undefined ? this.query(q, undefined) : isObj(values) ? this.#values(list(values['values']), scope) : NO_ROWS;
      const cols = list(f['columns']).map((c) => nameOf(c) ?? '');
      const names = cols.length > 0 ? cols : known;
      if (names === undefined) assigned.any.merge(rows.all);
      else names.forEach((name, i) => assigned.add(name, rows.columns?.[i]?.acc ?? rows.all));
      for (const s of list(f['set'])) {
        if (!isObj(s)) continue;
        const acc = new Acc();
        this.expr(s['value'], scope, acc, 'IDENTITY');
        assigned.add(nameOf(s['column']) ?? '', acc);
      }
      // ON DUPLICATE KEY UPDATE: what it sets is returned for the rows it updates.
      const dup = f['on_duplicate_update'];
      if (isObj(dup)) {
        const updated = new Scope(undefined);
        // INSERT ... SELECT: the update may name the columns of the query's tables.
        if (q !== undefined && branches(q).length === 1) {
          this.with(q['with'], updated);
          this.from(q['from'], updated);
        }
        const stored = new TableRel(table, schema, table, schema, known, undefined);
        updated.rels.push(stored);
        updated.items.push({ kind: 'rel', rel: stored });
        this.valuesOf = (column) => assigned.of(column) ?? union(rows.all);
        try {
          for (const s of list(dup['set'])) {
            if (!isObj(s)) continue;
            const acc = new Acc();
            this.expr(s['value'], updated, acc, 'IDENTITY');
            assigned.add(nameOf(s['column']) ?? '', acc);
          }
        } finally {
          this.valuesOf = undefined;
        }
      }
    } else {
      for (const item of fromItems(f['from'])) this.addFromItem(item, scope);
    }
    const rel = new TableRel(table, schema, alias ?? table, alias === undefined ? schema : undefined, known, assigned);
    scope.rels.push(rel);
    scope.items.push({ kind: 'rel', rel });
    this.expr(f['where'], scope, this.predicates, 'FILTER');
    const cols = ret['columns'];
    return this.#targetList(cols === '*' ? [{ expr: { type: 'column_ref', table: null, column: '*' } }] : list(cols), scope);
  }

  #values(rows: readonly unknown[], scope: Scope): QueryResult {
    const accs: Acc[] = [];
    for (const row of rows) {
      const items = isObj(row) ? list(row['value']) : [];
      items.forEach((e, i) => {
        accs[i] ??= new Acc();
        this.expr(e, scope, accs[i]!, 'IDENTITY');
      });
    }
    const columns = accs.map((acc, i): Col => ({ name: `column_${i}`, acc, direct: false }));
    return { columns, all: union(...accs) };
  }

  // --- queries -------------------------------------------------------------------------------

  query(f: Obj, parent: Scope | undefined, cteParent: Scope | undefined = parent): QueryResult {
    const scope = new Scope(parent, cteParent);
    this.with(f['with'], scope);
    const parts = branches(f);
    if (parts.length === 1) return this.#core(f, scope, false);
    // UNION, INTERSECT, EXCEPT: column i is column i of any branch.
    const results = parts.map((b, i) => this.#core(b, new Scope(scope, scope), i === parts.length - 1));
    const all = union(...results.map((b) => b.all));
    const shape = results.find((b) => b.columns !== undefined)?.columns;
    let result: QueryResult;
    if (shape === undefined) {
      result = { columns: undefined, all };
    } else {
      const columns = shape.map((c, i): Col => {
        const acc = new Acc();
        for (const b of results) {
          const col = b.columns?.length === shape.length ? b.columns[i] : undefined;
          acc.merge(col === undefined ? b.all : col.acc);
        }
        return { name: results[0]?.columns?.[i]?.name ?? c.name, acc, direct: false };
      });
      result = { columns, all };
    }
    // The grammar hangs the set operation's ORDER BY and LIMIT on its last branch; they sort
    // the whole result, whose columns they can name.
    const last = parts[parts.length - 1]!;
    for (const o of list(last['orderby'])) if (isObj(o)) this.#byOutput(o['expr'], undefined, result, true);
    return result;
  }

  /** One SELECT (no set operation). `lastBranch`: its ORDER BY also sorts a set operation. */
  #core(f: Obj, scope: Scope, lastBranch: boolean): QueryResult {
    const win = f['window'];
    for (const w of list(isObj(win) ? win['expr'] : undefined)) {
      if (!isObj(w)) continue;
      const name = nameOf(w['name']);
      if (name !== undefined) scope.windows.set(name, w['as_window_specification']);
    }
    this.from(f['from'], scope);
    const columns = f['columns'] === '*' ? [{ expr: { type: 'column_ref', table: null, column: '*' } }] : list(f['columns']);
    const result = this.#targetList(columns, scope);
    this.expr(f['where'], scope, this.predicates, 'FILTER');
    const group = f['groupby'];
    for (const g of list(isObj(group) ? group['columns'] : group)) this.#groupItem(g, scope, result);
    this.expr(f['having'], scope, this.predicates, 'FILTER');
    for (const spec of scope.windows.values()) this.#window(spec, scope, this.predicates, new Set(), 'WINDOW');
    if (!lastBranch || branches(f).length === 1) {
      for (const o of list(f['orderby'])) if (isObj(o)) this.#byOutput(o['expr'], scope, result, false);
    } else {
      for (const o of list(f['orderby'])) if (isObj(o)) this.expr(o['expr'], scope, this.predicates, 'SORT');
    }
    this.expr(f['limit'], scope, this.predicates, 'FILTER');
    return result;
  }

  /** ORDER BY: an output column by position or name, else an expression over the input. */
  #byOutput(node: unknown, scope: Scope | undefined, result: QueryResult, outputOnly: boolean): void {
    if (isPosition(node)) {
      this.predicates.mergeAs(result.all, 'SORT');
      return;
    }
    const name = singleName(node);
    const found = name === undefined ? undefined : result.columns !== undefined ? findByName(result.columns, name) : result.lookup?.(name);
    if (found?.definite === true) {
      this.predicates.mergeAs(found.acc, 'SORT');
      return;
    }
    if (outputOnly || scope === undefined) this.predicates.mergeAs(result.all, 'SORT');
    if (scope !== undefined) this.expr(node, scope, this.predicates, 'SORT');
  }

  /** GROUP BY: an input column first, an output column by position or name otherwise. */
  #groupItem(node: unknown, scope: Scope, result: QueryResult): void {
    if (isPosition(node)) {
      this.predicates.mergeAs(result.all, 'GROUP_BY');
      return;
    }
    const name = singleName(node);
    if (name !== undefined) {
      const found = result.columns !== undefined ? findByName(result.columns, name) : result.lookup?.(name);
      if (found?.definite === true) {
        this.predicates.mergeAs(found.acc, 'GROUP_BY');
        this.#unqualified(name, scope, this.predicates, 'GROUP_BY', false);
        return;
      }
    }
    this.expr(node, scope, this.predicates, 'GROUP_BY');
  }

  with(w: unknown, scope: Scope): void {
    const ctes = list(w).filter(isObj);
    if (ctes.length === 0) return;
    const body = (cte: Obj): QueryResult => {
      const q = queryOf(cte['stmt']);
      const result = q === undefined ? NO_ROWS : this.query(q, scope);
      const aliases = list(cte['columns']).map((c) => (isObj(c) ? (nameOf(c['column']) ?? '') : (nameOf(c) ?? '')));
      if (result.columns !== undefined) return { columns: renamed(result.columns, aliases), all: result.all };
      const lookup = result.lookup;
      return {
        columns: undefined,
        all: result.all,
        lookup: (name) =>
          aliases.some((a) => sameName(a, name)) || lookup === undefined ? { acc: result.all, direct: false, definite: aliases.some((a) => sameName(a, name)) } : lookup(name),
      };
    };
    if (!ctes.some((c) => c['recursive'] === true)) {
      for (const cte of ctes) scope.ctes.set(nameOf(cte['name']) ?? '', { result: body(cte), touched: false });
      return;
    }
    // WITH RECURSIVE: names start empty; bodies are walked again until nothing grows.
    const bindings = ctes.map((cte) => {
      const b: CteBinding = { result: { columns: undefined, all: new Acc() }, touched: false };
      scope.ctes.set(nameOf(cte['name']) ?? '', b);
      return b;
    });
    for (let round = 0; ; round++) {
      let changed = false;
      for (const b of bindings) b.touched = false;
      ctes.forEach((cte, i) => {
        const b = bindings[i]!;
        const next = round === 0 ? body(cte) : grow(b.result, body(cte));
        if (round === 0 || sizeOf(next) !== sizeOf(b.result) || (next.columns === undefined) !== (b.result.columns === undefined)) changed = true;
        b.result = next;
      });
      if (!bindings.some((b) => b.touched)) break;
      if (round > 0 && !changed) break;
      if (round >= MAX_ROUNDS) {
        for (const b of bindings) {
          const all = union(b.result.all);
          b.result = { columns: b.result.columns?.map((c) => ({ ...c, acc: all, direct: false })), all };
        }
        break;
      }
    }
    for (const b of bindings) b.touched = false;
  }

  // --- FROM ----------------------------------------------------------------------------------

  from(from: unknown, scope: Scope): void {
    for (const item of fromItems(from)) this.addFromItem(item, scope);
  }

  /**
   * node-sql-parser lists FROM items flat: an item with `join` joins the item before it
   * (left-deep); an item without starts a new comma-separated one.
   */
  addFromItem(node: unknown, scope: Scope): void {
    if (!isObj(node)) return;
    const right = this.#fromItem(node, scope);
    if (right === undefined) return;
    const join = text(node['join']);
    const left = scope.items[scope.items.length - 1];
    if (join === undefined || left === undefined) {
      scope.items.push(right);
      this.expr(node['on'], scope, this.predicates, 'JOIN');
      return;
    }
    const usingNames = list(node['using']).map((u) => nameOf(u) ?? '').filter((u) => u !== '');
    const hasOn = node['on'] !== undefined && node['on'] !== null;
    const natural = this.options.natural === true && !hasOn && usingNames.length === 0;
    const using = natural ? undefined : usingNames;
    const item: Item = { kind: 'join', left, right, using, leaves: [...leavesOf(left), ...leavesOf(right)] };
    scope.items[scope.items.length - 1] = item;
    this.expr(node['on'], scope, this.predicates, 'JOIN');
    let compared: readonly string[] | undefined = using;
    if (natural) {
      const l = expandItem(left);
      const r = expandItem(right);
      if (l !== undefined && r !== undefined) compared = l.map((c) => c.name).filter((n) => r.some((c) => sameName(c.name, n)));
      else {
        itemWhole(left, this.predicates, 'JOIN');
        itemWhole(right, this.predicates, 'JOIN');
      }
    }
    for (const name of compared ?? []) {
      for (const side of [left, right]) {
        const found = itemColumn(side, name);
        if (found !== undefined) this.predicates.mergeAs(found.acc, 'JOIN');
      }
    }
  }

  /** One FROM item; its relations join `scope.rels`. */
  #fromItem(f: Obj, scope: Scope): Item | undefined {
    if (f['type'] === 'dual') return undefined;
    const rel = (r: Relation): Item => {
      scope.rels.push(r);
      return { kind: 'rel', rel: r };
    };
    const alias = nameOf(f['as']);
    const sub = queryOf(f['expr']);
    if (sub !== undefined) {
      // A LATERAL derived table sees the items before it; any other only the enclosing levels.
      const lateral = f['lateral'] === true || text(f['prefix'])?.toLowerCase() === 'lateral';
      const result = lateral ? this.query(sub, scope) : this.query(sub, scope.parent, scope);
      const aliases = list(f['columns']).map((c) => nameOf(c) ?? (isObj(c) ? (nameOf(c['column']) ?? '') : ''));
      return rel(new DerivedRel(alias, result, aliases));
    }
    if (Array.isArray(f['expr'])) {
      // `( t JOIN u ... )`: its items, joined.
      const inner = new Scope(scope.parent, scope);
      for (const x of f['expr']) this.addFromItem(x, inner);
      for (const r of inner.rels) scope.rels.push(r);
      if (inner.items.length === 0) return undefined;
      return inner.items.reduce((l, r): Item => ({ kind: 'join', left: l, right: r, using: [], leaves: [...leavesOf(l), ...leavesOf(r)] }));
    }
    const name = nameOf(f['table']);
    if (name !== undefined) {
      const schema = nameOf(f['db']);
      const cte = schema === undefined ? scope.cte(name) : undefined;
      if (cte !== undefined) {
        cte.touched = true;
        return rel(new DerivedRel(alias ?? name, cte.result, []));
      }
      return rel(new TableRel(name, schema, alias ?? name, alias === undefined ? schema : undefined, this.known(schema, name), undefined));
    }
    // Not understood: its values may come from anything in scope.
    const acc = new Acc();
    this.expr(f['expr'], scope, acc, 'TRANSFORMATION');
    wholeScope(scope, acc, 'TRANSFORMATION');
    return rel(new DerivedRel(alias, { columns: undefined, all: acc }, []));
  }

  // --- target lists --------------------------------------------------------------------------

  #targetList(items: readonly unknown[], scope: Scope): QueryResult {
    const columns: Col[] = [];
    let known = true;
    const all = new Acc();
    const entries: ((name: string) => Found | undefined)[] = [];
    for (const item of items) {
      if (!isObj(item)) continue;
      const val = item['expr'];
      const star = starQualifier(val);
      if (star !== undefined) {
        const parts: { cols: readonly Col[] | undefined; whole: (acc: Acc) => void; find: (name: string) => Found | undefined }[] = [];
        if (star.table === undefined) {
          for (const it of scope.items) parts.push({ cols: expandItem(it), whole: (acc) => itemWhole(it, acc, 'IDENTITY'), find: (name) => itemColumn(it, name) });
        } else {
          const rels = this.relsNamed(star.table, star.schema, scope);
          if (rels.length === 0) {
            const acc = new Acc();
            wholeScope(scope, acc, 'TRANSFORMATION');
            parts.push({ cols: undefined, whole: (a) => a.merge(acc), find: () => ({ acc, direct: false, definite: false }) });
          }
          for (const r of rels) parts.push({ cols: r.columns(), whole: (acc) => r.whole(acc, 'IDENTITY'), find: (name) => r.column(name) });
        }
        for (const p of parts) {
          if (p.cols === undefined) {
            known = false;
            p.whole(all);
          } else {
            columns.push(...p.cols);
            for (const c of p.cols) all.merge(c.acc);
          }
          entries.push(p.find);
        }
        continue;
      }
      const v = this.#value(val, scope);
      const name = nameOf(item['as']) ?? outputName(val);
      const col: Col = { name, acc: v.acc, direct: v.direct };
      columns.push(col);
      all.merge(v.acc);
      entries.push((n) => (sameName(n, name) ? { acc: col.acc, direct: col.direct, definite: true } : undefined));
    }
    if (known) return { columns, all };
    return {
      columns: undefined,
      all,
      lookup: (name) => {
        const found: Found[] = [];
        for (const e of entries) {
          const f = e(name);
          if (f !== undefined) found.push(f);
        }
        return mergeFound(found);
      },
    };
  }

  #value(node: unknown, scope: Scope): { acc: Acc; direct: boolean } {
    const acc = new Acc();
    if (isObj(node) && node['type'] === 'column_ref') return { acc, direct: this.#columnRef(node, scope, acc, 'IDENTITY') };
    this.expr(node, scope, acc, 'IDENTITY');
    return { acc, direct: false };
  }

  // --- column references ---------------------------------------------------------------------

  relsNamed(name: string, schema: string | undefined, scope: Scope): Relation[] {
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      const found = s.rels.filter((r) => r.name === name && (schema === undefined || r.schema === undefined || r.schema === schema));
      if (found.length > 0) return found;
    }
    return [];
  }

  /**
   * Resolves a column reference into `acc`, at a position `how`; true when it is a plain
   * reference to column values.
   */
  #columnRef(ref: Obj, scope: Scope, acc: Acc, how: How): boolean {
    const column = nameOf(ref['column']);
    const table = nameOf(ref['table']);
    const schema = nameOf(ref['db']);
    if (column === undefined) {
      wholeScope(scope, acc, operandOf(how));
      return false;
    }
    if (column === '*') {
      if (table === undefined) {
        for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
          if (s.items.length === 0) continue;
          for (const it of s.items) itemWhole(it, acc, how);
          break;
        }
      } else {
        const rels = this.relsNamed(table, schema, scope);
        if (rels.length === 0) wholeScope(scope, acc, operandOf(how));
        for (const r of rels) r.whole(acc, how);
      }
      return false;
    }
    if (table === undefined) return this.#unqualified(column, scope, acc, how);
    const rels = this.relsNamed(table, schema, scope);
    if (rels.length === 0) return false;
    let direct = true;
    for (const r of rels) {
      const found = r.column(column);
      if (found !== undefined) {
        acc.mergeAs(found.acc, how);
        direct &&= found.direct;
      } else if (r instanceof TableRel) {
        acc.addAs(source(r.tableSchema, r.table, column.toLowerCase()), how);
      } else {
        r.whole(acc, operandOf(how));
        direct = false;
      }
    }
    return direct;
  }

  /**
   * An unqualified column: at each level from the innermost, every relation that has (or may
   * have) it; a level where one certainly has it is the last.
   */
  #unqualified(name: string, scope: Scope, acc: Acc, how: How, orAnyTable = true): boolean {
    let direct = true;
    let any = false;
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      const definite: Found[] = [];
      const maybe: Found[] = [];
      for (const r of s.rels) {
        if (r.qualifiedOnly === true) continue;
        const found = r.column(name);
        if (found !== undefined) (found.definite ? definite : maybe).push(found);
      }
      if (definite.length > 0) {
        for (const f of definite) {
          acc.mergeAs(f.acc, how);
          direct &&= f.direct;
        }
        return direct;
      }
      for (const f of maybe) {
        acc.mergeAs(f.acc, how);
        direct &&= f.direct;
        any = true;
      }
    }
    if (!any && orAnyTable) {
      direct = false;
      for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
        for (const r of s.rels) if (r instanceof TableRel) acc.addAs(source(r.tableSchema, r.table, name.toLowerCase()), operandOf(how));
      }
    }
    return direct;
  }

  // --- expressions ---------------------------------------------------------------------------

  /** Gathers the columns of an expression into `acc`, at a position `how` (see flows.ts). */
  expr(node: unknown, scope: Scope, acc: Acc, how: How): void {
    if (Array.isArray(node)) {
      for (const x of node) this.expr(x, scope, acc, how);
      return;
    }
    if (!isObj(node)) return;
    const sub = queryOf(node);
    if (sub !== undefined) {
      // A scalar subquery, or the list of an IN: its rows' values.
      acc.mergeAs(this.query(sub, scope).all, operandOf(how));
      return;
    }
    const type = text(node['type']);
    if (type === undefined) {
      for (const key in node) if (key !== 'loc') this.expr(node[key], scope, acc, how);
      return;
    }
    if (LEAVES.has(type)) return;
    switch (type) {
      case 'column_ref':
        this.#columnRef(node, scope, acc, how);
        return;
      case 'function':
      case 'aggr_func': {
        const name = functionName(node);
        const args = node['args'];
        if (name === 'any' || name === 'all' || name === 'some') {
          // `x = ANY (subquery)`: compared with x, read as by a WHERE.
          const inner = new Acc();
          this.expr(args, scope, inner, 'IDENTITY');
          acc.mergeAs(inner, operandOf(how));
          this.predicates.mergeAs(inner, 'FILTER');
          return;
        }
        if (name === 'exists' || name === 'not exists') {
          // EXISTS reveals whether rows match; its value carries none of them.
          const inner = new Acc();
          this.expr(args, scope, inner, 'IDENTITY');
          this.predicates.mergeAs(inner, 'FILTER');
          return;
        }
        acc.fn(name);
        this.functions.fn(name);
        const values = name === 'values' ? this.valuesOf : undefined;
        const column = values === undefined ? undefined : singleName(isObj(args) ? list(args['value'])[0] : undefined);
        if (values !== undefined && column !== undefined && list(isObj(args) ? args['value'] : undefined).length === 1) {
          // ON DUPLICATE KEY UPDATE ... VALUES(col): the value the row would have had.
          acc.mergeAs(values(column), how);
        } else if (AGGREGATE_FUNCTIONS.has(name) || type === 'aggr_func') {
          const inner = aggregatedOf(how);
          if (isObj(args) && args['type'] === undefined) {
            // GROUP_CONCAT(x ORDER BY y): y orders the values.
            for (const key in args) if (key !== 'loc') this.expr(args[key], scope, acc, key === 'orderby' ? indirectOf(how, 'SORT') : inner);
          } else {
            this.expr(args, scope, acc, inner);
          }
        } else if (name === 'if' && isObj(args) && Array.isArray(args['value'])) {
          // IF(condition, then, else)
          args['value'].forEach((a, i) => this.expr(a, scope, acc, i === 0 ? indirectOf(how, 'CONDITIONAL') : operandOf(how)));
        } else {
          this.expr(args, scope, acc, operandOf(how));
        }
        const over = node['over'];
        if (isObj(over)) {
          this.#window(over['as_window_specification'], scope, acc, new Set(), indirectOf(how, 'WINDOW'));
          this.#window(over['as_window_specification'], scope, this.predicates, new Set(), 'WINDOW');
        }
        return;
      }
      case 'binary_expr': {
        const op = text(node['operator'])?.toUpperCase();
        if (op === 'IN' || op === 'NOT IN') {
          // The operand is compared with the list: a subquery's column is read as by a WHERE.
          const inner = new Acc();
          this.expr(node['right'], scope, inner, 'IDENTITY');
          acc.mergeAs(inner, operandOf(how));
          this.predicates.mergeAs(inner, 'FILTER');
          this.expr(node['left'], scope, acc, operandOf(how));
          return;
        }
        this.expr(node['left'], scope, acc, operandOf(how));
        this.expr(node['right'], scope, acc, operandOf(how));
        return;
      }
      case 'case': {
        // CASE [operand] WHEN condition THEN result ... ELSE result END: the operand and the
        // conditions choose the result.
        const condition = indirectOf(how, 'CONDITIONAL');
        const value = operandOf(how);
        for (const key in node) {
          if (key === 'type' || key === 'loc') continue;
          if (key === 'expr') {
            this.expr(node[key], scope, acc, condition);
            continue;
          }
          if (key !== 'args') {
            this.expr(node[key], scope, acc, value);
            continue;
          }
          for (const branch of list(node[key])) {
            if (!isObj(branch)) {
              this.expr(branch, scope, acc, value);
              continue;
            }
            for (const k in branch) if (k !== 'type' && k !== 'loc') this.expr(branch[k], scope, acc, k === 'cond' ? condition : value);
          }
        }
        return;
      }
      default:
        if (!PLAIN.has(type)) wholeScope(scope, acc, operandOf(how));
        for (const key in node) if (key !== 'type' && key !== 'loc') this.expr(node[key], scope, acc, operandOf(how));
    }
  }

  /** A window: its PARTITION BY and ORDER BY (and those of the window it names). */
  #window(spec: unknown, scope: Scope, acc: Acc, seen: Set<string>, how: How): void {
    if (typeof spec === 'string') {
      if (seen.has(spec)) return;
      seen.add(spec);
      for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
        const named = s.windows.get(spec);
        if (named !== undefined) {
          this.#window(named, scope, acc, seen, how);
          return;
        }
      }
      return;
    }
    if (!isObj(spec)) return;
    const ws = isObj(spec['window_specification']) ? spec['window_specification'] : spec;
    this.expr(ws['partitionby'], scope, acc, how);
    this.expr(ws['orderby'], scope, acc, how);
    this.expr(ws['window_frame_clause'], scope, acc, how);
    const base = nameOf(ws['name']);
    if (base !== undefined) this.#window(base, scope, acc, seen, how);
  }
}

/** `*` or `t.*` in a select list: its qualifier, or undefined when the entry is not one. */
function starQualifier(val: unknown): { table: string | undefined; schema: string | undefined } | undefined {
  if (!isObj(val)) return undefined;
  if (val['type'] === 'star') return { table: undefined, schema: undefined };
  if (val['type'] !== 'column_ref' || nameOf(val['column']) !== '*') return undefined;
  return { table: nameOf(val['table']), schema: nameOf(val['db']) };
}

/** The name of an unaliased result column (see the module comment). */
function outputName(val: unknown): string {
  if (!isObj(val)) return '?column?';
  if (val['type'] === 'column_ref') return nameOf(val['column']) ?? '?column?';
  if (val['type'] === 'function' || val['type'] === 'aggr_func') return functionName(val);
  return '?column?';
}

/** `ORDER BY 2`: any literal there stands for every output column (the value is the shape's). */
function isPosition(v: unknown): boolean {
  return isObj(v) && (v['type'] === 'number' || v['type'] === 'single_quote_string' || v['type'] === 'bigint');
}

export function singleName(v: unknown): string | undefined {
  if (!isObj(v) || v['type'] !== 'column_ref' || nameOf(v['table']) !== undefined) return undefined;
  return nameOf(v['column']);
}

export function wholeScope(scope: Scope, acc: Acc, how: How): void {
  for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) for (const r of s.rels) r.whole(acc, how);
}


/** When the walk cannot finish: positions unknown, any column of any table the statement names. */
function fallback(ast: unknown): ResultLineage {
  const tables = new SourceSet();
  const functions = new SourceSet();
  for (const v of objectsIn(ast)) {
    if (typeof v['table'] === 'string' && v['type'] !== 'column_ref' && (v['db'] === undefined || v['db'] === null || typeof v['db'] === 'string')) {
      tables.add(source(nameOf(v['db']), v['table'], '*'));
    }
    if (v['type'] === 'function' || v['type'] === 'aggr_func') functions.fn(functionName(v));
  }
  return { all: tables.sources, predicates: [...tables.sources], functions: functions.functions };
}

/**
 * Lineage of the result of one parsed statement, or undefined when it returns no rows (a
 * SELECT ... INTO is given here only when the caller knows it returns rows). Never throws.
 */
export function resultLineage(ast: Obj, options: LineageOptions = {}): ResultLineage | undefined {
  try {
    return new LineageWalker(options).statement(ast);
  } catch {
    try {
      return ast['type'] === 'select' || isObj(ast['returning']) ? fallback(ast) : undefined;
    } catch {
      return { all: [], predicates: [], functions: [] };
    }
  }
}

/**
 * Parses SQL text (one statement: a view's definition, from information_schema.VIEWS or SHOW
 * CREATE VIEW) and returns the lineage of its result; for several statements, the last one's.
 * Undefined if it does not parse or returns no rows.
 */
export function resultLineageOfSql(
  sql: string,
  options: LineageOptions & { readonly dialect?: Dialect; readonly lex?: LexOptions } = {},
): ResultLineage | undefined {
  const dialect = options.dialect ?? 'mysql';
  const scan = splitTokens(lex(sql, { ...options.lex, dialect }));
  const s = scan.statements[scan.statements.length - 1];
  if (s === undefined || !s.wellFormed) return undefined;
  const parsed = parseTokens(scan.tokens, s.start, s.end, dialect);
  if (!parsed.ok || parsed.input.into !== undefined) return undefined;
  return resultLineage(parsed.ast, { ...options, natural: parsed.input.natural });
}
