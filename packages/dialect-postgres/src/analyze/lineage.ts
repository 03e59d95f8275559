/**
 * Column lineage of the rows a statement returns, from its parse tree: for each result column,
 * the table columns its values come from (through aliases, expressions, function calls, casts,
 * aggregates, CASE, subqueries, CTEs, set operations, joins, functions in FROM, whole-row
 * references and JSON builders), the columns that WHERE, JOIN, GROUP BY, HAVING, ORDER BY,
 * window clauses and EXISTS/IN subqueries read, and the functions the statement calls.
 *
 * It is conservative: when the walk cannot tell which relation a column belongs to, it names
 * every relation it could belong to (outer levels of correlated subqueries included); when it
 * does not understand a node inside an expression, the value draws on every relation in scope;
 * when a `*` covers a relation whose columns it does not know, positions are unknown and the
 * result only says what it may carry. Masking may then mask more than needed, never less.
 *
 * The same walk classifies how each source flows (flows.ts): into each result column
 * (IDENTITY, TRANSFORMATION, AGGREGATION, CONDITIONAL, WINDOW; FILTER and SORT for an
 * aggregate's FILTER and ORDER BY), and into the statement as a whole (`indirect`: JOIN,
 * FILTER, GROUP_BY, SORT, WINDOW, the predicates classified). A WHERE conjunct that compares
 * two columns qualified with different relations is a JOIN; EXISTS and IN subqueries FILTER.
 *
 * And it gives the write lineage of every statement that writes rows (write-lineage.ts):
 * INSERT (ON CONFLICT included), UPDATE, DELETE, MERGE, data-modifying CTEs, CREATE TABLE AS,
 * CREATE MATERIALIZED VIEW, SELECT INTO, COPY FROM, TRUNCATE, REFRESH MATERIALIZED VIEW and
 * the statement of an EXPLAIN ANALYZE. MERGE's WHEN conditions decide which rows an action
 * writes: they are FILTER flows of the statement, not CONDITIONAL flows of the columns.
 */
import type { ColumnSource, ResultColumn, ResultLineage, WriteLineage } from '@sluice/core';
import {
  columnSource as source,
  type FoundCol as Found,
  type LineageCol as Col,
  lineageSize as sizeOf,
  MAX_LINEAGE_ROUNDS as MAX_ROUNDS,
  NO_ROWS,
  NO_SOURCES as EMPTY,
  objectsIn,
  type QueryLineage as QueryResult,
  renamedColumns as renamed,
  type SourceSet,
} from '@sluice/core';
import { AGGREGATE_FUNCTIONS, compose, Flow, FlowSet as Acc, flowsOf, union, WINDOW_FUNCTIONS, within } from './flows.js';
import { parseSql } from './parse.js';
import { as, isObj, list, nameList, rangeVar, stringNode, text, typeNameOf, unwrap, type Obj } from './tree.js';
import { fallbackWrites, writeLineage, WriteTarget } from './write-lineage.js';

export interface LineageOptions {
  /** Column names, in order, of a table or view (schema absent when unqualified); undefined when not known. Lets `*` be expanded. */
  readonly columnsOf?: (schema: string | undefined, table: string) => readonly string[] | undefined;
}

// --- sources -----------------------------------------------------------------------------------
// Core's mergeFound and growLineage, with unions that keep the flows.

function mergeFound(found: readonly Found[]): Found | undefined {
  if (found.length === 0) return undefined;
  if (found.length === 1) return found[0];
  return { acc: union(...found.map((f) => f.acc)), direct: found.every((f) => f.direct), definite: found.some((f) => f.definite) };
}

/** Grows a recursive query's result with another round's (flows included). */
function grow(before: QueryResult, next: QueryResult): QueryResult {
  const all = union(before.all, next.all);
  const b = before.columns;
  const n = next.columns;
  let columns: Col[] | undefined;
  if (b !== undefined && n !== undefined && b.length === n.length) {
    columns = n.map((c, i) => ({ name: c.name, acc: union(b[i]!.acc, c.acc), direct: b[i]!.direct && c.direct }));
  } else if (n !== undefined) {
    columns = n.map((c) => ({ ...c, acc: union(c.acc, before.all), direct: false }));
  } else if (b !== undefined) {
    columns = b.map((c) => ({ ...c, acc: union(c.acc, next.all), direct: false }));
  }
  if (columns !== undefined) return { columns, all };
  return { columns: undefined, all, ...(next.lookup === undefined ? {} : { lookup: next.lookup }) };
}

function findByName(columns: readonly Col[], name: string): Found | undefined {
  return mergeFound(columns.filter((c) => c.name === name).map((c) => ({ acc: c.acc, direct: c.direct, definite: true })));
}

// --- relations -----------------------------------------------------------------------------------

/** A relation visible in a query, by the name it is referred to. */
interface Relation {
  readonly name: string | undefined;
  /** The schema a qualified reference (`schema.table.column`) must name. */
  readonly schema?: string;
  /** Reachable only by qualified names (`excluded`, `old`, `new`, a USING alias). */
  readonly qualifiedOnly: boolean;
  /** Output columns in order, or undefined when not known. */
  columns(): readonly Col[] | undefined;
  /** A column by name, or undefined when the relation certainly has none of that name. */
  column(name: string): Found | undefined;
  /** Everything a whole-row reference carries. */
  whole(acc: Acc): void;
}

/** Values written into a DML target's columns: what RETURNING returns for them. */
class Assigned {
  active = false;
  readonly byName = new Map<string, Acc>();
  readonly any = new Acc();

  add(column: string, acc: SourceSet): void {
    const known = this.byName.get(column);
    if (known === undefined) this.byName.set(column, union(acc));
    else known.merge(acc);
  }

  include(other: Assigned): void {
    for (const [column, acc] of other.byName) this.add(column, acc);
    this.any.merge(other.any);
  }

  of(column: string): Acc | undefined {
    if (!this.active) return undefined;
    const named = this.byName.get(column);
    if (named === undefined && this.any.size === 0) return undefined;
    return union(named ?? EMPTY, this.any);
  }
}

const SYSTEM_COLUMNS = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid', 'oid']);

/** A table or view. Its columns are known only through `columnsOf`. */
class TableRel implements Relation {
  constructor(
    readonly table: string,
    /** Schema as written. */
    readonly tableSchema: string | undefined,
    readonly name: string,
    readonly schema: string | undefined,
    readonly known: readonly string[] | undefined,
    readonly aliases: readonly string[],
    readonly assigned: Assigned | undefined,
    readonly qualifiedOnly = false,
    /** `excluded`: its columns are the proposed row's values, not the table's (sources, not flows). */
    readonly proposed = false,
  ) {}

  #col(column: string, definite: boolean): Found {
    const acc = new Acc();
    acc.add(source(this.tableSchema, this.table, column), this.proposed ? Flow.Hidden : Flow.Identity);
    const extra = this.assigned?.of(column);
    if (extra !== undefined) acc.merge(extra);
    return { acc, direct: extra === undefined, definite };
  }

  columns(): readonly Col[] | undefined {
    return this.known?.map((c, i) => {
      const f = this.#col(c, true);
      return { name: this.aliases[i] ?? c, acc: f.acc, direct: f.direct };
    });
  }

  column(name: string): Found | undefined {
    const i = this.aliases.indexOf(name);
    if (i >= 0) {
      const real = this.known?.[i];
      if (real !== undefined) return this.#col(real, true);
      // Renamed by the alias, and the real name is not known: any column.
      const acc = new Acc();
      this.whole(acc);
      return { acc, direct: false, definite: true };
    }
    if (this.known === undefined) return this.#col(name, false);
    const j = this.known.indexOf(name);
    if (j >= this.aliases.length || SYSTEM_COLUMNS.has(name)) return this.#col(name, true);
    return undefined;
  }

  whole(acc: Acc): void {
    acc.add(source(this.tableSchema, this.table, '*'), this.proposed ? Flow.Hidden : acc.mode);
    if (this.assigned?.active === true) {
      for (const a of this.assigned.byName.values()) acc.merge(a);
      acc.merge(this.assigned.any);
    }
  }
}

/** A subquery, CTE or VALUES list: its columns are its query's. */
class DerivedRel implements Relation {
  readonly schema = undefined;
  constructor(
    readonly name: string | undefined,
    readonly result: QueryResult,
    readonly aliases: readonly string[],
    readonly qualifiedOnly = false,
  ) {}

  columns(): readonly Col[] | undefined {
    return this.result.columns === undefined ? undefined : renamed(this.result.columns, this.aliases);
  }

  column(name: string): Found | undefined {
    const cols = this.columns();
    if (cols !== undefined) return findByName(cols, name);
    if (this.aliases.includes(name) || this.result.lookup === undefined) {
      return { acc: this.result.all, direct: false, definite: this.aliases.includes(name) };
    }
    return this.result.lookup(name);
  }

  whole(acc: Acc): void {
    acc.merge(this.result.all);
  }
}

/** A function (or XMLTABLE, JSON_TABLE...) in FROM: every column comes from its arguments. */
class FunctionRel implements Relation {
  readonly schema = undefined;
  readonly qualifiedOnly = false;
  constructor(
    readonly name: string | undefined,
    /** Every column's name, when the count is known. */
    readonly names: readonly string[] | undefined,
    /** Names of the first columns (aliases) when the count is not known. */
    readonly partial: readonly string[],
    readonly acc: Acc,
  ) {}

  columns(): readonly Col[] | undefined {
    return this.names?.map((name) => ({ name, acc: this.acc, direct: false }));
  }

  column(name: string): Found | undefined {
    if (this.names !== undefined && !this.names.includes(name)) return undefined;
    return { acc: this.acc, direct: false, definite: this.names !== undefined || this.partial.includes(name) };
  }

  whole(acc: Acc): void {
    acc.merge(this.acc);
  }
}

/** A FROM item: a relation, or a join of two items. */
type Item =
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

/** A column by name among the relations of an item (a join's merged column is both sides'). */
function itemColumn(item: Item, name: string): Found | undefined {
  const found: Found[] = [];
  for (const rel of leavesOf(item)) {
    const f = rel.column(name);
    if (f !== undefined) found.push(f);
  }
  return mergeFound(found);
}

function itemWhole(item: Item, acc: Acc): void {
  for (const rel of leavesOf(item)) rel.whole(acc);
}

/** The columns `*` gives for an item, in order, or undefined when not known. */
function expandItem(item: Item): readonly Col[] | undefined {
  if (item.kind === 'rel') return item.rel.columns();
  const left = expandItem(item.left);
  const right = expandItem(item.right);
  if (left === undefined || right === undefined) return undefined;
  const byName = (cols: readonly Col[]): Map<string, Col[]> => {
    const m = new Map<string, Col[]>();
    for (const c of cols) {
      const known = m.get(c.name);
      if (known === undefined) m.set(c.name, [c]);
      else known.push(c);
    }
    return m;
  };
  const l = byName(left);
  const r = byName(right);
  // NATURAL: the columns both sides have, in the left side's order.
  const using = [...new Set(item.using ?? left.map((c) => c.name).filter((n) => r.has(n)))];
  const merged = using.map((name): Col => ({ name, acc: union(...[...(l.get(name) ?? []), ...(r.get(name) ?? [])].map((c) => c.acc)), direct: false }));
  const skip = new Set(using);
  return [...merged, ...left.filter((c) => !skip.has(c.name)), ...right.filter((c) => !skip.has(c.name))];
}

/** A join with an alias: `(a JOIN b ...) AS j`. */
class JoinRel implements Relation {
  readonly schema = undefined;
  readonly qualifiedOnly = false;
  constructor(
    readonly name: string,
    readonly item: Item,
    readonly aliases: readonly string[],
  ) {}

  columns(): readonly Col[] | undefined {
    const cols = expandItem(this.item);
    return cols === undefined ? undefined : renamed(cols, this.aliases);
  }

  column(name: string): Found | undefined {
    const cols = this.columns();
    if (cols !== undefined) return findByName(cols, name);
    if (this.aliases.includes(name)) {
      const acc = new Acc();
      this.whole(acc);
      return { acc, direct: false, definite: true };
    }
    return itemColumn(this.item, name);
  }

  whole(acc: Acc): void {
    itemWhole(this.item, acc);
  }
}

/** `JOIN ... USING (a) AS j`: `j.a` is the merged column. */
class UsingRel implements Relation {
  readonly schema = undefined;
  readonly qualifiedOnly = true;
  constructor(
    readonly name: string,
    readonly item: Item,
    readonly using: readonly string[],
  ) {}

  columns(): readonly Col[] {
    return this.using.map((name) => {
      const f = itemColumn(this.item, name);
      return { name, acc: f?.acc ?? EMPTY, direct: false };
    });
  }

  column(name: string): Found | undefined {
    const found = this.using.includes(name) ? itemColumn(this.item, name) : undefined;
    return found === undefined ? undefined : { ...found, direct: false };
  }

  whole(acc: Acc): void {
    for (const c of this.columns()) acc.merge(c.acc);
  }
}

/** A CTE while its WITH is being resolved: `result` grows until it stops changing. */
interface CteBinding {
  result: QueryResult;
  touched: boolean;
}

class Scope {
  /** Every relation that can be named, leaves of joins included. */
  readonly rels: Relation[] = [];
  /** Top-level FROM items in order: what `*` covers. */
  readonly items: Item[] = [];
  readonly ctes = new Map<string, CteBinding>();
  readonly windows = new Map<string, Obj>();

  constructor(
    /** The enclosing query level whose relations are visible (correlation, LATERAL). */
    readonly parent: Scope | undefined,
    /** Where CTE names are looked up next (a non-LATERAL subquery sees its query's CTEs, not its relations). */
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

// --- names ---------------------------------------------------------------------------------------

/** A function's name as the analysis reports it: lower case, schema-qualified when written so. */
function funcName(f: Obj): string {
  const names = (nameList(f['funcname']) ?? []).map((s) => s.toLowerCase());
  // Functions written in SQL syntax (`substring(x from 1)`, `extract(...)`) are qualified by
  // the grammar, not by the user.
  if (f['funcformat'] === 'COERCE_SQL_SYNTAX' && names.length === 2 && names[0] === 'pg_catalog') return names[1]!;
  return names.join('.');
}

function lastName(f: Obj): string {
  const names = nameList(f['funcname']) ?? [];
  return (names[names.length - 1] ?? '').toLowerCase();
}

const SQL_VALUE_NAMES: Readonly<Record<string, string>> = {
  SVFOP_CURRENT_DATE: 'current_date',
  SVFOP_CURRENT_TIME: 'current_time',
  SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp',
  SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp',
  SVFOP_LOCALTIME: 'localtime',
  SVFOP_LOCALTIME_N: 'localtime',
  SVFOP_LOCALTIMESTAMP: 'localtimestamp',
  SVFOP_LOCALTIMESTAMP_N: 'localtimestamp',
  SVFOP_CURRENT_ROLE: 'current_role',
  SVFOP_CURRENT_USER: 'current_user',
  SVFOP_USER: 'user',
  SVFOP_SESSION_USER: 'session_user',
  SVFOP_CURRENT_CATALOG: 'current_catalog',
  SVFOP_CURRENT_SCHEMA: 'current_schema',
};

const XML_NAMES: Readonly<Record<string, string>> = {
  IS_XMLCONCAT: 'xmlconcat',
  IS_XMLELEMENT: 'xmlelement',
  IS_XMLFOREST: 'xmlforest',
  IS_XMLPARSE: 'xmlparse',
  IS_XMLPI: 'xmlpi',
  IS_XMLROOT: 'xmlroot',
  IS_XMLSERIALIZE: 'xmlserialize',
};

const JSON_NAMES: Readonly<Record<string, string>> = {
  JsonParseExpr: 'json',
  JsonScalarExpr: 'json_scalar',
  JsonSerializeExpr: 'json_serialize',
  JsonObjectConstructor: 'json_object',
  JsonArrayConstructor: 'json_array',
  JsonArrayQueryConstructor: 'json_array',
  JsonObjectAgg: 'json_objectagg',
  JsonArrayAgg: 'json_arrayagg',
};

/**
 * The name PostgreSQL gives a result column without an alias (FigureColname), with its
 * strength: 2 for a name that wins over a cast's type name, 1 for a weak one, 0 for none.
 */
function figureName(node: unknown, subqueryName: (sub: unknown) => string | undefined): [string, number] {
  const n = unwrap(node);
  if (n === undefined) return ['?column?', 0];
  const [type, f] = n;
  switch (type) {
    case 'ColumnRef': {
      const fields = list(f['fields']);
      const last = stringNode(fields[fields.length - 1]);
      return last === undefined ? ['?column?', 0] : [last, 2];
    }
    case 'A_Indirection': {
      const ind = list(f['indirection']);
      for (let i = ind.length - 1; i >= 0; i--) {
        const s = stringNode(ind[i]);
        if (s !== undefined) return [s, 2];
      }
      return figureName(f['arg'], subqueryName);
    }
    case 'FuncCall':
      return [lastName(f), 2];
    case 'A_Expr':
      return f['kind'] === 'AEXPR_NULLIF' ? ['nullif', 2] : ['?column?', 0];
    case 'TypeCast': {
      const inner = figureName(f['arg'], subqueryName);
      if (inner[1] <= 1) {
        const t = typeNameOf(f['typeName']);
        if (t !== undefined) return [t, 1];
      }
      return inner;
    }
    case 'CollateClause':
      return figureName(f['arg'], subqueryName);
    case 'GroupingFunc':
      return ['grouping', 2];
    case 'MergeSupportFunc':
      return ['merge_action', 2];
    case 'SubLink':
      switch (f['subLinkType']) {
        case 'EXISTS_SUBLINK':
          return ['exists', 2];
        case 'ARRAY_SUBLINK':
          return ['array', 2];
        case 'EXPR_SUBLINK': {
          const name = subqueryName(f['subselect']);
          return name === undefined ? ['?column?', 0] : [name, 2];
        }
        default:
          return ['?column?', 0];
      }
    case 'CaseExpr':
      return ['case', 1];
    case 'A_ArrayExpr':
      return ['array', 1];
    case 'RowExpr':
      return ['row', 1];
    case 'CoalesceExpr':
      return ['coalesce', 2];
    case 'MinMaxExpr':
      return [f['op'] === 'IS_LEAST' ? 'least' : 'greatest', 2];
    case 'SQLValueFunction': {
      const name = SQL_VALUE_NAMES[text(f['op']) ?? ''];
      return name === undefined ? ['?column?', 0] : [name, 2];
    }
    case 'XmlExpr': {
      const name = XML_NAMES[text(f['op']) ?? ''];
      return name === undefined ? ['?column?', 0] : [name, 2];
    }
    case 'XmlSerialize':
      return ['xmlserialize', 2];
    case 'JsonFuncExpr': {
      const op = text(f['op']);
      const name = op === 'JSON_EXISTS_OP' ? 'json_exists' : op === 'JSON_QUERY_OP' ? 'json_query' : op === 'JSON_VALUE_OP' ? 'json_value' : undefined;
      return name === undefined ? ['?column?', 0] : [name, 2];
    }
    default: {
      const name = JSON_NAMES[type];
      return name === undefined ? ['?column?', 0] : [name, 2];
    }
  }
}

/**
 * Expression nodes whose fields are walked as they are: every column reference inside them
 * flows into their value. A node not listed (or handled) is not understood, and its value
 * draws on every relation in scope.
 */
const PLAIN_EXPRESSIONS: ReadonlySet<string> = new Set([
  'A_Expr', 'BoolExpr', 'TypeCast', 'CollateClause', 'CaseExpr', 'CaseWhen', 'CoalesceExpr', 'MinMaxExpr', 'NullTest',
  'BooleanTest', 'A_ArrayExpr', 'RowExpr', 'A_Indirection', 'A_Indices', 'NamedArgExpr', 'GroupingFunc', 'GroupingSet',
  'SortBy', 'ResTarget', 'MultiAssignRef', 'List', 'XmlExpr', 'XmlSerialize', 'JsonValueExpr', 'JsonFormat', 'JsonOutput',
  'JsonReturning', 'JsonKeyValue', 'JsonObjectConstructor', 'JsonArrayConstructor', 'JsonArrayQueryConstructor',
  'JsonAggConstructor', 'JsonObjectAgg', 'JsonArrayAgg', 'JsonIsPredicate', 'JsonFuncExpr', 'JsonParseExpr',
  'JsonScalarExpr', 'JsonSerializeExpr', 'JsonBehavior', 'JsonArgument', 'JsonTablePathSpec',
]);

/** Nodes that pass their values on as they are (lists, sort keys, collations, named arguments ...). */
const PASS_THROUGH: ReadonlySet<string> = new Set([
  'ResTarget', 'MultiAssignRef', 'List', 'SortBy', 'CollateClause', 'NamedArgExpr', 'GroupingSet', 'JsonValueExpr', 'JsonKeyValue',
]);

/** Nodes with no column inside. */
const LEAVES: ReadonlySet<string> = new Set([
  'A_Const', 'ParamRef', 'TypeName', 'String', 'Integer', 'Float', 'Boolean', 'BitString', 'A_Star', 'SQLValueFunction',
  'SetToDefault', 'CurrentOfExpr', 'MergeSupportFunc',
]);

/** Set-returning built-ins whose result columns are known: their names for an argument count. */
const FUNCTION_COLUMNS: ReadonlyMap<string, (argc: number, name: string) => readonly string[]> = new Map([
  ...['generate_series', 'generate_subscripts', 'regexp_split_to_table', 'string_to_table', 'regexp_matches', 'json_object_keys', 'jsonb_object_keys', 'jsonb_path_query'].map(
    (n) => [n, (_: number, name: string) => [name]] as const,
  ),
  ...['json_array_elements', 'jsonb_array_elements', 'json_array_elements_text', 'jsonb_array_elements_text'].map((n) => [n, () => ['value']] as const),
  ...['json_each', 'jsonb_each', 'json_each_text', 'jsonb_each_text'].map((n) => [n, () => ['key', 'value']] as const),
  ['unnest', (argc: number) => Array.from({ length: Math.max(argc, 1) }, () => 'unnest')] as const,
]);

/** Whether a call aggregates: see AGGREGATE_FUNCTIONS. */
function isAggregate(f: Obj): boolean {
  if (f['agg_star'] === true || f['agg_distinct'] === true || f['agg_within_group'] === true) return true;
  if (isObj(f['agg_filter']) || list(f['agg_order']).length > 0) return true;
  const names = nameList(f['funcname']) ?? [];
  const builtin = names.length === 1 || (names.length === 2 && names[0]!.toLowerCase() === 'pg_catalog');
  const base = (names[names.length - 1] ?? '').toLowerCase();
  if (builtin && AGGREGATE_FUNCTIONS.has(base)) return true;
  // With OVER, anything but a built-in window function is an aggregate used as one.
  return isObj(f['over']) && !(builtin && WINDOW_FUNCTIONS.has(base));
}

function aliasName(v: unknown): string | undefined {
  return isObj(v) ? text(v['aliasname']) : undefined;
}

function aliasColumns(v: unknown): string[] {
  return isObj(v) ? (nameList(v['colnames']) ?? []) : [];
}

/** The body of a SELECT, wrapped or inlined (set-operation branches are inlined). */
function selectBody(v: unknown): Obj | undefined {
  const wrapped = as(v, 'SelectStmt');
  if (wrapped !== undefined) return wrapped;
  return isObj(v) && unwrap(v) === undefined ? v : undefined;
}

/**
 * `ORDER BY 2`, `GROUP BY 1`: an output column by position. Which one is not used: the
 * analysis is shared between statements that differ only in literals (`ORDER BY 1`,
 * `ORDER BY 2` and `ORDER BY 'x'` have the same shape), so any literal there stands for every
 * output column. TRUE, FALSE and NULL are keywords, not literals.
 */
function isPosition(v: unknown): boolean {
  const c = as(v, 'A_Const');
  return c !== undefined && c['isnull'] !== true && !isObj(c['boolval']);
}

function singleName(v: unknown): string | undefined {
  const ref = as(v, 'ColumnRef');
  if (ref === undefined) return undefined;
  const fields = list(ref['fields']);
  return fields.length === 1 ? stringNode(fields[0]) : undefined;
}

/** The top-level AND-ed parts of a condition. */
function conjuncts(node: unknown, out: unknown[] = []): unknown[] {
  const b = as(node, 'BoolExpr');
  if (b === undefined || b['boolop'] !== 'AND_EXPR') out.push(node);
  else for (const a of list(b['args'])) conjuncts(a, out);
  return out;
}

/** SELECT INTO's target: on the query, or on the first branch of a set operation. */
function intoClause(f: Obj): Obj | undefined {
  for (let body: Obj | undefined = f; body !== undefined; body = selectBody(body['larg'])) {
    const into = body['intoClause'];
    if (isObj(into)) return into;
    if (body['op'] === undefined || body['op'] === 'SETOP_NONE') return undefined;
  }
  return undefined;
}

/** Boolean option values PostgreSQL reads as false (unique prefixes of false, no, off). */
const FALSE_WORDS: ReadonlySet<string> = new Set(['0', 'f', 'fa', 'fal', 'fals', 'false', 'n', 'no', 'of', 'off']);

/** Whether EXPLAIN runs its statement (ANALYZE, unless switched off). */
function explainAnalyzes(f: Obj): boolean {
  let analyze = false;
  for (const o of list(f['options'])) {
    const d = as(o, 'DefElem');
    if (d === undefined || d['defname'] !== 'analyze') continue;
    const arg = d['arg'];
    const b = as(arg, 'Boolean');
    const i = as(arg, 'Integer');
    const s = stringNode(arg);
    if (b !== undefined) analyze = b['boolval'] === true;
    else if (i !== undefined) analyze = typeof i['ival'] === 'number' && i['ival'] !== 0;
    else if (s !== undefined) analyze = !FALSE_WORDS.has(s.toLowerCase());
    else analyze = true;
  }
  return analyze;
}

function returningItems(f: Obj): readonly unknown[] {
  // PostgreSQL 18 wraps the list (RETURNING WITH (OLD AS o, NEW AS n)); earlier grammars do not.
  const clause = f['returningClause'];
  return list(isObj(clause) ? clause['exprs'] : f['returningList']);
}

// --- the walk ------------------------------------------------------------------------------------

/** Bound on the rounds a WITH RECURSIVE takes to settle before every column takes everything. */

class LineageWalker {
  /** Columns read by WHERE, JOIN, GROUP BY ...; a writing statement's own while it is walked. */
  predicates = new Acc();
  /** Functions called; a writing statement's own while it is walked when it returns no rows. */
  functions = new Acc();
  /** Each writing statement walked (a data-modifying CTE is one), by its node. */
  readonly writes = new Map<unknown, WriteTarget>();
  readonly #columnsOf: Map<string, readonly string[] | undefined> = new Map();

  constructor(readonly options: LineageOptions) {}

  #known(schema: string | undefined, table: string): readonly string[] | undefined {
    const key = `${schema ?? ''}\u0000${table}`;
    if (this.#columnsOf.has(key)) return this.#columnsOf.get(key);
    const names = this.options.columnsOf?.(schema, table);
    const copy = names === undefined ? undefined : [...names];
    this.#columnsOf.set(key, copy);
    return copy;
  }

  // --- statements --------------------------------------------------------------------------

  statement(node: unknown): ResultLineage | undefined {
    const n = unwrap(node);
    if (n === undefined) return undefined;
    const [type, f] = n;
    switch (type) {
      case 'SelectStmt': {
        const into = intoClause(f);
        if (into !== undefined) {
          this.#createTable(f, into);
          return undefined;
        }
        return this.#lineage(this.query(f, undefined));
      }
      case 'CreateTableAsStmt': {
        const into = f['into'];
        // WITH NO DATA writes no rows.
        if (isObj(into) && into['skipData'] !== true) this.#createTable(f['query'], into);
        return undefined;
      }
      case 'TruncateStmt':
        for (const r of list(f['relations'])) this.#tableWrite(r, []);
        return undefined;
      case 'RefreshMatViewStmt':
        // The rows come from the view's definition, which the statement does not show.
        if (f['skipData'] !== true) this.#tableWrite(f['relation'], undefined);
        return undefined;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt': {
        const r = this.#dml(type, f, undefined);
        return r === undefined ? undefined : this.#lineage(r);
      }
      case 'DeclareCursorStmt':
        return this.statement(f['query']);
      case 'CopyStmt':
        return this.#copy(f);
      case 'ExplainStmt':
        // EXPLAIN ANALYZE runs the statement: its writes happen.
        if (explainAnalyzes(f)) this.statement(f['query']);
        // The plan, not the rows: nothing from a table.
        return fixed(['QUERY PLAN']);
      case 'VariableShowStmt': {
        const name = text(f['name']) ?? '';
        return fixed(name.toLowerCase() === 'all' ? ['name', 'setting', 'description'] : [name]);
      }
      case 'CallStmt': {
        // OUT parameters: how many is not known; each may come from any argument.
        const acc = new Acc();
        const call = f['funccall'];
        // The call is inlined (no FuncCall wrapper).
        this.expr(isObj(call) && unwrap(call) === undefined ? { FuncCall: call } : call, new Scope(undefined), acc);
        return { all: acc.sources, predicates: this.predicates.sources, functions: this.functions.functions, indirect: flowsOf(this.predicates) };
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
                flows: flowsOf(c.acc),
              }),
            ),
          }),
      all: all.sources,
      predicates: this.predicates.sources,
      functions: this.functions.functions,
      indirect: flowsOf(this.predicates),
    };
  }

  /** A table written with the given columns (no flows: COPY FROM, TRUNCATE), or unknown ones. */
  #tableWrite(node: unknown, columns: readonly string[] | undefined): void {
    const rv = rangeVar(node);
    if (rv === undefined) return;
    const target = new WriteTarget(text(rv['schemaname']), text(rv['relname']) ?? '', new Acc());
    if (columns === undefined) target.unknown();
    else for (const c of columns) target.column(c);
    this.writes.set(rv, target);
  }

  /**
   * CREATE TABLE AS, CREATE MATERIALIZED VIEW AS, SELECT INTO: the new table's columns are the
   * query's (renamed by the column list), and the whole query decides its rows.
   */
  #createTable(query: unknown, into: Obj): void {
    const rv = rangeVar(into['rel']);
    if (rv === undefined) return;
    const target = new WriteTarget(text(rv['schemaname']), text(rv['relname']) ?? '', this.predicates);
    this.writes.set(rv, target);
    const sel = selectBody(query);
    if (sel === undefined) {
      // CREATE TABLE AS EXECUTE: a prepared statement's rows.
      target.unknown();
      return;
    }
    const rows = this.query(sel, undefined);
    const names = nameList(into['colNames']) ?? [];
    if (rows.columns === undefined) target.unknown(rows.all);
    else rows.columns.forEach((c, i) => target.column(names[i] ?? c.name, c.acc));
  }

  #copy(f: Obj): ResultLineage | undefined {
    if (f['is_from'] === true) {
      // The rows come from the client (or a file, or a program), not from a table.
      const rv = rangeVar(f['relation']);
      const listed = nameList(f['attlist']) ?? [];
      const names = listed.length > 0 || rv === undefined ? listed : this.#known(text(rv['schemaname']), text(rv['relname']) ?? '');
      this.#tableWrite(f['relation'], names);
      return undefined;
    }
    // COPY TO a file or a program sends no rows to the client.
    if (f['is_program'] === true || typeof f['filename'] === 'string') return undefined;
    if (f['query'] !== undefined) return this.statement(f['query']);
    const rv = rangeVar(f['relation']);
    if (rv === undefined) return undefined;
    const table = text(rv['relname']) ?? '';
    const schema = text(rv['schemaname']);
    const listed = nameList(f['attlist']) ?? [];
    const names = listed.length > 0 ? listed : this.#known(schema, table);
    if (names === undefined) {
      return { all: [source(schema, table, '*')], predicates: [], functions: [], indirect: [] };
    }
    const columns = names.map((c): ResultColumn => {
      const s = source(schema, table, c);
      return { name: c, sources: [s], direct: true, functions: [], flows: [{ source: s, type: 'DIRECT', subtype: 'IDENTITY' }] };
    });
    return { columns, all: columns.map((c) => c.sources[0]!), predicates: [], functions: [], indirect: [] };
  }

  /** A statement inside another (a CTE body, a subquery): its rows, or undefined when it returns none. */
  #nested(node: unknown, parent: Scope | undefined): QueryResult | undefined {
    const n = unwrap(node);
    if (n === undefined) return undefined;
    const [type, f] = n;
    switch (type) {
      case 'SelectStmt':
        return this.query(f, parent);
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return this.#dml(type, f, parent);
      default:
        return undefined;
    }
  }

  // --- INSERT, UPDATE, DELETE, MERGE ... RETURNING -------------------------------------------

  /**
   * A writing statement: its write lineage, and the rows RETURNING gives (undefined without
   * one). What its walk reads (WHERE, the join conditions, the query's clauses, its CTEs)
   * decides which rows it writes; a statement that returns nothing adds none of it, nor its
   * functions, to the enclosing statement's result.
   */
  #dml(type: string, f: Obj, parent: Scope | undefined): QueryResult | undefined {
    const rv = rangeVar(f['relation']);
    if (rv === undefined) return undefined;
    const returning = returningItems(f);
    const outerPredicates = this.predicates;
    const outerFunctions = this.functions;
    const indirect = new Acc();
    this.predicates = indirect;
    if (returning.length === 0) this.functions = new Acc();
    const table = text(rv['relname']) ?? '';
    const schema = text(rv['schemaname']);
    const write = new WriteTarget(schema, table, indirect);

    const scope = new Scope(parent);
    this.#with(f['withClause'], scope);
    const alias = aliasName(rv['alias']);
    const known = this.#known(schema, table);
    const assigned = new Assigned();
    const targetRel = (name: string, qualifiedOnly: boolean, values = assigned, proposedRow = false): TableRel =>
      new TableRel(table, schema, name, alias === undefined && name === table ? schema : undefined, known, [], values, qualifiedOnly, proposedRow);
    const target = targetRel(alias ?? table, false);

    if (type === 'InsertStmt') {
      // The query's rows are written; RETURNING gives them back.
      const sel = selectBody(f['selectStmt']);
      const rows = sel === undefined ? NO_ROWS : this.query(sel, scope);
      const cols = list(f['cols']);
      // The proposed row (`excluded` in ON CONFLICT) is what the query gives.
      const proposed = new Assigned();
      proposed.active = true;
      this.#assignPositional(proposed, cols.map((c) => text(as(c, 'ResTarget')?.['name']) ?? ''), rows, known);
      assigned.include(proposed);
      this.#inserted(write, cols, rows, known, sel === undefined);
      scope.rels.push(target);
      scope.items.push({ kind: 'rel', rel: target });
      const conflict = f['onConflictClause'];
      if (isObj(conflict)) {
        scope.rels.push(targetRel('excluded', true, proposed, true));
        for (const [name, values] of this.#assignments(list(conflict['targetList']), scope, assigned)) write.column(name, values);
        within(this.predicates, Flow.Filter, () => this.expr(conflict['whereClause'], scope, this.predicates));
      }
    } else {
      scope.rels.push(target);
      scope.items.push({ kind: 'rel', rel: target });
      for (const item of list(type === 'DeleteStmt' ? f['usingClause'] : f['fromClause'])) this.#addFromItem(item, scope);
      if (type === 'UpdateStmt') {
        for (const [name, values] of this.#assignments(list(f['targetList']), scope, assigned)) write.column(name, values);
      }
      if (type === 'MergeStmt') this.#merge(f, scope, assigned, known, write);
      this.#where(f['whereClause'], scope);
    }

    this.writes.set(f, write);
    this.predicates = outerPredicates;
    this.functions = outerFunctions;
    if (returning.length === 0) return undefined;
    within(outerPredicates, Flow.Identity, () => outerPredicates.merge(indirect));

    // RETURNING old.* / new.* (PostgreSQL 18), possibly renamed.
    let oldName = 'old';
    let newName = 'new';
    const clause = f['returningClause'];
    for (const o of list(isObj(clause) ? clause['options'] : undefined)) {
      const opt = as(o, 'ReturningOption');
      const value = text(opt?.['value']);
      if (value === undefined) continue;
      if (opt?.['option'] === 'RETURNING_OPTION_OLD') oldName = value;
      else newName = value;
    }
    scope.rels.push(targetRel(oldName, true), targetRel(newName, true));
    assigned.active = true;
    return this.#targetList(returning, scope);
  }

  /**
   * MERGE: ON joins the source to the target (JOIN); a WHEN condition decides which rows an
   * action writes (FILTER); UPDATE SET and INSERT write columns.
   */
  #merge(f: Obj, scope: Scope, assigned: Assigned, known: readonly string[] | undefined, write: WriteTarget): void {
    this.#addFromItem(f['sourceRelation'], scope);
    within(this.predicates, Flow.Join, () => this.expr(f['joinCondition'], scope, this.predicates));
    for (const w of list(f['mergeWhenClauses'])) {
      const clause = as(w, 'MergeWhenClause');
      if (clause === undefined) continue;
      within(this.predicates, Flow.Filter, () => this.expr(clause['condition'], scope, this.predicates));
      if (clause['commandType'] === 'CMD_INSERT') {
        const values = list(clause['values']).map((v): Col => {
          const acc = new Acc();
          this.expr(v, scope, acc);
          return { name: '', acc, direct: false };
        });
        const targets = list(clause['targetList']);
        const cols = targets.map((c) => text(as(c, 'ResTarget')?.['name']) ?? '');
        const rows: QueryResult = { columns: values, all: union(...values.map((v) => v.acc)) };
        this.#assignPositional(assigned, cols, rows, known);
        // INSERT DEFAULT VALUES writes no value from anywhere.
        if (values.length > 0) this.#inserted(write, targets, rows, known, false);
      } else {
        for (const [name, values] of this.#assignments(list(clause['targetList']), scope, assigned)) write.column(name, values);
      }
    }
  }

  /**
   * Columns an INSERT writes: those listed, else the table's (when the catalog is known), else
   * positions `$1`, `$2` ... of the query's columns; none for DEFAULT VALUES without a catalog.
   */
  #inserted(write: WriteTarget, cols: readonly unknown[], rows: QueryResult, known: readonly string[] | undefined, defaults: boolean): void {
    if (cols.length > 0) {
      cols.forEach((c, i) => {
        const rt = as(c, 'ResTarget');
        const values = rows.columns?.[i]?.acc ?? rows.all;
        write.column(text(rt?.['name']) ?? '', list(rt?.['indirection']).length > 0 ? this.#partial(values) : values);
      });
      return;
    }
    if (defaults) {
      for (const name of known ?? []) write.column(name);
      return;
    }
    if (rows.columns === undefined) {
      write.unknown(rows.all);
      return;
    }
    rows.columns.forEach((c, i) => {
      if (known === undefined) write.column(`$${i + 1}`, c.acc, true);
      else if (known[i] !== undefined) write.column(known[i]!, c.acc);
      else write.unknown(c.acc);
    });
  }

  /** A value written into part of a column (`a[i] = x`, `c.f = x`): it is transformed into the column. */
  #partial(values: SourceSet): Acc {
    const acc = new Acc();
    acc.mode = Flow.Transformation;
    acc.merge(values);
    return acc;
  }

  /**
   * `SET a = x, (b, c) = (SELECT ...)`: the values written into each column. `assigned` gets
   * what RETURNING may return for a column (a multi-column source entirely); the answer, each
   * column with the values that go into it (for a multi-column source, its own position).
   */
  #assignments(items: readonly unknown[], scope: Scope, assigned: Assigned): [string, SourceSet][] {
    const out: [string, SourceSet][] = [];
    for (const item of items) {
      const rt = as(item, 'ResTarget');
      if (rt === undefined) continue;
      const val = rt['val'];
      const m = as(val, 'MultiAssignRef');
      let acc: Acc;
      let own: SourceSet;
      if (m !== undefined) {
        const src = m['source'];
        const at = typeof m['colno'] === 'number' ? m['colno'] - 1 : -1;
        const sub = as(src, 'SubLink');
        const row = as(src, 'RowExpr');
        if (sub !== undefined && (sub['subLinkType'] === 'EXPR_SUBLINK' || sub['subLinkType'] === 'MULTIEXPR_SUBLINK')) {
          const result = this.query(selectBody(sub['subselect']) ?? {}, scope);
          acc = union(result.all);
          own = result.columns?.[at]?.acc ?? result.all;
        } else if (row !== undefined) {
          const values = list(row['args']).map((a) => {
            const v = new Acc();
            this.expr(a, scope, v);
            return v;
          });
          acc = union(...values);
          own = values[at] ?? acc;
        } else {
          acc = new Acc();
          this.expr(src, scope, acc);
          own = acc;
        }
      } else {
        acc = new Acc();
        this.expr(val, scope, acc);
        own = acc;
      }
      const name = text(rt['name']) ?? '';
      assigned.add(name, acc);
      const indirection = list(rt['indirection']);
      if (indirection.length > 0) {
        // `SET a[i] = x`: x goes into the column, at a place the subscripts choose.
        const part = this.#partial(own);
        this.expr(indirection, scope, part);
        own = part;
      }
      out.push([name, own]);
    }
    return out;
  }

  /** Rows inserted into the target columns `cols` (all of them, in order, when empty). */
  #assignPositional(assigned: Assigned, cols: readonly string[], rows: QueryResult, known: readonly string[] | undefined): void {
    const names = cols.length > 0 ? cols : known;
    if (names === undefined) {
      assigned.any.merge(rows.all);
      return;
    }
    names.forEach((name, i) => {
      const col = rows.columns?.[i];
      assigned.add(name, col === undefined ? rows.all : col.acc);
    });
  }

  // --- queries -------------------------------------------------------------------------------

  query(f: Obj, parent: Scope | undefined, cteParent: Scope | undefined = parent): QueryResult {
    const scope = new Scope(parent, cteParent);
    this.#with(f['withClause'], scope);
    // Each clause's columns go into the predicates as what the clause does with them.
    const p = this.predicates;
    const mode = p.mode;
    const op = f['op'];
    let result: QueryResult;
    if (op !== undefined && op !== 'SETOP_NONE') {
      result = this.#setOperation(f, scope);
    } else if (list(f['valuesLists']).length > 0) {
      result = this.#values(list(f['valuesLists']), scope);
    } else {
      for (const w of list(f['windowClause'])) {
        const def = as(w, 'WindowDef');
        const name = text(def?.['name']);
        if (def !== undefined && name !== undefined) scope.windows.set(name, def);
      }
      for (const item of list(f['fromClause'])) this.#addFromItem(item, scope);
      result = this.#targetList(list(f['targetList']), scope);
      this.#where(f['whereClause'], scope);
      p.mode = compose(mode, Flow.GroupBy);
      for (const g of list(f['groupClause'])) this.#groupItem(g, scope, result);
      p.mode = compose(mode, Flow.Filter);
      this.expr(f['havingClause'], scope, p);
      p.mode = compose(mode, Flow.Window);
      for (const w of list(f['windowClause'])) this.#window(as(w, 'WindowDef'), scope, p, new Set());
      // DISTINCT ON keeps one row per value: a grouping.
      p.mode = compose(mode, Flow.GroupBy);
      for (const d of list(f['distinctClause'])) this.#byOutput(d, scope, result, false);
    }
    const outputOnly = op !== undefined && op !== 'SETOP_NONE' ? true : list(f['valuesLists']).length > 0;
    p.mode = compose(mode, Flow.Sort);
    for (const s of list(f['sortClause'])) this.#byOutput(as(s, 'SortBy')?.['node'], scope, result, outputOnly);
    p.mode = compose(mode, Flow.Filter);
    this.expr(f['limitOffset'], scope, p);
    this.expr(f['limitCount'], scope, p);
    p.mode = mode;
    return result;
  }

  /**
   * UNION, INTERSECT, EXCEPT: column i is column i of any branch. A chain of set operations is
   * taken as one list of branches, so that long chains do not merge again at every level.
   */
  #setOperation(f: Obj, scope: Scope): QueryResult {
    const branches: QueryResult[] = [];
    const collect = (node: Obj): void => {
      const op = node['op'];
      const plain = node['withClause'] === undefined && list(node['sortClause']).length === 0 && node['limitCount'] === undefined && node['limitOffset'] === undefined;
      if (node !== f && (op === undefined || op === 'SETOP_NONE' || !plain)) {
        branches.push(this.query(node, scope));
        return;
      }
      collect(selectBody(node['larg']) ?? {});
      collect(selectBody(node['rarg']) ?? {});
    };
    collect(f);
    const all = union(...branches.map((b) => b.all));
    const shape = branches.find((b) => b.columns !== undefined)?.columns;
    if (shape === undefined) return { columns: undefined, all };
    const columns = shape.map((c, i): Col => {
      const acc = new Acc();
      for (const b of branches) {
        const col = b.columns?.length === shape.length ? b.columns[i] : undefined;
        // A branch whose positions are not known may have any of its columns here.
        acc.merge(col === undefined ? b.all : col.acc);
      }
      return { name: branches[0]?.columns?.[i]?.name ?? c.name, acc, direct: false };
    });
    return { columns, all };
  }

  #values(rows: readonly unknown[], scope: Scope): QueryResult {
    const accs: Acc[] = [];
    const direct: boolean[] = [];
    for (const row of rows) {
      const items = list(as(row, 'List')?.['items'] ?? row);
      items.forEach((e, i) => {
        const v = this.#value(e, scope);
        if (accs[i] === undefined) {
          accs[i] = new Acc();
          direct[i] = rows.length === 1 && v.direct;
        }
        accs[i]!.merge(v.acc);
      });
    }
    const columns = accs.map((acc, i): Col => ({ name: `column${i + 1}`, acc, direct: direct[i] ?? false }));
    return { columns, all: union(...accs) };
  }

  /**
   * ORDER BY and DISTINCT ON: an output column by position or name, else an expression over the
   * input. `outputOnly` for a set operation or VALUES, whose ORDER BY sees only the output.
   */
  #byOutput(node: unknown, scope: Scope, result: QueryResult, outputOnly: boolean): void {
    if (isPosition(node)) {
      this.predicates.merge(result.all);
      return;
    }
    const name = singleName(node);
    const found = name === undefined ? undefined : result.columns !== undefined ? findByName(result.columns, name) : result.lookup?.(name);
    if (found?.definite === true) {
      this.predicates.merge(found.acc);
      return;
    }
    // A set operation's or VALUES' ORDER BY can only compute from the output columns.
    if (outputOnly) this.predicates.merge(result.all);
    this.expr(node, scope, this.predicates);
  }

  /**
   * WHERE: FILTER, except a conjunct that compares two columns qualified with different
   * relations (`a.id = b.a_id`, the join conditions of `FROM a, b` or UPDATE ... FROM): JOIN.
   */
  #where(node: unknown, scope: Scope): void {
    if (node === undefined) return;
    const p = this.predicates;
    let rels = 0;
    for (let s: Scope | undefined = scope; s !== undefined && rels < 2; s = s.parent) rels += s.rels.length;
    if (rels < 2) {
      within(p, Flow.Filter, () => this.expr(node, scope, p));
      return;
    }
    for (const c of conjuncts(node)) within(p, this.#joins(c, scope) ? Flow.Join : Flow.Filter, () => this.expr(c, scope, p));
  }

  /** Whether a condition compares two columns qualified with different relations (`a.id = b.a_id`). */
  #joins(node: unknown, scope: Scope): boolean {
    const e = as(node, 'A_Expr');
    const kind = e?.['kind'];
    if (e === undefined || (kind !== 'AEXPR_OP' && kind !== 'AEXPR_NOT_DISTINCT' && kind !== 'AEXPR_DISTINCT')) return false;
    const left = this.#qualifiedRelation(e['lexpr'], scope);
    if (left === undefined) return false;
    const right = this.#qualifiedRelation(e['rexpr'], scope);
    return right !== undefined && right !== left;
  }

  /** The relation a qualified column reference (`t.c`, `s.t.c`, possibly cast) names, when it names one. */
  #qualifiedRelation(node: unknown, scope: Scope): Relation | undefined {
    const ref = as(as(node, 'TypeCast')?.['arg'] ?? node, 'ColumnRef');
    if (ref === undefined) return undefined;
    const fields = list(ref['fields']);
    if (fields.length < 2 || fields.length > 3) return undefined;
    const quals: string[] = [];
    for (let i = 0; i < fields.length - 1; i++) {
      const n = stringNode(fields[i]);
      if (n === undefined) return undefined;
      quals.push(n);
    }
    if (stringNode(fields[fields.length - 1]) === undefined) return undefined;
    const rels = this.#relsNamed(quals, scope);
    return rels.length === 1 ? rels[0] : undefined;
  }

  /** GROUP BY: an input column first, an output column by position or name otherwise. */
  #groupItem(node: unknown, scope: Scope, result: QueryResult): void {
    const set = as(node, 'GroupingSet');
    if (set !== undefined) {
      for (const c of list(set['content'])) this.#groupItem(c, scope, result);
      return;
    }
    const row = as(node, 'RowExpr');
    if (row !== undefined) {
      for (const c of list(row['args'])) this.#groupItem(c, scope, result);
      return;
    }
    if (isPosition(node)) {
      this.predicates.merge(result.all);
      return;
    }
    const name = singleName(node);
    if (name !== undefined) {
      const found = result.columns !== undefined ? findByName(result.columns, name) : result.lookup?.(name);
      if (found?.definite === true) {
        this.predicates.merge(found.acc);
        // And the input column of that name, if there may be one.
        this.#unqualified(name, scope, this.predicates, false);
        return;
      }
    }
    this.expr(node, scope, this.predicates);
  }

  #with(w: unknown, scope: Scope): void {
    if (!isObj(w)) return;
    const ctes: Obj[] = [];
    for (const c of list(w['ctes'])) {
      const cte = as(c, 'CommonTableExpr');
      if (cte !== undefined) ctes.push(cte);
    }
    if (w['recursive'] !== true) {
      for (const cte of ctes) scope.ctes.set(text(cte['ctename']) ?? '', { result: this.#cteBody(cte, scope), touched: false });
      return;
    }
    // WITH RECURSIVE: a CTE may name itself or a later one. Every name starts empty; the
    // bodies are walked again with what the previous round found until nothing grows.
    const bindings = ctes.map((cte) => {
      const b: CteBinding = { result: { columns: undefined, all: new Acc() }, touched: false };
      scope.ctes.set(text(cte['ctename']) ?? '', b);
      return b;
    });
    for (let round = 0; ; round++) {
      let changed = false;
      for (const b of bindings) b.touched = false;
      ctes.forEach((cte, i) => {
        const b = bindings[i]!;
        const next = round === 0 ? this.#cteBody(cte, scope) : grow(b.result, this.#cteBody(cte, scope));
        if (round === 0 || sizeOf(next) !== sizeOf(b.result) || (next.columns === undefined) !== (b.result.columns === undefined)) changed = true;
        b.result = next;
      });
      if (!bindings.some((b) => b.touched)) break;
      if (round > 0 && !changed) break;
      if (round >= MAX_ROUNDS) {
        // Not settled: every column may carry anything the CTE carries.
        for (const b of bindings) {
          const all = union(b.result.all);
          b.result = { columns: b.result.columns?.map((c) => ({ ...c, acc: all, direct: false })), all };
        }
        break;
      }
    }
    for (const b of bindings) b.touched = false;
  }

  #cteBody(cte: Obj, scope: Scope): QueryResult {
    const result = this.#nested(cte['ctequery'], scope) ?? NO_ROWS;
    const aliases = nameList(cte['aliascolnames']) ?? [];
    let columns = result.columns === undefined ? undefined : renamed(result.columns, aliases);
    // SEARCH and CYCLE add columns computed from the named ones.
    const extra: Col[] = [];
    const from = (names: unknown): Acc => {
      const acc = new Acc();
      acc.mode = Flow.Transformation;
      for (const n of nameList(names) ?? []) {
        const found = columns !== undefined ? findByName(columns, n) : undefined;
        acc.merge(found?.acc ?? result.all);
      }
      return acc;
    };
    const search = cte['search_clause'];
    if (isObj(search)) extra.push({ name: text(search['search_seq_column']) ?? '', acc: from(search['search_col_list']), direct: false });
    const cycle = cte['cycle_clause'];
    if (isObj(cycle)) {
      const acc = from(cycle['cycle_col_list']);
      extra.push({ name: text(cycle['cycle_mark_column']) ?? '', acc, direct: false });
      extra.push({ name: text(cycle['cycle_path_column']) ?? '', acc, direct: false });
    }
    if (extra.length > 0 && columns !== undefined) columns = [...columns, ...extra];
    const all = union(result.all, ...extra.map((c) => c.acc));
    if (columns !== undefined) return { columns, all };
    const lookup = result.lookup;
    return {
      columns: undefined,
      all,
      lookup: (name) => (aliases.includes(name) || lookup === undefined ? { acc: all, direct: false, definite: aliases.includes(name) } : lookup(name)),
    };
  }

  // --- FROM ----------------------------------------------------------------------------------

  #addFromItem(node: unknown, scope: Scope): void {
    const item = this.#fromItem(node, scope);
    if (item !== undefined) scope.items.push(item);
  }

  /** A FROM item: its relations join `scope.rels` (so that later items and ON see them). */
  #fromItem(node: unknown, scope: Scope): Item | undefined {
    const n = unwrap(node);
    if (n === undefined) return undefined;
    const [type, f] = n;
    const rel = (r: Relation): Item => {
      scope.rels.push(r);
      return { kind: 'rel', rel: r };
    };
    switch (type) {
      case 'RangeVar': {
        const table = text(f['relname']) ?? '';
        const schema = text(f['schemaname']);
        const alias = aliasName(f['alias']);
        const aliases = aliasColumns(f['alias']);
        const cte = schema === undefined ? scope.cte(table) : undefined;
        if (cte !== undefined) {
          cte.touched = true;
          return rel(new DerivedRel(alias ?? table, cte.result, aliases));
        }
        return rel(new TableRel(table, schema, alias ?? table, alias === undefined ? schema : undefined, this.#known(schema, table), aliases, undefined));
      }
      case 'RangeSubselect': {
        const sub = selectBody(f['subquery']) ?? {};
        // A LATERAL subquery sees the items before it; any other only the enclosing levels.
        const result = f['lateral'] === true ? this.query(sub, scope) : this.query(sub, scope.parent, scope);
        return rel(new DerivedRel(aliasName(f['alias']), result, aliasColumns(f['alias'])));
      }
      case 'JoinExpr':
        return this.#join(f, scope);
      case 'RangeFunction':
        return rel(this.#rangeFunction(f, scope));
      case 'RangeTableSample': {
        const item = this.#fromItem(f['relation'], scope);
        // TABLESAMPLE picks rows.
        within(this.predicates, Flow.Filter, () => {
          this.expr(f['args'], scope, this.predicates);
          this.expr(f['repeatable'], scope, this.predicates);
        });
        return item;
      }
      case 'RangeTableFunc': {
        // XMLTABLE: the columns are listed; each comes from the document and the paths.
        const acc = new Acc();
        acc.mode = Flow.Transformation;
        this.expr(f['docexpr'], scope, acc);
        this.expr(f['rowexpr'], scope, acc);
        this.expr(f['namespaces'], scope, acc);
        const names: string[] = [];
        for (const c of list(f['columns'])) {
          const col = as(c, 'RangeTableFuncCol');
          if (col === undefined) continue;
          names.push(text(col['colname']) ?? '');
          this.expr(col['colexpr'], scope, acc);
          this.expr(col['coldefexpr'], scope, acc);
        }
        return rel(this.#functionRel(aliasName(f['alias']) ?? 'xmltable', names, aliasColumns(f['alias']), acc));
      }
      case 'JsonTable': {
        const acc = new Acc();
        acc.mode = Flow.Transformation;
        this.expr(f['context_item'], scope, acc);
        this.expr(f['passing'], scope, acc);
        const names: string[] = [];
        const collect = (cols: unknown): void => {
          for (const c of list(cols)) {
            const col = as(c, 'JsonTableColumn');
            if (col === undefined) continue;
            if (col['coltype'] === 'JTC_NESTED') collect(col['columns']);
            else names.push(text(col['name']) ?? '');
            this.expr(col['on_empty'], scope, acc);
            this.expr(col['on_error'], scope, acc);
          }
        };
        collect(f['columns']);
        this.expr(f['on_error'], scope, acc);
        return rel(this.#functionRel(aliasName(f['alias']) ?? 'json_table', names, aliasColumns(f['alias']), acc));
      }
      default: {
        // Not understood: its values may come from anything in scope.
        const acc = new Acc();
        acc.mode = Flow.Transformation;
        this.expr(f, scope, acc);
        wholeScope(scope, acc);
        return rel(new FunctionRel(aliasName(f['alias']), undefined, aliasColumns(f['alias']), acc));
      }
    }
  }

  #functionRel(name: string, names: readonly string[], aliases: readonly string[], acc: Acc): FunctionRel {
    return new FunctionRel(name, renamed(names.map((n) => ({ name: n, acc, direct: false })), aliases).map((c) => c.name), aliases, acc);
  }

  #join(f: Obj, scope: Scope): Item | undefined {
    const before = scope.rels.length;
    const left = this.#fromItem(f['larg'], scope);
    const right = this.#fromItem(f['rarg'], scope);
    if (left === undefined || right === undefined) return left ?? right;
    const leaves = scope.rels.slice(before).filter((r) => !(r instanceof JoinRel) && !(r instanceof UsingRel));
    const natural = f['isNatural'] === true;
    const using = natural ? undefined : (nameList(f['usingClause']) ?? []);
    const item: Item = { kind: 'join', left, right, using, leaves };
    const p = this.predicates;
    const saved = p.mode;
    p.mode = compose(saved, Flow.Join);
    this.expr(f['quals'], scope, p);
    // USING and NATURAL compare the common columns of both sides.
    let compared = using;
    if (natural) {
      const l = expandItem(left);
      const r = expandItem(right);
      if (l !== undefined && r !== undefined) compared = l.map((c) => c.name).filter((n) => r.some((c) => c.name === n));
      else {
        itemWhole(left, this.predicates);
        itemWhole(right, this.predicates);
      }
    }
    for (const name of compared ?? []) {
      for (const side of [left, right]) {
        const found = itemColumn(side, name);
        if (found !== undefined) this.predicates.merge(found.acc);
      }
    }
    p.mode = saved;
    const usingAlias = aliasName(f['join_using_alias']);
    if (usingAlias !== undefined && using !== undefined) scope.rels.push(new UsingRel(usingAlias, item, using));
    const alias = aliasName(f['alias']);
    if (alias !== undefined) scope.rels.push(new JoinRel(alias, item, aliasColumns(f['alias'])));
    return item;
  }

  /** `FROM f(x) AS t(a, b)`, `ROWS FROM (...)`, `unnest(...) WITH ORDINALITY`. */
  #rangeFunction(f: Obj, scope: Scope): FunctionRel {
    const acc = new Acc();
    acc.mode = Flow.Transformation;
    let names: string[] | undefined = [];
    let firstName: string | undefined;
    const functions = list(f['functions']);
    for (const entry of functions) {
      const items = list(as(entry, 'List')?.['items'] ?? entry);
      const call = items[0];
      // Functions in FROM see the items before them (they are implicitly LATERAL).
      this.expr(call, scope, acc);
      const fc = as(call, 'FuncCall');
      const defs = list(items[1]).length > 0 ? list(items[1]) : functions.length === 1 ? list(f['coldeflist']) : [];
      const parts = fc === undefined ? [] : (nameList(fc['funcname']) ?? []).map((s) => s.toLowerCase());
      const base = parts[parts.length - 1];
      if (base !== undefined) firstName ??= base;
      let cols: readonly string[] | undefined;
      if (defs.length > 0) cols = defs.map((d) => text(as(d, 'ColumnDef')?.['colname']) ?? '');
      else if (base !== undefined && fc !== undefined) {
        const known = parts.length === 1 || parts[0] === 'pg_catalog' ? FUNCTION_COLUMNS.get(base) : undefined;
        cols = known?.(list(fc['args']).length, base);
      }
      names = cols === undefined || names === undefined ? undefined : [...names, ...cols];
    }
    const alias = aliasName(f['alias']);
    const aliases = aliasColumns(f['alias']);
    if (names !== undefined && f['ordinality'] === true) names.push('ordinality');
    // A function returning a single scalar column takes the alias as the column's name.
    if (names !== undefined && names.length === 1 && alias !== undefined && aliases.length === 0 && list(f['coldeflist']).length === 0) {
      const base = firstName;
      if (base !== undefined && base !== 'unnest' && FUNCTION_COLUMNS.get(base)?.(1, base)[0] === base) names = [alias];
    }
    const finalNames = names === undefined ? undefined : names.map((n, i) => aliases[i] ?? n);
    return new FunctionRel(alias ?? firstName, finalNames, aliases, acc);
  }

  // --- target lists --------------------------------------------------------------------------

  #targetList(items: readonly unknown[], scope: Scope): QueryResult {
    const columns: Col[] = [];
    let known = true;
    const all = new Acc();
    /** For unknown positions: how each entry answers a name. */
    const entries: ((name: string) => Found | undefined)[] = [];
    for (const item of items) {
      const rt = as(item, 'ResTarget');
      if (rt === undefined) continue;
      const val = rt['val'];
      const quals = starQualifier(val, (name) => this.#relsNamed([name], scope).length > 0);
      if (quals !== undefined) {
        const parts: { cols: readonly Col[] | undefined; whole: (acc: Acc) => void; find: (name: string) => Found | undefined }[] = [];
        if (quals.length === 0) {
          for (const it of scope.items) parts.push({ cols: expandItem(it), whole: (acc) => itemWhole(it, acc), find: (name) => itemColumn(it, name) });
        } else {
          const rels = this.#relsNamed(quals, scope);
          if (rels.length === 0) {
            const acc = new Acc();
            wholeScope(scope, acc);
            parts.push({ cols: undefined, whole: (a) => a.merge(acc), find: () => ({ acc, direct: false, definite: false }) });
          }
          for (const r of rels) parts.push({ cols: r.columns(), whole: (acc) => r.whole(acc), find: (name) => r.column(name) });
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
      const ind = as(val, 'A_Indirection');
      const indirection = ind === undefined ? [] : list(ind['indirection']);
      if (ind !== undefined && as(indirection[indirection.length - 1], 'A_Star') !== undefined) {
        // `(expr).*`: the fields of a composite value; how many is not known.
        const acc = new Acc();
        this.expr(ind, scope, acc);
        all.merge(acc);
        known = false;
        entries.push(() => ({ acc, direct: false, definite: false }));
        continue;
      }
      const v = this.#value(val, scope);
      const name = text(rt['name']) ?? figureName(val, (sub) => this.#firstName(sub))[0];
      const col: Col = { name, acc: v.acc, direct: v.direct };
      columns.push(col);
      all.merge(v.acc);
      entries.push((n) => (n === name ? { acc: col.acc, direct: col.direct, definite: true } : undefined));
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

  /** The name of a scalar subquery's column (without walking it again). */
  #firstName(sub: unknown): string | undefined {
    let body = selectBody(sub);
    while (body !== undefined && body['op'] !== undefined && body['op'] !== 'SETOP_NONE') body = selectBody(body['larg']);
    if (body === undefined) return undefined;
    const rt = as(list(body['targetList'])[0], 'ResTarget');
    if (rt === undefined) return list(body['valuesLists']).length > 0 ? 'column1' : undefined;
    const name = text(rt['name']) ?? figureName(rt['val'], (s) => this.#firstName(s));
    return typeof name === 'string' ? name : name[1] > 0 ? name[0] : undefined;
  }

  /** A value: its sources, and whether it is a plain column reference. */
  #value(node: unknown, scope: Scope): { acc: Acc; direct: boolean } {
    const acc = new Acc();
    const ref = as(node, 'ColumnRef');
    if (ref !== undefined) {
      const direct = this.#columnRef(ref, scope, acc);
      return { acc, direct };
    }
    this.expr(node, scope, acc);
    return { acc, direct: false };
  }

  // --- column references ---------------------------------------------------------------------

  /** Relations a qualified name (`t`, `s.t`, `db.s.t`) refers to, at the nearest level that has one. */
  #relsNamed(quals: readonly string[], scope: Scope): Relation[] {
    const name = quals[quals.length - 1]!;
    const schema = quals.length >= 2 ? quals[quals.length - 2] : undefined;
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      const found = s.rels.filter((r) => r.name === name && (schema === undefined || r.schema === undefined || r.schema === schema));
      if (found.length > 0) return found;
    }
    return [];
  }

  /** Resolves a ColumnRef into `acc`; true when it is a plain reference to column values. */
  #columnRef(ref: Obj, scope: Scope, acc: Acc): boolean {
    const fields = list(ref['fields']);
    const last = fields[fields.length - 1];
    const names: string[] = [];
    for (const x of fields) {
      const s = stringNode(x);
      if (s !== undefined) names.push(s);
    }
    if (as(last, 'A_Star') !== undefined) {
      // `t.*` (or `*`) inside an expression: the whole row, a composite value made of its columns.
      within(acc, Flow.Transformation, () => {
        if (names.length === 0) {
          for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
            if (s.items.length === 0) continue;
            for (const it of s.items) itemWhole(it, acc);
            break;
          }
          return;
        }
        const rels = this.#relsNamed(names, scope);
        if (rels.length === 0) wholeScope(scope, acc);
        for (const r of rels) r.whole(acc);
      });
      return false;
    }
    if (names.length === 0) {
      within(acc, Flow.Transformation, () => wholeScope(scope, acc));
      return false;
    }
    if (names.length === 1) return this.#unqualified(names[0]!, scope, acc);
    // `t.c`, `s.t.c`, `db.s.t.c`; else `t.c.field`, `s.t.c.field`.
    const tries: [quals: string[], column: string, direct: boolean][] = [];
    if (names.length <= 4) tries.push([names.slice(0, -1), names[names.length - 1]!, true]);
    if (names.length >= 3) tries.push([names.slice(0, -2), names[names.length - 2]!, false]);
    for (const [quals, column, isPlain] of tries) {
      const rels = this.#relsNamed(quals, scope);
      if (rels.length === 0) continue;
      let direct = isPlain;
      // `t.c.field`: a field of the column's value.
      const saved = acc.mode;
      if (!isPlain) acc.mode = compose(saved, Flow.Transformation);
      for (const r of rels) {
        const found = r.column(column);
        if (found !== undefined) {
          acc.merge(found.acc);
          direct &&= found.direct;
        } else if (r instanceof TableRel) {
          // The catalog does not list it (it may be newer than the catalog).
          acc.add(source(r.tableSchema, r.table, column));
        } else {
          within(acc, Flow.Transformation, () => r.whole(acc));
          direct = false;
        }
      }
      acc.mode = saved;
      return direct;
    }
    // `c.field`: a field of a composite column.
    within(acc, Flow.Transformation, () => this.#unqualified(names[0]!, scope, acc));
    return false;
  }

  /**
   * An unqualified column: at each level from the innermost, every relation that has (or may
   * have) it; a level where one certainly has it is the last. A relation's own name is its
   * whole row.
   */
  #unqualified(name: string, scope: Scope, acc: Acc, orAnyTable = true, field?: string): boolean {
    let direct = true;
    let any = false;
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      const definite: Found[] = [];
      const maybe: Found[] = [];
      const wholes: Relation[] = [];
      for (const r of s.rels) {
        if (r.qualifiedOnly) continue;
        // A join's columns are its leaves' (unless it renames them).
        if (r instanceof JoinRel && r.aliases.length === 0) continue;
        const found = r.column(name);
        if (found !== undefined) (found.definite ? definite : maybe).push(found);
        if (r.name === name) wholes.push(r);
      }
      if (definite.length > 0) {
        for (const f of definite) {
          acc.merge(f.acc);
          direct &&= f.direct;
        }
        return direct;
      }
      for (const f of maybe) {
        acc.merge(f.acc);
        direct &&= f.direct;
        any = true;
      }
      if (wholes.length > 0) {
        for (const r of wholes) {
          // `(t).field` is the column `field` of t.
          const f = field === undefined ? undefined : r.column(field);
          if (f === undefined) within(acc, Flow.Transformation, () => r.whole(acc));
          else acc.merge(f.acc);
        }
        return false;
      }
    }
    if (!any && orAnyTable) {
      // Nothing in scope has it (the catalog may be older than the table): any table might.
      direct = false;
      for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
        for (const r of s.rels) {
          if (r instanceof TableRel && !r.qualifiedOnly) acc.add(source(r.tableSchema, r.table, name));
        }
      }
    }
    return direct;
  }

  // --- expressions ---------------------------------------------------------------------------

  /** Adds to `acc` the sources of every value inside `node`, and records the functions it calls. */
  expr(node: unknown, scope: Scope, acc: Acc): void {
    if (Array.isArray(node)) {
      for (const x of node) this.expr(x, scope, acc);
      return;
    }
    if (!isObj(node)) return;
    const n = unwrap(node);
    if (n === undefined) {
      // An inlined struct: its fields.
      for (const key in node) this.expr(node[key], scope, acc);
      return;
    }
    const [type, f] = n;
    if (LEAVES.has(type)) return;
    switch (type) {
      case 'ColumnRef':
        this.#columnRef(f, scope, acc);
        return;
      case 'FuncCall': {
        const name = funcName(f);
        acc.fn(name);
        this.functions.fn(name);
        const ordered = f['agg_within_group'] === true;
        const saved = acc.mode;
        acc.mode = compose(saved, isAggregate(f) ? Flow.Aggregation : Flow.Transformation);
        this.expr(f['args'], scope, acc);
        // WITHIN GROUP (ORDER BY x): x is what an ordered-set aggregate aggregates.
        if (ordered) this.expr(f['agg_order'], scope, acc);
        acc.mode = saved;
        // string_agg(x, ',' ORDER BY y): y orders the values; FILTER (WHERE z) picks the rows.
        if (!ordered && f['agg_order'] !== undefined) within(acc, Flow.Sort, () => this.expr(f['agg_order'], scope, acc));
        if (f['agg_filter'] !== undefined) within(acc, Flow.Filter, () => this.expr(f['agg_filter'], scope, acc));
        // The window decides which rows a value is computed over: it is read, and it shapes the value.
        const over = f['over'];
        if (isObj(over)) {
          within(acc, Flow.Window, () => this.#window(over, scope, acc, new Set()));
          within(this.predicates, Flow.Window, () => this.#window(over, scope, this.predicates, new Set()));
        }
        return;
      }
      case 'SubLink': {
        const kind = f['subLinkType'];
        const sub = selectBody(f['subselect']) ?? {};
        if (kind === 'EXISTS_SUBLINK') {
          // EXISTS reveals whether rows match; its value carries none of them.
          within(this.predicates, Flow.Filter, () => this.predicates.merge(this.query(sub, scope).all));
          return;
        }
        if (kind === 'ANY_SUBLINK' || kind === 'ALL_SUBLINK' || kind === 'ROWCOMPARE_SUBLINK') {
          // IN/ANY/ALL compare the operand with the subquery's column: the value carries both,
          // and the subquery's column is read as by a WHERE.
          within(this.predicates, Flow.Filter, () => {
            const result = this.query(sub, scope);
            within(acc, Flow.Transformation, () => {
              this.expr(f['testexpr'], scope, acc);
              acc.merge(result.all);
            });
            this.predicates.merge(result.all);
          });
          return;
        }
        // Scalar and ARRAY subqueries return their column.
        const result = this.query(sub, scope);
        within(acc, kind === 'ARRAY_SUBLINK' ? Flow.Transformation : Flow.Identity, () => {
          this.expr(f['testexpr'], scope, acc);
          acc.merge(result.all);
        });
        return;
      }
      case 'SelectStmt':
        // A query inside an expression (JSON_ARRAY(SELECT ...)): its rows.
        acc.merge(this.query(f, scope).all);
        return;
      case 'WindowDef':
        within(acc, Flow.Window, () => this.#window(f, scope, acc, new Set()));
        return;
      case 'A_Indirection':
        within(acc, Flow.Transformation, () => {
          const ref = as(f['arg'], 'ColumnRef');
          const fields = ref === undefined ? [] : list(ref['fields']);
          const indirection = list(f['indirection']);
          const name = fields.length === 1 ? stringNode(fields[0]) : undefined;
          const field = stringNode(indirection[0]);
          if (name !== undefined && field !== undefined) {
            // `(c).email`: a field of a column, or a column of the relation c.
            this.#unqualified(name, scope, acc, true, field);
            this.expr(indirection, scope, acc);
            return;
          }
          this.expr(f['arg'], scope, acc);
          this.expr(indirection, scope, acc);
        });
        return;
      case 'CaseExpr':
        // `CASE x WHEN ...` and the WHEN conditions decide which value is taken.
        for (const key in f) {
          const v = f[key];
          if (key === 'arg') within(acc, Flow.Conditional, () => this.expr(v, scope, acc));
          else if (key === 'args') {
            for (const w of list(v)) {
              const when = as(w, 'CaseWhen');
              if (when === undefined) within(acc, Flow.Transformation, () => this.expr(w, scope, acc));
              else {
                for (const k in when) {
                  within(acc, k === 'expr' ? Flow.Conditional : Flow.Transformation, () => this.expr(when[k], scope, acc));
                }
              }
            }
          } else within(acc, Flow.Transformation, () => this.expr(v, scope, acc));
        }
        return;
      case 'JsonObjectAgg':
      case 'JsonArrayAgg':
        for (const key in f) {
          const v = f[key];
          if (key === 'constructor' && isObj(v)) {
            for (const k in v) {
              const flow = k === 'agg_filter' ? Flow.Filter : k === 'agg_order' ? Flow.Sort : k === 'over' ? Flow.Window : Flow.Transformation;
              within(acc, flow, () => this.expr(v[k], scope, acc));
            }
          } else within(acc, key === 'arg' ? Flow.Aggregation : Flow.Transformation, () => this.expr(v, scope, acc));
        }
        return;
      default: {
        // An expression transforms what it reads; a wrapper passes it on as it is.
        const saved = acc.mode;
        if (!PASS_THROUGH.has(type)) acc.mode = compose(saved, Flow.Transformation);
        if (!PLAIN_EXPRESSIONS.has(type)) {
          // Not understood: it may draw on anything in scope.
          within(acc, Flow.Transformation, () => wholeScope(scope, acc));
        }
        for (const key in f) this.expr(f[key], scope, acc);
        acc.mode = saved;
      }
    }
  }

  /** A window: its PARTITION BY and ORDER BY (and those of the window it names). */
  #window(def: Obj | undefined, scope: Scope, acc: Acc, seen: Set<string>): void {
    if (def === undefined) return;
    this.expr(def['partitionClause'], scope, acc);
    this.expr(def['orderClause'], scope, acc);
    this.expr(def['startOffset'], scope, acc);
    this.expr(def['endOffset'], scope, acc);
    for (const key of ['refname', 'name']) {
      const ref = text(def[key]);
      if (ref === undefined || seen.has(ref)) continue;
      seen.add(ref);
      for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
        const named = s.windows.get(ref);
        if (named !== undefined && named !== def) {
          this.#window(named, scope, acc, seen);
          break;
        }
      }
    }
  }
}

/**
 * The qualifier of `*` / `t.*` in a target list (`[]` for a bare `*`), or undefined when the
 * entry is not one. `(t).*` of a relation t is `t.*`.
 */
function starQualifier(val: unknown, isRelation: (name: string) => boolean): string[] | undefined {
  const ref = as(val, 'ColumnRef');
  if (ref !== undefined) {
    const fields = list(ref['fields']);
    if (as(fields[fields.length - 1], 'A_Star') === undefined) return undefined;
    return fields.slice(0, -1).map((x) => stringNode(x) ?? '');
  }
  const ind = as(val, 'A_Indirection');
  if (ind === undefined) return undefined;
  const indirection = list(ind['indirection']);
  const arg = as(ind['arg'], 'ColumnRef');
  const fields = arg === undefined ? [] : list(arg['fields']);
  const name = fields.length === 1 ? stringNode(fields[0]) : undefined;
  if (indirection.length === 1 && as(indirection[0], 'A_Star') !== undefined && name !== undefined && isRelation(name)) return [name];
  return undefined;
}

/** Whole rows of every relation in scope, at every level. */
function wholeScope(scope: Scope, acc: Acc): void {
  for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) for (const r of s.rels) r.whole(acc);
}

/** A result whose columns come from no table (EXPLAIN, SHOW). */
function fixed(names: readonly string[]): ResultLineage {
  return { columns: names.map((name) => ({ name, sources: [], direct: false, functions: [] })), all: [], predicates: [], functions: [] };
}


// --- fallback ------------------------------------------------------------------------------------

/** Whether a statement sends rows to the client, from its top level only. */
function returnsRows(stmt: unknown): boolean {
  const n = unwrap(stmt);
  if (n === undefined) return false;
  const [type, f] = n;
  switch (type) {
    case 'SelectStmt':
      return !isObj(f['intoClause']);
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return returningItems(f).length > 0;
    case 'DeclareCursorStmt':
    case 'ExplainStmt':
    case 'VariableShowStmt':
    case 'CallStmt':
      return true;
    case 'CopyStmt':
      return f['is_from'] !== true && f['is_program'] !== true && typeof f['filename'] !== 'string';
    default:
      return false;
  }
}

/**
 * When the walk cannot finish (a tree too deep for it): positions unknown, and the result may
 * carry any column of any table the statement names. Iterative, so depth does not matter.
 */
function fallback(stmt: unknown): ResultLineage | undefined {
  if (!returnsRows(stmt)) return undefined;
  const tables = new Acc();
  const functions = new Acc();
  for (const v of objectsIn(stmt)) {
    if (typeof v['relname'] === 'string') tables.add(source(text(v['schemaname']), v['relname'], '*'));
    const fc = as(v, 'FuncCall');
    if (fc !== undefined) functions.fn(funcName(fc));
  }
  return { all: tables.sources, predicates: [...tables.sources], functions: functions.functions };
}

// --- API -----------------------------------------------------------------------------------------

/** What one statement returns and what it writes. */
export interface StatementLineage {
  /** Lineage of the rows it returns to the client; absent when it returns none. */
  readonly lineage?: ResultLineage;
  /** One entry per table it writes rows to; absent when it writes none. */
  readonly writes?: readonly WriteLineage[];
}

/**
 * Result and write lineage of one parsed statement (a node from `parseSql(...).stmts[i].stmt`),
 * from one walk. Never throws.
 */
export function statementLineage(stmt: unknown, options: LineageOptions = {}): StatementLineage {
  try {
    const walker = new LineageWalker(options);
    const out: { lineage?: ResultLineage; writes?: readonly WriteLineage[] } = {};
    const lineage = walker.statement(stmt);
    if (lineage !== undefined) out.lineage = lineage;
    const writes = walker.writes.size === 0 ? undefined : writeLineage([...walker.writes.values()]);
    if (writes !== undefined) out.writes = writes;
    return out;
  } catch {
    // A tree too deep for the walk (RangeError), or a `columnsOf` that failed.
    let lineage: ResultLineage | undefined;
    let writes: readonly WriteLineage[] | undefined;
    try {
      lineage = fallback(stmt);
    } catch {
      lineage = { all: [], predicates: [], functions: [] };
    }
    try {
      writes = fallbackWrites(stmt);
    } catch {
      writes = undefined;
    }
    return { ...(lineage === undefined ? {} : { lineage }), ...(writes === undefined ? {} : { writes }) };
  }
}

/**
 * Lineage of the result of one parsed statement, or undefined when the statement returns no
 * rows to the client (FETCH included: the session knows its cursor). Never throws.
 */
export function resultLineage(stmt: unknown, options: LineageOptions = {}): ResultLineage | undefined {
  return statementLineage(stmt, options).lineage;
}

/**
 * Parses SQL text (a single statement, e.g. a view definition from pg_get_viewdef, or a SQL
 * function body) and returns its lineage; for several statements, the last one's. Undefined if
 * it does not parse or returns no rows.
 */
export function resultLineageOfSql(sql: string, options: LineageOptions = {}): ResultLineage | undefined {
  const parsed = parseSql(sql);
  if (!parsed.ok || parsed.stmts.length === 0) return undefined;
  return resultLineage(parsed.stmts[parsed.stmts.length - 1]!.stmt, options);
}
