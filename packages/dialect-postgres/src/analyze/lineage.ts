/**
 * Column lineage of the rows a statement returns, from its parse tree: for each result
 * column, the table columns its values come from (through aliases, expressions, function
 * calls, casts, aggregates, CASE, subqueries, CTEs, set operations, whole-row references and
 * JSON builders), plus the columns its WHERE, JOIN, GROUP BY, HAVING and ORDER BY read.
 *
 * It is conservative: a column the walk cannot attribute to one relation is attributed to
 * every relation it could belong to (all levels of correlated subqueries included), and a
 * node it does not know contributes every column reference inside it. Masking may then mask
 * more than needed, never less.
 */
import type { ColumnSource, ResultColumn, ResultLineage } from '@sluice/core';
import { parseSql } from './parse.js';
import { as, isObj, list, stringNode, text, unwrap, type Obj } from './tree.js';

export interface LineageOptions {
  /** Column names, in order, of a table or view; undefined when not known. Lets `*` be expanded. */
  readonly columnsOf?: (schema: string | undefined, table: string) => readonly string[] | undefined;
}

/** Sources gathered from an expression. */
class Acc {
  readonly sources: ColumnSource[] = [];
  readonly functions: string[] = [];
  readonly #seen = new Set<string>();

  add(s: ColumnSource): void {
    const key = `${s.schema ?? ''}\u0000${s.table}\u0000${s.column}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.sources.push(s);
  }

  addAll(sources: readonly ColumnSource[]): void {
    for (const s of sources) this.add(s);
  }

  fn(name: string): void {
    if (!this.functions.includes(name)) this.functions.push(name);
  }

  merge(other: { readonly sources: readonly ColumnSource[]; readonly functions: readonly string[] }): void {
    this.addAll(other.sources);
    for (const f of other.functions) this.fn(f);
  }
}

/** A relation visible in a query. */
interface Rel {
  /** The name it is referred to by (alias, or the table or CTE name). */
  readonly name: string;
  /** A table or view (columns known only through `columnsOf`). */
  readonly table?: { readonly schema?: string; readonly table: string };
  /** A subquery, CTE or VALUES: its output columns by position. */
  readonly columns?: readonly ResultColumn[];
  /** A function in FROM: every column comes from these. */
  readonly any?: ResultColumn;
}

class Scope {
  readonly rels: Rel[] = [];
  readonly ctes = new Map<string, readonly ResultColumn[] | undefined>();
  constructor(readonly parent: Scope | undefined) {}

  cte(name: string): readonly ResultColumn[] | undefined | null {
    for (let s: Scope | undefined = this; s; s = s.parent) if (s.ctes.has(name)) return s.ctes.get(name);
    return null;
  }
}

/** The result of a query: its columns (undefined when positions are unknown) and what it reads. */
interface QueryResult {
  readonly columns: ResultColumn[] | undefined;
  readonly all: Acc;
}

const EMPTY_COLUMN = (name: string): ResultColumn => ({ name, sources: [], direct: false, functions: [] });

function funcName(fc: Obj): string {
  const names = list(fc['funcname']).map((n) => stringNode(n) ?? '');
  // pg_catalog qualification is how the parser writes built-ins (`extract`, `overlay`...).
  if (names.length === 2 && names[0] === 'pg_catalog') return names[1]!;
  return names.join('.');
}

class LineageWalker {
  readonly predicates = new Acc();
  readonly functions = new Acc();

  constructor(readonly options: LineageOptions) {}

  // --- statements --------------------------------------------------------------------------

  statement(node: unknown): ResultLineage | undefined {
    const n = unwrap(node);
    if (n === undefined) return undefined;
    const [type, f] = n;
    switch (type) {
      case 'SelectStmt':
        if (isObj(f['intoClause'])) return undefined;
        return this.#result(this.query(f, undefined));
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return this.#dml(type, f);
      case 'DeclareCursorStmt':
        return this.statement(f['query']);
      case 'CopyStmt':
        return this.#copy(f);
      case 'ExplainStmt':
        return { columns: [EMPTY_COLUMN('QUERY PLAN')], all: [], predicates: [], functions: [] };
      case 'VariableShowStmt':
        return { columns: [EMPTY_COLUMN(text(f['name']) ?? '')], all: [], predicates: [], functions: [] };
      case 'CallStmt': {
        const acc = new Acc();
        this.expr(f['funccall'], new Scope(undefined), acc);
        return { all: acc.sources, predicates: this.predicates.sources, functions: this.functions.functions };
      }
      default:
        return undefined;
    }
  }

  #result(r: QueryResult): ResultLineage {
    const all = new Acc();
    all.merge(r.all);
    for (const c of r.columns ?? []) all.addAll(c.sources);
    return {
      ...(r.columns ? { columns: r.columns } : {}),
      all: all.sources,
      predicates: this.predicates.sources,
      functions: this.functions.functions,
    };
  }

  #dml(type: string, f: Obj): ResultLineage | undefined {
    // PostgreSQL 18 wraps the list (RETURNING OLD/NEW); earlier grammars have returningList.
    const clause = f['returningClause'];
    const returning = list(isObj(clause) ? clause['exprs'] : f['returningList']);
    const scope = new Scope(undefined);
    this.#with(f['withClause'], scope);
    const target = this.#tableRel(f['relation'], scope);
    if (target) scope.rels.push(target);
    for (const item of list(f['fromClause'] ?? f['usingClause'])) this.#fromItem(item, scope);
    if (type === 'MergeStmt') {
      this.#fromItem(f['sourceRelation'], scope);
      this.expr(f['joinCondition'], scope, this.predicates);
      for (const w of list(f['mergeWhenClauses'])) this.expr(as(w, 'MergeWhenClause')?.['condition'], scope, this.predicates);
    }
    this.expr(f['whereClause'], scope, this.predicates);
    if (type === 'InsertStmt' && isObj(f['selectStmt'])) {
      // Its rows are written, not returned; what it reads is read.
      this.query(as(f['selectStmt'], 'SelectStmt') ?? {}, scope);
    }
    if (returning.length === 0) return undefined;
    return this.#result(this.#targetList(returning, scope));
  }

  #copy(f: Obj): ResultLineage | undefined {
    if (f['is_from'] === true) return undefined;
    if (f['query'] !== undefined) return this.statement(f['query']);
    const rel = this.#tableRel(f['relation'], new Scope(undefined));
    if (rel?.table === undefined) return undefined;
    const t = rel.table;
    const names = list(f['attlist']).map((a) => stringNode(a) ?? '');
    const columns = names.length > 0 ? names : this.options.columnsOf?.(t.schema, t.table);
    if (columns === undefined) {
      return { all: [{ ...t, column: '*' }], predicates: [], functions: [] };
    }
    const out = columns.map((c) => ({ name: c, sources: [{ ...t, column: c }], direct: true, functions: [] }));
    return { columns: out, all: out.flatMap((c) => c.sources), predicates: [], functions: [] };
  }

  // --- queries -----------------------------------------------------------------------------

  query(f: Obj, parent: Scope | undefined): QueryResult {
    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    const op = f['op'];
    if (op !== undefined && op !== 'SETOP_NONE') {
      const l = this.query(as(f['larg'], 'SelectStmt') ?? (isObj(f['larg']) ? f['larg'] : {}), scope);
      const r = this.query(as(f['rarg'], 'SelectStmt') ?? (isObj(f['rarg']) ? f['rarg'] : {}), scope);
      const all = new Acc();
      all.merge(l.all);
      all.merge(r.all);
      this.expr(f['sortClause'], scope, this.predicates);
      let columns: ResultColumn[] | undefined;
      if (l.columns && r.columns && l.columns.length === r.columns.length) {
        columns = l.columns.map((c, i) => {
          const acc = new Acc();
          acc.merge(c);
          acc.merge(r.columns![i]!);
          return { name: c.name, sources: acc.sources, direct: false, functions: acc.functions };
        });
      }
      return { columns, all };
    }
    const values = list(f['valuesLists']);
    if (values.length > 0) {
      let columns: ResultColumn[] | undefined;
      for (const row of values) {
        const items = list(as(row, 'List')?.['items'] ?? row);
        const cols = items.map((e, i) => {
          const acc = new Acc();
          this.expr(e, scope, acc);
          return { name: `column${i + 1}`, sources: acc.sources, direct: false, functions: acc.functions };
        });
        if (columns === undefined) columns = cols;
        else
          columns = columns.map((c, i) => {
            const acc = new Acc();
            acc.merge(c);
            if (cols[i]) acc.merge(cols[i]);
            return { ...c, sources: acc.sources, functions: acc.functions };
          });
      }
      const all = new Acc();
      for (const c of columns ?? []) all.merge(c);
      return { columns, all };
    }
    for (const item of list(f['fromClause'])) this.#fromItem(item, scope);
    const result = this.#targetList(list(f['targetList']), scope);
    for (const clause of ['whereClause', 'groupClause', 'havingClause', 'windowClause', 'distinctClause', 'limitOffset', 'limitCount']) {
      this.expr(f[clause], scope, this.predicates);
    }
    // ORDER BY may name output columns: their sources are what it sorts by.
    for (const s of list(f['sortClause'])) {
      const node = as(s, 'SortBy')?.['node'];
      const ref = as(node, 'ColumnRef');
      const fields = ref ? list(ref['fields']) : [];
      const single = fields.length === 1 ? stringNode(fields[0]) : undefined;
      const output = single !== undefined ? result.columns?.find((c) => c.name === single) : undefined;
      const position = as(node, 'A_Const')?.['ival'];
      const byPosition = isObj(position) && typeof position['ival'] === 'number' ? result.columns?.[position['ival'] - 1] : undefined;
      if (output) this.predicates.merge(output);
      else if (byPosition) this.predicates.merge(byPosition);
      else this.expr(node, scope, this.predicates);
    }
    return result;
  }

  #with(w: unknown, scope: Scope): void {
    if (!isObj(w)) return;
    const recursive = w['recursive'] === true;
    for (const c of list(w['ctes'])) {
      const cte = as(c, 'CommonTableExpr');
      if (cte === undefined) continue;
      const name = text(cte['ctename']) ?? '';
      const aliases = list(cte['aliascolnames']).map((a) => stringNode(a) ?? '');
      const inner = unwrap(cte['ctequery']);
      const run = (): readonly ResultColumn[] | undefined => {
        if (inner === undefined) return undefined;
        if (inner[0] === 'SelectStmt') return this.query(inner[1], scope).columns;
        return this.statement(cte['ctequery'])?.columns;
      };
      if (recursive) scope.ctes.set(name, undefined);
      let columns = run();
      if (recursive && columns) {
        // The recursive part reads the CTE itself: once more with the first pass's columns.
        scope.ctes.set(name, rename(columns, aliases));
        columns = run();
      }
      scope.ctes.set(name, columns ? rename(columns, aliases) : undefined);
    }
  }

  #tableRel(v: unknown, scope: Scope): Rel | undefined {
    const rv = isObj(v) ? (as(v, 'RangeVar') ?? v) : undefined;
    if (rv === undefined || typeof rv['relname'] !== 'string') return undefined;
    const table = rv['relname'];
    const schema = text(rv['schemaname']);
    const alias = isObj(rv['alias']) ? text(rv['alias']['aliasname']) : undefined;
    if (schema === undefined) {
      const cte = scope.cte(table);
      if (cte !== null) {
        const aliases = isObj(rv['alias']) ? list(rv['alias']['colnames']).map((a) => stringNode(a) ?? '') : [];
        if (cte !== undefined) return { name: alias ?? table, columns: rename(cte, aliases) };
        return { name: alias ?? table, any: EMPTY_COLUMN('') };
      }
    }
    return { name: alias ?? table, table: schema === undefined ? { table } : { schema, table } };
  }

  #fromItem(item: unknown, scope: Scope): void {
    const n = unwrap(item);
    if (n === undefined) return;
    const [type, f] = n;
    switch (type) {
      case 'RangeVar': {
        const rel = this.#tableRel(item, scope);
        if (rel) scope.rels.push(rel);
        return;
      }
      case 'RangeSubselect': {
        const sub = as(f['subquery'], 'SelectStmt');
        const alias = isObj(f['alias']) ? f['alias'] : undefined;
        const name = alias ? (text(alias['aliasname']) ?? '') : '';
        // A LATERAL subquery sees the relations before it.
        const r = this.query(sub ?? {}, f['lateral'] === true ? scope : withoutRelations(scope));
        const aliases = alias ? list(alias['colnames']).map((a) => stringNode(a) ?? '') : [];
        if (r.columns) scope.rels.push({ name, columns: rename(r.columns, aliases) });
        else {
          const acc = new Acc();
          acc.merge(r.all);
          scope.rels.push({ name, any: { name: '', sources: acc.sources, direct: false, functions: acc.functions } });
        }
        return;
      }
      case 'JoinExpr':
        this.#fromItem(f['larg'], scope);
        this.#fromItem(f['rarg'], scope);
        this.expr(f['quals'], scope, this.predicates);
        for (const u of list(f['usingClause'])) {
          const name = stringNode(u);
          if (name !== undefined) this.#resolveColumn([name], scope, this.predicates);
        }
        return;
      case 'RangeFunction':
      default: {
        // A function (or XMLTABLE, JSON_TABLE ...) in FROM: its columns come from its arguments.
        const acc = new Acc();
        this.expr(f, scope, acc);
        const alias = isObj(f['alias']) ? f['alias'] : undefined;
        const name = alias ? (text(alias['aliasname']) ?? '') : firstFunctionName(f);
        scope.rels.push({ name, any: { name: '', sources: acc.sources, direct: false, functions: acc.functions } });
      }
    }
  }

  #targetList(items: readonly unknown[], scope: Scope): QueryResult {
    let columns: ResultColumn[] | undefined = [];
    const all = new Acc();
    for (const item of items) {
      const rt = as(item, 'ResTarget');
      if (rt === undefined) continue;
      const val = rt['val'];
      const ref = as(val, 'ColumnRef');
      const fields = ref ? list(ref['fields']) : [];
      if (ref && fields.length > 0 && as(fields[fields.length - 1], 'A_Star') !== undefined) {
        const expanded = this.#star(fields.slice(0, -1).map((x) => stringNode(x) ?? ''), scope, all);
        if (expanded === undefined) columns = undefined;
        else columns?.push(...expanded);
        continue;
      }
      const acc = new Acc();
      this.expr(val, scope, acc);
      all.merge(acc);
      const direct = ref !== undefined && acc.sources.length === 1 && acc.sources[0]!.column !== '*' && this.#lastDirect;
      columns?.push({ name: text(rt['name']) ?? outputName(val), sources: acc.sources, direct, functions: acc.functions });
    }
    return { columns, all };
  }

  /** `*` or `t.*` in a target list: the columns, or undefined when they cannot be told. */
  #star(qualifier: readonly string[], scope: Scope, all: Acc): ResultColumn[] | undefined {
    const rels = qualifier.length === 0 ? scope.rels : this.#relsNamed(qualifier[qualifier.length - 1]!, scope);
    const out: ResultColumn[] = [];
    let known = true;
    for (const rel of rels) {
      if (rel.columns) {
        out.push(...rel.columns);
        for (const c of rel.columns) all.merge(c);
        continue;
      }
      if (rel.table) {
        const names = this.options.columnsOf?.(rel.table.schema, rel.table.table);
        if (names) {
          for (const c of names) {
            const s = { ...rel.table, column: c };
            all.add(s);
            out.push({ name: c, sources: [s], direct: true, functions: [] });
          }
          continue;
        }
        all.add({ ...rel.table, column: '*' });
      } else if (rel.any) all.merge(rel.any);
      known = false;
    }
    if (rels.length === 0) known = false;
    return known ? out : undefined;
  }

  #relsNamed(name: string, scope: Scope): Rel[] {
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const found = s.rels.filter((r) => r.name === name);
      if (found.length > 0) return found;
    }
    return [];
  }

  /** Set by the last column resolution: it named exactly one plain column. */
  #lastDirect = false;

  /** Sources of a whole-row reference to a relation. */
  #wholeRow(rel: Rel, acc: Acc): void {
    if (rel.table) acc.add({ ...rel.table, column: '*' });
    for (const c of rel.columns ?? []) acc.merge(c);
    if (rel.any) acc.merge(rel.any);
  }

  #resolveColumn(fields: readonly string[], scope: Scope, acc: Acc): void {
    this.#lastDirect = false;
    if (fields.length === 1) {
      const name = fields[0]!;
      let found = 0;
      let direct = true;
      for (let s: Scope | undefined = scope; s; s = s.parent) {
        for (const rel of s.rels) {
          if (rel.columns) {
            const c = rel.columns.find((x) => x.name === name);
            if (c) {
              acc.merge(c);
              found++;
              direct &&= c.direct;
            }
          } else if (rel.table) {
            acc.add({ ...rel.table, column: name });
            found++;
          } else if (rel.any) {
            acc.merge(rel.any);
            found++;
            direct = false;
          }
          // `SELECT c FROM customers c`: a relation's name used as a value is its whole row.
          if (rel.name === name) this.#wholeRow(rel, acc);
        }
      }
      this.#lastDirect = found === 1 && direct;
      return;
    }
    const column = fields[fields.length - 1]!;
    const relName = fields[fields.length - 2]!;
    const rels = this.#relsNamed(relName, scope);
    if (rels.length === 0) {
      // `col.field` (a composite column's field): the column.
      this.#resolveColumn([fields[0]!], scope, acc);
      this.#lastDirect = false;
      return;
    }
    for (const rel of rels) {
      if (rel.columns) {
        const c = rel.columns.find((x) => x.name === column);
        if (c) {
          acc.merge(c);
          this.#lastDirect = rels.length === 1 && c.direct;
        }
      } else if (rel.table) {
        acc.add({ ...rel.table, column });
        this.#lastDirect = rels.length === 1;
      } else if (rel.any) acc.merge(rel.any);
    }
  }

  // --- expressions -------------------------------------------------------------------------

  expr(node: unknown, scope: Scope, acc: Acc): void {
    if (Array.isArray(node)) {
      for (const x of node) this.expr(x, scope, acc);
      return;
    }
    if (!isObj(node)) return;
    const n = unwrap(node);
    if (n === undefined) {
      // An inlined struct: walk its fields.
      for (const key in node) this.expr(node[key], scope, acc);
      return;
    }
    const [type, f] = n;
    switch (type) {
      case 'ColumnRef': {
        const fields = list(f['fields']);
        const last = fields[fields.length - 1];
        const names = fields.filter((x) => as(x, 'A_Star') === undefined).map((x) => stringNode(x) ?? '');
        if (as(last, 'A_Star') !== undefined) {
          // `t.*` inside an expression (row_to_json(t.*)): the whole row.
          const rels = names.length === 0 ? scope.rels : this.#relsNamed(names[names.length - 1]!, scope);
          for (const rel of rels) this.#wholeRow(rel, acc);
          return;
        }
        this.#resolveColumn(names, scope, acc);
        return;
      }
      case 'FuncCall': {
        const name = funcName(f);
        acc.fn(name);
        this.functions.fn(name);
        this.expr(f['args'], scope, acc);
        this.expr(f['agg_order'], scope, acc);
        this.expr(f['agg_filter'], scope, acc);
        // A window's partition and order decide which rows a value is computed over.
        this.expr(f['over'], scope, acc);
        return;
      }
      case 'SubLink': {
        const sub = as(f['subselect'], 'SelectStmt') ?? {};
        const kind = f['subLinkType'];
        const saved = this.#lastDirect;
        const r = this.query(sub, scope);
        this.#lastDirect = saved;
        if (kind === 'EXISTS_SUBLINK') {
          this.predicates.merge(r.all);
          for (const c of r.columns ?? []) this.predicates.merge(c);
          return;
        }
        // A scalar or ARRAY subquery returns its column; IN / ANY / ALL reveal membership.
        if (r.columns !== undefined && r.columns.length > 0) for (const c of r.columns) acc.merge(c);
        else acc.merge(r.all);
        this.expr(f['testexpr'], scope, acc);
        return;
      }
      case 'A_Const':
      case 'ParamRef':
      case 'TypeName':
        return;
      default:
        for (const key in f) this.expr(f[key], scope, acc);
    }
  }
}

/** The scope a non-LATERAL subquery in FROM sees: the CTEs, not the relations beside it. */
function withoutRelations(scope: Scope): Scope {
  const s = new Scope(scope.parent);
  for (const [k, v] of scope.ctes) s.ctes.set(k, v);
  return s;
}

function firstFunctionName(f: Obj): string {
  for (const item of list(f['functions'])) {
    const fc = as(list(as(item, 'List')?.['items'] ?? item)[0], 'FuncCall');
    if (fc) return funcName(fc).split('.').pop() ?? '';
  }
  return '';
}

function rename(columns: readonly ResultColumn[], aliases: readonly string[]): ResultColumn[] {
  return columns.map((c, i) => (aliases[i] !== undefined ? { ...c, name: aliases[i] } : c));
}

/** The name PostgreSQL gives a result column without an alias. */
function outputName(val: unknown): string {
  const n = unwrap(val);
  if (n === undefined) return '?column?';
  const [type, f] = n;
  switch (type) {
    case 'ColumnRef': {
      const fields = list(f['fields']);
      return stringNode(fields[fields.length - 1]) ?? '?column?';
    }
    case 'FuncCall':
      return funcName(f).split('.').pop() ?? '?column?';
    case 'TypeCast': {
      const inner = outputName(f['arg']);
      if (inner !== '?column?') return inner;
      const names = list(as(f['typeName'], 'TypeName')?.['names'] ?? (isObj(f['typeName']) ? f['typeName']['names'] : []));
      return stringNode(names[names.length - 1]) ?? '?column?';
    }
    case 'CaseExpr':
      return 'case';
    case 'CoalesceExpr':
      return 'coalesce';
    case 'SubLink':
      return f['subLinkType'] === 'EXISTS_SUBLINK' ? 'exists' : f['subLinkType'] === 'ARRAY_SUBLINK' ? 'array' : '?column?';
    default:
      return '?column?';
  }
}

/** Every table named anywhere in a tree, as whole-row sources (the fallback when a walk fails). */
function everyTable(node: unknown, acc: Acc, depth = 0): void {
  if (depth > 200) return;
  if (Array.isArray(node)) {
    for (const x of node) everyTable(x, acc, depth + 1);
    return;
  }
  if (!isObj(node)) return;
  const rv = as(node, 'RangeVar');
  if (rv && typeof rv['relname'] === 'string') {
    const schema = text(rv['schemaname']);
    acc.add({ ...(schema ? { schema } : {}), table: rv['relname'], column: '*' });
  }
  for (const key in node) everyTable(node[key], acc, depth + 1);
}

/** Lineage of the result of one parsed statement, or undefined when it returns no rows to the client. */
export function resultLineage(stmt: unknown, options: LineageOptions = {}): ResultLineage | undefined {
  try {
    return new LineageWalker(options).statement(stmt);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const acc = new Acc();
    everyTable(stmt, acc);
    return { all: acc.sources, predicates: acc.sources, functions: [] };
  }
}

/** Lineage of SQL text (a view definition, a SQL function body: its last statement). */
export function resultLineageOfSql(sql: string, options: LineageOptions = {}): ResultLineage | undefined {
  const parsed = parseSql(sql);
  if (!parsed.ok || parsed.stmts.length === 0) return undefined;
  return resultLineage(parsed.stmts[parsed.stmts.length - 1]!.stmt, options);
}
