/**
 * The walk over a node-sql-parser tree that finds the objects a statement reads and writes,
 * the columns it uses, and the functions it calls. Operation classes and hazards are decided
 * by statement.ts from the tokens (the statement's kind, an always-true WHERE, functions with
 * side effects); this walk adds `read` when the statement reads a table or calls a function,
 * so that an UPDATE whose WHERE reads columns is write + read and a policy sees what it reads.
 *
 * Columns are attributed as the PostgreSQL dialect does: a qualified column to the relation
 * it names, an unqualified one to the only relation in scope; with several relations in scope
 * the tables' column lists become unknown (which needs the catalog), so `columns` is absent.
 */
import { type ObjectAccess, OperationClass } from '@sluice/core';
import type { Facts, ObjectEntry } from './facts.js';
import { branches, fromItems, functionName, isObj, list, nameOf, queryOf, type Obj } from './tree.js';

/** A relation visible in a query: a table, or a CTE or derived table (no table). */
class Rel {
  #entry: ObjectEntry | undefined;
  constructor(
    /** The name it is referred to by (its alias, or its name). */
    readonly name: string,
    /** The schema a qualified reference must name (absent when aliased or unqualified). */
    readonly schema: string | undefined,
    /** The table behind it, when it is one. */
    readonly table: { readonly schema: string | undefined; readonly name: string } | undefined,
    readonly open: (() => ObjectEntry) | undefined,
  ) {}

  get isTable(): boolean {
    return this.open !== undefined;
  }

  entry(): ObjectEntry | undefined {
    if (this.open === undefined) return undefined;
    return (this.#entry ??= this.open());
  }
}

class Scope {
  readonly rels: Rel[] = [];
  readonly ctes = new Set<string>();
  outputNames: ReadonlySet<string> | undefined;
  constructor(readonly parent: Scope | undefined) {}

  isCte(name: string): boolean {
    for (let s: Scope | undefined = this; s !== undefined; s = s.parent) if (s.ctes.has(name)) return true;
    return false;
  }
}

/** Keys of a node that hold no expression. */
const SKIP_KEYS: ReadonlySet<string> = new Set(['type', 'loc', 'tableList', 'columnList', 'as', 'keyword', 'prefix', 'suffix']);

/** Function-call syntax that is not a function. */
const NOT_FUNCTIONS: ReadonlySet<string> = new Set(['exists', 'not exists', 'any', 'all', 'some']);

export interface WalkOptions {
  /** A NATURAL JOIN was rewritten as a plain join: which columns it compares is not known. */
  readonly natural?: boolean;
}

export class Walker {
  constructor(
    readonly facts: Facts,
    readonly options: WalkOptions = {},
  ) {}

  /** A top-level statement's tree. */
  statement(ast: Obj): void {
    switch (ast['type']) {
      case 'select':
        this.query(ast, undefined);
        break;
      case 'insert':
      case 'replace':
        this.#insert(ast);
        break;
      case 'update':
        this.#update(ast);
        break;
      case 'delete':
        this.#delete(ast);
        break;
      case 'set':
        for (const a of list(ast['expr'])) if (isObj(a)) this.expr(a['right'], undefined);
        break;
      case 'call': {
        // The procedure is the write itself (not a read); its arguments are read.
        const call = ast['expr'];
        if (isObj(call)) {
          this.facts.fn(functionName(call));
          this.expr(call['args'], undefined);
        }
        break;
      }
      case 'create':
        this.#create(ast);
        break;
      case 'alter':
        this.#alter(ast);
        break;
      case 'load_data':
        this.#load(ast);
        break;
      default:
        this.expr(ast, undefined);
    }
  }

  // --- queries -------------------------------------------------------------------------------

  /** A query (with its set-operation branches). */
  query(select: Obj, parent: Scope | undefined): void {
    const scope = new Scope(parent);
    this.#with(select['with'], scope);
    for (const b of branches(select)) this.#core(b, scope);
  }

  #with(w: unknown, scope: Scope): void {
    const ctes = list(w).filter(isObj);
    if (ctes.some((c) => c['recursive'] === true)) for (const c of ctes) scope.ctes.add(nameOf(c['name']) ?? '');
    for (const c of ctes) {
      const q = queryOf(c['stmt']);
      if (q !== undefined) this.query(q, scope);
      scope.ctes.add(nameOf(c['name']) ?? '');
    }
  }

  #core(b: Obj, parent: Scope): void {
    const scope = new Scope(parent);
    for (const item of fromItems(b['from'])) this.#fromItem(item, scope);
    if (b['columns'] === '*') this.#star(undefined, scope);
    this.expr(b['columns'], scope);
    this.expr(b['where'], scope);
    this.expr(b['groupby'], scope);
    this.expr(b['having'], scope);
    this.expr(b['window'], scope);
    const outputs = new Set<string>();
    for (const c of list(b['columns'])) {
      const alias = isObj(c) ? nameOf(c['as']) : undefined;
      if (alias !== undefined) outputs.add(alias);
    }
    scope.outputNames = outputs;
    this.expr(b['orderby'], scope);
    scope.outputNames = undefined;
    this.expr(b['limit'], scope);
  }

  /** A FROM item; `lazy`: its tables are read only if referenced (a DML statement's targets). */
  #fromItem(item: unknown, scope: Scope, lazy = false): void {
    if (!isObj(item) || item['type'] === 'dual') return;
    const alias = nameOf(item['as']);
    const sub = queryOf(item['expr']);
    if (sub !== undefined) {
      this.query(sub, scope);
      scope.rels.push(new Rel(alias ?? '', undefined, undefined, undefined));
    } else if (Array.isArray(item['expr'])) {
      for (const inner of item['expr']) this.#fromItem(inner, scope, lazy);
    } else if (item['table'] !== undefined && item['table'] !== null) {
      const name = nameOf(item['table']) ?? '';
      const schema = nameOf(item['db']);
      if (schema === undefined && scope.isCte(name)) {
        scope.rels.push(new Rel(alias ?? name, undefined, undefined, undefined));
      } else {
        const table = { schema, name };
        const entry = lazy ? undefined : this.#table(schema, name, 'read');
        scope.rels.push(new Rel(alias ?? name, alias === undefined ? schema : undefined, table, () => entry ?? this.#table(schema, name, 'read')));
      }
    } else {
      // A table function or anything else: its expressions are read; it is not a table.
      this.expr(item['expr'], scope);
      scope.rels.push(new Rel(alias ?? '', undefined, undefined, undefined));
    }
    const using = list(item['using']).map((u) => nameOf(u)).filter((u): u is string => u !== undefined);
    // USING (c): the column of both sides; which relations those are is the join's.
    for (const c of using) for (const r of scope.rels) r.entry()?.columns.add(c);
    if (this.options.natural === true) for (const r of scope.rels) {
      const e = r.entry();
      if (e !== undefined) e.columnsUnknown = true;
    }
    this.expr(item['on'], scope);
  }

  // --- DML -----------------------------------------------------------------------------------

  #target(t: unknown): { schema: string | undefined; name: string } | undefined {
    if (!isObj(t)) return undefined;
    const name = nameOf(t['table']);
    return name === undefined ? undefined : { schema: nameOf(t['db']), name };
  }

  #insert(f: Obj): void {
    this.facts.op(OperationClass.Write);
    const t = this.#target(list(f['table'])[0]);
    if (t === undefined) {
      this.facts.unknown('INSERT without a target');
      return;
    }
    const target = this.facts.object(t.schema, t.name, 'table', 'write');
    const scope = new Scope(undefined);
    const columns = list(f['columns']);
    const set = list(f['set']);
    for (const c of columns) {
      const name = nameOf(c) ?? (isObj(c) ? nameOf(c['column']) : undefined);
      if (name !== undefined) target.columns.add(name.toLowerCase());
    }
    for (const s of set) {
      if (!isObj(s)) continue;
      const name = nameOf(s['column']);
      if (name !== undefined) target.columns.add(name.toLowerCase());
      this.expr(s['value'], scope);
    }
    if (columns.length === 0 && set.length === 0) target.columns.add('*');
    const values = f['values'];
    const q = queryOf(values);
    if (q !== undefined) this.query(q, undefined);
    else if (isObj(values)) this.expr(values['values'], scope);
    // ON DUPLICATE KEY UPDATE and RETURNING can read the target's columns.
    scope.rels.push(new Rel(t.name, t.schema, t, () => this.#table(t.schema, t.name, 'read')));
    const dup = f['on_duplicate_update'];
    if (isObj(dup)) {
      for (const s of list(dup['set'])) {
        if (!isObj(s)) continue;
        const name = nameOf(s['column']);
        if (name !== undefined) target.columns.add(name.toLowerCase());
        this.expr(s['value'], scope);
      }
    }
    this.#returning(f, scope);
  }

  #returning(f: Obj, scope: Scope): void {
    const r = f['returning'];
    if (!isObj(r)) return;
    this.facts.op(OperationClass.Read);
    const cols = r['columns'];
    if (cols === '*') this.#star(undefined, scope);
    this.expr(cols, scope);
  }

  #update(f: Obj): void {
    this.facts.op(OperationClass.Write);
    const scope = new Scope(undefined);
    this.#with(f['with'], scope);
    for (const item of list(f['table'])) this.#fromItem(item, scope, true);
    const tables = scope.rels.filter((r) => r.table !== undefined);
    const targets = new Set<Rel>();
    for (const s of list(f['set'])) {
      if (!isObj(s)) continue;
      const column = (nameOf(s['column']) ?? '').toLowerCase();
      const qualifier = nameOf(s['table']);
      const written = qualifier === undefined ? (tables.length === 1 ? tables : scope.rels) : scope.rels.filter((r) => r.name === qualifier);
      for (const r of written) {
        if (r.table === undefined) continue;
        targets.add(r);
        const entry = this.facts.object(r.table.schema, r.table.name, 'table', 'write');
        entry.columns.add(column);
        // Several tables and an unqualified column: which table has it is the catalog's.
        if (qualifier === undefined && tables.length > 1) entry.columnsUnknown = true;
      }
      this.expr(s['value'], scope);
    }
    this.expr(f['where'], scope);
    this.expr(f['orderby'], scope);
    this.expr(f['limit'], scope);
    this.#returning(f, scope);
    // The other tables of the list are read (joined) whether or not a column is named.
    for (const r of tables) if (!targets.has(r)) r.entry();
  }

  #delete(f: Obj): void {
    this.facts.op(OperationClass.Write);
    const scope = new Scope(undefined);
    this.#with(f['with'], scope);
    for (const item of list(f['from'])) this.#fromItem(item, scope, true);
    const targets = new Set<Rel>();
    for (const t of list(f['table'])) {
      const target = this.#target(t);
      if (target === undefined) continue;
      // A target names a table of FROM by its alias or its name.
      const rel = scope.rels.find((r) => r.name === target.name && (target.schema === undefined || r.schema === target.schema || r.table?.schema === target.schema));
      if (rel !== undefined) targets.add(rel);
      const table = rel?.table ?? target;
      this.facts.object(table.schema, table.name, 'table', 'write');
    }
    this.expr(f['where'], scope);
    this.expr(f['orderby'], scope);
    this.expr(f['limit'], scope);
    this.#returning(f, scope);
    for (const r of scope.rels) if (r.table !== undefined && !targets.has(r)) r.entry();
  }

  // --- DDL -----------------------------------------------------------------------------------

  #create(f: Obj): void {
    for (const t of list(f['table'])) {
      const target = this.#target(t);
      if (target !== undefined) this.facts.object(target.schema, target.name, 'table', 'ddl');
    }
    const like = f['like'];
    if (isObj(like)) {
      for (const t of list(like['table'])) {
        const source = this.#target(t);
        if (source !== undefined) this.#table(source.schema, source.name, 'read');
      }
    }
    const q = queryOf(f['query_expr']);
    if (q !== undefined) {
      this.facts.op(OperationClass.Write);
      this.query(q, undefined);
    }
  }

  #alter(f: Obj): void {
    const target = this.#target(list(f['table'])[0]);
    const entry = target === undefined ? undefined : this.facts.object(target.schema, target.name, 'table', 'ddl');
    for (const cmd of list(f['expr'])) {
      if (!isObj(cmd) || cmd['resource'] !== 'column') continue;
      for (const key of ['column', 'old_column']) {
        const c = cmd[key];
        const name = isObj(c) ? nameOf(c['column']) : undefined;
        if (name !== undefined) entry?.columns.add(name.toLowerCase());
      }
    }
  }

  #load(f: Obj): void {
    const t = this.#target(f['table']);
    if (t === undefined) return;
    const entry = this.facts.object(t.schema, t.name, 'table', 'write');
    const columns: string[] = [];
    collectColumns(f['column'], columns);
    for (const s of list(f['set'])) {
      if (!isObj(s)) continue;
      const name = nameOf(s['column']);
      if (name !== undefined) columns.push(name.toLowerCase());
      this.expr(s['value'], undefined);
    }
    if (columns.length === 0) entry.columns.add('*');
    for (const c of columns) entry.columns.add(c);
  }

  // --- expressions ---------------------------------------------------------------------------

  /** Walks an expression (or any subtree) for columns, functions and subqueries. */
  expr(v: unknown, scope: Scope | undefined): void {
    if (Array.isArray(v)) {
      for (const item of v) this.expr(item, scope);
      return;
    }
    if (!isObj(v)) return;
    const q = queryOf(v);
    if (q !== undefined) {
      this.query(q, scope);
      return;
    }
    switch (v['type']) {
      case 'column_ref':
        this.#column(v, scope);
        return;
      case 'function':
      case 'aggr_func': {
        const name = functionName(v);
        if (!NOT_FUNCTIONS.has(name)) {
          this.facts.fn(name);
          this.facts.op(OperationClass.Read);
        }
        for (const key in v) if (key !== 'name' && !SKIP_KEYS.has(key)) this.expr(v[key], scope);
        return;
      }
      default:
        for (const key in v) if (!SKIP_KEYS.has(key)) this.expr(v[key], scope);
    }
  }

  #column(f: Obj, scope: Scope | undefined): void {
    const column = nameOf(f['column']);
    if (column === undefined) return;
    const table = nameOf(f['table']);
    const schema = nameOf(f['db']);
    if (column === '*') {
      this.#star(table, scope);
      return;
    }
    const col = column.toLowerCase();
    if (table === undefined) {
      for (let s = scope; s !== undefined; s = s.parent) {
        if (s.rels.length === 0) continue;
        if (s.outputNames?.has(column) === true) return;
        if (s.rels.length === 1) s.rels[0]!.entry()?.columns.add(col);
        else for (const r of s.rels) if (r.isTable) r.entry()!.columnsUnknown = true;
        return;
      }
      return;
    }
    for (let s = scope; s !== undefined; s = s.parent) {
      for (const r of s.rels) {
        if (r.name === table && (schema === undefined || r.schema === schema || r.table?.schema === schema)) {
          r.entry()?.columns.add(col);
          return;
        }
      }
    }
  }

  /** `*` or `t.*`: every column of the relations it covers. */
  #star(table: string | undefined, scope: Scope | undefined): void {
    for (let s = scope; s !== undefined; s = s.parent) {
      const rels = table === undefined ? s.rels : s.rels.filter((r) => r.name === table);
      if (rels.length === 0) continue;
      for (const r of rels) r.entry()?.columns.add('*');
      return;
    }
  }

  #table(schema: string | undefined, name: string, access: ObjectAccess): ObjectEntry {
    if (access === 'read') this.facts.op(OperationClass.Read);
    return this.facts.object(schema, name, 'table', access);
  }
}

/** Column names of column references anywhere in a subtree. */
function collectColumns(v: unknown, out: string[]): void {
  if (Array.isArray(v)) {
    for (const x of v) collectColumns(x, out);
    return;
  }
  if (!isObj(v)) return;
  if (v['type'] === 'column_ref') {
    const c = nameOf(v['column']);
    if (c !== undefined) out.push(c.toLowerCase());
    return;
  }
  for (const key in v) if (key !== 'type') collectColumns(v[key], out);
}

